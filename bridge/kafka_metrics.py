"""Prometheus metrics of the Kafka relay (exported by the process's ``common.metrics.Metrics``)."""

from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

RELAYED = Counter("pos_kafka_relayed_total", "Events Kafka confirmed, by topic", ["topic"])
FAILURES = Counter(
    "pos_kafka_relay_failures_total",
    "Relay failures: 'retried' (AMQP message requeued) or 'dead_lettered', by reason", ["outcome", "reason"],
)
LAG = Histogram(
    "pos_kafka_relay_lag_seconds", "From the event's occurred_at to Kafka's delivery report",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
IN_FLIGHT = Gauge("pos_kafka_in_flight", "Events produced and not yet confirmed by Kafka")
SHARDS_HELD = Gauge("pos_kafka_bridge_shards_held", "Shards this replica relays (it is their active consumer)")
SHARD_HANDOVERS = Counter("pos_kafka_bridge_shard_handovers_total", "Shards this replica handed to their owner")
PRODUCER_RESTARTS = Counter("pos_kafka_producer_restarts_total", "Kafka producers replaced after a stall")


def observe_lag(occurred_at, count=1):
    """``count`` events of ``occurred_at``, the envelope's RFC 3339 string; unparsable values are not observed."""
    try:
        moment = datetime.fromisoformat(occurred_at)
    except (TypeError, ValueError):
        return
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    lag = max(0.0, (datetime.now(UTC) - moment).total_seconds())
    for _ in range(count):
        LAG.observe(lag)
