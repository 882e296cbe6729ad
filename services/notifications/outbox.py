"""``common.outbox.Outbox`` with a relay that, on SQLite, publishes outside the database transaction.

The common relay publishes while its transaction is open. On SQLite every transaction is ``BEGIN IMMEDIATE``
(common/db.py), so a worker that starts writing meanwhile waits in SQLite's busy handler — a blocking C call that
stalls the whole eventlet hub — and the relay, waiting on the broker's confirm, can never commit: 30 s stalls and
"database is locked" whenever events and writes overlap. SQLite means one process, so reading the batch, publishing,
then marking it sent in a second transaction loses nothing (a crash in between only repeats events, which the
outbox allows). Other databases keep the common relay, whose ``FOR UPDATE`` serialises replicas.
"""

from types import SimpleNamespace

from sqlalchemy import select, update

from common.events import utcnow
from common.outbox import BATCH_SIZE
from common.outbox import Outbox as CommonOutbox


class Outbox(CommonOutbox):
    def relay_batch(self):
        if self.database.engine.dialect.name != "sqlite":
            return super().relay_batch()
        model = self.model
        with self.database.Session(close_on_exit=True) as session, session.begin():
            rows = [SimpleNamespace(id=row.id, event_id=row.event_id, event_type=row.event_type,
                                    envelope=row.envelope)
                    for row in session.scalars(select(model).where(model.published_at.is_(None))
                                               .order_by(model.id).limit(BATCH_SIZE))]
        for row in rows:
            self.publish(row)
        if rows:
            with self.database.Session(close_on_exit=True) as session, session.begin():
                session.execute(update(model).where(model.id.in_([row.id for row in rows]))
                                .values(published_at=utcnow(), attempts=model.attempts + 1))
        return len(rows)
