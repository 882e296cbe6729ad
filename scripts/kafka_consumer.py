"""A downstream consumer of the shop's Kafka topics: prints every event live, drops repeats by ``event_id``.

    python -m scripts.kafka_consumer                       # all topics, from now on
    python -m scripts.kafka_consumer --from-beginning orders payments
    KAFKA_BOOTSTRAP_SERVERS=kafka:9092 KAFKA_TOPIC_PREFIX=pos. python -m scripts.kafka_consumer

Plain confluent-kafka, no project imports: copy it as the start of your own consumer (docs/kafka.md).
"""

import argparse
import json
import os
import signal
import time
from collections import OrderedDict

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

TOPICS = ("orders", "payments", "inventory", "products", "notifications", "accounts")
SEEN_CAPACITY = 100_000  # a real consumer keeps processed event ids in its own database, with its side effects


class SeenEvents:
    """Remembers the last ``capacity`` event ids, to drop at-least-once repeats."""

    def __init__(self, capacity=SEEN_CAPACITY):
        self.capacity, self.ids = capacity, OrderedDict()

    def first_time(self, event_id):
        if event_id in self.ids:
            return False
        self.ids[event_id] = True
        if len(self.ids) > self.capacity:
            self.ids.popitem(last=False)
        return True


def new_partitions(bootstrap, topics, known, offset):
    """Partitions of the topics in ``topics`` that exist now and are not in ``known`` (a topic appears with its
    first event). ``assign()`` needs no consumer-group join; a group's ``subscribe()`` works too."""
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return [TopicPartition(topic, partition, offset)
            for topic in topics if topic not in known and topic in metadata.topics
            for partition in metadata.topics[topic].partitions]


def stop(*_):
    raise KeyboardInterrupt


def main():
    parser = argparse.ArgumentParser(description="Print the shop's domain events as they reach Kafka.")
    parser.add_argument("topics", nargs="*", default=list(TOPICS), help=f"of {', '.join(TOPICS)} (default all)")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--prefix", default=os.environ.get("KAFKA_TOPIC_PREFIX", "pos."))
    parser.add_argument("--from-beginning", action="store_true")
    args = parser.parse_args()

    topics = [args.prefix + topic for topic in args.topics]
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "pos-example-consumer",
                         "enable.auto.commit": False})
    signal.signal(signal.SIGTERM, stop)
    seen, known, next_lookup = SeenEvents(), set(), 0.0
    print(f"listening on {args.bootstrap}: {', '.join(topics)} (Ctrl-C stops)", flush=True)
    try:
        while True:
            if len(known) < len(topics) and time.monotonic() >= next_lookup:
                # topics that appear later are read from their start: all their events are new
                offset = OFFSET_BEGINNING if args.from_beginning or next_lookup else OFFSET_END
                partitions = new_partitions(args.bootstrap, topics, known, offset)
                consumer.incremental_assign(partitions)
                known |= {p.topic for p in partitions}
                next_lookup = time.monotonic() + 2
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            event = json.loads(message.value())
            if not seen.first_time(event["event_id"]):
                continue  # a repeat: delivery is at least once
            headers = {key: value.decode() for key, value in (message.headers() or [])}
            print(json.dumps({"topic": message.topic(), "key": message.key().decode(),
                              "correlation_id": headers.get("correlation_id"), **event}), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
