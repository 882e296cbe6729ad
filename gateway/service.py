"""The gateway: the whole public HTTP API (../shared/API.md), composed from the route mixins in gateway/routes.

It holds no business logic: each route validates its input, calls a service over RPC and maps errors
(gateway/http.py). The RPC clients below are the only way out of the gateway, besides reading the products
service's Redis entries (``products_cache``) for warm product reads.
"""

from common.cache import SharedCache
from common.correlation import CorrelationId
from common.logging import LogContext
from common.metrics import Metrics
from common.rpc import ServiceRpc
from common.tracing import Tracing
from gateway.auth import AccountEvents, Auth
from gateway.routes.accounts import AccountRoutes
from gateway.routes.admin import AdminRoutes
from gateway.routes.catalogue import CatalogueRoutes
from gateway.routes.docs import DocsRoutes
from gateway.routes.invoices import InvoiceRoutes
from gateway.routes.operations import OperationsRoutes
from gateway.routes.orders import OrderRoutes
from gateway.routes.stock import StockRoutes
from gateway.routes.webhooks import WebhookRoutes


class GatewayService(AccountRoutes, CatalogueRoutes, StockRoutes, OrderRoutes, OperationsRoutes, InvoiceRoutes,
                     DocsRoutes, AdminRoutes, WebhookRoutes, AccountEvents):
    name = "gateway"

    accounts_rpc = ServiceRpc("accounts")
    products_rpc = ServiceRpc("products")
    inventory_rpc = ServiceRpc("inventory")
    orders_rpc = ServiceRpc("orders")
    notifications_rpc = ServiceRpc("notifications")
    webhooks_rpc = ServiceRpc("webhooks")
    products_cache = SharedCache("products")
    auth = Auth()
    correlation = CorrelationId()
    log_context = LogContext()
    tracing = Tracing()
    metrics = Metrics()
