"""The SSE endpoint and the live events page over real HTTP (uvicorn in a thread, httpx).

The app here is built in the test, not by app.web.app.create_app, so these tests pin the
events module alone: a fake user middleware stands in for sign-in.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jinja2
import pytest
import uvicorn
from jinja2_fragments.starlette import Jinja2Blocks
from sqlmodel import SQLModel
from sse_starlette.sse import AppStatus
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

import app.models  # noqa: F401  (registers the tables)
from app.config import Settings
from app.db import Database
from app.domain.permissions import Permission
from app.events import EventHub, publish_on_commit, set_event_sink
from app.web.events import event_stream, events_page, send_test_event
from app.web.templating import install_i18n

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# The real staff/base.html belongs to the web layer; a stub keeps these tests about events.
STUB_BASE = (
    "<!doctype html><title>{% block title %}{% endblock %}</title>{% block head %}{% endblock %}"
    "<main>{% block content %}{% endblock %}</main>"
)


@dataclass(frozen=True)
class FakeUser:
    id: int = 1
    login_id: str = "tester"
    display_name: str = "テスト 職員"
    permissions: frozenset[Permission] = field(
        default_factory=lambda: frozenset({Permission.STAFF, Permission.EVENTS_VIEW})
    )


class FakeSignIn:
    """Every request is signed in as FakeUser; `X-Test-User: auditor` signs in without EVENTS_VIEW."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            auditor = (b"x-test-user", b"auditor") in scope["headers"]
            user = (
                FakeUser(permissions=frozenset({Permission.STAFF, Permission.AUDIT_READ}))
                if auditor
                else FakeUser()
            )
            scope.setdefault("state", {})["user"] = user
        await self.app(scope, receive, send)


def build_app(settings: Settings, db: Database) -> Starlette:
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [jinja2.DictLoader({"staff/base.html": STUB_BASE}), jinja2.FileSystemLoader(TEMPLATES)]
        ),
        autoescape=True,
    )
    install_i18n(env)

    def csrf(request: Request) -> dict[str, Any]:
        return {"csrf_token": "test-csrf-token"}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub = EventHub.from_url(settings.effective_events_url, replay_size=settings.event_replay_size, db=db)
        await hub.start()
        app.state.hub = hub
        try:
            yield
        finally:
            await hub.stop()

    app = Starlette(
        routes=[
            Route("/staff/events", events_page, name="staff:events"),
            Route("/staff/events/test", send_test_event, name="staff:events-test", methods=["POST"]),
            Route("/events/stream", event_stream, name="events:stream"),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(FakeSignIn)
    app.state.settings = settings
    app.state.db = db
    app.state.templates = Jinja2Blocks(env=env, context_processors=[csrf])
    return app


@dataclass
class Server:
    url: str
    app: Starlette
    db: Database

    @property
    def hub(self) -> EventHub:
        hub: EventHub = self.app.state.hub
        return hub

    def publish(self, count: int, topic: str = "staff", type: str = "tick") -> list[int]:
        """Write and commit `count` events the way service code does (this thread is not the server's)."""
        written = []
        for _ in range(count):
            with self.db.write_session() as session:
                record = publish_on_commit(session, topic, type, {"n": len(written)})
                session.commit()
            assert record.id is not None
            written.append(record.id)
        return written


@pytest.fixture(autouse=True)
def fresh_sse_state() -> Iterator[None]:
    # sse-starlette keeps its shutdown flag process-wide; a previous server's exit must not end ours.
    AppStatus.should_exit = False
    previous = set_event_sink(None)
    yield
    AppStatus.should_exit = False
    set_event_sink(previous)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    db = Database(f"sqlite:///{tmp_path / 't.db'}")
    SQLModel.metadata.create_all(db.engine)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "var",
        events_url="memory://",
        sse_ping_seconds=1,
        event_replay_size=10,
    )
    app = build_app(settings, db)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=3, access_log=False)
    )
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield Server(f"http://127.0.0.1:{port}", app, db)
    finally:
        uv.should_exit = True
        thread.join(15)
        sock.close()
        db.dispose()
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=httpx.Timeout(5.0)) as client:
        yield client


def sse(response: httpx.Response) -> Iterator[dict[str, str]]:
    """Parse an event stream into dicts of its fields; a heartbeat comes out as {"comment": …}."""
    message: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if message:
                yield message
            message = {}
        elif line.startswith(":"):
            message["comment"] = line[1:].strip()
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            message[name] = f"{message[name]}\n{value}" if name in message else value


def next_events(messages: Iterator[dict[str, str]], count: int) -> list[dict[str, str]]:
    """The next `count` non-heartbeat messages."""
    found: list[dict[str, str]] = []
    for message in messages:
        if "comment" not in message:
            found.append(message)
            if len(found) == count:
                break
    return found


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_stream_sends_json_and_row_for_each_event(server: Server, http: httpx.Client) -> None:
    with http.stream("GET", "/events/stream", params={"last_event_id": 0}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-accel-buffering"] == "no"
        [event_id] = server.publish(1, "location:3", "ticket.called")
        data, row = next_events(sse(response), 2)
    assert data["id"] == row["id"] == str(event_id)
    assert data["event"] == "ticket.called"
    payload = json.loads(data["data"])
    assert payload["id"] == event_id
    assert (payload["topic"], payload["type"], payload["data"]) == ("location:3", "ticket.called", {"n": 0})
    assert row["event"] == "staff-row"
    assert row["data"].startswith(f'<tr id="event-{event_id}" class="event-row flash"')
    assert "窓口 / Location 3" in row["data"]


def test_heartbeats_keep_an_idle_stream_alive(server: Server, http: httpx.Client) -> None:
    started = time.monotonic()
    with http.stream("GET", "/events/stream") as response:
        messages = sse(response)
        beats = [next(messages), next(messages)]
    assert all(beat.keys() == {"comment"} and beat["comment"].startswith("ping") for beat in beats)
    assert 1.5 < time.monotonic() - started < 4


def test_last_event_id_resumes_with_exactly_the_missed_events(server: Server, http: httpx.Client) -> None:
    with http.stream("GET", "/events/stream", params={"last_event_id": 0}) as response:
        seen = server.publish(3)
        assert [m["id"] for m in next_events(sse(response), 6)] == [str(i) for i in seen for _ in range(2)]
    wait_for(lambda: server.hub.client_count == 0)  # the dropped connection was cleaned up

    missed = server.publish(3)
    # The header wins over the stale ?last_event_id= that a reconnecting browser still sends.
    headers = {"Last-Event-ID": str(seen[-1])}
    with http.stream("GET", "/events/stream", params={"last_event_id": 0}, headers=headers) as response:
        messages = sse(response)
        replayed = next_events(messages, 6)
        assert next(messages).keys() == {"comment"}  # then only heartbeats: nothing twice
    assert [(m["id"], m["event"]) for m in replayed] == [
        (str(i), kind) for i in missed for kind in ("tick", "staff-row")
    ]


def test_too_old_last_event_id_gets_reload(server: Server, http: httpx.Client) -> None:
    written = server.publish(15)  # replay_size is 10
    with http.stream("GET", "/events/stream", headers={"Last-Event-ID": str(written[1])}) as response:
        messages = list(sse(response))  # the server ends the stream after the reload
    assert messages == [{"event": "reload", "data": '{"reason":"too_old"}', "retry": "3000"}]
    with http.stream("GET", "/events/stream", headers={"Last-Event-ID": str(written[-2])}) as response:
        [data, row] = next_events(sse(response), 2)
    assert data["id"] == row["id"] == str(written[-1])


def test_device_topics_never_reach_browsers(server: Server, http: httpx.Client) -> None:
    with http.stream("GET", "/events/stream", params={"last_event_id": 0}) as response:
        server.publish(1, "device:7", "print.job")
        [shown] = server.publish(1, "system", "notice")
        first = next_events(sse(response), 1)[0]
    assert first["id"] == str(shown)


def test_stream_refuses_users_without_events_view(server: Server, http: httpx.Client) -> None:
    response = http.get("/events/stream", headers={"X-Test-User": "auditor"})
    assert response.status_code == 403
    assert server.hub.client_count == 0


def test_head_request_registers_no_client(server: Server, http: httpx.Client) -> None:
    response = http.head("/events/stream")
    assert response.status_code == 200
    assert server.hub.client_count == 0


def test_page_lists_latest_events_and_connects_after_them(server: Server, http: httpx.Client) -> None:
    shown = server.publish(2, "staff", "ticket.issued")
    [hidden] = server.publish(1, "device:1", "print.job")
    response = http.get("/staff/events")
    assert response.status_code == 200
    html = response.text
    assert "<h1>ライブイベント</h1>" in html
    assert all(f'id="event-{i}"' in html for i in shown)
    assert f'id="event-{hidden}"' not in html
    # Resume after the newest event of all, shown or not, so nothing comes twice.
    assert f'sse-connect="/events/stream?last_event_id={hidden}"' in html
    assert 'sse-swap="staff-row"' in html and 'hx-swap="afterbegin"' in html
    assert '<input type="hidden" name="csrf_token" value="test-csrf-token">' in html
    assert html.index(f'id="event-{shown[1]}"') < html.index(f'id="event-{shown[0]}"')  # newest first


def test_test_button_publishes_a_system_event_end_to_end(server: Server, http: httpx.Client) -> None:
    with http.stream("GET", "/events/stream", params={"last_event_id": 0}) as response:
        assert http.post("/staff/events/test", headers={"HX-Request": "true"}).status_code == 204
        redirect = http.post("/staff/events/test")
        assert redirect.status_code == 303
        assert redirect.headers["location"].endswith("/staff/events")
        data, row, again, _ = next_events(sse(response), 4)
    payload = json.loads(data["data"])
    assert (data["event"], payload["topic"], payload["data"]["by"]) == ("test", "system", "テスト 職員")
    assert "テストイベント / Test event" in row["data"]
    assert int(again["id"]) > int(data["id"])


def test_a_client_that_stops_reading_is_dropped(
    server: Server, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Data writes carry no timer (see _EventStreamResponse); the heartbeat must still notice.
    monkeypatch.setattr("app.web.events.SEND_TIMEOUT_SECONDS", 1.0)
    big = {"blob": "x" * 700_000}
    with server.db.write_session() as session:
        for _ in range(10):  # 7 MB, all in the replay buffer: more than the socket buffers hold
            publish_on_commit(session, "staff", "bulk", big)
        session.commit()
    port = int(server.url.rsplit(":", 1)[1])
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        stuck.connect(("127.0.0.1", port))
        stuck.sendall(b"GET /events/stream?last_event_id=0 HTTP/1.1\r\nHost: test\r\n\r\n")
        wait_for(lambda: server.hub.client_count == 1)
        # It never reads: within ping (1 s) + send timeout (1 s) the server gives up on it.
        wait_for(lambda: server.hub.client_count == 0, timeout=10)
    finally:
        stuck.close()
    with http.stream("GET", "/events/stream", params={"last_event_id": 0}) as response:
        assert next_events(sse(response), 1)[0]["event"] == "bulk"  # others are unaffected
