"""Route mixins composed into ``GatewayService``: each declares ``@api`` routes for one part of API.md."""
