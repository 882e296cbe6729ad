"""``kafka_bridge``: every domain event of every source service, relayed to its Kafka topic.

One durable queue (``kafka_bridge.events``) is bound to each ``<service>.events`` exchange with ``#``. Each event
is produced with key = ``aggregate_id`` and value = its envelope to ``KAFKA_TOPIC_PREFIX`` + the topic of its type
family (``bridge.kafka_envelope.TOPICS``); the AMQP message is acked only once Kafka confirmed it. Poison events go
to the durable queue ``kafka_bridge.dead_letter``. Downstream contract: docs/kafka.md.

Run: ``nameko run --config config/dev.yml bridge.kafka_relay``.
"""

from bridge.kafka_entrypoint import relay_events
from bridge.kafka_producer import KafkaProducer
from common.health import Operational
from common.metrics import Metrics

SOURCE_SERVICES = ("accounts", "products", "inventory", "orders", "payments", "notifications")


class KafkaBridge(Operational):
    name = "kafka_bridge"

    kafka = KafkaProducer()
    metrics = Metrics()

    @relay_events(SOURCE_SERVICES)
    def relay(self, envelopes, traces=None):
        """Produce a burst of events; each AMQP message is acked when Kafka confirms its event. ``traces``: each
        event's trace context (from its AMQP headers), continued by its Kafka record."""
        return self.kafka.produce_each(envelopes, traces)
