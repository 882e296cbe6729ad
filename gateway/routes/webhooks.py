"""Webhooks (admin): external URLs subscribed to domain events, and what was delivered to them (API.md)."""

from gateway.http import api
from gateway.responses import created
from schemas.webhooks import (
    DeliveryPageSchema,
    DeliveryQuerySchema,
    DeliverySchema,
    WebhookCreatedSchema,
    WebhookCreateSchema,
    WebhookListSchema,
    WebhookSchema,
    WebhookUpdateSchema,
)

WEBHOOKS = ["Webhooks"]


class WebhookRoutes:
    """Needs ``webhooks_rpc`` on the service."""

    @api("POST", "/webhooks", auth="admin", body=WebhookCreateSchema, responses={201: WebhookCreatedSchema},
         summary="Subscribe a URL to events (the answer alone shows the signing secret)", tags=WEBHOOKS)
    def create_webhook(self, request, body):
        webhook = self.webhooks_rpc.create_webhook(body)
        return created(webhook, f"/webhooks/{webhook['id']}")

    @api("GET", "/webhooks", auth="admin", responses={200: WebhookListSchema}, summary="List webhooks",
         tags=WEBHOOKS)
    def list_webhooks(self, request):
        return self.webhooks_rpc.list_webhooks()

    @api("GET", "/webhooks/<int:webhook_id>", auth="admin", responses={200: WebhookSchema}, summary="A webhook",
         tags=WEBHOOKS)
    def get_webhook(self, request, webhook_id):
        return self.webhooks_rpc.get_webhook(webhook_id)

    @api("PATCH", "/webhooks/<int:webhook_id>", auth="admin", body=WebhookUpdateSchema,
         responses={200: WebhookSchema}, summary="Change a webhook (active: true reactivates it)", tags=WEBHOOKS)
    def update_webhook(self, request, webhook_id, body):
        return self.webhooks_rpc.update_webhook(webhook_id, body)

    @api("DELETE", "/webhooks/<int:webhook_id>", auth="admin", responses={204: None}, summary="Delete a webhook",
         tags=WEBHOOKS)
    def delete_webhook(self, request, webhook_id):
        self.webhooks_rpc.delete_webhook(webhook_id)

    @api("GET", "/webhooks/<int:webhook_id>/deliveries", auth="admin", query=DeliveryQuerySchema,
         responses={200: DeliveryPageSchema}, summary="A webhook's deliveries and their attempts, newest first",
         tags=WEBHOOKS)
    def list_deliveries(self, request, webhook_id, query):
        return self.webhooks_rpc.list_deliveries(webhook_id, query)

    @api("POST", "/webhooks/<int:webhook_id>/deliveries/<int:delivery_id>/redeliver", auth="admin",
         responses={202: DeliverySchema}, summary="Send a delivered or failed event again (same event id)",
         tags=WEBHOOKS)
    def redeliver(self, request, webhook_id, delivery_id):
        return 202, self.webhooks_rpc.redeliver(webhook_id, delivery_id)
