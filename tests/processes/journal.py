"""``journal``: a Nameko service for the tests that run a real ``nameko run`` process (tests/common/test_probes.py,
test_graceful_shutdown.py): one RPC that writes a row and its outbox event after a pause, so a test can catch
workers in flight. It is built like every service (``Operational``, ``Database``, ``Outbox``, ``Metrics``).

    nameko run --config <file> tests.processes.journal
"""

import eventlet
from sqlalchemy import Column, Integer, String
from sqlalchemy.orm import DeclarativeBase

from common.db import Database
from common.health import Operational
from common.metrics import Metrics
from common.outbox import Outbox, OutboxMessageMixin
from common.rpc import rpc

NAME = "journal"


class Base(DeclarativeBase):
    pass


class Entry(Base):
    __tablename__ = "entries"
    id = Column(Integer, primary_key=True)
    text = Column(String(100), nullable=False)


class OutboxMessage(OutboxMessageMixin, Base):
    pass


class JournalService(Operational):
    name = NAME

    db = Database(Base)
    outbox = Outbox(OutboxMessage)
    metrics = Metrics()

    @rpc
    def write(self, text, pause=0.0):
        eventlet.sleep(pause)
        with self.db.get_session() as session:
            entry = Entry(text=text)
            session.add(entry)
            session.flush()
            self.outbox.add(session, "entry.written", entry.id, {"text": text})
            return entry.id
