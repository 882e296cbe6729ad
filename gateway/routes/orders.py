"""Orders: customers place, read and cancel their own; admins see all and ship them. (Invoices: invoices.py.)"""

from common.errors import Forbidden, ValidationFailed
from gateway.http import api
from gateway.responses import created
from schemas.orders import (
    IDEMPOTENCY_KEY_MAX,
    OrderCancelSchema,
    OrderCreateSchema,
    OrderPageSchema,
    OrderQuerySchema,
    OrderSchema,
    OrderStatusChangeSchema,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"


class OrderRoutes:
    """Needs ``orders_rpc`` on the service."""

    @api("POST", "/orders", auth="user", body=OrderCreateSchema,
         responses={201: OrderSchema, 200: OrderSchema, 404: None},
         summary="Place an order", tags=["Orders"],
         description="Prices come from the catalogue; stock is reserved at once (409 `insufficient_stock`). "
                     f"An `{IDEMPOTENCY_HEADER}` header makes retries safe: the same key from the same user "
                     "answers 200 with the first order instead of placing another.")
    def create_order(self, request, body, user):
        placed = self.orders_rpc.create_order(user["id"], body["items"], body["shipping_address"],
                                              body["payment_token"], idempotency_key=idempotency_key(request))
        order = placed["order"]
        return created(order, f"/orders/{order['id']}") if placed["created"] else order

    @api("GET", "/orders", auth="user", query=OrderQuerySchema, responses={200: OrderPageSchema},
         summary="List orders (your own; all for an admin)", tags=["Orders"])
    def list_orders(self, request, query, user):
        customer_id = query.get("customer_id") if is_admin(user) else user["id"]
        return self.orders_rpc.list_orders(customer_id=customer_id, status=query.get("status"),
                                           page=query["page"], page_size=query["page_size"])

    @api("GET", "/orders/<int:order_id>", auth="user", responses={200: OrderSchema}, summary="An order",
         tags=["Orders"])
    def get_order(self, request, order_id, user):
        return own_order(self.orders_rpc.get_order(order_id), user)

    @api("POST", "/orders/<int:order_id>/cancel", auth="user", body=OrderCancelSchema,
         responses={200: OrderSchema}, summary="Cancel an order", tags=["Orders"],
         description="Possible until the order ships (409 `illegal_transition` after); a paid order is refunded "
                     "and its stock returns.")
    def cancel_order(self, request, order_id, body, user):
        own_order(self.orders_rpc.get_order(order_id), user)
        return self.orders_rpc.cancel_order(order_id, body.get("reason"))

    @api("PATCH", "/orders/<int:order_id>/status", auth="admin", body=OrderStatusChangeSchema,
         responses={200: OrderSchema}, summary="Ship or deliver an order", tags=["Orders"],
         description="`PAID` -> `SHIPPED` -> `DELIVERED`; any other step is 409 `illegal_transition`.")
    def change_order_status(self, request, order_id, body):
        return self.orders_rpc.change_status(order_id, body["status"])


def is_admin(user):
    return user.get("role") == "admin"


def own_order(order, user):
    if not is_admin(user) and order["customer_id"] != user["id"]:
        raise Forbidden("This order belongs to another customer.", code="forbidden")
    return order


def idempotency_key(request):
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX:
        raise ValidationFailed(f"Invalid {IDEMPOTENCY_HEADER} header.",
                               {IDEMPOTENCY_HEADER: [f"1-{IDEMPOTENCY_KEY_MAX} characters."]})
    return key
