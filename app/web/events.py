"""Live events for staff: the page 「ライブイベント / Live events」 and its SSE stream.

Each event goes out twice on the stream, with the same `id:`:
- ``event: <type>`` with the event as JSON, for scripts;
- ``event: staff-row`` with templates/staff/_event_row.html rendered, for htmx's ``sse-swap``.
A ``reload`` event (no id) ends a stream whose client must reload its state.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final, Protocol
from weakref import WeakKeyDictionary

from sqlalchemy import ColumnElement, false, func, or_
from sqlmodel import col, select
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates
from starlette.types import Message, Send

from app.db import Database
from app.domain.permissions import Permission
from app.events import Event, EventHub, Reload, StreamItem, TopicFilter, publish_on_commit, topics_for
from app.events.publish import event_from_record
from app.events.types import dumps
from app.models import EventRecord

ROW_EVENT: Final = "staff-row"
RELOAD_EVENT: Final = "reload"
PAGE_ROWS: Final = 50
BATCH_SIZE: Final = 50
# A client that has not taken a write for this long is gone (its socket buffers are full).
SEND_TIMEOUT_SECONDS: Final = 30.0
# Asked of a client told to reload, in case it reconnects instead of reloading.
RELOAD_RETRY_MS: Final = 3000
JST: Final = timezone(timedelta(hours=9), "JST")  # Japan keeps no daylight saving time

EVENT_LABELS: Final[dict[str, str]] = {
    "test": "テストイベント / Test event",
    "rules.saved": "手続きルールの保存 / Procedure rules saved",
}
TOPIC_LABELS: Final[dict[str, str]] = {
    "staff": "職員全体 / All staff",
    "system": "システム / System",
    "location": "窓口 / Location",
}


class _User(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def login_id(self) -> str: ...
    @property
    def display_name(self) -> str: ...
    @property
    def permissions(self) -> frozenset[Permission]: ...


@dataclass(frozen=True, slots=True)
class EventRow:
    """What templates/staff/_event_row.html shows of one event."""

    id: int
    at_iso: str
    at_text: str
    topic: str
    topic_label: str
    type: str
    label: str
    summary: str


@dataclass(frozen=True, slots=True)
class EventsPageContext:
    rows: list[EventRow]
    stream_url: str
    test_url: str
    last_event_id: int


def event_row(event: Event) -> EventRow:
    kind, _, number = event.topic.partition(":")
    topic_label = TOPIC_LABELS.get(kind, event.topic) + (f" {number}" if number else "")
    if event.type == "test":
        summary = f"{event.data.get('message', '')}（{event.data.get('by', '')}）"
    else:
        summary = dumps(event.data)
    if len(summary) > 160:
        summary = summary[:159] + "…"
    local = event.at.astimezone(JST)
    return EventRow(
        id=event.id,
        at_iso=event.at.isoformat(),
        at_text=local.strftime("%m/%d %H:%M:%S"),
        topic=event.topic,
        topic_label=topic_label,
        type=event.type,
        label=EVENT_LABELS.get(event.type, event.type),
        summary=summary,
    )


# Views ------------------------------------------------------------------------------------------


async def events_page(request: Request) -> Response:
    user = _user(request)
    if user is None:
        return _forbidden()
    db: Database = request.app.state.db
    events, last_id = await run_in_threadpool(_latest_events, db, topics_for(user.permissions), PAGE_ROWS)
    context = EventsPageContext(
        rows=[event_row(event) for event in events],
        stream_url=_path(request, "events:stream", last_event_id=last_id),
        test_url=_path(request, "staff:events-test"),
        last_event_id=last_id,
    )
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, "staff/events.html", {"page": context})


async def event_stream(request: Request) -> Response:
    """The SSE stream. Resumes after ``Last-Event-ID`` (or ``?last_event_id=`` on first connect)."""
    user = _user(request)
    if user is None:
        return _forbidden()
    hub: EventHub = request.app.state.hub
    templates: Jinja2Templates = request.app.state.templates
    ping: int = request.app.state.settings.sse_ping_seconds
    body = _stream_body(hub, topics_for(user.permissions), _last_event_id(request), templates)
    return _EventStreamResponse(
        body,
        ping=ping,
        send_timeout=SEND_TIMEOUT_SECONDS,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def send_test_event(request: Request) -> Response:
    """Publish a "system"/"test" event so an administrator can watch the pipe end to end."""
    user = _user(request)
    if user is None:
        return _forbidden()
    db: Database = request.app.state.db
    await run_in_threadpool(_record_test_event, db, user.display_name, user.login_id)
    if request.headers.get("HX-Request") == "true":
        return Response(status_code=204)
    return RedirectResponse(request.url_for("staff:events"), status_code=303)


# Stream -----------------------------------------------------------------------------------------


class _EventStreamResponse(EventSourceResponse):
    """Only heartbeats carry the send timeout.

    sse-starlette arms a timer for every write; across hundreds of clients that doubled the
    fan-out time (bench/bench_sse.py). A client that stops taking data blocks its heartbeat
    too, so it is still dropped within ping + send_timeout seconds.
    """

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if message.get("body", b"").startswith(b":"):  # a heartbeat is an SSE comment
            await super()._send_with_timeout(send, message)
        else:
            await send(message)


async def _stream_body(
    hub: EventHub, allowed: TopicFilter, last_event_id: int | None, templates: Jinja2Templates
) -> AsyncIterator[bytes]:
    # Connect on the first read, not in the view: a HEAD request never reads, and a client
    # registered then would never be detached.
    async with hub.connect(allowed, last_event_id) as stream:
        async for item in stream:
            # One write for what is already waiting (a replay, a burst), in slices so that a
            # long replay does not hold up every other client's stream.
            batch = [item, *stream.ready(limit=BATCH_SIZE - 1)]
            yield b"".join(_encode(each, templates) for each in batch)
            if len(batch) == BATCH_SIZE:
                await asyncio.sleep(0)


# Per template set (tests and the bench build several apps in one process), newest last.
_encoded: WeakKeyDictionary[Jinja2Templates, OrderedDict[tuple[int, datetime], bytes]] = WeakKeyDictionary()
_ENCODED_MAX: Final = 4096


def _encode(item: StreamItem, templates: Jinja2Templates) -> bytes:
    if isinstance(item, Reload):
        return ServerSentEvent(
            dumps({"reason": item.reason}), event=RELOAD_EVENT, retry=RELOAD_RETRY_MS
        ).encode()
    # Every client gets the same bytes for an event: encode and render once, not per client.
    cache = _encoded.setdefault(templates, OrderedDict())
    key = (item.id, item.at)
    chunk = cache.get(key)
    if chunk is None:
        row = templates.get_template("staff/_event_row.html").render(row=event_row(item), live=True)
        chunk = (
            ServerSentEvent(item.to_json(), id=str(item.id), event=item.type).encode()
            + ServerSentEvent(row.strip(), id=str(item.id), event=ROW_EVENT).encode()
        )
        cache[key] = chunk
        if len(cache) > _ENCODED_MAX:
            cache.popitem(last=False)
    return chunk


def _last_event_id(request: Request) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw.strip())


# Helpers ----------------------------------------------------------------------------------------


def _user(request: Request) -> _User | None:
    user: _User | None = getattr(request.state, "user", None)
    if user is None or Permission.EVENTS_VIEW not in user.permissions:
        return None
    return user


def _forbidden() -> Response:
    return PlainTextResponse("この画面を見る権限がありません。/ You may not view this page.", status_code=403)


def _path(request: Request, name: str, **query: Any) -> str:
    # Path only: an absolute URL built behind a TLS proxy could say http:// and be blocked.
    url = request.url_for(name).include_query_params(**query)
    return url.path + (f"?{url.query}" if url.query else "")


def _topic_clause(allowed: TopicFilter) -> ColumnElement[bool]:
    topic = col(EventRecord.topic)
    clauses: list[ColumnElement[bool]] = []
    if allowed.exact:
        clauses.append(topic.in_(sorted(allowed.exact)))
    clauses.extend(topic.startswith(prefix, autoescape=True) for prefix in sorted(allowed.prefixes))
    return or_(*clauses) if clauses else false()


def _latest_events(db: Database, allowed: TopicFilter, limit: int) -> tuple[list[Event], int]:
    """The newest visible events (newest first) and the newest event id of all, visible or not.

    The stream resumes after that id, so events committed after this read are replayed to
    the page and none is shown twice.
    """
    with db.session() as session:
        last_id = session.exec(select(func.max(EventRecord.id))).one() or 0
        statement = (
            select(EventRecord)
            .where(_topic_clause(allowed), col(EventRecord.id) <= last_id)
            .order_by(col(EventRecord.id).desc())
            .limit(limit)
        )
        records = list(session.exec(statement))
    return [event_from_record(record) for record in records], last_id


def _record_test_event(db: Database, display_name: str, login_id: str) -> None:
    with db.write_session() as session:
        publish_on_commit(
            session,
            "system",
            "test",
            {"message": "テストイベント / Test event", "by": display_name, "login_id": login_id},
        )
        session.commit()
