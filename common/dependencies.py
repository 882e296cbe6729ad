"""Finding another provider the service class declares: ``declared(container, "db")`` from a provider's
``setup``, for the providers that work with the service's ``Database`` or dispatcher (the outbox, the webhook
couriers, the products text index) without it being passed to them."""


def declared(container, attr_name, needed_by="this provider", what="a dependency"):
    """The dependency provider declared as ``attr_name`` on the service class of ``container``."""
    for dependency in container.dependencies:
        if dependency.attr_name == attr_name:
            return dependency
    raise LookupError(f"{container.service_name}: {needed_by} needs {what} declared as `{attr_name}`")
