"""The Redis broker: hubs in different processes share events, survive a lost connection, and
processes without a hub publish synchronously. Needs MADOGUCHI_TEST_REDIS_URL (use db 15)."""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis
from anyio.from_thread import start_blocking_portal
from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers the tables)
from app.db import Database
from app.domain.permissions import Permission
from app.events import (
    ClientStream,
    Event,
    EventHub,
    RedisBroker,
    RedisSyncPublisher,
    Reload,
    StreamItem,
    publish_on_commit,
    set_event_sink,
    sink_for_url,
    topics_for,
)

REDIS_URL = os.environ.get("MADOGUCHI_TEST_REDIS_URL", "")
pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="Redis not configured (set MADOGUCHI_TEST_REDIS_URL)"),
]
VIEWER = topics_for({Permission.EVENTS_VIEW})


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


@pytest.fixture
def channel() -> str:
    # Pub/sub channels are server-wide: a unique name keeps parallel runs apart.
    return f"madoguchi:test:{uuid.uuid4().hex}"


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


@contextlib.asynccontextmanager
async def two_hubs(channel: str) -> AsyncIterator[tuple[EventHub, EventHub]]:
    """Two hubs on one channel: two web processes, as far as Redis can tell."""
    first = EventHub.from_url(REDIS_URL, channel=channel, install_sink=False)
    second = EventHub.from_url(REDIS_URL, channel=channel, install_sink=False)
    await first.start()
    try:
        await second.start()
        try:
            yield first, second
        finally:
            await second.stop()
    finally:
        await first.stop()


def make_event(event_id: int, topic: str = "staff") -> Event:
    return Event(id=event_id, topic=topic, type="ping", data={"n": event_id}, at=datetime.now(UTC))


async def take(stream: ClientStream, count: int, timeout: float = 5.0) -> list[StreamItem]:
    items: list[StreamItem] = []
    with anyio.fail_after(timeout):
        while len(items) < count:
            items.append(await stream.__anext__())
    return items


def ids(items: list[StreamItem]) -> list[int]:
    return [item.id for item in items if isinstance(item, Event)]


def kill_connections(name: str) -> int:
    """CLIENT KILL every connection called `name`, as a restarted or failing Redis would."""
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        killed = 0
        for client in admin.client_list():
            if client.get("name") == name:
                admin.client_kill_filter(_id=client["id"])
                killed += 1
        return killed
    finally:
        admin.close()


@async_test
async def test_two_hubs_see_each_others_events(channel: str) -> None:
    async with (
        two_hubs(channel) as (first, second),
        first.connect(VIEWER) as on_first,
        second.connect(VIEWER) as on_second,
    ):
        first.publish(make_event(1))
        assert ids(await take(on_second, 1)) == [1]
        second.publish(make_event(2))
        second.publish(make_event(3, "device:4"))  # not for browsers
        second.publish(make_event(4, "location:2"))
        for client in (on_first, on_second):
            received = ids(await take(client, 3 if client is on_first else 2))
            assert received == ([1, 2, 4] if client is on_first else [2, 4])
        await anyio.sleep(0.2)
        assert on_first.pending == on_second.pending == 0  # own events come back once, not twice
        # Both buffers hold everything, so a client can resume on either process.
        assert (
            [event.id for event in first.recent()] == [event.id for event in second.recent()] == [1, 2, 3, 4]
        )


@async_test
async def test_lost_subscription_reconnects_and_tells_clients_to_reload(channel: str) -> None:
    name = f"madoguchi-test-{uuid.uuid4().hex[:8]}"
    broker = RedisBroker(REDIS_URL, channel=channel, client_name=name)
    hub = EventHub(broker, install_sink=False)
    await hub.start()
    try:
        before = hub.connect(VIEWER)
        hub.publish(make_event(1))
        assert ids(await take(before, 1)) == [1]

        assert await anyio.to_thread.run_sync(kill_connections, f"{name}-sub") == 1
        assert await take(before, 1) == [Reload("gap")]
        with pytest.raises(StopAsyncIteration):
            await before.__anext__()
        assert broker.reconnects == 1

        # Subscribed again; and a killed publisher connection is retried, not lost.
        await anyio.to_thread.run_sync(kill_connections, f"{name}-pub")
        async with hub.connect(VIEWER) as after:
            hub.publish(make_event(2))
            assert ids(await take(after, 1)) == [2]
    finally:
        await hub.stop()


@async_test
async def test_sync_sink_publishes_to_redis_without_a_hub(channel: str, event_db: Database) -> None:
    receiver = EventHub.from_url(REDIS_URL, channel=channel, install_sink=False)
    await receiver.start()
    sink = sink_for_url(REDIS_URL, channel=channel)
    assert isinstance(sink, RedisSyncPublisher)
    set_event_sink(sink)  # what the CLI and the arq worker do at start-up
    try:
        async with receiver.connect(VIEWER) as client:

            def service() -> int:
                with event_db.write_session() as session:
                    record = publish_on_commit(session, "location:5", "ticket.issued", {"number": "A-001"})
                    session.commit()
                assert record.id is not None
                return record.id

            event_id = await anyio.to_thread.run_sync(service)
            [event] = await take(client, 1)
            assert isinstance(event, Event)
            assert (event.id, event.topic, event.type, event.data) == (
                event_id,
                "location:5",
                "ticket.issued",
                {"number": "A-001"},
            )
    finally:
        set_event_sink(None)
        sink.close()
        await receiver.stop()


def test_sink_for_memory_url_is_none() -> None:
    assert sink_for_url("memory://") is None
