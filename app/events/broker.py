"""Event brokers, picked by URL as encode/broadcaster does.

- ``memory://``: fan-out inside this process (tests, the one-process default).
- ``redis://``, ``rediss://``, ``unix:///path/redis.sock``: every process PUBLISHes on one
  channel and SUBSCRIBEs to it; each hub then fans out to its own clients. Pub/sub keeps no
  history, so after a lost connection the broker reports a gap and the hub tells its clients
  to reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.events.types import Event, EventError

log = logging.getLogger(__name__)

DEFAULT_CHANNEL: Final = "madoguchi:events"
REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://")

OnEvent = Callable[[Event], None]
OnGap = Callable[[], None]


class Broker(Protocol):
    """Carries events between processes. Callbacks run on the event loop that called start()."""

    async def start(self, on_event: OnEvent, on_gap: OnGap) -> None:
        """Subscribe; return once subscribed (raise if that is impossible).

        `on_event` gets every published event, this process's own included. `on_gap` is called
        after a lost subscription has been re-established: events may have been missed.
        """

    async def publish(self, event: Event) -> None: ...

    async def stop(self) -> None: ...


class MemoryBroker:
    """In-process fan-out. Events are round-tripped through JSON, as the Redis broker would."""

    def __init__(self) -> None:
        self._on_event: OnEvent | None = None

    async def start(self, on_event: OnEvent, on_gap: OnGap) -> None:
        self._on_event = on_event

    async def publish(self, event: Event) -> None:
        if self._on_event is None:
            raise RuntimeError("MemoryBroker.publish before start()")
        self._on_event(Event.from_json(event.to_json()))

    async def stop(self) -> None:
        self._on_event = None


class RedisBroker:
    """Redis pub/sub on one channel, with reconnection and a keepalive on the subscription.

    :param url: redis://, rediss:// or unix:// URL.
    :param channel: the pub/sub channel; channels are server-wide (not per database number).
    :param client_name: CLIENT SETNAME for the connections, so operators can see them.
    :param keepalive_seconds: PING the subscription after this much silence; no answer within
        the same time again counts as a lost connection (a dead peer sends no RST).
    :param max_backoff_seconds: upper bound of the reconnect delay (doubling from 0.1 s, jittered).
    """

    def __init__(
        self,
        url: str,
        *,
        channel: str = DEFAULT_CHANNEL,
        client_name: str = "madoguchi-events",
        keepalive_seconds: float = 15.0,
        max_backoff_seconds: float = 5.0,
    ) -> None:
        self.url = url
        self.channel = channel
        self.client_name = client_name
        self.keepalive_seconds = keepalive_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.reconnects = 0
        self._publisher: aioredis.Redis | None = None
        self._sub: tuple[aioredis.Redis, aioredis.client.PubSub] | None = None
        self._task: asyncio.Task[None] | None = None

    def _client(self, role: str) -> aioredis.Redis:
        options: dict[str, Any] = {"client_name": f"{self.client_name}-{role}", "socket_connect_timeout": 5}
        if not self.url.startswith("unix://"):
            options["socket_keepalive"] = True  # TCP only; unix sockets reject the option
        client: aioredis.Redis = aioredis.Redis.from_url(self.url, **options)
        return client

    async def start(self, on_event: OnEvent, on_gap: OnGap) -> None:
        if self._task is not None:
            raise RuntimeError("RedisBroker already started")
        self._publisher = self._client("pub")
        try:
            await self._subscribe()
        except BaseException:
            await self._publisher.aclose()
            self._publisher = None
            raise
        self._task = asyncio.create_task(self._run(on_event, on_gap), name="redis-events")

    async def _subscribe(self) -> None:
        client = self._client("sub")
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._sub = (client, pubsub)
        try:
            await pubsub.subscribe(self.channel)
        except BaseException:
            await self._unsubscribe()
            raise

    async def _unsubscribe(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            client, pubsub = sub
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    async def _run(self, on_event: OnEvent, on_gap: OnGap) -> None:
        while True:
            assert self._sub is not None
            try:
                await self._read(self._sub[1], on_event)
            except (RedisError, OSError) as error:
                log.warning("event broker: lost the Redis subscription (%s); reconnecting", error)
            await self._unsubscribe()
            await self._resubscribe()
            self.reconnects += 1
            log.warning("event broker: Redis subscription restored; clients will reload")
            on_gap()

    async def _read(self, pubsub: aioredis.client.PubSub, on_event: OnEvent) -> None:
        last_heard = time.monotonic()
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=1.0)
            now = time.monotonic()
            if message is None:
                silent = now - last_heard
                if pinged and silent > 2 * self.keepalive_seconds:
                    raise ConnectionError(f"no answer from Redis for {silent:.0f} s")
                if not pinged and silent > self.keepalive_seconds:
                    await pubsub.ping()
                    pinged = True
                continue
            last_heard, pinged = now, False
            if message.get("type") != "message":
                continue  # the answer to our PING
            try:
                event = Event.from_json(message["data"])
            except EventError as error:
                log.error("event broker: dropped a malformed message on %s: %s", self.channel, error)
                continue
            on_event(event)

    async def _resubscribe(self) -> None:
        delay = 0.1
        while True:
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            try:
                await self._subscribe()
                return
            except (RedisError, OSError) as error:
                log.warning("event broker: Redis still unreachable (%s)", error)
                delay = min(delay * 2, self.max_backoff_seconds)

    async def publish(self, event: Event) -> None:
        if self._publisher is None:
            raise RuntimeError("RedisBroker.publish before start()")
        payload = event.to_json()
        for attempt in range(3):
            try:
                await self._publisher.publish(self.channel, payload)
                return
            except (RedisError, OSError):
                if attempt == 2:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._unsubscribe()
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await publisher.aclose()


def is_redis_url(url: str) -> bool:
    return url.startswith(REDIS_SCHEMES)


def make_broker(url: str, *, channel: str = DEFAULT_CHANNEL, **redis_options: Any) -> Broker:
    """The broker for `url`: ``memory://`` or a Redis URL."""
    if url.startswith("memory://"):
        return MemoryBroker()
    if is_redis_url(url):
        return RedisBroker(url, channel=channel, **redis_options)
    raise ValueError(f"unknown event broker URL {url!r}: use memory:// or redis://, rediss://, unix://")


class RedisSyncPublisher:
    """Blocking PUBLISH for processes without a running hub (CLI, arq worker). Thread-safe.

    A failed PUBLISH is logged, not raised: it runs after the commit, the event is already in
    the database, and browsers get it on their next full load.
    """

    def __init__(self, url: str, *, channel: str = DEFAULT_CHANNEL) -> None:
        self.channel = channel
        self._client = redis.Redis.from_url(
            url, client_name="madoguchi-events-sync", socket_connect_timeout=5
        )

    def __call__(self, event: Event) -> None:
        try:
            self._client.publish(self.channel, event.to_json())
        except (RedisError, OSError) as error:
            log.error("event %s (%s/%s) not published to Redis: %s", event.id, event.topic, event.type, error)

    def close(self) -> None:
        self._client.close()
