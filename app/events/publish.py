"""Publishing from service code: write the EventRecord in the caller's transaction, hand the event
over only after that transaction commits (Zulip's ``send_event_on_commit``).

Service code runs in Starlette's threadpool, the arq worker or the CLI. It hands events to one
process-wide *sink*: the running EventHub (thread-safe) in a web process, a blocking Redis
PUBLISH in a process without a hub, or nothing (``memory://`` reaches only its own process).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event as sa_event, insert
from sqlalchemy.orm import Session as OrmSession, SessionTransaction
from sqlmodel import Session, col, select

from app.db import Database, forget_rolled_back
from app.events.broker import DEFAULT_CHANNEL, RedisSyncPublisher, is_redis_url
from app.events.types import Event, check_event_type, check_topic, json_roundtrip
from app.models import EventRecord

log = logging.getLogger(__name__)

EventSink = Callable[[Event], None]

_PENDING = "madoguchi.events.pending"  # recorded, not yet written
_READY = "madoguchi.events.ready"  # written in this transaction, published after its commit
_sink_lock = threading.Lock()
_sink: EventSink | None = None


def set_event_sink(sink: EventSink | None) -> EventSink | None:
    """Install the process-wide sink (None: drop events); returns the previous one.

    A sink is called from whichever thread commits, so it must be thread-safe.
    """
    global _sink
    with _sink_lock:
        previous, _sink = _sink, sink
    return previous


def get_event_sink() -> EventSink | None:
    return _sink


def sink_for_url(url: str, *, channel: str = DEFAULT_CHANNEL) -> EventSink | None:
    """The sink for a process without a hub: blocking Redis PUBLISH, or None for ``memory://``.

    CLI and worker start-up: ``set_event_sink(sink_for_url(settings.effective_events_url))``.
    """
    return RedisSyncPublisher(url, channel=channel) if is_redis_url(url) else None


def send_event_rollback_unsafe(event: Event) -> None:
    """Hand `event` to the sink now, whatever becomes of the transaction that wrote it.

    Only for after-commit hooks and tests: an event sent before its commit can announce a
    change that is then rolled back.
    """
    sink = _sink
    if sink is None:
        log.debug(
            "no event sink in this process; event %s (%s/%s) dropped", event.id, event.topic, event.type
        )
        return
    sink(event)


def send_transient(topic: str, type: str, data: Mapping[str, Any]) -> None:
    """Send an event that is never written anywhere: no EventRecord, no replay buffer, no id.

    For device commands that carry secrets for a moment (a PIN on its way to the card): whoever
    listens now gets it; a bridge that is not connected does not, and the caller times out.
    """
    check_topic(topic)
    check_event_type(type)
    send_event_rollback_unsafe(Event(id=0, topic=topic, type=type, data=dict(data), at=datetime.now(UTC)))


def publish_on_commit(
    session: Session, topic: str, type: str, data: Mapping[str, Any] | None = None
) -> EventRecord:
    """Record an event in `session`'s transaction; publish it once that transaction commits.

    The records of a transaction are written together just before it commits (one INSERT for
    all of them, `write_pending_events`), which also gives them their ids; on SQLite, whose
    writers hold the write lock from their first statement, ids then follow commit order.
    Nothing is published or kept if the transaction rolls back, or if the savepoint that recorded
    the event rolls back.

    Raises EventError for an unknown topic, a bad type, or data that is not JSON.
    """
    check_topic(topic)
    check_event_type(type)
    payload = json_roundtrip(data or {})
    record = EventRecord(topic=topic, type=type, data=payload)
    if session.get_transaction() is None:
        session.connection()  # begin the transaction the event belongs to (a rollback drops it)
    savepoint = session.get_nested_transaction()
    session.info.setdefault(_PENDING, []).append((record, savepoint))
    return record


def write_pending_events(session: Session) -> None:
    """Insert the events recorded in this transaction, in order, with one statement (called
    before the transaction commits; call it yourself to see them in a query before the commit)."""
    pending: list[tuple[EventRecord, SessionTransaction | None]] = session.info.pop(_PENDING, [])
    if not pending:
        return
    records = [record for record, _ in pending]
    table = EventRecord.__table__  # type: ignore[attr-defined]
    rows = [{"at": r.at, "topic": r.topic, "type": r.type, "data": r.data} for r in records]
    if len(rows) == 1 or session.get_bind().dialect.name != "sqlite":
        # PostgreSQL: SQLAlchemy's "insertmanyvalues" sends one INSERT … VALUES … RETURNING and
        # matches the ids to the rows in order.
        result = session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
        ids = list(result.scalars())
    else:
        # SQLite: one multi-row INSERT (SQLAlchemy would send a row at a time to keep the order).
        # Its RETURNING rows come in no set order, but the rows take rising ids in VALUES order
        # (INTEGER PRIMARY KEY, one writer at a time), so the sorted ids are the rows' ids.
        ids = sorted(session.execute(insert(table).values(rows).returning(table.c.id)).scalars())
    ready: list[Event] = session.info.setdefault(_READY, [])
    for record, record_id in zip(records, ids, strict=True):
        record.id = record_id
        # Built now: no SQL may run in the after-commit hook.
        ready.append(
            Event(id=record_id, topic=record.topic, type=record.type, data=record.data, at=record.at)
        )


@sa_event.listens_for(OrmSession, "before_commit")
def _write_before_commit(session: OrmSession) -> None:
    if session.in_nested_transaction():
        return  # a savepoint is being released; its events go with the outer transaction
    if session.info.get(_PENDING):
        write_pending_events(session)  # type: ignore[arg-type]


@sa_event.listens_for(OrmSession, "after_commit")
def _publish_after_commit(session: OrmSession) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released; the real commit is still to come
    for event in session.info.pop(_READY, []):
        try:
            send_event_rollback_unsafe(event)
        except Exception:
            # The commit has happened; failing the request now would report a false error.
            log.exception("event %s (%s/%s) committed but not published", event.id, event.topic, event.type)


@sa_event.listens_for(OrmSession, "after_soft_rollback")
def _forget_after_rollback(session: OrmSession, previous_transaction: SessionTransaction) -> None:
    """A rollback drops the events recorded in what it rolled back: the whole transaction, or a
    savepoint (with the savepoints inside it)."""
    if previous_transaction.parent is None:
        session.info.pop(_READY, None)
    forget_rolled_back(session.info, _PENDING, previous_transaction)


def event_from_record(record: EventRecord) -> Event:
    assert record.id is not None
    return Event(id=record.id, topic=record.topic, type=record.type, data=record.data, at=record.at)


def load_events(db: Database, *, after_id: int | None, limit: int) -> tuple[list[Event], int | None]:
    """The newest `limit` events with id > `after_id`, oldest first.

    Also returns the id of the newest event left out because of `limit` (None if none was):
    a client that has seen less than that id needs a full reload.
    """
    statement = select(EventRecord).order_by(col(EventRecord.id).desc()).limit(limit + 1)
    if after_id is not None:
        statement = statement.where(col(EventRecord.id) > after_id)
    with db.session() as session:
        records = list(session.exec(statement))
    dropped = records[limit].id if len(records) > limit else None
    return [event_from_record(record) for record in reversed(records[:limit])], dropped
