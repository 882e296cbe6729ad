"""SIGTERM of a real ``nameko run`` process (what Kubernetes sends after the preStop hook): it stops taking work,
finishes the workers in flight (their callers get their answers, their messages are acked, not delivered again),
publishes what they committed to the outbox, and exits 0; what arrives meanwhile waits in its queue."""

import signal
import time

from kombu import Connection, Exchange, Queue
from nameko.standalone.rpc import ServiceRpcClient
from sqlalchemy import create_engine, func, select

from tests.processes import Process
from tests.processes.journal import NAME, Base, Entry, OutboxMessage

IN_FLIGHT = 6
PAUSE = 3.0  # each worker's: the SIGTERM lands 1 s in, and nameko's consumer would close within 1 s of it
GRACE = 20  # well inside the Deployments' terminationGracePeriodSeconds


def counts(engine):
    with engine.connect() as connection:
        return (connection.scalar(select(func.count()).select_from(Entry)),
                connection.scalar(select(func.count()).select_from(OutboxMessage)
                                  .where(OutboxMessage.published_at.is_(None))))


def drain(queue):
    bodies = []
    while (message := queue.get(no_ack=True)) is not None:
        bodies.append(message.payload)
    return bodies


def test_sigterm_finishes_the_workers_in_flight_and_leaves_the_outbox_sent(tmp_path, rabbit_config, rabbit_uri):
    db_uri = f"sqlite:///{tmp_path}/journal.db"
    engine = create_engine(db_uri)
    Base.metadata.create_all(engine)
    events = Queue("journal-events-seen", Exchange(f"{NAME}.events", type="topic", durable=True), "#")
    with Connection(rabbit_uri) as connection:
        events(connection).declare()
    settings = {"AMQP_URI": rabbit_uri, "DB_URIS": {f"{NAME}:Base": db_uri}, "OUTBOX_POLL_INTERVAL": 60,
                "OUTBOX_IDLE_POLL_MAX_SECONDS": 60}  # no poll: only the relay's own kicks publish
    process = Process(tmp_path, NAME, "tests.processes.journal", settings)
    try:
        process.start()
        with ServiceRpcClient(NAME, timeout=GRACE) as client:
            replies = [client.write.call_async(f"in flight {n}", pause=PAUSE) for n in range(IN_FLIGHT)]
            time.sleep(1)
            stopped_at = time.monotonic()
            process.child.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            late = client.write.call_async("sent after SIGTERM")

            assert len({reply.result() for reply in replies}) == IN_FLIGHT  # every caller answered
            assert process.child.wait(GRACE) == 0
            assert time.monotonic() - stopped_at < PAUSE + 5
            entries, unsent = counts(engine)
            # the late request waits in the queue, unless it came in before the stop took effect (the signal
            # handler only schedules it) and was carried out in full
            assert entries in (IN_FLIGHT, IN_FLIGHT + 1) and unsent == 0, process.log()[-3000:]

            process.start()
            assert late.result()
            time.sleep(PAUSE)  # time for anything delivered again to be carried out again
            assert counts(engine) == (IN_FLIGHT + 1, 0), "a request was carried out twice"

        with Connection(rabbit_uri) as connection:
            published = drain(events(connection))
        assert sorted(envelope["data"]["text"] for envelope in published) == \
            sorted([f"in flight {n}" for n in range(IN_FLIGHT)] + ["sent after SIGTERM"])
    finally:
        process.stop()
        engine.dispose()
