"""A stand-in for the server's device API, for the bridge's tests, chaos test and benchmark.

It implements the contract the bridge codes against (app/web/devices.py is the real one):
bearer token, ``GET /devices/api/stream`` (hello, every unfinished job, then live jobs, cancels,
commands; ``: ping`` comments), job reports with attempts and 409 for stale ones, documents,
heartbeats, events and answers to card commands (kept in memory only). Everything is kept in a SQLite file, so the server can be killed and
started again (the chaos test does) without losing a job.

Test-only control endpoints (no token) under ``/test/``: create jobs, cancel, retry, forget acks,
change the token, drop or silence the streams, send commands, read everything back.

    python tests/bridge_fake_server.py --db var/fake.db --port 8765 --token secret [--ping-seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import socket
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

UNFINISHED = ("queued", "delivered", "printing")
FINAL = ("done", "failed", "cancelled")
ORDER = {"queued": 0, "delivered": 1, "printing": 2, "done": 3, "failed": 3, "cancelled": 3}

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    attempt INTEGER NOT NULL DEFAULT 1,
    printer TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    payload TEXT NOT NULL,
    copies INTEGER NOT NULL DEFAULT 1,
    options TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL DEFAULT 'queued',
    reason TEXT NOT NULL DEFAULT '',
    deliveries INTEGER NOT NULL DEFAULT 0,
    document BLOB,
    created_at REAL NOT NULL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL, attempt INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
    status_code INTEGER NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS heartbeats (id INTEGER PRIMARY KEY AUTOINCREMENT, status TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, data TEXT NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS connects (
    id INTEGER PRIMARY KEY AUTOINCREMENT, last_event_id TEXT, authorized INTEGER NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def default_receipt(job_id: int) -> dict[str, Any]:
    """A receipt that carries its job id in text and in a QR code (so prints can be counted)."""
    return {
        "receipt": {
            "title": "受付票",
            "lines": [f"印刷ジョブ {job_id}", "テスト印刷です"],
            "qr": f"madoguchi-job:{job_id}",
        }
    }


class Store:
    """The fake server's SQLite; used from the server's event loop only (and at start-up)."""

    def __init__(self, path: str | Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def setting(self, key: str, default: str) -> str:
        row = self.db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return str(row["value"]) if row else default

    def set_setting(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def add_job(
        self,
        printer: str,
        payload: dict[str, Any] | None,
        *,
        title: str = "",
        copies: int = 1,
        options: dict[str, Any] | None = None,
        document: bytes | None = None,
    ) -> int:
        cursor = self.db.execute(
            "INSERT INTO jobs (printer, title, payload, copies, options, document, created_at)"
            " VALUES (?, ?, '{}', ?, ?, ?, ?)",
            (printer, title, copies, json.dumps(options or {}), document, time.time()),
        )
        job_id = cursor.lastrowid
        assert job_id is not None
        if payload is None:
            payload = default_receipt(job_id) if printer == "receipt" else {"document_key": f"doc-{job_id}"}
        self.db.execute(
            "UPDATE jobs SET payload = ?, title = ? WHERE id = ?",
            (json.dumps(payload, ensure_ascii=False), title or f"受付票 {job_id}", job_id),
        )
        return job_id

    def job(self, job_id: int) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row

    def pending(self) -> list[sqlite3.Row]:
        return list(self.db.execute("SELECT * FROM jobs WHERE state IN (?, ?, ?) ORDER BY id", UNFINISHED))

    def mark_delivered(self, job_id: int) -> None:
        self.db.execute(
            "UPDATE jobs SET deliveries = deliveries + 1,"
            " state = CASE WHEN state = 'queued' THEN 'delivered' ELSE state END WHERE id = ?",
            (job_id,),
        )


def job_message(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "attempt": row["attempt"],
        "printer": row["printer"],
        "title": row["title"],
        "payload": json.loads(row["payload"]),
        "copies": row["copies"],
        "options": json.loads(row["options"]),
    }


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    for part in json.dumps(data, ensure_ascii=False).split("\n"):
        lines.append(f"data: {part}")
    return "\n".join(lines) + "\n\n"


@dataclass
class FakeServer:
    store: Store
    ping_seconds: float = 15.0
    streams: set[asyncio.Queue[str | None]] = field(default_factory=set)
    silent: bool = False
    command_answers: list[dict[str, Any]] = field(default_factory=list)
    next_event_id: int = field(default_factory=lambda: int(time.time() * 1000))

    @property
    def token(self) -> str:
        return self.store.setting("token", "")

    def authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and bool(token) and token.strip() == self.token

    def push(self, event: str, data: Any) -> None:
        self.next_event_id += 1
        text = sse(event, data, self.next_event_id)
        for queue in list(self.streams):
            queue.put_nowait(text)

    def drop_streams(self) -> None:
        for queue in list(self.streams):
            queue.put_nowait(None)


def _unauthorized() -> Response:
    return JSONResponse(
        {"error": "unauthorized", "message": "機器トークンが無効です。管理画面で機器を確認してください。"},
        status_code=401,
    )


def create_app(db_path: str | Path, token: str | None = None, ping_seconds: float = 15.0) -> Starlette:
    store = Store(db_path)
    if token is not None:
        store.set_setting("token", token)
    server = FakeServer(store, ping_seconds)

    # --- the device API ---

    async def stream(request: Request) -> Response:
        authorized = server.authorized(request)
        store.db.execute(
            "INSERT INTO connects (last_event_id, authorized, at) VALUES (?, ?, ?)",
            (request.headers.get("last-event-id"), int(authorized), time.time()),
        )
        if not authorized:
            return _unauthorized()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        server.streams.add(queue)

        async def body() -> AsyncIterator[str]:
            try:
                hello = {
                    "device": {"id": 1, "code": "K01", "name": "キオスク1", "kind": "kiosk"},
                    "server_time": datetime.now(UTC).isoformat(),
                }
                yield sse("hello", hello)
                sent: set[tuple[int, int]] = set()
                for row in store.pending():
                    store.mark_delivered(row["id"])
                    sent.add((row["id"], row["attempt"]))
                    yield sse("job", job_message(row))
                while True:
                    try:
                        item = await asyncio.wait_for(queue.get(), server.ping_seconds)
                    except TimeoutError:
                        if not server.silent:
                            yield ": ping\n\n"
                        continue
                    if item is None:
                        return
                    if server.silent:
                        continue
                    yield item
            finally:
                server.streams.discard(queue)

        return StreamingResponse(
            body(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    async def report(request: Request) -> Response:
        if not server.authorized(request):
            return _unauthorized()
        job_id = int(request.path_params["job_id"])
        body = await request.json()
        attempt, state, reason = int(body["attempt"]), str(body["state"]), str(body.get("reason", ""))[:255]
        if state not in ("delivered", "printing", "done", "failed"):
            return JSONResponse({"error": "bad_request"}, status_code=400)
        row = store.job(job_id)
        code = 200
        if row is None:
            code, answer = 404, {"error": "not_found"}
        elif attempt != row["attempt"] or row["state"] == "cancelled":
            code, answer = 409, {"error": "stale", "state": row["state"]}
        else:
            current = row["state"]
            if current not in FINAL and ORDER[state] > ORDER[current]:
                finished = time.time() if state in FINAL else None
                store.db.execute(
                    "UPDATE jobs SET state = ?, reason = ?, finished_at = ? WHERE id = ?",
                    (state, reason, finished, job_id),
                )
                current = state
            elif state == current and reason != row["reason"]:
                store.db.execute("UPDATE jobs SET reason = ? WHERE id = ?", (reason, job_id))
            answer = {"state": current}
        store.db.execute(
            "INSERT INTO reports (job_id, attempt, state, reason, status_code, at) VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, attempt, state, reason, code, time.time()),
        )
        return JSONResponse(answer, status_code=code)

    async def document(request: Request) -> Response:
        if not server.authorized(request):
            return _unauthorized()
        row = store.job(int(request.path_params["job_id"]))
        if row is None or row["printer"] != "office" or row["document"] is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        return Response(bytes(row["document"]), media_type="application/pdf")

    async def heartbeat(request: Request) -> Response:
        if not server.authorized(request):
            return _unauthorized()
        body = await request.json()
        store.db.execute(
            "INSERT INTO heartbeats (status, at) VALUES (?, ?)",
            (json.dumps(body.get("status", {}), ensure_ascii=False), time.time()),
        )
        return JSONResponse({"server_time": datetime.now(UTC).isoformat()})

    async def event(request: Request) -> Response:
        if not server.authorized(request):
            return _unauthorized()
        body = await request.json()
        if body.get("type") not in ("scan", "card_inserted", "card_removed"):
            return JSONResponse({"error": "bad_request"}, status_code=400)
        store.db.execute(
            "INSERT INTO events (type, data, at) VALUES (?, ?, ?)",
            (body["type"], json.dumps(body.get("data", {}), ensure_ascii=False), time.time()),
        )
        return JSONResponse({"accepted": True}, status_code=202)

    async def command_answer(request: Request) -> Response:
        if not server.authorized(request):
            return _unauthorized()
        server.command_answers.append(
            {"command_id": request.path_params["command_id"], "answer": await request.json()}
        )
        return JSONResponse({"accepted": True})

    # --- test control ---

    async def add_jobs(request: Request) -> Response:
        body = await request.json()
        document = base64.b64decode(body["document_b64"]) if body.get("document_b64") else None
        ids = []
        for _ in range(int(body.get("count", 1))):
            job_id = store.add_job(
                str(body.get("printer", "receipt")),
                body.get("payload"),
                title=str(body.get("title", "")),
                copies=int(body.get("copies", 1)),
                options=body.get("options"),
                document=document,
            )
            ids.append(job_id)
            server.push("job", job_message(store.job(job_id)))  # type: ignore[arg-type]
        return JSONResponse({"ids": ids})

    async def cancel(request: Request) -> Response:
        row = store.job(int(request.path_params["job_id"]))
        if row is None or row["state"] in FINAL:
            return JSONResponse({"error": "final"}, status_code=400)
        store.db.execute(
            "UPDATE jobs SET state = 'cancelled', reason = '職員が取り消しました', finished_at = ? WHERE id = ?",
            (time.time(), row["id"]),
        )
        # The real server sends {"job_id", "attempt"}.
        server.push("cancel", {"job_id": row["id"], "attempt": row["attempt"]})
        return JSONResponse({"ok": True})

    async def retry(request: Request) -> Response:
        job_id = int(request.path_params["job_id"])
        store.db.execute(
            "UPDATE jobs SET attempt = attempt + 1, state = 'queued', reason = '', finished_at = NULL WHERE id = ?",
            (job_id,),
        )
        row = store.job(job_id)
        assert row is not None
        server.push("job", job_message(row))
        return JSONResponse({"attempt": row["attempt"]})

    async def forget(request: Request) -> Response:
        """Every job back to queued, as if the server had lost the bridge's acks."""
        store.db.execute(
            "UPDATE jobs SET state = 'queued', reason = '', finished_at = NULL WHERE state != 'cancelled'"
        )
        return JSONResponse({"ok": True})

    async def set_token(request: Request) -> Response:
        body = await request.json()
        store.set_setting("token", str(body["token"]))
        server.drop_streams()
        return JSONResponse({"ok": True})

    async def disconnect(request: Request) -> Response:
        server.drop_streams()
        return JSONResponse({"streams": len(server.streams)})

    async def silence(request: Request) -> Response:
        body = await request.json()
        server.silent = bool(body.get("on", True))
        return JSONResponse({"silent": server.silent})

    async def command(request: Request) -> Response:
        server.push("command", await request.json())
        return JSONResponse({"ok": True})

    async def state(request: Request) -> Response:
        def rows(query: str) -> list[dict[str, Any]]:
            return [dict(row) for row in store.db.execute(query)]

        jobs = rows(
            "SELECT id, attempt, printer, title, state, reason, deliveries, created_at, finished_at FROM jobs ORDER BY id"
        )
        return JSONResponse(
            {
                "jobs": jobs,
                "reports": rows(
                    "SELECT job_id, attempt, state, reason, status_code, at FROM reports ORDER BY id"
                ),
                "heartbeats": [
                    json.loads(r["status"]) for r in rows("SELECT status FROM heartbeats ORDER BY id")
                ],
                "events": [
                    {"type": r["type"], "data": json.loads(r["data"])}
                    for r in rows("SELECT type, data FROM events ORDER BY id")
                ],
                "connects": rows("SELECT last_event_id, authorized, at FROM connects ORDER BY id"),
                "streams": len(server.streams),
                "command_answers": server.command_answers,
            }
        )

    async def one_job(request: Request) -> Response:
        row = store.job(int(request.path_params["job_id"]))
        if row is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        job = dict(row)
        for private in ("document", "payload", "options"):
            job.pop(private)
        return JSONResponse(job)

    async def summary(request: Request) -> Response:
        counts = {
            r["state"]: r["n"]
            for r in store.db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        }
        return JSONResponse({"counts": counts, "streams": len(server.streams)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            server.drop_streams()
            store.close()

    app = Starlette(
        routes=[
            Route("/devices/api/stream", stream),
            Route("/devices/api/jobs/{job_id:int}", report, methods=["POST"]),
            Route("/devices/api/jobs/{job_id:int}/document", document),
            Route("/devices/api/heartbeat", heartbeat, methods=["POST"]),
            Route("/devices/api/events", event, methods=["POST"]),
            Route("/devices/api/commands/{command_id}", command_answer, methods=["POST"]),
            Route("/test/jobs", add_jobs, methods=["POST"]),
            Route("/test/jobs/{job_id:int}", one_job),
            Route("/test/jobs/{job_id:int}/cancel", cancel, methods=["POST"]),
            Route("/test/jobs/{job_id:int}/retry", retry, methods=["POST"]),
            Route("/test/forget", forget, methods=["POST"]),
            Route("/test/token", set_token, methods=["POST"]),
            Route("/test/disconnect", disconnect, methods=["POST"]),
            Route("/test/silence", silence, methods=["POST"]),
            Route("/test/command", command, methods=["POST"]),
            Route("/test/state", state),
            Route("/test/summary", summary),
        ],
        lifespan=lifespan,
    )
    app.state.fake = server
    return app


# --- running it ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serve_in_thread(
    db_path: str | Path, token: str, ping_seconds: float = 15.0, port: int = 0
) -> Iterator[tuple[str, FakeServer]]:
    """The fake server on 127.0.0.1 in a thread; yields (base URL, server)."""
    app = create_app(db_path, token, ping_seconds)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1, access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="fake-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{bound_port}", app.state.fake
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
        if thread.is_alive():
            raise RuntimeError("the fake server did not stop")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fake Madoguchi device API for bridge tests")
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default=None, help="set the valid token (kept in the database)")
    parser.add_argument("--ping-seconds", type=float, default=15.0)
    args = parser.parse_args(argv)
    app = create_app(args.db, args.token, args.ping_seconds)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
