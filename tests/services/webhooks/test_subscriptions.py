"""What the webhooks process does with the events nobody subscribed to (nothing in its database), that a webhook
created later still gets the events after it, in one replica or another, and that the courier still finds a
delivery nobody woke it for. Every test runs on SQLite and MariaDB."""

from datetime import datetime, timedelta

from nameko import config
from sqlalchemy import create_engine, insert, select
from sqlalchemy.orm import Session

from services.webhooks.courier import Couriers
from services.webhooks.models import Delivery, ProcessedEvent
from services.webhooks.service import WebhooksService
from tests.services.webhooks.test_delivery import an_order, deliveries, publish
from tests.support import wait_until


def processed_event_ids():
    engine = create_engine(config["DB_URIS"]["webhooks:Base"])
    try:
        with engine.connect() as connection:
            return set(connection.scalars(select(ProcessedEvent.event_id)))
    finally:
        engine.dispose()


def test_events_nobody_subscribed_to_leave_nothing_in_the_database(webhooks, receivers):
    unwanted = [publish("orders", "order.created", n, an_order(n, "PENDING_PAYMENT"))["event_id"] for n in range(5)]
    receiver = receivers()
    hook = webhooks.create_webhook({"url": receiver.url, "events": ["order.paid"]})
    unwanted.append(publish("orders", "order.created", 9, an_order(9, "PENDING_PAYMENT"))["event_id"])
    paid = publish("orders", "order.paid", 9, an_order(9, "PAID"))

    # one event at a time, in order: when order.paid is delivered, every order.created before it was handled
    wait_until(lambda: deliveries(webhooks, hook, "DELIVERED"), message="the order.paid delivery")
    assert [event["event_id"] for event in receiver.events()] == [paid["event_id"]]
    assert [delivery["event_id"] for delivery in deliveries(webhooks, hook)] == [paid["event_id"]]
    assert processed_event_ids() == {paid["event_id"]}  # not even a processed-event record for the others
    assert not set(unwanted) & processed_event_ids()


def test_a_webhook_created_after_the_subscriptions_were_read_gets_the_later_events(webhooks, receivers):
    witness = receivers()
    webhooks.create_webhook({"url": witness.url, "events": ["product.updated"]})
    publish("orders", "order.paid", 1, an_order(1, "PAID"))  # nobody wants it yet
    publish("products", "product.updated", 2, {"id": 2})
    wait_until(lambda: witness.requests, message="the witness's delivery")  # the subscriptions were read by now

    receiver = receivers()
    hook = webhooks.create_webhook({"url": receiver.url, "events": ["order.paid"]})
    later = publish("orders", "order.paid", 3, an_order(3, "PAID"))

    wait_until(lambda: receiver.requests, message="the new webhook's delivery")
    assert [event["event_id"] for event in receiver.events()] == [later["event_id"]]
    webhooks.update_webhook(hook["id"], {"events": ["order.cancelled"]})
    publish("orders", "order.paid", 4, an_order(4, "PAID"))
    cancelled = publish("orders", "order.cancelled", 4, an_order(4, "CANCELLED"))
    wait_until(lambda: len(receiver.requests) == 2, message="the changed webhook's delivery")
    assert receiver.events()[1]["event_id"] == cancelled["event_id"]  # not the order.paid before it


def test_a_webhook_created_on_another_replica_gets_the_later_events(webhooks, receivers, container_factory):
    container_factory(WebhooksService).start()  # either replica may answer the RPC, either may consume the events
    witness = receivers()
    webhooks.create_webhook({"url": witness.url, "events": ["product.updated"]})
    publish("products", "product.updated", 2, {"id": 2})
    wait_until(lambda: witness.requests, message="the witness's delivery")

    # one replica's change must reach the other's subscriptions, whichever made it (each a new event type)
    for n, event_type in enumerate(("order.created", "order.paid", "order.cancelled", "order.status_changed")):
        receiver = receivers()
        webhooks.create_webhook({"url": receiver.url, "events": [event_type]})
        publish("orders", event_type, 10 + n, an_order(10 + n, "SHIPPED"))
        wait_until(lambda receiver=receiver: receiver.requests, message=f"the {event_type} webhook's delivery")


def test_a_delivery_nobody_woke_the_courier_for_is_still_sent(service_config, container_factory, receivers):
    """A row another replica recorded just before it crashed: no kick reaches this one, its idle poll finds it."""
    with config.patch({"WEBHOOK_POLL_SECONDS": 0.1, "WEBHOOK_IDLE_POLL_MAX_SECONDS": 0.5,
                       "WEBHOOK_PUBLIC_ONLY": False}):
        container_factory(WebhooksService).start()
        from nameko.standalone.rpc import ServiceRpcClient

        with ServiceRpcClient("webhooks") as webhooks:
            receiver = receivers()
            hook = webhooks.create_webhook({"url": receiver.url, "events": ["order.paid"]})
            engine = create_engine(config["DB_URIS"]["webhooks:Base"])
            try:
                with Session(engine) as session, session.begin():
                    session.execute(insert(Delivery), [{
                        "webhook_id": hook["id"], "event_id": "00000000-0000-4000-8000-000000000001",
                        "event_type": "order.paid", "aggregate_id": "5", "body": '{"event_type":"order.paid"}',
                        "status": "PENDING", "attempts": 0}])
            finally:
                engine.dispose()
            wait_until(lambda: receiver.requests, message="the delivery found by the poll")
    assert receiver.requests[0]["body"] == b'{"event_type":"order.paid"}'


def test_the_idle_poll_backs_off_but_not_past_the_next_retry():
    now = datetime(2026, 1, 1)
    with config.patch({"WEBHOOK_POLL_SECONDS": 1, "WEBHOOK_IDLE_POLL_MAX_SECONDS": 10}):
        assert Couriers.next_delay(4, True, None, now) == 1  # work: the short poll
        assert [Couriers.next_delay(last, False, None, now) for last in (1, 2, 4, 8, 10)] == [2, 4, 8, 10, 10]
        assert Couriers.next_delay(8, False, now + timedelta(seconds=3), now) == 3
        assert Couriers.next_delay(8, False, now - timedelta(seconds=3), now) == 1  # overdue: no sooner than a poll
