"""The whole saga on real parts: products, inventory, orders and payments services on the real broker, the real
gRPC provider as a subprocess, and a migrated database (SQLite and MariaDB)."""

import itertools
import json

import grpc
import pytest
from nameko import config
from nameko.standalone.rpc import ClusterRpcClient
from sqlalchemy import select

from bridge.payments import PaymentsService
from common.db import make_engine
from payment_provider import protos
from services.inventory.service import InventoryService
from services.orders.models import OutboxMessage
from services.orders.service import OrdersService
from services.products.service import ProductsService
from tests.payment_provider.provider import payment_provider  # noqa: F401  (the fixture)
from tests.support import wait_until

pb, pb_grpc = protos()
ADDRESS = {"name": "Ada Lovelace", "line1": "1 Analytical Way", "city": "London", "postal_code": "N1 9GU",
           "country": "GB"}
# Saga timings scaled down so a test waits seconds, not minutes; the logic is the production one.
FAST_SAGA = {"PAYMENT_TIMEOUT_SECONDS": 3, "PAYMENT_PENDING_TIMEOUT_SECONDS": 2,
             "ORDERS_RECONCILE_INTERVAL_SECONDS": 0.3, "ORDERS_SETTLE_RETRY_SECONDS": 0.5,
             "ORDERS_RESERVATION_TIMEOUT_SECONDS": 5, "RPC_TIMEOUT_SECONDS": 10,
             "PUBLIC_BASE_URL": "https://shop.example"}


SKUS = itertools.count(1)


class Saga:
    def __init__(self, containers, provider, rpc):
        self.containers = containers
        self.provider = provider
        self.rpc = rpc

    def product(self, stock=10, price="19.99", sku=None):
        product = self.rpc.products.create_product(
            {"sku": sku or f"SKU-{next(SKUS)}", "name": "Widget", "price": price,
             "initial_stock": stock})
        wait_until(lambda: self.stock_or_none(product["id"]), message="stock for the new product")
        return product

    def stock_or_none(self, product_id):
        try:
            return self.rpc.inventory.get_stock(product_id)
        except Exception:
            return None

    def stock(self, product_id):
        return self.rpc.inventory.get_stock(product_id)

    def order(self, items, token="tok_visa", customer_id=1, key=None):
        return self.rpc.orders.create_order(customer_id, items, ADDRESS, token, idempotency_key=key)["order"]

    def wait_for_status(self, order_id, *statuses, timeout=20):
        return wait_until(lambda: (o := self.rpc.orders.get_order(order_id))["status"] in statuses and o,
                          timeout=timeout, message=f"order {order_id} to become {'/'.join(statuses)}")


def outbox_events(db_uris):
    engine = make_engine(db_uris["orders:Base"])
    with engine.connect() as conn:
        events = [json.loads(e) for e in conn.execute(select(OutboxMessage.envelope).order_by(OutboxMessage.id))
                  .scalars()]
    engine.dispose()
    return events


def start(container_factory, service_cls):
    container = container_factory(service_cls)
    container.start()
    return container


@pytest.fixture
def saga_config(service_config, payment_provider):  # noqa: F811
    with config.patch({**FAST_SAGA, "PAYMENT_PROVIDER_ADDRESS": payment_provider.address, "max_workers": 20}):
        yield config


@pytest.fixture
def saga(saga_config, payment_provider, container_factory):  # noqa: F811
    containers = {cls.name: start(container_factory, cls)
                  for cls in (ProductsService, InventoryService, OrdersService, PaymentsService)}
    with ClusterRpcClient() as rpc:
        yield Saga(containers, payment_provider, rpc)


def authorize_at_the_provider(saga, order):
    channel = grpc.insecure_channel(saga.provider.address)
    try:
        pb_grpc.PaymentProviderStub(channel).Authorize(pb.AuthorizeRequest(
            idempotency_key=str(order["id"]), amount=order["total"], currency="USD", token="tok_visa"), timeout=5)
    finally:
        channel.close()


def provider_status(saga, order_id):
    channel = grpc.insecure_channel(saga.provider.address)
    try:
        payment = pb_grpc.PaymentProviderStub(channel).GetPayment(
            pb.PaymentRequest(idempotency_key=str(order_id)), timeout=5)
        return pb.PaymentStatus.Name(payment.status)
    finally:
        channel.close()
