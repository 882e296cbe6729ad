"""The admin panel (``GET /admin``, static files of gateway/admin) and the reads only it needs.

The panel is plain ES modules talking to this public API with a bearer token. Its page has its own
Content-Security-Policy: scripts, styles and connections to this origin only (the API's is ``default-src 'none'``).
``GET /admin/summary`` and ``GET /users`` are admin reads computed by the services (orders, inventory, accounts).
"""

import mimetypes

from werkzeug.wrappers import Response

from common.errors import NotFound
from gateway.admin import STATIC
from gateway.http import api
from schemas.accounts import UserPageSchema, UserQuerySchema
from schemas.admin import AdminSummarySchema

ADMIN = ["Admin"]
ASSETS = {"app.js", "api.js", "screens.js", "ui.js", "style.css"}
RECENT_ORDERS = 8
LOW_STOCK_ROWS = 10
PANEL_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
             "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


class AdminRoutes:
    """Needs ``orders_rpc``, ``inventory_rpc``, ``products_rpc`` and ``accounts_rpc`` on the service."""

    @api("GET", "/admin", rate_limit=False, summary="The admin panel (a web page for staff)", tags=ADMIN,
         responses={200: "text/html"})
    def admin_panel(self, request):
        return panel_file("index.html", cache="no-cache")

    @api("GET", "/admin/static/<string:asset>", rate_limit=False, openapi=False, tags=ADMIN)
    def admin_asset(self, request, asset):
        if asset not in ASSETS:
            raise NotFound("No such admin panel file.", code="not_found")
        return panel_file(asset, cache="no-cache")

    @api("GET", "/admin/summary", auth="admin", responses={200: AdminSummarySchema},
         summary="The admin overview: orders by status, revenue, low stock, newest orders", tags=ADMIN)
    def admin_summary(self, request):
        orders = self.orders_rpc.order_summary(recent=RECENT_ORDERS)
        low = self.inventory_rpc.low_stock(limit=LOW_STOCK_ROWS)
        products = {product["id"]: product for product in
                    (self.products_rpc.get_products([level["product_id"] for level in low]) if low else [])}
        return {"by_status": orders["by_status"], "revenue": orders["revenue"], "recent_orders": orders["recent"],
                "low_stock": [{**level, "sku": products[level["product_id"]]["sku"],
                               "name": products[level["product_id"]]["name"]}
                              for level in low if level["product_id"] in products]}

    @api("GET", "/users", auth="admin", query=UserQuerySchema, responses={200: UserPageSchema},
         summary="List customer and staff accounts (find by email)", tags=ADMIN)
    def list_users(self, request, query):
        return self.accounts_rpc.list_users(email=query.get("email"), page=query["page"],
                                            page_size=query["page_size"])


def panel_file(name, cache):
    content_type = mimetypes.guess_type(name)[0]
    if name.endswith(".js"):
        content_type = "text/javascript"
    return Response((STATIC / name).read_bytes(), content_type=f"{content_type}; charset=utf-8",
                    headers={"Cache-Control": cache, "Content-Security-Policy": PANEL_CSP})
