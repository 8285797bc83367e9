"""EventHub: one per web process. It subscribes to the broker, keeps a bounded replay buffer and
gives each connected client its own bounded queue (Zulip's event queues, sse-starlette's
broadcasting example).

Resume: a client names the last event id it saw. The hub replays what arrived after that
event; if the buffer no longer reaches back that far, the client gets a `Reload` instead and
fetches its state afresh. A client that reads too slowly is ended the same way, so one slow
screen never holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Final

from app.db import Database
from app.events.broker import DEFAULT_CHANNEL, Broker, make_broker
from app.events.publish import EventSink, load_events, set_event_sink
from app.events.types import Event, Reload, StreamItem

log = logging.getLogger(__name__)

# Live events a client may have waiting before it counts as too slow (a screen gets a few per
# minute; 1,000 waiting means it stopped reading).
CLIENT_QUEUE_SIZE: Final = 1000
# After a broker gap, re-read this many ids below the newest one known: concurrent transactions
# can commit out of id order, so the newest id is no proof that every lower id was seen.
BACKFILL_MARGIN: Final = 100
# How long stop() waits for events still queued for the broker.
STOP_FLUSH_SECONDS: Final = 2.0


class ClientStream:
    """One client's view of the hub: replayed events, then live ones; a `Reload` always ends it.

    Iterate with ``async for``; close with ``aclose()`` or ``async with`` so the hub forgets it.
    """

    def __init__(
        self,
        hub: EventHub,
        allowed: Callable[[str], bool],
        backlog: Iterable[Event],
        *,
        maxsize: int,
        final: Reload | None = None,
    ) -> None:
        self._hub = hub
        self.allowed = allowed
        self._backlog: deque[StreamItem] = deque(backlog)
        self._live: deque[Event] = deque()
        self._maxsize = maxsize
        self._final = final
        self._done = final is not None
        self._wakeup = asyncio.Event()
        self.ended_by: Reload | None = final

    # Hub side (event loop thread) -------------------------------------------------------------

    def _offer(self, event: Event) -> bool:
        """Queue a live event; False if the client is too far behind to take it."""
        if self._done:
            return True
        if len(self._live) >= self._maxsize:
            return False
        self._live.append(event)
        self._wakeup.set()
        return True

    def _end(self, final: Reload | None) -> None:
        if self._done:
            return
        self._done = True
        if final is not None:
            # Whatever is still queued is moot: the client reloads everything.
            self._backlog.clear()
            self._live.clear()
            self._final = self.ended_by = final
        self._wakeup.set()

    # Client side ------------------------------------------------------------------------------

    def _pop(self) -> StreamItem | None:
        if self._backlog:
            return self._backlog.popleft()
        if self._live:
            return self._live.popleft()
        final, self._final = self._final, None
        return final

    def __aiter__(self) -> ClientStream:
        return self

    async def __anext__(self) -> StreamItem:
        while True:
            item = self._pop()
            if item is not None:
                return item
            if self._done:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()

    def ready(self, limit: int | None = None) -> list[StreamItem]:
        """Items available now without waiting, at most `limit` (to send a burst in one write)."""
        items: list[StreamItem] = []
        while (limit is None or len(items) < limit) and (item := self._pop()) is not None:
            items.append(item)
        return items

    @property
    def pending(self) -> int:
        return len(self._backlog) + len(self._live)

    async def aclose(self) -> None:
        self._hub._detach(self)
        self._done = True
        self._wakeup.set()

    async def __aenter__(self) -> ClientStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class EventHub:
    """Fan-out of broker events to this process's clients, with Last-Event-ID replay.

    :param broker: where events come from and go to (see `make_broker`).
    :param replay_size: events kept for replay.
    :param client_queue_size: live events a client may have waiting before it is ended with a
        `Reload("overflow")`.
    :param db: if given, the replay buffer is filled from the newest EventRecord rows on start
        (a restarted server can still resume its clients) and after a broker gap.
    :param install_sink: make this hub the process-wide event sink while it runs, so
        `publish_on_commit` reaches it.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        replay_size: int = 2000,
        client_queue_size: int = CLIENT_QUEUE_SIZE,
        db: Database | None = None,
        install_sink: bool = True,
    ) -> None:
        if replay_size < 1 or client_queue_size < 1:
            raise ValueError("replay_size and client_queue_size must be positive")
        self.broker = broker
        self.replay_size = replay_size
        self.client_queue_size = client_queue_size
        self.db = db
        self.install_sink = install_sink
        self._buffer: deque[Event] = deque()
        self._ids: set[int] = set()
        # A client whose last id is below the floor (and not in the buffer) may have missed
        # events. `_floor_unknown`: nothing is known yet, the next event sets it.
        self._floor = 0
        self._floor_unknown = False
        self._clients: set[ClientStream] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: asyncio.Queue[Event] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._previous_sink: EventSink | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        replay_size: int = 2000,
        client_queue_size: int = CLIENT_QUEUE_SIZE,
        db: Database | None = None,
        channel: str = DEFAULT_CHANNEL,
        install_sink: bool = True,
    ) -> EventHub:
        return cls(
            make_broker(url, channel=channel),
            replay_size=replay_size,
            client_queue_size=client_queue_size,
            db=db,
            install_sink=install_sink,
        )

    # Life cycle ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._loop is not None

    async def start(self) -> None:
        if self._loop is not None:
            raise RuntimeError("EventHub already started")
        self._loop = asyncio.get_running_loop()
        self._outbox = asyncio.Queue()
        try:
            # Subscribe before reading the database: an event committed in between is then
            # caught by one or the other (deduplicated by id), never by neither.
            await self.broker.start(self._receive, self._on_gap)
        except BaseException:
            self._loop = self._outbox = None
            raise
        try:
            if self.db is not None:
                await self._prime()
            else:
                self._floor_unknown = True
        except BaseException:
            await self.broker.stop()
            self._loop = self._outbox = None
            raise
        self._spawn(self._send_outbox(self._outbox), "events-outbox")
        if self.install_sink:
            self._previous_sink = set_event_sink(self.publish_threadsafe)

    async def stop(self) -> None:
        """Stop: flush queued publishes briefly, leave the broker, end every client stream."""
        if self._loop is None:
            return
        if self.install_sink:
            set_event_sink(self._previous_sink)
            self._previous_sink = None
        if self._outbox is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.join(), STOP_FLUSH_SECONDS)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.broker.stop()
        for client in self._clients:
            client._end(None)
        self._clients.clear()
        self._loop = self._outbox = None

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event hub task %s failed", task.get_name(), exc_info=task.exception())

    # Publishing -------------------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Publish from the hub's own event loop. Events go out in the order given."""
        if self._outbox is None:
            raise RuntimeError("EventHub is not running")
        self._outbox.put_nowait(event)

    def publish_threadsafe(self, event: Event) -> None:
        """Publish from any thread (the process-wide sink while the hub runs)."""
        loop, outbox = self._loop, self._outbox
        if loop is None or outbox is None:
            raise RuntimeError("EventHub is not running")
        loop.call_soon_threadsafe(outbox.put_nowait, event)

    async def _send_outbox(self, outbox: asyncio.Queue[Event]) -> None:
        while True:
            event = await outbox.get()
            try:
                await self.broker.publish(event)
            except Exception:
                # Other processes miss it (they will see a gap); this one's screens need not.
                log.exception("event %s could not go through the broker; delivered locally only", event.id)
                self._receive(event)
            finally:
                outbox.task_done()

    # Receiving --------------------------------------------------------------------------------

    def _receive(self, event: Event) -> None:
        if event.transient:
            # A command for a device (a PIN may ride along): handed to whoever listens now, and
            # neither kept for replay nor deduplicated by id.
            for client in list(self._clients):
                if client.allowed(event.topic):
                    client._offer(event)
            return
        if event.id in self._ids:
            return
        if self._floor_unknown:
            self._floor = max(self._floor, event.id - 1)
            self._floor_unknown = False
        self._append(event)
        behind: list[ClientStream] = []
        for client in self._clients:
            if client.allowed(event.topic) and not client._offer(event):
                behind.append(client)
        for client in behind:
            log.info("event client fell %d events behind; told to reload", self.client_queue_size)
            client._end(Reload("overflow"))
            self._clients.discard(client)

    def _append(self, event: Event) -> None:
        self._buffer.append(event)
        self._ids.add(event.id)
        while len(self._buffer) > self.replay_size:
            old = self._buffer.popleft()
            self._ids.discard(old.id)
            self._floor = max(self._floor, old.id)

    async def _prime(self) -> None:
        assert self.db is not None
        events, dropped = await asyncio.to_thread(load_events, self.db, after_id=None, limit=self.replay_size)
        # Older than anything received live while the query ran: put them in front.
        live = list(self._buffer)
        live_ids = set(self._ids)
        self._buffer.clear()
        self._ids.clear()
        for event in [*(e for e in events if e.id not in live_ids), *live]:
            self._append(event)
        if dropped is not None:
            self._floor = max(self._floor, dropped)

    def _on_gap(self) -> None:
        for client in self._clients:
            client._end(Reload("gap"))
        self._clients.clear()
        if self.db is not None:
            self._spawn(self._backfill(), "events-backfill")
        else:
            self._floor_unknown = True

    async def _backfill(self) -> None:
        assert self.db is not None
        newest = max(self._ids, default=self._floor)
        events, dropped = await asyncio.to_thread(
            load_events, self.db, after_id=newest - BACKFILL_MARGIN, limit=self.replay_size
        )
        if dropped is not None:
            self._floor = max(self._floor, dropped)
        for event in events:
            self._receive(event)

    # Clients ----------------------------------------------------------------------------------

    def connect(self, allowed: Callable[[str], bool], last_event_id: int | None = None) -> ClientStream:
        """A stream of the events `allowed` accepts (by topic), from after `last_event_id` on.

        Replay and registration happen without an await in between, so no event falls between
        them or comes twice.
        """
        if self._loop is None:
            raise RuntimeError("EventHub is not running")
        backlog: list[Event] = []
        if last_event_id is not None:
            replay = self._replay_after(last_event_id)
            if replay is None:
                return ClientStream(
                    self, allowed, (), maxsize=self.client_queue_size, final=Reload("too_old")
                )
            backlog = [event for event in replay if allowed(event.topic)]
        client = ClientStream(self, allowed, backlog, maxsize=self.client_queue_size)
        self._clients.add(client)
        return client

    def _replay_after(self, last_event_id: int) -> list[Event] | None:
        if last_event_id in self._ids:
            # By arrival, not by id: an event that committed late with a lower id still counts.
            after: list[Event] = []
            for event in reversed(self._buffer):
                if event.id == last_event_id:
                    break
                after.append(event)
            after.reverse()
            return after
        if self._floor_unknown or last_event_id >= self._floor:
            return [event for event in self._buffer if event.id > last_event_id]
        return None

    def _detach(self, client: ClientStream) -> None:
        self._clients.discard(client)

    # Introspection ----------------------------------------------------------------------------

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def last_event_id(self) -> int | None:
        return self._buffer[-1].id if self._buffer else None

    def recent(self) -> list[Event]:
        """The replay buffer, in arrival order."""
        return list(self._buffer)
