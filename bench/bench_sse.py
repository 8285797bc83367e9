"""Live events under load: N SSE clients, M events, publish → receive latency and server memory.

    uv run python bench/bench_sse.py                       # 500 clients, 200 events, memory://
    uv run python bench/bench_sse.py --events-url redis://127.0.0.1:6379/15
    uv run python bench/bench_sse.py --clients 50 --events 20  # quick look

It starts a uvicorn server in a subprocess with a minimal app around app.web.events (the real
SSE endpoint, a stand-in sign-in, SQLite in a temporary folder, a POST /bench/publish that writes
and commits an event the way service code does), opens the clients from a few worker processes
(raw sockets, asyncio), publishes the events at an interval and prints latency percentiles
across all clients and the server's resident memory (VmRSS / VmHWM from /proc). Loopback only;
it stops by itself.

Latency runs from the publish request's arrival at the server (before the database commit) to
the moment a client has read the event's JSON message. Targets: p99 ≤ 100 ms with 500 clients,
RSS ≤ 150 MB.

Another app (e.g. the real one): ``--app app.web.app:create_app --factory`` with the app's events
on Redis (MADOGUCHI_EVENTS_URL) and ``--events-url`` naming the same Redis: the bench then
publishes straight to Redis (synthetic event ids from 10^12 up) and ``--cookie`` signs the
clients in.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import multiprocessing
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SYNTHETIC_ID_BASE = 10**12


# Server side (run as a subprocess with --serve) ------------------------------------------------


def build_app(data_dir: Path, events_url: str, channel: str) -> Any:
    from dataclasses import dataclass as dc

    from jinja2_fragments.starlette import Jinja2Blocks
    from sqlmodel import SQLModel
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    import app.models  # noqa: F401
    from app.config import Settings
    from app.db import Database
    from app.domain.permissions import Permission
    from app.events import EventHub, publish_on_commit
    from app.web.events import event_stream
    from app.web.templating import install_i18n

    @dc(frozen=True)
    class BenchUser:
        id: int = 1
        login_id: str = "bench"
        display_name: str = "ベンチ"
        permissions: frozenset[Permission] = frozenset({Permission.STAFF, Permission.EVENTS_VIEW})

    user = BenchUser()

    written: list[float] = []  # publish → handed to the kernel, per client and event
    stamp = re.compile(rb'"type":"bench","data":\{"seq":\d+,"t":([0-9.]+)\}')

    class SignedInAndTimed:
        """Signs every request in; on streams, notes when each bench event leaves the server."""

        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            scope.setdefault("state", {})["user"] = user
            if scope["path"] != "/events/stream":
                await self.app(scope, receive, send)
                return

            async def timed(message: Message) -> None:
                await send(message)
                if message["type"] == "http.response.body":
                    now = time.time()
                    written.extend(now - float(t) for t in stamp.findall(message.get("body", b"")))

            await self.app(scope, receive, timed)

    settings = Settings(_env_file=None, data_dir=data_dir, events_url=events_url)
    db = Database(f"sqlite:///{data_dir / 'bench.db'}")
    SQLModel.metadata.create_all(db.engine)

    def write(seq: int, stamp: float) -> int:
        with db.write_session() as session:
            record = publish_on_commit(session, "staff", "bench", {"seq": seq, "t": stamp})
            session.commit()
        assert record.id is not None
        return record.id

    async def publish(request: Request) -> Response:
        stamp = time.time()
        seq = int(request.query_params["seq"])
        return JSONResponse({"id": await run_in_threadpool(write, seq, stamp)})

    async def stats(request: Request) -> Response:
        hub: EventHub = request.app.state.hub
        return JSONResponse({"clients": hub.client_count, "pid": os.getpid(), "written": written})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub = EventHub.from_url(events_url, replay_size=settings.event_replay_size, db=db, channel=channel)
        await hub.start()
        app.state.hub = hub
        try:
            yield
        finally:
            await hub.stop()
            db.dispose()

    bench_app = Starlette(
        routes=[
            Route("/events/stream", event_stream, name="events:stream"),
            Route("/bench/publish", publish, methods=["POST"]),
            Route("/bench/stats", stats),
        ],
        lifespan=lifespan,
    )
    bench_app.add_middleware(SignedInAndTimed)
    bench_app.state.settings = settings
    bench_app.state.db = db
    bench_app.state.templates = Jinja2Blocks(directory=str(ROOT / "templates"))
    install_i18n(bench_app.state.templates.env)
    return bench_app


def serve(port: int, data_dir: Path, events_url: str, channel: str) -> None:
    import uvicorn

    uvicorn.run(
        build_app(data_dir, events_url, channel),
        host=HOST,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )


# Clients (worker processes) --------------------------------------------------------------------


@dataclass
class ClientResult:
    latencies: list[float] = field(default_factory=list)
    received: dict[int, int] = field(default_factory=dict)  # seq → times received
    errors: list[str] = field(default_factory=list)
    reloads: int = 0


class StreamClient(asyncio.Protocol):
    """One SSE client as a bare protocol: the cheapest way for Python to read 500 streams, so the
    figures measure the server rather than the bench."""

    def __init__(self, request: bytes, result: ClientResult, connected: asyncio.Future[None]) -> None:
        self.request = request
        self.result = result
        self.connected = connected
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.carry = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.connected.done():
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            head, _, data = self.head.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                self.result.errors.append(head.split(b"\r\n", 1)[0].decode())
            self.connected.set_result(None)
        lines = (self.carry + data).split(b"\n")
        self.carry = lines.pop()
        for line in lines:
            # Chunked framing: SSE messages never straddle chunks, so size lines are just noise.
            if line.startswith(b'data: {"id":'):
                event = json.loads(line[6:])
                if event.get("type") == "bench":
                    seq = event["data"]["seq"]
                    self.result.received[seq] = self.result.received.get(seq, 0) + 1
                    self.result.latencies.append(now - event["data"]["t"])
            elif line.startswith(b"event: reload"):
                self.result.reloads += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_result(None)
        if self.transport is not None and not self.transport.is_closing():
            self.result.errors.append(f"stream closed: {exc!r}")


def client_worker(count: int, path: str, port: int, cookie: str, ready: Any, go_home: Any, out: Any) -> None:
    async def main() -> list[ClientResult]:
        loop = asyncio.get_running_loop()
        extra = f"Cookie: {cookie}\r\n" if cookie else ""
        request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: text/event-stream\r\n{extra}\r\n"
        results = [ClientResult() for _ in range(count)]
        waits: list[asyncio.Future[None]] = []
        transports: list[asyncio.Transport] = []
        for index, result in enumerate(results):
            connected: asyncio.Future[None] = loop.create_future()
            try:
                transport, _ = await loop.create_connection(
                    functools.partial(StreamClient, request.encode(), result, connected), HOST, port
                )
            except OSError as error:
                result.errors.append(f"connect: {error}")
                continue
            transports.append(transport)
            waits.append(connected)
            if index % 25 == 24:
                await asyncio.sleep(0.02)  # don't flood the accept queue
        await asyncio.gather(*waits)
        ready.set()
        await loop.run_in_executor(None, go_home.wait)
        for transport in transports:
            transport.close()
        await asyncio.sleep(0.1)
        return results

    results = asyncio.run(main())
    out.put([(r.latencies, r.received, r.errors, r.reloads) for r in results])


# Driver ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def http_json(method: str, url: str, cookie: str = "") -> Any:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if cookie:
        request.add_header("Cookie", cookie)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def memory_kib(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between publishes")
    parser.add_argument("--client-procs", type=int, default=2, help="worker processes for the clients")
    parser.add_argument("--events-url", default="memory://")
    parser.add_argument("--app", default="", help="module:attr of another ASGI app to serve instead")
    parser.add_argument("--factory", action="store_true", help="--app names a factory")
    parser.add_argument("--cookie", default="", help="Cookie header for the clients (with --app)")
    parser.add_argument("--path", default="/events/stream", help="the stream's path")
    parser.add_argument("--channel", default="madoguchi:events", help="the app's Redis channel (with --app)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))

    if args.serve:
        serve(args.port, Path(args.data_dir), args.events_url, args.channel)
        return 0

    if args.app and not args.events_url.startswith(("redis://", "rediss://", "unix://")):
        parser.error("--app needs --events-url naming the Redis the app's events use")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="madoguchi-bench-") as data_dir:
        if args.app:
            command = [sys.executable, "-m", "uvicorn", args.app, "--host", HOST, "--port", str(port)]
            command += ["--log-level", "warning", "--no-access-log", "--timeout-graceful-shutdown", "2"]
            command += ["--factory"] if args.factory else []
        else:
            command = [sys.executable, __file__, "--serve", "--port", str(port), "--data-dir", data_dir]
            # Its own channel, so other processes on the same Redis neither see nor disturb it.
            command += ["--events-url", args.events_url, "--channel", f"madoguchi:bench:{os.getpid()}"]
        server = subprocess.Popen(command, cwd=ROOT)
        try:
            return run(args, port, server)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def run(args: argparse.Namespace, port: int, server: subprocess.Popen[bytes]) -> int:
    base = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                print("server did not start", file=sys.stderr)
                return 1
            time.sleep(0.1)
    time.sleep(0.3)  # lifespan start-up
    idle = memory_kib(server.pid)

    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    go_home = context.Event()
    readies = []
    workers = []
    per_worker = [
        args.clients // args.client_procs + (i < args.clients % args.client_procs)
        for i in range(args.client_procs)
    ]
    started = time.monotonic()
    for count in per_worker:
        ready = context.Event()
        worker = context.Process(
            target=client_worker, args=(count, args.path, port, args.cookie, ready, go_home, out), daemon=True
        )
        worker.start()
        readies.append(ready)
        workers.append(worker)
    for ready in readies:
        if not ready.wait(120):
            print("clients did not connect in time", file=sys.stderr)
            go_home.set()
            return 1
    if not args.app:
        while http_json("GET", f"{base}/bench/stats")["clients"] < args.clients:
            if time.monotonic() - started > 60:
                break
            time.sleep(0.05)
    connect_seconds = time.monotonic() - started
    connected = memory_kib(server.pid)

    publisher = None
    if args.app:
        from app.events import Event, RedisSyncPublisher

        publisher = RedisSyncPublisher(args.events_url, channel=args.channel)
    cpu_before = cpu_seconds(server.pid)
    publish_started = time.monotonic()
    for seq in range(args.events):
        target = publish_started + seq * args.interval
        time.sleep(max(0.0, target - time.monotonic()))
        if publisher is None:
            http_json("POST", f"{base}/bench/publish?seq={seq}")
        else:
            publisher(
                Event(
                    id=SYNTHETIC_ID_BASE + int(time.time() * 1000) * 1000 + seq,
                    topic="staff",
                    type="bench",
                    data={"seq": seq, "t": time.time()},
                    at=datetime.now(UTC),
                )
            )
    if publisher is not None:
        publisher.close()
    time.sleep(1.0)  # the last events' fan-out
    elapsed = time.monotonic() - publish_started
    user_cpu, system_cpu = (
        (b - a) / elapsed for a, b in zip(cpu_before, cpu_seconds(server.pid), strict=True)
    )
    after = memory_kib(server.pid)
    server_side = (
        [] if args.app else sorted(1000 * v for v in http_json("GET", f"{base}/bench/stats")["written"])
    )
    go_home.set()

    latencies: list[float] = []
    complete = duplicates = reloads = 0
    errors: list[str] = []
    for _ in workers:
        for client_latencies, received, client_errors, client_reloads in out.get(timeout=60):
            latencies += client_latencies
            complete += len(received) == args.events
            duplicates += sum(n - 1 for n in received.values())
            errors += client_errors
            reloads += client_reloads
    for worker in workers:
        worker.join(10)

    latencies.sort()
    ms = [value * 1000 for value in latencies]
    expected = args.clients * args.events
    print(
        f"clients {args.clients}, events {args.events} every {args.interval * 1000:.0f} ms, broker {args.events_url}"
    )
    print(f"connect: all clients in {connect_seconds:.1f} s")
    print(
        f"delivered {len(ms)}/{expected} ({complete} clients got every event, {duplicates} duplicates, {reloads} reloads)"
    )
    if ms:
        p50, p95, p99 = (percentile(ms, q) for q in (0.50, 0.95, 0.99))
        print(
            f"latency ms, publish → read by the client: p50 {p50:.1f}  p95 {p95:.1f}  p99 {p99:.1f}  max {ms[-1]:.1f}  mean {statistics.fmean(ms):.1f}"
        )
    if server_side:
        p50, p95, p99 = (percentile(server_side, q) for q in (0.50, 0.95, 0.99))
        print(
            f"  of which in the server (publish → written to the socket): p50 {p50:.1f}  p95 {p95:.1f}  p99 {p99:.1f}"
        )
    rss = {name: kib / 1024 for name, kib in (("idle", idle["VmRSS"]), ("connected", connected["VmRSS"]))}
    print(
        f"server memory MiB: idle {rss['idle']:.1f}, {args.clients} clients connected {rss['connected']:.1f}, "
        f"after the run {after['VmRSS'] / 1024:.1f}, peak (VmHWM) {after['VmHWM'] / 1024:.1f}"
    )
    print(
        f"server CPU while publishing: {(user_cpu + system_cpu) * 100:.0f}% of one core "
        f"(user {user_cpu * 100:.0f}%, system {system_cpu * 100:.0f}%; {os.cpu_count()} cores here)"
    )
    if errors:
        print(f"client errors ({len(errors)}): {sorted(set(errors))[:5]}")
    ok = bool(ms) and percentile(ms, 0.99) <= 100 and after["VmHWM"] <= 150 * 1024 and len(ms) == expected
    print("targets (p99 ≤ 100 ms, RSS ≤ 150 MB, every event delivered):", "met" if ok else "NOT met")
    return 0 if ok else 2


if __name__ == "__main__":
    raise SystemExit(main())
