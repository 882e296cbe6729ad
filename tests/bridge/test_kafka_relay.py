"""The bridge relays committed domain events to Kafka: right topic, key, headers, order and a valid envelope."""

import uuid

import pytest
from kombu import Connection
from nameko import config
from nameko.rpc import rpc
from nameko.standalone.rpc import ServiceRpcClient
from sqlalchemy import Column, Integer, String
from sqlalchemy.orm import DeclarativeBase

from bridge.kafka_metrics import IN_FLIGHT
from bridge.kafka_relay import KafkaBridge
from bridge.kafka_shards import shard_queues
from common.correlation import CorrelationId
from common.db import Database, make_engine
from common.outbox import Outbox, OutboxMessageMixin
from schemas.events import event_types, validate
from tests.bridge.conftest import envelope
from tests.support import wait_until


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "bridge_test_orders"
    id = Column(Integer, primary_key=True)
    status = Column(String(20), nullable=False)


class OutboxMessage(OutboxMessageMixin, Base):
    pass


class OrdersLike:
    """Stands in for the orders service: state changes committed with their outbox events."""

    name = "orders"
    db = Database(Base)
    outbox = Outbox(OutboxMessage)
    correlation = CorrelationId()

    @rpc
    def place(self):
        return self._change(None, "PENDING_PAYMENT", "order.created")

    @rpc
    def move(self, order_id, status, event_type):
        return self._change(order_id, status, event_type)

    def _change(self, order_id, status, event_type):
        with self.db.get_session() as session:
            order = session.get(Order, order_id) if order_id else Order()
            order.status = status
            session.add(order)
            session.flush()
            self.outbox.add(session, event_type, order.id, {"id": order.id, "status": status, "total": "19.99"})
            return order.id


LIFECYCLE = [("PAID", "order.paid"), ("SHIPPED", "order.status_changed"), ("DELIVERED", "order.status_changed")]


@pytest.fixture
def orders_db(bridge_config, db_uris):
    uri = db_uris["orders:Base"]
    engine = make_engine(uri)
    Base.metadata.create_all(engine)
    engine.dispose()
    with config.patch({"DB_URIS": {"orders:Base": uri}, "OUTBOX_POLL_INTERVAL": 0.2, "KAFKA_TOPIC_PREFIX": "pos."}):
        yield uri


def test_an_orders_lifecycle_appears_on_pos_orders_in_order_with_valid_envelopes(
        orders_db, container_factory, kafka_reader):
    container_factory(KafkaBridge).start()
    container_factory(OrdersLike).start()
    request_id = f"req-{uuid.uuid4().hex}"

    reader = kafka_reader("pos.orders")

    def mine(records):
        return [r for r in records if r.headers.get("correlation_id") == request_id]

    def seen_live(count):
        """Each event reaches Kafka while the order lives on, not only once the story is over."""
        return mine(reader.wait_for(lambda rs: len(mine(rs)) >= count, message=f"{count} order events"))

    with ServiceRpcClient("orders", context_data={"correlation_id": request_id}) as orders:
        order_id = orders.place()
        seen_live(1)
        for count, (status, event_type) in enumerate(LIFECYCLE, start=2):
            orders.move(order_id, status, event_type)
            seen_live(count)

    records = seen_live(4)
    assert len(records) == 4
    assert [(r.value["event_type"], r.value["data"]["status"]) for r in records] == [
        ("order.created", "PENDING_PAYMENT"), ("order.paid", "PAID"),
        ("order.status_changed", "SHIPPED"), ("order.status_changed", "DELIVERED")]
    for record in records:
        validate(record.value)
        assert record.key == str(order_id)
        assert record.value["correlation_id"] == request_id
        assert record.headers["event_id"] == record.value["event_id"]
        assert record.headers["event_type"] == record.value["event_type"]
    assert len({r.value["event_id"] for r in records}) == 4
    assert len({r.partition for r in records}) == 1


SAMPLES = {
    "category": ("products", {"id": 3, "name": "Books", "description": None, "parent_id": None,
                              "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}),
    "product": ("products", {"id": 7, "sku": "BK-1", "name": "A book", "description": "", "price": "19.99",
                             "currency": "USD", "category_id": 3, "available": 4, "initial_stock": 4,
                             "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                             "deleted_at": "2026-01-02T00:00:00Z"}),
    "stock": ("inventory", {"product_id": 7, "on_hand": 4, "reserved": 1, "available": 3,
                            "low_stock_threshold": 5, "version": 2, "order_id": 9, "quantity": 1}),
    "order": ("orders", {"id": 9, "customer_id": 2, "status": "PAID", "total": "19.99", "currency": "USD"}),
    "payment": ("payments", {"order_id": 9, "status": "authorized", "reference": "pay_1", "failure_reason": "",
                             "amount": "19.99", "currency": "USD", "reason": "card_declined"}),
    "notification": ("notifications", {"id": 5, "kind": "order_paid", "channel": "email",
                                       "recipient": "a@example.com", "subject": "Paid", "order_id": 9,
                                       "source_event_id": "e1", "attempts": 1, "sent_at": "2026-01-01T00:00:00Z"}),
    "user": ("accounts", {"id": 6, "deleted_at": "2026-01-01T00:00:00Z", "erased_at": "2026-01-01T00:00:00Z"}),
}
TOPIC = {"category": "products", "product": "products", "stock": "inventory", "order": "orders",
         "payment": "payments", "notification": "notifications", "user": "accounts"}


def test_every_event_type_reaches_its_topic_and_matches_its_schema(
        bridge_config, container_factory, publish_events, kafka_reader):
    container_factory(KafkaBridge).start()
    sent = {}
    for event_type in event_types():
        family = event_type.split(".")[0]
        source, data = SAMPLES[family]
        sent[event_type] = envelope(event_type, data.get("id") or data.get("product_id") or data["order_id"],
                                    data, source, correlation_id=f"req-{event_type}")
    publish_events(sent.values())

    prefix = config["KAFKA_TOPIC_PREFIX"]
    received = {}
    for topic in set(TOPIC.values()):
        expected = {t for t in sent if TOPIC[t.split(".")[0]] == topic}
        records = kafka_reader(prefix + topic).wait_for(lambda rs, n=len(expected): len(rs) >= n, message=topic)
        received.update({r.value["event_type"]: r for r in records})
        assert {r.value["event_type"] for r in records} == expected

    assert set(received) == set(sent) and len(sent) == len(event_types()) == 23
    for event_type, record in received.items():
        validate(record.value)
        assert record.value == sent[event_type]
        assert record.key == sent[event_type]["aggregate_id"]
        assert record.headers == {"event_id": sent[event_type]["event_id"], "event_type": event_type,
                                  "correlation_id": f"req-{event_type}"}


def relay_queue_depth():
    with Connection(config["AMQP_URI"]) as connection:
        channel = connection.default_channel
        return sum(channel.queue_declare(queue.name, passive=True).message_count for queue in shard_queues())


def test_messages_are_acked_once_kafka_has_them(bridge_config, container_factory, publish_events, kafka_reader):
    bridge = container_factory(KafkaBridge)
    bridge.start()
    sent = [envelope("stock.updated", i % 3 + 1, SAMPLES["stock"][1], "inventory") for i in range(200)]
    publish_events(sent)
    kafka_reader(config["KAFKA_TOPIC_PREFIX"] + "inventory").wait_for(lambda rs: len(rs) >= 200)
    wait_until(lambda: IN_FLIGHT._value.get() == 0, message="no delivery in flight")
    bridge.stop()  # unacked messages would go back to the queue here

    assert relay_queue_depth() == 0
