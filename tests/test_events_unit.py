"""app/events without a network: memory broker, hub replay and back-pressure, publish after commit."""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import start_blocking_portal
from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers the tables)
from app.db import Database
from app.domain.permissions import Permission
from app.events import (
    ClientStream,
    Event,
    EventError,
    EventHub,
    MemoryBroker,
    Reload,
    StreamItem,
    get_event_sink,
    publish_on_commit,
    required_permission,
    set_event_sink,
    topics_for,
)
from app.events.broker import OnEvent, OnGap


def async_test(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test on an event loop of its own, in a worker thread.

    The e2e suite's session-wide Playwright (sync API) keeps a loop running on the main thread
    for the rest of the session, so no second loop may run there.
    """

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        with start_blocking_portal(backend="asyncio") as portal:
            portal.call(functools.partial(test, *args, **kwargs))

    return run


VIEWER = topics_for({Permission.STAFF, Permission.EVENTS_VIEW})


def everything(topic: str) -> bool:
    return True


def make_event(event_id: int, topic: str = "staff", type: str = "ping", **data: Any) -> Event:
    return Event(id=event_id, topic=topic, type=type, data=dict(data), at=datetime.now(UTC))


async def take(stream: ClientStream, count: int, timeout: float = 3.0) -> list[StreamItem]:
    items: list[StreamItem] = []
    with anyio.fail_after(timeout):
        while len(items) < count:
            items.append(await stream.__anext__())
    return items


async def settle() -> None:
    """Let the hub's outbox task run."""
    for _ in range(5):
        await anyio.sleep(0)


def ids(items: list[StreamItem]) -> list[int]:
    return [item.id for item in items if isinstance(item, Event)]


@pytest.fixture(autouse=True)
def no_sink() -> Iterator[None]:
    previous = set_event_sink(None)
    yield
    set_event_sink(previous)


@pytest.fixture
def event_db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 't.db'}")
    SQLModel.metadata.create_all(database.engine)
    yield database
    database.dispose()


class Collect:
    """A thread-safe sink that keeps what it gets, checking it survives JSON as Zulip's tests do."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(Event.from_json(event.to_json()))


def write_events(db: Database, *specs: tuple[str, str], data: dict[str, Any] | None = None) -> list[int]:
    with db.write_session() as session:
        records = [publish_on_commit(session, topic, type, data or {}) for topic, type in specs]
        session.commit()
    return [record.id for record in records if record.id is not None]


# Types -------------------------------------------------------------------------------------------


def test_event_json_round_trip() -> None:
    event = make_event(7, "location:3", "ticket.called", number="A-012", 名前="山田")
    again = Event.from_json(event.to_json())
    assert again == event
    assert "山田" in event.to_json()  # kept readable, not \u-escaped


def test_event_rejects_naive_time_and_bad_json() -> None:
    with pytest.raises(EventError):
        Event(id=1, topic="staff", type="x", data={}, at=datetime.now())
    with pytest.raises(EventError):
        Event.from_json(b"not json")
    with pytest.raises(EventError):
        Event.from_json(
            '{"id": "1", "topic": "staff", "type": "x", "data": {}, "at": "2025-01-01T00:00:00+00:00"}'
        )


def test_topic_permissions() -> None:
    assert required_permission("staff") is Permission.EVENTS_VIEW
    assert required_permission("location:3") is Permission.EVENTS_VIEW
    assert required_permission("device:7") is None
    for bad in ("staf", "location:", "location:3:4", "device", "location:*", "other:1"):
        with pytest.raises(EventError):
            required_permission(bad)

    assert VIEWER("staff") and VIEWER("system") and VIEWER("location:12")
    assert not VIEWER("device:7")  # bridges have their own stream
    assert not VIEWER("location:")  # malformed
    assert not VIEWER("madeup")
    nobody = topics_for({Permission.STAFF, Permission.AUDIT_READ})
    assert not any(nobody(topic) for topic in ("staff", "system", "location:1", "device:1"))


# Hub ---------------------------------------------------------------------------------------------


@async_test
async def test_memory_broker_fans_out_to_every_client_in_order() -> None:
    hub = EventHub(MemoryBroker())
    await hub.start()
    try:
        clients = [hub.connect(everything) for _ in range(3)]
        for event_id in (1, 2, 3):
            hub.publish(make_event(event_id, n=event_id))
        for client in clients:
            items = await take(client, 3)
            assert ids(items) == [1, 2, 3]
            assert [item.data for item in items if isinstance(item, Event)] == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert hub.client_count == 3
        for client in clients:
            await client.aclose()
        assert hub.client_count == 0
    finally:
        await hub.stop()


@async_test
async def test_duplicate_ids_are_delivered_once() -> None:
    hub = EventHub(MemoryBroker())
    await hub.start()
    try:
        client = hub.connect(everything)
        hub.publish(make_event(1))
        hub.publish(make_event(1))
        hub.publish(make_event(2))
        assert ids(await take(client, 2)) == [1, 2]
        await settle()
        assert client.pending == 0
    finally:
        await hub.stop()


@async_test
async def test_replay_after_last_event_id_then_live() -> None:
    hub = EventHub(MemoryBroker())
    await hub.start()
    try:
        for event_id in range(1, 6):
            hub.publish(make_event(event_id))
        await settle()
        async with hub.connect(everything, last_event_id=2) as client:
            assert ids(await take(client, 3)) == [3, 4, 5]
            hub.publish(make_event(6))
            assert ids(await take(client, 1)) == [6]
        async with hub.connect(everything, last_event_id=6) as client:
            await settle()
            assert client.pending == 0
    finally:
        await hub.stop()


@async_test
async def test_ready_takes_what_is_waiting_in_slices() -> None:
    hub = EventHub(MemoryBroker())
    await hub.start()
    try:
        for event_id in range(1, 6):
            hub.publish(make_event(event_id))
        await settle()
        async with hub.connect(everything, last_event_id=0) as client:
            assert ids(client.ready(limit=2)) == [1, 2]
            assert ids(client.ready()) == [3, 4, 5]
            assert client.ready() == []
    finally:
        await hub.stop()


@async_test
async def test_replay_follows_arrival_order_for_late_commits() -> None:
    # Concurrent transactions can commit out of id order; a client that saw 11 must still get 10.
    hub = EventHub(MemoryBroker())
    await hub.start()
    try:
        for event_id in (9, 11, 10, 12):
            hub.publish(make_event(event_id))
        await settle()
        async with hub.connect(everything, last_event_id=11) as client:
            assert ids(await take(client, 2)) == [10, 12]
    finally:
        await hub.stop()


@async_test
async def test_too_old_last_event_id_gets_reload_first() -> None:
    hub = EventHub(MemoryBroker(), replay_size=3)
    await hub.start()
    try:
        for event_id in range(1, 7):
            hub.publish(make_event(event_id))
        await settle()
        assert [event.id for event in hub.recent()] == [4, 5, 6]
        for too_old in (1, 2):
            async with hub.connect(everything, last_event_id=too_old) as client:
                assert await take(client, 1) == [Reload("too_old")]
                with pytest.raises(StopAsyncIteration):
                    await client.__anext__()
        # 3 was evicted, but everything after it is still buffered.
        async with hub.connect(everything, last_event_id=3) as client:
            assert ids(await take(client, 3)) == [4, 5, 6]
        assert hub.client_count == 0
    finally:
        await hub.stop()


@async_test
async def test_slow_client_overflows_without_blocking_others() -> None:
    hub = EventHub(MemoryBroker(), client_queue_size=5)
    await hub.start()
    try:
        slow = hub.connect(everything)
        fast = hub.connect(everything)
        received: list[int] = []
        for event_id in range(1, 21):
            hub.publish(make_event(event_id))
            await settle()
            received += ids(fast.ready())
        assert received == list(range(1, 21))
        assert hub.client_count == 1  # the slow one is gone
        assert await take(slow, 1) == [Reload("overflow")]  # at once: its backlog is dropped
        with pytest.raises(StopAsyncIteration):
            await slow.__anext__()
        assert slow.ended_by == Reload("overflow")
        await slow.aclose()
        await fast.aclose()
    finally:
        await hub.stop()


@async_test
async def test_topic_filtering_live_and_replayed() -> None:
    hub = EventHub(MemoryBroker())
    await hub.start()
    try:
        topics = ["staff", "device:7", "location:3", "system", "device:8"]
        for event_id, topic in enumerate(topics, start=1):
            hub.publish(make_event(event_id, topic))
        await settle()
        async with hub.connect(VIEWER, last_event_id=0) as replayed, hub.connect(VIEWER) as live:
            assert ids(await take(replayed, 3)) == [1, 3, 4]
            hub.publish(make_event(6, "device:1"))
            hub.publish(make_event(7, "location:9"))
            assert ids(await take(live, 1)) == [7]
            assert ids(await take(replayed, 1)) == [7]
    finally:
        await hub.stop()


@async_test
async def test_stop_ends_streams_and_restores_the_sink() -> None:
    before = Collect()
    set_event_sink(before)
    hub = EventHub(MemoryBroker())
    await hub.start()
    assert get_event_sink() == hub.publish_threadsafe
    client = hub.connect(everything)
    await hub.stop()
    assert get_event_sink() is before
    with pytest.raises(StopAsyncIteration):
        await client.__anext__()
    with pytest.raises(RuntimeError):
        hub.connect(everything)
    with pytest.raises(RuntimeError):
        hub.publish_threadsafe(make_event(1))


class GapBroker(MemoryBroker):
    """A memory broker whose subscription can be 'lost' while events are being written."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.on_gap: OnGap | None = None

    async def start(self, on_event: OnEvent, on_gap: OnGap) -> None:
        await super().start(on_event, on_gap)
        self.on_gap = on_gap

    async def publish(self, event: Event) -> None:
        if not self.down:
            await super().publish(event)

    def restore(self) -> None:
        self.down = False
        assert self.on_gap is not None
        self.on_gap()


@async_test
async def test_gap_reloads_clients_and_backfills_from_the_database(event_db: Database) -> None:
    broker = GapBroker()
    hub = EventHub(broker, db=event_db)
    await hub.start()
    try:
        connected = hub.connect(VIEWER)
        [first] = await anyio.to_thread.run_sync(write_events, event_db, ("staff", "a"))
        assert ids(await take(connected, 1)) == [first]
        broker.down = True
        missed = await anyio.to_thread.run_sync(write_events, event_db, ("staff", "b"), ("system", "c"))
        broker.restore()
        assert await take(connected, 1) == [Reload("gap")]
        with anyio.fail_after(3):
            while hub.last_event_id != missed[-1]:
                await anyio.sleep(0.01)
        async with hub.connect(VIEWER, last_event_id=first) as resumed:
            assert ids(await take(resumed, 2)) == missed
    finally:
        await hub.stop()


# Database: priming and publish_on_commit --------------------------------------------------------


@async_test
async def test_hub_primes_replay_from_the_database(event_db: Database) -> None:
    written = write_events(event_db, *[("staff", "old")] * 6)  # no hub yet: nothing published
    hub = EventHub(MemoryBroker(), db=event_db, replay_size=4)
    await hub.start()
    try:
        assert [event.id for event in hub.recent()] == written[-4:]
        async with hub.connect(VIEWER, last_event_id=written[2]) as client:
            assert ids(await take(client, 3)) == written[3:]
        async with hub.connect(VIEWER, last_event_id=written[0]) as client:
            assert await take(client, 1) == [Reload("too_old")]
    finally:
        await hub.stop()


def test_publish_on_commit_waits_for_commit(event_db: Database) -> None:
    sink = Collect()
    set_event_sink(sink)
    with event_db.write_session() as session:
        first = publish_on_commit(session, "staff", "a", {"n": 1})
        second = publish_on_commit(session, "location:2", "b", {"n": 2})
        assert sink.events == []  # recorded, not committed
        session.commit()
    assert first.id is not None and second.id is not None and first.id < second.id
    assert [(e.id, e.topic, e.type, e.data) for e in sink.events] == [
        (first.id, "staff", "a", {"n": 1}),
        (second.id, "location:2", "b", {"n": 2}),
    ]
    assert all(e.at.tzinfo is not None for e in sink.events)


def test_publish_on_commit_publishes_nothing_on_rollback(event_db: Database) -> None:
    sink = Collect()
    set_event_sink(sink)
    with event_db.write_session() as session:
        publish_on_commit(session, "staff", "a")
        session.rollback()
        session.commit()  # a later commit on the same session must not resurrect it
    with pytest.raises(RuntimeError), event_db.write_session() as session:
        publish_on_commit(session, "staff", "b")
        raise RuntimeError("service failed")
    with event_db.write_session() as session:
        kept = publish_on_commit(session, "staff", "kept")
        savepoint = session.begin_nested()
        publish_on_commit(session, "staff", "undone")
        savepoint.rollback()
        session.commit()
    assert [(e.id, e.type) for e in sink.events] == [(kept.id, "kept")]


def test_publish_on_commit_ids_follow_commit_order(event_db: Database) -> None:
    sink = Collect()
    set_event_sink(sink)
    for n in range(5):
        write_events(event_db, ("staff", "tick"), data={"n": n})
    assert [e.data["n"] for e in sink.events] == [0, 1, 2, 3, 4]
    assert [e.id for e in sink.events] == sorted(e.id for e in sink.events)


def test_publish_on_commit_rejects_what_cannot_be_published(event_db: Database) -> None:
    with event_db.write_session() as session:
        with pytest.raises(EventError):
            publish_on_commit(session, "nowhere", "a")
        with pytest.raises(EventError):
            publish_on_commit(session, "staff", "reload")  # reserved for the stream itself
        with pytest.raises(EventError):
            publish_on_commit(session, "staff", "Bad Type")
        with pytest.raises(EventError):
            publish_on_commit(session, "staff", "a", {"when": datetime.now(UTC)})


def test_publish_on_commit_survives_a_failing_sink(
    event_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: Event) -> None:
        raise OSError("sink down")

    set_event_sink(broken)
    [event_id] = write_events(event_db, ("staff", "a"))  # the commit itself succeeds
    assert f"event {event_id} (staff/a) committed but not published" in caplog.text


@async_test
async def test_threadsafe_publish_from_worker_threads(event_db: Database) -> None:
    hub = EventHub(MemoryBroker(), db=event_db)
    await hub.start()
    try:
        async with hub.connect(VIEWER) as client:

            def work(start: int) -> list[int]:
                return [
                    write_events(event_db, ("staff", "tick"), data={"n": start + n})[0] for n in range(10)
                ]

            written: list[int] = []
            async with anyio.create_task_group() as group:

                async def worker(start: int) -> None:
                    written.extend(await anyio.to_thread.run_sync(work, start))

                for start in (0, 100, 200):
                    group.start_soon(worker, start)
            received = await take(client, 30)
            assert sorted(ids(received)) == sorted(written)
            assert len(set(ids(received))) == 30
            # Each thread's events arrive in its own commit order.
            for start in (0, 100, 200):
                ns = [
                    item.data["n"]
                    for item in received
                    if isinstance(item, Event) and start <= item.data["n"] < start + 10
                ]
                assert ns == list(range(start, start + 10))
    finally:
        await hub.stop()


def test_a_released_savepoint_publishes_nothing_until_the_commit(tmp_path: Path) -> None:
    """Found by bench/bench_certificate_flow.py: a bridge was told of a job it could not read yet."""
    from app.events import publish_on_commit, set_event_sink
    from app.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'savepoint.db'}"
    upgrade(url)
    db = Database(url)
    got: list[int] = []
    previous = set_event_sink(lambda event: got.append(event.id))
    try:
        with db.write_session() as session:
            with session.begin_nested():
                publish_on_commit(session, "staff", "test.savepoint", {})
            assert got == []
            session.commit()
        assert len(got) == 1
    finally:
        set_event_sink(previous)
        db.dispose()


def test_a_transactions_events_are_written_together_before_its_commit(db: Database) -> None:
    """One INSERT for all events of a transaction, ids in the order they were recorded; those
    of a savepoint that rolled back are neither written nor published (SQLite and PostgreSQL)."""
    from sqlalchemy import event as sa_event, func, select

    from app.models import EventRecord

    sink = Collect()
    set_event_sink(sink)
    inserts: list[int] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO EVENT_RECORD"):
            inserts.append(1)

    with db.session() as session:
        before = session.exec(select(func.count()).select_from(EventRecord)).one()
    sa_event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.write_session() as session:
            records = [publish_on_commit(session, "staff", "tick", {"n": n}) for n in range(3)]
            savepoint = session.begin_nested()
            publish_on_commit(session, "staff", "undone", {"n": 99})
            inner = session.begin_nested()
            publish_on_commit(session, "staff", "undone", {"n": 98})
            inner.commit()  # released, then its parent rolls back: gone too
            savepoint.rollback()
            with session.begin_nested():
                records.append(publish_on_commit(session, "location:2", "kept", {"n": 3}))
            assert session.exec(select(func.count()).select_from(EventRecord)).one() == before
            assert sink.events == []
            session.commit()
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", count)
    assert len(inserts) == 1
    ids = [record.id for record in records]
    assert all(i is not None for i in ids) and ids == sorted(ids)  # type: ignore[type-var]
    assert [(e.id, e.type, e.data) for e in sink.events] == [
        (ids[0], "tick", {"n": 0}),
        (ids[1], "tick", {"n": 1}),
        (ids[2], "tick", {"n": 2}),
        (ids[3], "kept", {"n": 3}),
    ]
    with db.session() as session:
        stored = session.exec(
            select(EventRecord.id, EventRecord.data).where(EventRecord.id >= ids[0]).order_by(EventRecord.id)
        ).all()
    assert [(i, data) for i, data in stored] == [(e.id, e.data) for e in sink.events]
