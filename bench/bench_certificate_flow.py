"""Certificate requests end to end: kiosk confirm → staff screen, → office print acked, and 50/s sustained.

    uv run python bench/bench_certificate_flow.py --staff-screen              # 500 SSE clients, 30 confirms
    uv run python bench/bench_certificate_flow.py --staff-screen --manual-print
    uv run python bench/bench_certificate_flow.py --office-print              # 20 confirms → CUPS → done
    uv run python bench/bench_certificate_flow.py --sustained --duration 30   # quick; default 300 s
    uv run python bench/bench_certificate_flow.py                             # all three
    uv run --with py-spy python bench/bench_certificate_flow.py --sustained --duration 60 --py-spy 20

Every run builds a migrated database with the demo town (a temporary database on the PostgreSQL
server of ``--database-url``, dropped afterwards; ``--database-url sqlite`` for a temporary SQLite
file), a demo JPKI CA with simulated My Number Cards, and starts the real web app
(``app.web.app:create_app``) under uvicorn in a subprocess through ``bench_app_factory`` below, a
small launcher that gives the app its own Redis channel (so other processes on the same Redis
neither see nor disturb it) and wraps a few functions with timers (confirm, render, sign, seal, audit
record, bridge report) whose totals it writes to a file the bench reads. Events go through
``--events-url`` (default Redis db 15 on 127.0.0.1). Loopback only; every wait is bounded.

1. ``--staff-screen`` — confirm → staff screen. ``--clients`` (500) SSE clients on /events/stream,
   all with the session cookie of the demo clerk (signed in once over HTTP), opened from worker
   processes as raw asyncio protocols (the approach of bench_sse.py). The bench walks the kiosk
   over HTTP like tests/test_kiosk_flow.py (start → type → PIN → card check → options → confirm
   page) and plays the kiosk's bridge for the card: the PIN command arrives on the kiosk's device
   stream and is answered by the real card driver on a simulated card (DirectTransport). Timed:
   from the moment the confirm POST is sent to the moment each client has read the
   ``certificate.requested`` event of that request. One extra screen in the bench process
   re-renders the queue table after each event, as static/js/queue.js does (reported apart).
   Target: p99 ≤ 100 ms. ``--manual-print`` makes the locations confirm-first (no print order at
   all) to show what making the certificates next to the confirms costs.
2. ``--office-print`` — confirm → office print job acked. The demo's real bridges
   (device_bridge.simulators.demo) run for every terminal except kiosk 0101, whose card and
   receipts the bench plays; the back office 0102's bridge prints to a CUPS queue made by
   device_bridge.simulators.office_printer (its own queue name, removed afterwards), or, when
   CUPS cannot be used or with ``--office-printer fake``, the bench plays that bridge too with a
   fake office printer (downloads the PDF, reports done). "Acked" = the server has applied the
   office bridge's ``done`` report for the certificate's print job (PrintJob.finished_at, stamped
   by the server); the real bridge sends it only once CUPS says the job is completed (IPP
   job-state 9 — for the simulated queue: the backend has written the PDF into its folder).
   One confirm at a time, each after the previous job is done. Target: p95 ≤ 500 ms.
3. ``--sustained`` — ``--rate`` (50) confirms per second for ``--duration`` (300) seconds with
   every terminal's real bridge, auto print on (each confirm queues the receipt job and, after its
   commit, a print order that renders, signs and stores the PDF and queues the office job). The walk before the confirm is not repeated 50 times a second:
   each request's kiosk session is written straight into the database at the confirm step (as the
   card check and options leave it) just before its confirm POST; the confirm itself goes over
   HTTP. Arrivals are scheduled at the rate and sent by ``--concurrency`` threads; what is not sent
   by the end of the duration is counted, not sent late. Reports the achieved rate, confirm
   latency, confirm → receipt/office done, the backlog of unprinted jobs over time, CPU and RSS of
   the web process(es), where the confirm's time goes (timers, optionally py-spy) and says plainly
   whether 50/s was reached.

The bench also probes for a bug in app/events/publish.py (events written inside a SAVEPOINT are
published when the savepoint is released, before the commit, so bridges hear of print jobs they
cannot read yet). When it is there, the launcher defers those events to the real commit and the
bench says so; ``--unpatched-events`` runs the app as is. ``--keep-logs DIR`` keeps the web
server's and the bridges' logs. Certificates are made by the web process's own print threads
(no Redis job queue), or with ``--print-workers N`` by N arq workers (``madoguchi worker`` with the
launcher's timers) on a job queue of the bench's own in the ``--events-url`` Redis. Figures and their reading: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import json
import multiprocessing
import os
import queue as queue_module
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"
WALK_KIOSK = "0101"
CSRF_META = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')
IDEMPOTENCY = re.compile(r'name="idempotency_key" value="([^"]+)"')
OPEN_JOB_STATES = ("queued", "delivered", "printing")
TARGET_STAFF_P99_MS = 100.0
TARGET_OFFICE_P95_MS = 500.0


# ------------------------------------------------------------------------------------------------
# The launcher: uvicorn runs this factory (``--factory --app-dir bench``) in the web process(es).
# ------------------------------------------------------------------------------------------------

_TIMERS: dict[str, list[float]] = {}  # label → [calls, wall seconds, thread CPU seconds]
_TIMERS_LOCK = threading.Lock()


def _timed(module: Any, name: str, label: str) -> None:
    original = getattr(module, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent, used = time.perf_counter() - wall, time.thread_time() - cpu
            with _TIMERS_LOCK:
                row = _TIMERS.setdefault(label, [0.0, 0.0, 0.0])
                row[0] += 1
                row[1] += spent
                row[2] += used

    setattr(module, name, wrapper)


def _write_timers(folder: Path) -> None:
    path = folder / f"{os.getpid()}.json"
    while True:
        time.sleep(0.5)
        with _TIMERS_LOCK:
            text = json.dumps(_TIMERS)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def savepoint_publishes_early() -> bool:
    """Does publish_on_commit hand an event written inside a SAVEPOINT to the sink when the
    savepoint is released, before the outer transaction commits? (SQLAlchemy fires after_commit
    for a released savepoint too.) Probed on an in-memory SQLite database."""
    from sqlmodel import Session, create_engine

    from app.events import publish_on_commit, set_event_sink
    from app.models import EventRecord

    engine = create_engine("sqlite://")
    EventRecord.__table__.create(engine)  # type: ignore[attr-defined]
    sent: list[Any] = []
    previous = set_event_sink(sent.append)
    try:
        with Session(engine) as session:
            with session.begin_nested():
                publish_on_commit(session, "staff", "bench.probe", {})
            early = bool(sent)
            session.commit()
    finally:
        set_event_sink(previous)
        engine.dispose()
    return early


def _defer_savepoint_events() -> None:
    """Bench workaround: publish only when the outermost transaction commits, not when a savepoint
    (certificates._print_automatically's) is released — else a bridge can be told of a print job
    that it cannot read yet, and the job waits for the bridge's next reconnect."""
    from sqlalchemy import event as sa_event
    from sqlalchemy.orm import Session as OrmSession

    import app.events.publish as publish

    original = getattr(publish, "_publish_after_commit", None)
    if original is None or not sa_event.contains(OrmSession, "after_commit", original):
        print(
            "bench launcher: app.events.publish changed; savepoint events left as they are", file=sys.stderr
        )
        return
    sa_event.remove(OrmSession, "after_commit", original)

    def outermost_only(session: OrmSession) -> None:
        if not session.in_nested_transaction():
            original(session)

    sa_event.listen(OrmSession, "after_commit", outermost_only)


def bench_app_factory() -> Any:
    """The real app (settings from MADOGUCHI_*), on its own event channel, with timers."""
    import app.services.devices as devices
    import app.services.kiosk as kiosk
    from app.events import EventHub
    from app.web.app import create_app

    channel = os.environ.get("MADOGUCHI_BENCH_CHANNEL", "")
    if channel:
        from_url = EventHub.from_url.__func__  # type: ignore[attr-defined]

        def own_channel(cls: type[EventHub], /, url: str, **kwargs: Any) -> EventHub:
            kwargs.setdefault("channel", channel)
            hub: EventHub = from_url(cls, url, **kwargs)
            return hub

        EventHub.from_url = classmethod(own_channel)  # type: ignore[method-assign, assignment]
    if os.environ.get("MADOGUCHI_BENCH_DEFER_SAVEPOINT_EVENTS") == "1":
        _defer_savepoint_events()
    _timed(kiosk, "confirm", "kiosk confirm (service, whole transaction body)")
    _install_print_timers()
    _timed(devices, "report", "device report (a bridge's job state)")
    folder = os.environ.get("MADOGUCHI_BENCH_STATS_DIR", "")
    if folder:
        threading.Thread(target=_write_timers, args=(Path(folder),), daemon=True).start()
    return create_app()


def _install_print_timers() -> None:
    """Timers on the certificate's making (in the web's print threads or in the arq workers)."""
    import app.printing.certificates as printing_certificates
    import app.printing.overlay as overlay
    import app.services.audit as audit_service
    import app.services.certificates as certificates

    _timed(certificates, "run_print_order", "run_print_order (reserve+render+sign+store+record)")
    _timed(certificates, "_prepare_print", "_prepare_print (registry rows, serials)")
    _timed(certificates, "_record_issue", "_record_issue (issue, copies, office job, audit)")
    _timed(certificates, "render_certificate", "render_certificate (frame + values)")
    _timed(printing_certificates, "render_frame", "render_frame (a new frame laid out by WeasyPrint)")
    _timed(certificates, "sign_pdf", "sign_pdf (PAdES, pyHanko)")
    _timed(overlay, "qr_matrix", "qr_matrix (a page's verification QR code)")
    _timed(certificates, "make_demo_seal", "make_demo_seal (a seal PNG drawn per certificate)")
    _timed(audit_service, "record", "audit.record (incl. wait for the chain lock)")


def bench_worker_main() -> None:
    """An arq print worker (`madoguchi worker`) with the same timers: `python bench_certificate_flow.py
    --as-worker` in the environment web_server gives it."""
    from arq.worker import run_worker

    import app.jobs.worker as worker_module
    from app.config import get_settings
    from app.events import sink_for_url
    from app.jobs.worker import WorkerSettings, redis_settings

    channel = os.environ.get("MADOGUCHI_BENCH_CHANNEL", "")
    if channel:  # publish on the bench web's own channel, so that its hub (and the bridges) hear
        worker_module.sink_for_url = functools.partial(sink_for_url, channel=channel)  # type: ignore[assignment]
    _install_print_timers()
    folder = os.environ.get("MADOGUCHI_BENCH_STATS_DIR", "")
    if folder:
        threading.Thread(target=_write_timers, args=(Path(folder),), daemon=True).start()
    run_worker(WorkerSettings, redis_settings=redis_settings(), queue_name=get_settings().job_queue)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def spread(values: list[float], unit: str = "ms") -> str:
    if not values:
        return "no data"
    return (
        f"p50 {percentile(values, 0.5):.1f}  p95 {percentile(values, 0.95):.1f}  "
        f"p99 {percentile(values, 0.99):.1f}  max {max(values):.1f} {unit}  (n={len(values)})"
    )


def server_time_ms(response: httpx.Response) -> float:
    header = response.headers.get("server-timing", "")
    return float(header.split("dur=")[1].split(",")[0]) if "dur=" in header else float("nan")


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(entry.name))
    return found


def process_tree(pid: int) -> list[int]:
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children_of(current))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return float(sum(values) - idle), float(sum(values))


def cookie_header(client: httpx.Client) -> str:
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def csrf_token(client: httpx.Client, path: str = "/kiosk/") -> str:
    match = CSRF_META.search(client.get(path).text)
    if match is None:
        raise SystemExit(f"no CSRF token on {path}")
    return match.group(1)


def sse_lines(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """(event, data) pairs from an SSE response."""
    event, data = "", list[str]()
    for line in response.iter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


# ------------------------------------------------------------------------------------------------
# Environment: database with the demo town, cards, data folder
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Walker:
    """A demo resident who can use the kiosk (adult, card, nothing that sends them to the counter)."""

    id: int
    atena: str
    serial: str
    household: int


@dataclass
class Env:
    tmp: Path
    data_dir: Path
    url: str
    db: Any  # app.db.Database
    passwords: dict[str, str]
    store: Any  # CardStore
    walkers: list[Walker]
    kiosks: dict[str, int]  # code → device id
    description: str
    residents: int


@contextlib.contextmanager
def environment(args: argparse.Namespace) -> Iterator[Env]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    sys.path.insert(0, str(ROOT))
    from app.db import Database
    from app.demo.generator import generate_demo
    from app.migrate import upgrade

    with tempfile.TemporaryDirectory(prefix="madoguchi-bench-flow-") as tmp_name:
        tmp = Path(tmp_name)
        admin = None
        name = ""
        if args.database_url == "sqlite":
            url = f"sqlite:///{tmp / 'bench.db'}"
        else:
            name = f"madoguchi_bench_flow_{os.getpid()}_{secrets.token_hex(3)}"
            admin = create_engine(args.database_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
        db = None
        try:
            started = time.perf_counter()
            upgrade(url)
            db = Database(url)
            summary = generate_demo(db, residents=args.residents)
            passwords = {login: password for login, password, _ in summary.credentials}
            with db.session() as session:
                version = session.connection().exec_driver_sql(
                    "select version()" if not url.startswith("sqlite") else "select sqlite_version()"
                )
                description = f"{db.engine.dialect.name} ({str(version.scalar()).split(' on ')[0]})"
            env = Env(
                tmp=tmp,
                data_dir=tmp / "var",
                url=url,
                db=db,
                passwords=passwords,
                store=None,
                walkers=[],
                kiosks={},
                description=description,
                residents=summary.residents,
            )
            _prepare(env)
            print(
                f"setup: migrated {description}, demo town of {summary.residents} residents, "
                f"{len(env.walkers)} kiosk users with cards, in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            yield env
        finally:
            if args.keep_logs:
                _keep_logs(tmp, Path(args.keep_logs))
            if db is not None:
                db.dispose()
            if admin is not None:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()


def _keep_logs(tmp: Path, target: Path) -> None:
    """The web server's and the bridges' logs, for a look after the run."""
    target.mkdir(parents=True, exist_ok=True)
    for path in [*tmp.glob("web-*.log"), *tmp.glob("devices-*/logs/*.log"), *tmp.glob("timers-*/py-spy.*")]:
        shutil.copy(
            path,
            target / f"{path.parent.parent.name}-{path.name}"
            if path.parent.name == "logs"
            else target / path.name,
        )


def _prepare(env: Env) -> None:
    from sqlmodel import col, select

    from app.domain.registry import DeviceKind, ResidentStatus
    from app.models import Device, Location, Resident
    from device_bridge.simulators.card_store import CardStore

    env.data_dir.mkdir(parents=True)
    with env.db.write_session() as session:
        for location in session.exec(select(Location)).all():
            # Opening hours off: the bench must not depend on the time of day it runs at.
            location.settings = {**location.settings, "enforce_hours": False}
            session.add(location)
        session.commit()
        env.kiosks = {
            d.code: d.id
            for d in session.exec(select(Device).where(Device.kind == DeviceKind.KIOSK)).all()
            if d.id is not None
        }
    today = date.today()
    with env.db.session() as session:
        residents = session.exec(select(Resident).order_by(col(Resident.id))).all()
    households: dict[int, list[Any]] = {}
    for r in residents:
        households.setdefault(r.household_id, []).append(r)
    for r in residents:
        members = households[r.household_id]
        if (
            r.auth_cert_serial
            and r.birth_date
            and (today - r.birth_date).days > 20 * 366
            and all(m.status == ResidentStatus.RESIDENT and not m.suppressions for m in members)
            and all(m.became_resident_on != today and m.address_set_on != today for m in members)
            and r.id is not None
        ):
            env.walkers.append(Walker(r.id, r.atena_number, r.auth_cert_serial, len(members)))
        if len(env.walkers) == 24:
            break
    if not env.walkers:
        raise SystemExit("no demo resident can use the kiosk")
    env.store = CardStore(env.tmp / "cards")
    for walker in env.walkers[:8]:  # the cards the HTTP walks use: keys made now, not while timing
        env.store.card_for_atena(env.db, walker.atena)


def set_auto_print(env: Env, on: bool) -> None:
    from sqlmodel import select

    from app.models import Location

    with env.db.write_session() as session:
        for location in session.exec(select(Location)).all():
            location.settings = {**location.settings, "auto_print": on}
            session.add(location)
        session.commit()


def cancel_open_jobs(env: Env) -> None:
    """Jobs an earlier measurement left unprinted must not be printed first by this one's bridges."""
    from sqlalchemy import text

    with env.db.write_session() as session:
        session.connection().execute(
            text(
                "update print_job set state = 'cancelled', reason = 'bench: earlier measurement' "
                "where state in ('queued', 'delivered', 'printing')"
            )
        )
        session.commit()


def device_token(env: Env, code: str) -> str:
    from sqlmodel import select

    from app.models import Device
    from app.services import devices as device_service
    from app.services.audit import Actor

    with env.db.write_session() as session:
        device = session.exec(select(Device).where(Device.code == code)).one()
        assert device.id is not None
        token = device_service.rotate_token(session, Actor.system("bench"), device.id)
        session.commit()
    return token


# ------------------------------------------------------------------------------------------------
# The web server
# ------------------------------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    stats_dir: Path
    channel: str
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def pids(self) -> list[int]:
        """The web process(es) and the print workers: the server side's whole CPU."""
        return [*process_tree(self.process.pid), *(w.pid for w in self.workers)]

    def timers(self) -> dict[str, list[float]]:
        """The launcher's timers summed over the web processes (files are rewritten every 0.5 s)."""
        time.sleep(0.6)
        total: dict[str, list[float]] = {}
        for path in self.stats_dir.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                for label, values in json.loads(path.read_text()).items():
                    row = total.setdefault(label, [0.0, 0.0, 0.0])
                    for i, value in enumerate(values):
                        row[i] += value
        return total


@contextlib.contextmanager
def web_server(args: argparse.Namespace, env: Env, name: str) -> Iterator[Server]:
    port = free_port()
    stats_dir = env.tmp / f"timers-{name}"
    stats_dir.mkdir()
    channel = f"madoguchi:bench-flow:{os.getpid()}:{name}"
    environ = {
        **os.environ,
        "MADOGUCHI_DATA_DIR": str(env.data_dir),
        "MADOGUCHI_DATABASE_URL": env.url,
        "MADOGUCHI_EVENTS_URL": args.events_url,
        "MADOGUCHI_SECRET_KEY": "bench-flow-secret",
        "MADOGUCHI_JPKI_TRUST_ROOTS": str(env.store.ca.root_pem_path()),
        "MADOGUCHI_JPKI_CRLS": str(env.store.ca.crl_pem_path()),
        "MADOGUCHI_HOST": HOST,
        "MADOGUCHI_PORT": str(port),
        "MADOGUCHI_LOG_LEVEL": "warning",
        "MADOGUCHI_BENCH_CHANNEL": channel,
        "MADOGUCHI_BENCH_STATS_DIR": str(stats_dir),
        "MADOGUCHI_BENCH_DEFER_SAVEPOINT_EVENTS": "1" if args.defer_savepoint_events else "0",
    }
    if args.print_workers:
        # Certificates are made by arq workers on a queue of the bench's own (the Redis is shared).
        environ["MADOGUCHI_REDIS_URL"] = args.events_url
        environ["MADOGUCHI_JOB_QUEUE"] = f"madoguchi:bench-flow:{os.getpid()}:{name}:jobs"
    else:
        environ.pop("MADOGUCHI_REDIS_URL", None)  # the web process makes them on its own threads
    command = [sys.executable, "-m", "uvicorn", "bench_certificate_flow:bench_app_factory", "--factory"]
    command += ["--app-dir", str(BENCH_DIR), "--host", HOST, "--port", str(port)]
    command += ["--workers", str(args.web_workers), "--log-level", "warning", "--no-access-log"]
    command += ["--timeout-graceful-shutdown", "2"]
    log = (env.tmp / f"web-{name}.log").open("ab")
    process = subprocess.Popen(command, cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT)
    server = Server(process, port, stats_dir, channel)
    for _ in range(args.print_workers):
        server.workers.append(
            subprocess.Popen(
                [
                    *(["nice", "-n", str(args.worker_nice)] if args.worker_nice else []),
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--as-worker",
                ],
                cwd=ROOT,
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{server.base}/kiosk/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the web server did not start; see {env.tmp / f'web-{name}.log'}")
            time.sleep(0.2)
        yield server
    finally:
        for child in [process, *server.workers]:
            child.send_signal(signal.SIGTERM)
        for child in [process, *server.workers]:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        log.close()


def sign_in_clerk(server: Server, env: Env) -> str:
    """Sign the demo clerk in once; the Cookie header every staff client reuses."""
    with httpx.Client(base_url=server.base, follow_redirects=False, timeout=10) as client:
        token = csrf_token(client)
        response = client.post(
            "/staff/login",
            data={"login_id": "clerk", "password": env.passwords["clerk"], "csrf_token": token},
        )
        if response.status_code != 303:
            raise SystemExit(f"clerk sign-in failed: HTTP {response.status_code}")
        return cookie_header(client)


# ------------------------------------------------------------------------------------------------
# Stand-ins in the bench process: a kiosk's (or office's) bridge, a staff screen
# ------------------------------------------------------------------------------------------------


class StandInBridge(threading.Thread):
    """Plays one terminal's bridge on its device stream: answers the kiosk's card command with the
    real card driver on the simulated card of ``self.atena`` (as tests/test_kiosk_flow.py does),
    reports receipt jobs done without printing them and, as a fake office printer, downloads
    office PDFs and reports them done. Ends when the server closes the stream."""

    def __init__(self, server: Server, env: Env, token: str, *, office: bool = False) -> None:
        super().__init__(daemon=True)
        self.base = server.base
        self.env = env
        self.headers = {"Authorization": f"Bearer {token}"}
        self.office = office
        self.atena = ""
        self.connected = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        timeout = httpx.Timeout(10, read=None)
        try:
            with (
                httpx.Client(base_url=self.base, headers=self.headers, timeout=timeout) as client,
                httpx.Client(base_url=self.base, headers=self.headers, timeout=10) as api,
                client.stream("GET", "/devices/api/stream") as response,
            ):
                for event, data in sse_lines(response):
                    if event == "hello":
                        self.connected.set()
                    elif event == "command":
                        self._command(api, json.loads(data))
                    elif event == "job":
                        self._job(api, json.loads(data))
        except httpx.HTTPError as error:
            self.errors.append(type(error).__name__)
        finally:
            self.connected.set()

    def _command(self, api: httpx.Client, command: dict[str, Any]) -> None:
        import base64

        from device_bridge.drivers.apdu import WrongPin
        from device_bridge.drivers.mynumber import MyNumberCard
        from device_bridge.simulators.mynumber_card import DirectTransport

        if command.get("command") != "card.authenticate":
            return
        card = MyNumberCard(DirectTransport(self.env.store.card_for_atena(self.env.db, self.atena)))
        try:
            card.verify_auth_pin(command["pin"])
            answer: dict[str, Any] = {
                "ok": True,
                "signature": base64.b64encode(
                    card.sign_with_auth_key(bytes.fromhex(command["nonce"]))
                ).decode(),
                "certificate": base64.b64encode(card.read_auth_certificate()).decode(),
            }
        except WrongPin as wrong:
            answer = {"ok": False, "error": "wrong_pin", "tries_left": wrong.tries_left}
        api.post(f"/devices/api/commands/{command['command_id']}", json=answer)

    def _job(self, api: httpx.Client, job: dict[str, Any]) -> None:
        if job.get("printer") == "office":
            if not self.office:
                return
            document = api.get(f"/devices/api/jobs/{job['id']}/document")
            if document.status_code != 200 or not document.content.startswith(b"%PDF"):
                self.errors.append(f"document {job['id']}: HTTP {document.status_code}")
        api.post(f"/devices/api/jobs/{job['id']}", json={"attempt": job["attempt"], "state": "done"})


class StaffScreen(threading.Thread):
    """A staff screen in the bench process: its own /events/stream as the clerk. Notes when each
    ``certificate.requested`` (by request id) and ``print.state`` (by job id and state) arrives and,
    with ``refresh``, fetches the queue table after each new request as static/js/queue.js does."""

    def __init__(self, server: Server, cookie: str, *, refresh: bool) -> None:
        super().__init__(daemon=True)
        self.base = server.base
        self.headers = {"Cookie": cookie, "Accept": "text/event-stream"}
        self.refresh = refresh
        self.requested: dict[int, float] = {}
        self.table: dict[int, float] = {}
        self.table_server_ms: list[float] = []
        self.print_states: dict[tuple[int, str], float] = {}
        self.connected = threading.Event()
        self.status = 0

    def run(self) -> None:
        timeout = httpx.Timeout(10, read=None)
        try:
            with (
                httpx.Client(base_url=self.base, headers=self.headers, timeout=timeout) as client,
                httpx.Client(base_url=self.base, headers={"Cookie": self.headers["Cookie"]}) as pages,
                client.stream("GET", "/events/stream") as response,
            ):
                self.status = response.status_code
                self.connected.set()
                for event, data in sse_lines(response):
                    now = time.time()
                    if event == "certificate.requested":
                        request_id = int(json.loads(data)["data"]["request_id"])
                        self.requested.setdefault(request_id, now)
                        if self.refresh:
                            table = pages.get("/staff/queue", headers={"HX-Request": "true"})
                            if table.status_code == 200:
                                self.table.setdefault(request_id, time.time())
                                self.table_server_ms.append(server_time_ms(table))
                    elif event == "print.state":
                        body = json.loads(data)["data"]
                        self.print_states.setdefault((int(body["job_id"]), str(body["state"])), now)
        except httpx.HTTPError:
            pass
        finally:
            self.connected.set()


@dataclass
class Walk:
    sent: float  # time.time() when the confirm POST was sent
    answered: float
    server_ms: float
    request_id: int
    steps_ms: dict[str, float]


def walk_and_confirm(
    client: httpx.Client, bridge: StandInBridge, env: Env, walker: Walker, code: str = WALK_KIOSK
) -> Walk:
    """The kiosk walk over HTTP; only the confirm POST is the measured step."""
    from sqlmodel import select

    from app.models import KioskSession
    from app.services.kiosk import session_id

    steps: dict[str, float] = {}

    def timed(step: str, response: httpx.Response, location: str | None = None) -> httpx.Response:
        steps[step] = steps.get(step, 0.0) + server_time_ms(response)
        if location is not None and response.headers.get("location") != location:
            raise SystemExit(
                f"walk step {step}: HTTP {response.status_code} → {response.headers.get('location')}"
            )
        return response

    base = f"/kiosk/{code}"
    token = CSRF_META.search(timed("start", client.get(f"{base}/")).text)
    if token is None:
        raise SystemExit("no CSRF token on the kiosk start page")
    form = {"csrf_token": token.group(1)}
    timed("begin", client.post(f"{base}/begin", data={**form, "type": "juminhyo"}), f"{base}/card")
    bridge.atena = walker.atena
    timed("pin", client.post(f"{base}/pin", data={**form, "pin": "1234"}), f"{base}/wait")
    deadline = time.monotonic() + 15
    while True:
        response = timed("wait (polls)", client.get(f"{base}/wait"))
        if response.status_code == 303:
            if response.headers.get("location") != f"{base}/options":
                raise SystemExit(f"card check did not pass: → {response.headers.get('location')}")
            break
        if time.monotonic() > deadline:
            raise SystemExit("the card check did not finish in 15 s")
        time.sleep(0.01)
    timed("options page", client.get(f"{base}/options"))
    timed(
        "options",
        client.post(f"{base}/options", data={**form, "scope": "all", "copies": "1"}),
        f"{base}/confirm",
    )
    key = IDEMPOTENCY.search(timed("confirm page", client.get(f"{base}/confirm")).text)
    if key is None:
        raise SystemExit("no idempotency key on the confirm page")
    sent = time.time()
    response = client.post(f"{base}/confirm", data={**form, "idempotency_key": key.group(1)})
    answered = time.time()
    if response.headers.get("location") != f"{base}/done":
        raise SystemExit(f"confirm failed: HTTP {response.status_code} → {response.headers.get('location')}")
    cookie = client.cookies.get("madoguchi_kiosk") or ""
    with env.db.session() as session:
        row = session.exec(select(KioskSession).where(KioskSession.id == session_id(cookie))).one()
        assert row.request_id is not None
    return Walk(sent, answered, server_time_ms(response), row.request_id, steps)


# ------------------------------------------------------------------------------------------------
# SSE clients in worker processes (the approach of bench_sse.py)
# ------------------------------------------------------------------------------------------------


class StreamClient(asyncio.Protocol):
    """One staff screen's event stream as a bare protocol: notes when each certificate.requested
    event (by request id) has been read."""

    def __init__(
        self, request: bytes, seen: dict[int, float], errors: list[str], connected: asyncio.Future[None]
    ) -> None:
        self.request = request
        self.seen = seen
        self.errors = errors
        self.connected = connected
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.carry = b""
        self.reloads = 0

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
                self.errors.append(head.split(b"\r\n", 1)[0].decode())
            self.connected.set_result(None)
        lines = (self.carry + data).split(b"\n")
        self.carry = lines.pop()
        for line in lines:
            if line.startswith(b'data: {"id":') and b'"type":"certificate.requested"' in line:
                request_id = int(json.loads(line[6:])["data"]["request_id"])
                self.seen.setdefault(request_id, now)
            elif line.startswith(b"event: reload"):
                self.errors.append("reload")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_result(None)
        if self.transport is not None and not self.transport.is_closing():
            self.errors.append(f"stream closed: {exc!r}")


def client_worker(count: int, port: int, cookie: str, ready: Any, go_home: Any, out: Any) -> None:
    async def main() -> list[tuple[dict[int, float], list[str]]]:
        loop = asyncio.get_running_loop()
        request = (
            f"GET /events/stream HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: text/event-stream\r\n"
            f"Cookie: {cookie}\r\n\r\n"
        ).encode()
        results: list[tuple[dict[int, float], list[str]]] = [({}, []) for _ in range(count)]
        waits: list[asyncio.Future[None]] = []
        transports: list[asyncio.Transport] = []
        for index, (seen, errors) in enumerate(results):
            connected: asyncio.Future[None] = loop.create_future()
            try:
                transport, _ = await loop.create_connection(
                    functools.partial(StreamClient, request, seen, errors, connected), HOST, port
                )
            except OSError as error:
                errors.append(f"connect: {error}")
                continue
            transports.append(transport)
            waits.append(connected)
            if index % 25 == 24:
                await asyncio.sleep(0.02)  # don't flood the accept queue
        await asyncio.wait_for(asyncio.gather(*waits), 120)
        ready.set()
        await loop.run_in_executor(None, go_home.wait, 3600)
        for transport in transports:
            transport.close()
        await asyncio.sleep(0.1)
        return results

    out.put(asyncio.run(main()))


# ------------------------------------------------------------------------------------------------
# The demo's devices: real bridges and simulated printers
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def demo_devices(
    server: Server, env: Env, name: str, skip: frozenset[str], *, cups: bool = True
) -> Iterator[Any]:
    """device_bridge.simulators.demo's terminals (no card reader), bridges for all but ``skip``; the
    office printer is a CUPS queue of this bench's own, removed afterwards."""
    from dataclasses import dataclass as dc, field as dc_field

    from device_bridge.simulators import demo, office_printer

    queue = f"madoguchi-bench-{os.getpid()}"
    demo.OFFICE_QUEUE = queue  # its own queue: a demo running on this machine keeps its own

    @dc
    class BenchDevices(demo.DemoDevices):
        skip: frozenset[str] = frozenset()
        tokens: dict[str, str] = dc_field(default_factory=dict)
        stand_ins: list[str] = dc_field(default_factory=list)

        def _start_card(self) -> bool:
            return False  # the bench plays the card (no pcscd here)

        def _start_office(self) -> None:
            if cups:
                super()._start_office()
            else:
                self.notes.append("office printing by the bench's fake printer")

        def _issue_token(self, device_id: int) -> str:
            token: str = super()._issue_token(device_id)
            self.tokens[str(device_id)] = token
            return token

        def _spawn(self, terminal: Any) -> None:
            if terminal.code in self.skip:
                self.stand_ins.append(terminal.code)
                return
            if terminal.kind.value == "back_office" and self.office_folder is None:
                self.stand_ins.append(terminal.code)  # no CUPS: a fake office printer in the bench
                return
            log = (self.folder / "logs" / f"{terminal.code}.log").open("ab")
            terminal.process = subprocess.Popen(
                [sys.executable, "-m", "device_bridge", "--config", str(terminal.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
            log.close()

    folder = env.tmp / f"devices-{name}"
    (folder / "logs").mkdir(parents=True)
    devices = BenchDevices(server.base, env.db, folder, skip=skip)
    started = datetime.now(UTC)
    try:
        devices.start()
        _wait_online(env, [t for t in devices.terminals if t.process is not None], started)
        yield devices
    finally:
        devices.stop()
        if devices.office_folder is not None:
            with contextlib.suppress(Exception):
                office_printer.teardown(queue)


def _wait_online(env: Env, terminals: list[Any], since: datetime) -> None:
    from sqlmodel import col, select

    from app.models import Device

    ids = [t.device_id for t in terminals]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with env.db.session() as session:
            seen = session.exec(select(Device.last_seen_at).where(col(Device.id).in_(ids))).all()
        if all(s is not None and s >= since for s in seen):
            return
        time.sleep(0.2)
    print("  warning: not every bridge reported in within 30 s", flush=True)


# ------------------------------------------------------------------------------------------------
# 1. confirm → staff screen
# ------------------------------------------------------------------------------------------------


def measure_staff_screen(args: argparse.Namespace, env: Env) -> bool:
    auto = not args.manual_print
    set_auto_print(env, auto)
    cancel_open_jobs(env)
    token = device_token(env, WALK_KIOSK)
    print(
        f"\n== 1. confirm → staff screen: {args.clients} SSE clients (demo clerk), {args.confirms} kiosk "
        f"confirms over HTTP, auto print {'on (PDF made after the commit)' if auto else 'off (confirm first)'}",
        flush=True,
    )
    with web_server(args, env, "staff") as server:
        cookie = sign_in_clerk(server, env)
        bridge = StandInBridge(server, env, token)
        bridge.start()
        bridge.connected.wait(10)
        screen = StaffScreen(server, cookie, refresh=True)
        screen.start()
        screen.connected.wait(10)
        if screen.status != 200:
            raise SystemExit(f"/events/stream refused the clerk: HTTP {screen.status}")
        kiosk = httpx.Client(base_url=server.base, follow_redirects=False, timeout=30)
        for i in range(2):  # warm-up: fonts, templates, connections (not counted)
            walk_and_confirm(kiosk, bridge, env, env.walkers[i % 8])
        warm_timers = server.timers()

        context = multiprocessing.get_context("spawn")
        out = context.Queue()
        go_home = context.Event()
        per_worker = [
            args.clients // args.client_procs + (i < args.clients % args.client_procs)
            for i in range(args.client_procs)
        ]
        readies, workers = [], []
        started = time.monotonic()
        for count in per_worker:
            ready = context.Event()
            worker = context.Process(
                target=client_worker, args=(count, server.port, cookie, ready, go_home, out), daemon=True
            )
            worker.start()
            readies.append(ready)
            workers.append(worker)
        try:
            for ready in readies:
                if not ready.wait(150):
                    raise SystemExit("the SSE clients did not connect in time")
            connect_seconds = time.monotonic() - started
            time.sleep(1.0)
            rss_connected = rss_mib(server.pids())
            cpu_before, wall_before = cpu_seconds(server.pids()), time.monotonic()
            walks: list[Walk] = []
            for i in range(args.confirms):
                began = time.monotonic()
                walks.append(walk_and_confirm(kiosk, bridge, env, env.walkers[i % 8]))
                time.sleep(max(0.0, args.interval - (time.monotonic() - began)))
            time.sleep(2.0)  # the last event's fan-out
            cpu_share = (cpu_seconds(server.pids()) - cpu_before) / (time.monotonic() - wall_before)
            timers = _subtract(server.timers(), warm_timers)
        finally:
            go_home.set()
        results: list[tuple[dict[int, float], list[str]]] = []
        for _ in workers:
            results += out.get(timeout=120)
        for worker in workers:
            worker.join(10)
        kiosk.close()

    sent = {w.request_id: w for w in walks}
    latencies: list[float] = []
    complete = 0
    errors: list[str] = []
    for seen, client_errors in results:
        errors += client_errors
        got = [(seen[rid] - w.sent) * 1000 for rid, w in sent.items() if rid in seen]
        latencies += got
        complete += len(got) == len(sent)
    expected = len(sent) * args.clients
    round_trip = [(w.answered - w.sent) * 1000 for w in walks]
    server_ms = [w.server_ms for w in walks]
    after_answer = [
        (seen[rid] - w.answered) * 1000 for seen, _ in results for rid, w in sent.items() if rid in seen
    ]
    table = [(screen.table[rid] - w.sent) * 1000 for rid, w in sent.items() if rid in screen.table]
    print(f"conditions: {conditions(args, env)}; web CPU while confirming {cpu_share * 100:.0f}% of one core")
    print(
        f"connect: {args.clients} clients in {connect_seconds:.1f} s; web RSS with them {rss_connected:.0f} MiB"
    )
    print(f"delivered {len(latencies)}/{expected} ({complete} clients got every event)")
    print(f"confirm POST sent → event read by each client:  {spread(latencies)}")
    print(f"  the confirm POST (round trip):                 {spread(round_trip)}")
    print(f"  of which server time (Server-Timing):          {spread(server_ms)}")
    print(f"  event read − confirm answered (negative: the event came first): {spread(after_answer)}")
    print(f"confirm sent → queue table re-rendered (1 screen): {spread(table)}")
    print(f"  the table request's server time:               {spread(screen.table_server_ms)}")
    steps: dict[str, list[float]] = collections.defaultdict(list)
    for w in walks:
        for step, ms in w.steps_ms.items():
            steps[step].append(ms)
    print(
        "the walk before the confirm (server time per walk, median ms): "
        + ", ".join(f"{step} {statistics.median(values):.1f}" for step, values in steps.items())
    )
    print_timers(timers)
    if errors:
        print(f"client errors ({len(errors)}): {sorted(set(errors))[:5]}")
    ok = bool(latencies) and percentile(latencies, 0.99) <= TARGET_STAFF_P99_MS and len(latencies) == expected
    print(
        f"target p99 ≤ {TARGET_STAFF_P99_MS:.0f} ms with every event delivered: {'met' if ok else 'NOT met'}"
    )
    return ok


def print_timers(timers: dict[str, list[float]]) -> None:
    if not timers:
        return
    print("inside the web process (launcher timers after the warm-up; wall / thread-CPU ms per call):")
    for label, (calls, wall, cpu) in sorted(timers.items(), key=lambda kv: -kv[1][1]):
        if calls:
            print(
                f"  {label:52} {int(calls):6d} calls  {wall / calls * 1000:8.1f} wall  {cpu / calls * 1000:8.1f} CPU"
            )


def conditions(args: argparse.Namespace, env: Env) -> str:
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    makers = (
        f"{args.print_workers} arq print worker(s)"
        + (f" at nice {args.worker_nice}" if args.worker_nice else "")
        if args.print_workers
        else f"certificates made on the web process's print threads ({os.cpu_count()})"
    )
    return (
        f"database {env.description}, broker {args.events_url}, {args.web_workers} web process(es), {makers}, "
        f"{env.residents} residents, {os.cpu_count()} cores, load average now {load}"
        + (
            "; savepoint events deferred to the commit (bench workaround)"
            if args.defer_savepoint_events
            else ""
        )
    )


# ------------------------------------------------------------------------------------------------
# 2. confirm → office print job acked
# ------------------------------------------------------------------------------------------------


def measure_office_print(args: argparse.Namespace, env: Env) -> bool:
    from sqlmodel import select

    from app.models import CertificateIssue, PrintJob

    set_auto_print(env, True)
    cancel_open_jobs(env)
    print(f"\n== 2. confirm → office print job acked: {args.prints} confirms, one at a time", flush=True)
    with (
        web_server(args, env, "office") as server,
        demo_devices(
            server, env, "office", frozenset({WALK_KIOSK}), cups=args.office_printer == "cups"
        ) as devices,
    ):
        office_code = f"{WALK_KIOSK[:2]}02"
        fake_office = office_code in devices.stand_ins
        printer = (
            f"CUPS queue madoguchi-bench-{os.getpid()} → {devices.office_folder}"
            if not fake_office
            else "fake office printer in the bench ("
            + ("--office-printer fake" if args.office_printer == "fake" else "; ".join(devices.notes))
            + "): it downloads the PDF and reports done"
        )
        print(f"office printer: {printer}")
        by_code = {t.code: t for t in devices.terminals}
        kiosk_bridge = StandInBridge(server, env, devices.tokens[str(by_code[WALK_KIOSK].device_id)])
        kiosk_bridge.start()
        kiosk_bridge.connected.wait(10)
        if fake_office:
            office = StandInBridge(
                server, env, devices.tokens[str(by_code[office_code].device_id)], office=True
            )
            office.start()
            office.connected.wait(10)
        screen = StaffScreen(server, sign_in_clerk(server, env), refresh=False)
        screen.start()
        screen.connected.wait(10)
        kiosk = httpx.Client(base_url=server.base, follow_redirects=False, timeout=30)
        rows: list[dict[str, float]] = []
        warm_timers: dict[str, list[float]] = {}
        failures: list[str] = []
        for i in range(args.prints + 2):  # the first two warm up
            walk = walk_and_confirm(kiosk, kiosk_bridge, env, env.walkers[i % 8])
            deadline = time.monotonic() + 30
            job: Any = None
            while time.monotonic() < deadline:
                with env.db.session() as session:
                    issue = session.exec(
                        select(CertificateIssue).where(CertificateIssue.request_id == walk.request_id)
                    ).first()
                    job = session.get(PrintJob, issue.print_job_id) if issue and issue.print_job_id else None
                if job is not None and job.state.value not in OPEN_JOB_STATES:
                    break
                time.sleep(0.01)
            if job is None or job.state.value != "done" or job.finished_at is None:
                failures.append(
                    f"request {walk.request_id}: {job.state.value if job else 'no job'} {job.reason if job else ''}"
                )
                continue
            if i < 2:
                if i == 1:
                    warm_timers = server.timers()
                continue
            row = {
                "total": (job.finished_at.timestamp() - walk.sent) * 1000,
                "confirm": (walk.answered - walk.sent) * 1000,
                "queued": (job.created_at.timestamp() - walk.sent) * 1000,
            }
            printing = screen.print_states.get((job.id, "printing"))
            if printing is not None:
                row["printing"] = (printing - walk.sent) * 1000
            written = _cups_written(devices.office_folder, job.id, job.attempt)
            if written is not None:
                row["cups"] = (written - walk.sent) * 1000
            rows.append(row)
        timers = _subtract(server.timers(), warm_timers)
        kiosk.close()
    totals = [r["total"] for r in rows]
    print(f"conditions: {conditions(args, env)}")
    print(f"confirm POST sent → office job done on the server:   {spread(totals)}")
    print(f"  confirm answered (request, receipt job, audit, event): {spread([r['confirm'] for r in rows])}")
    print(
        f"  office job queued (PDF made after the commit, issue recorded): {spread([r['queued'] for r in rows])}"
    )
    if any("printing" in r for r in rows):
        print(
            "  bridge reported 'printing' (stream → download → Print-Job; a job CUPS finished at the first look is not):  "
            + spread([r["printing"] for r in rows if "printing" in r])
        )
    if any("cups" in r for r in rows):
        print(
            "  CUPS backend wrote the PDF (job-N.json mtime):       "
            + spread([r["cups"] for r in rows if "cups" in r])
        )
        gap = [r["total"] - r["cups"] for r in rows if "cups" in r]
        print(f"  CUPS wrote it → done applied on the server:         {spread(gap)}")
    print(
        "  'acked' = the server applied the office bridge's POST /devices/api/jobs/<id> {state: done} "
        "(PrintJob.finished_at); "
        + (
            "the bridge sends it once CUPS reports the job completed (IPP job-state 9), which for the "
            "simulated queue is after its backend has written the PDF into the folder"
            if not fake_office
            else "the fake office printer sends it right after downloading the PDF (no CUPS)"
        )
    )
    print_timers(timers)
    if failures:
        print(f"not done ({len(failures)}): {failures[:3]}")
    ok = bool(totals) and percentile(totals, 0.95) <= TARGET_OFFICE_P95_MS and not failures
    print(f"target p95 ≤ {TARGET_OFFICE_P95_MS:.0f} ms: {'met' if ok else 'NOT met'}")
    return ok


def _cups_written(folder: Path | None, job_id: int, attempt: int) -> float | None:
    if folder is None:
        return None
    title = f"madoguchi-job-{job_id}-{attempt}"
    for path in folder.glob("job-*.json"):
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("title") == title:
                return path.stat().st_mtime
    return None


# ------------------------------------------------------------------------------------------------
# 3. sustained load
# ------------------------------------------------------------------------------------------------


@dataclass
class Sent:
    index: int
    due: float  # time.time() the arrival was scheduled for
    sent: float = 0.0
    answered: float = 0.0
    status: int = 0
    ok: bool = False
    server_ms: float = float("nan")
    key: str = ""
    error: str = ""


@dataclass
class Sample:
    at: float
    sent: int
    done: int
    receipts_open: int
    office_open: int
    unrendered: int  # requests received, waiting for their PDF (no issue, no failure reason)
    issued: int  # issues recorded since the start
    web_cpu: float  # share of one core since the last sample
    web_rss: float
    bridges_cpu: float
    bench_cpu: float  # this process: sending threads, the simulated receipt printers, sampling
    pg_cpu: float  # the PostgreSQL backends connected to the bench's database
    machine: float  # share of all cores
    lock_waiters: int


@dataclass
class Load:
    args: argparse.Namespace
    env: Env
    server: Server
    csrf_cookie: str
    csrf: str
    kiosks: list[tuple[str, int]]
    results: list[Sent] = field(default_factory=list)
    started: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _send_one(load: Load, client: httpx.Client, item: Sent) -> None:
    from app.models import KioskSession
    from app.services.kiosk import session_id

    code, device_id = load.kiosks[item.index % len(load.kiosks)]
    walker = load.env.walkers[item.index % len(load.env.walkers)]
    cookie = secrets.token_urlsafe(32)
    item.key = secrets.token_urlsafe(16)
    with load.env.db.write_session() as session:  # what the card check and options leave behind
        session.add(
            KioskSession(
                id=session_id(cookie),
                device_id=device_id,
                language="ja",
                certificate_type="juminhyo",
                step="confirm",
                resident_id=walker.id,
                auth_cert_serial=walker.serial,
                options={
                    "member_ids": None,
                    "show_head_relationship": False,
                    "show_honseki": False,
                    "show_my_number": False,
                    "show_resident_code": False,
                    "copies": 1,
                },
            )
        )
        session.commit()
    item.sent = time.time()
    try:
        response = client.post(
            f"/kiosk/{code}/confirm",
            data={"csrf_token": load.csrf, "idempotency_key": item.key},
            headers={"Cookie": f"{load.csrf_cookie}; madoguchi_kiosk={cookie}"},
        )
    except httpx.HTTPError as error:
        item.error = type(error).__name__
        return
    finally:
        item.answered = time.time()
    item.status = response.status_code
    item.ok = response.headers.get("location") == f"/kiosk/{code}/done"
    item.server_ms = server_time_ms(response)
    if not item.ok:
        item.error = f"HTTP {response.status_code} → {response.headers.get('location')}"


def _sender(load: Load, work: queue_module.Queue[Sent | None], stop_at: float) -> None:
    with httpx.Client(base_url=load.server.base, follow_redirects=False, timeout=60) as client:
        while True:
            item = work.get()
            if item is None:
                return
            if time.time() >= stop_at:
                continue  # not sent: the duration is over
            with load.lock:
                load.started += 1
            _send_one(load, client, item)
            with load.lock:
                load.results.append(item)


def _sample(load: Load, devices: Any, previous: dict[str, float]) -> Sample:
    from sqlalchemy import text

    now = time.time()
    with load.env.db.session() as session:
        rows = (
            session.connection()
            .execute(
                text(
                    "select printer, count(*) from print_job where state in ('queued', 'delivered', 'printing') "
                    "and id > :first group by printer"
                ),
                {"first": previous["first_job"]},
            )
            .all()
        )
        unrendered = int(
            session.connection()
            .execute(
                text(
                    "select count(*) from certificate_request r where r.id > :first and r.state = 'received' "
                    "and r.reason = '' and not exists (select 1 from certificate_issue i where i.request_id = r.id)"
                ),
                {"first": previous["first_request"]},
            )
            .scalar()
            or 0
        )
        issued = int(
            session.connection()
            .execute(
                text("select count(*) from certificate_issue where id > :first"),
                {"first": previous["first_issue"]},
            )
            .scalar()
            or 0
        )
        waiters = 0
        pg_pids: list[int] = []
        if load.env.url.startswith("postgresql"):
            pg_pids = [
                int(pid)
                for pid in session.connection()
                .execute(text("select pid from pg_stat_activity where datname = current_database()"))
                .scalars()
            ]
            waiters = int(
                session.connection()
                .execute(
                    text(
                        "select count(*) from pg_stat_activity where datname = current_database() "
                        "and wait_event_type = 'Lock'"
                    )
                )
                .scalar()
                or 0
            )
    open_jobs = {str(printer): int(count) for printer, count in rows}
    pids = load.server.pids()
    web_cpu = cpu_seconds(pids)
    bridge_pids = [t.process.pid for t in devices.terminals if t.process is not None]
    bridges_cpu = cpu_seconds(bridge_pids)
    busy, total = machine_busy()
    bench_cpu = cpu_seconds([os.getpid()])
    pg_cpu = 0.0
    for pid in pg_pids:  # a backend first seen now counts with all its CPU (pooled ones live long)
        used = cpu_seconds([pid])
        pg_cpu += used - previous.get(f"pg:{pid}", 0.0)
        previous[f"pg:{pid}"] = used
    elapsed = max(1e-6, now - previous["at"])
    with load.lock:
        done = sum(1 for r in load.results if r.ok)
        sent = load.started
    sample = Sample(
        at=now,
        sent=sent,
        done=done,
        receipts_open=open_jobs.get("receipt", 0),
        office_open=open_jobs.get("office", 0),
        unrendered=unrendered,
        issued=issued,
        web_cpu=(web_cpu - previous["web_cpu"]) / elapsed,
        web_rss=rss_mib(pids),
        bridges_cpu=(bridges_cpu - previous["bridges_cpu"]) / elapsed,
        bench_cpu=(bench_cpu - previous["bench_cpu"]) / elapsed,
        pg_cpu=pg_cpu / elapsed,
        machine=(busy - previous["busy"]) / max(1.0, total - previous["total"]),
        lock_waiters=waiters,
    )
    previous.update(
        at=now, web_cpu=web_cpu, bridges_cpu=bridges_cpu, bench_cpu=bench_cpu, busy=busy, total=total
    )
    return sample


def measure_sustained(args: argparse.Namespace, env: Env) -> bool:
    from sqlalchemy import func
    from sqlmodel import select

    from app.models import CertificateIssue, CertificateRequest, PrintJob

    set_auto_print(env, True)
    cancel_open_jobs(env)
    with env.db.session() as session:
        first_job = int(session.exec(select(func.max(PrintJob.id))).one() or 0)
    total = int(args.rate * args.duration)
    print(
        f"\n== 3. sustained: {args.rate:g} confirms/s for {args.duration:g} s ({total} offered), "
        f"{args.concurrency} sending threads, auto print on, every terminal's real bridge",
        flush=True,
    )
    with (
        web_server(args, env, "sustained") as server,
        demo_devices(server, env, "sustained", frozenset(), cups=args.office_printer == "cups") as devices,
    ):
        by_code = {t.code: t for t in devices.terminals}
        for code in devices.stand_ins:  # back offices without CUPS: the bench's fake printer
            StandInBridge(server, env, devices.tokens[str(by_code[code].device_id)], office=True).start()
        if devices.stand_ins:
            print(f"  office printers {devices.stand_ins}: fake ({'; '.join(devices.notes)})")
        with httpx.Client(base_url=server.base, follow_redirects=False, timeout=10) as client:
            csrf = csrf_token(client)
            csrf_cookie = cookie_header(client)
            # Warm-up (not counted), one confirm per kiosk: the first render loads fonts and
            # stylesheets, and each location's first request of the day creates its counter row.
            warm = Load(args, env, server, csrf_cookie, csrf, sorted((c, i) for c, i in env.kiosks.items()))
            for i in range(len(warm.kiosks)):
                _send_one(warm, client, Sent(i, time.time()))
        load = Load(args, env, server, csrf_cookie, csrf, sorted((c, i) for c, i in env.kiosks.items()))
        time.sleep(3.0)  # the warm-up's certificates are made
        with env.db.session() as session:
            first_request = int(session.exec(select(func.max(CertificateRequest.id))).one() or 0)
            first_issue = int(session.exec(select(func.max(CertificateIssue.id))).one() or 0)
        previous: dict[str, float] = {
            "at": time.time(),
            "first_job": float(first_job),
            "first_request": float(first_request),
            "first_issue": float(first_issue),
        }
        previous["web_cpu"] = cpu_seconds(server.pids())
        previous["bridges_cpu"] = cpu_seconds([t.process.pid for t in devices.terminals if t.process])
        previous["bench_cpu"] = cpu_seconds([os.getpid()])
        previous["busy"], previous["total"] = machine_busy()
        _sample(load, devices, previous)  # the database backends' CPU so far
        samples: list[Sample] = []
        timers_before = server.timers()
        start = time.time() + 0.5
        stop_at = start + args.duration
        work: queue_module.Queue[Sent | None] = queue_module.Queue()
        senders = [
            threading.Thread(target=_sender, args=(load, work, stop_at), daemon=True)
            for _ in range(args.concurrency)
        ]
        for sender in senders:
            sender.start()
        profiler = _start_py_spy(args, server, start)
        next_sample = start + args.sample
        index = 0
        while True:
            now = time.time()
            if now >= stop_at:
                break
            while index < total and start + index / args.rate <= now:
                work.put(Sent(index, start + index / args.rate))
                index += 1
            if now >= next_sample:
                samples.append(_sample(load, devices, previous))
                next_sample += args.sample
            time.sleep(min(0.005, max(0.0, start + index / args.rate - time.time())))
        for _ in senders:
            work.put(None)
        for sender in senders:
            sender.join(90)
        timers_window = _subtract(server.timers(), timers_before)
        # Drain: how long until the bridges have printed what was confirmed (bounded).
        drain_started = time.time()
        drained = False
        while time.time() - drain_started < args.drain:
            time.sleep(max(0.5, min(args.sample, 2.0)))
            samples.append(_sample(load, devices, previous))
            if (
                samples[-1].receipts_open == 0
                and samples[-1].office_open == 0
                and samples[-1].unrendered == 0
            ):
                drained = True
                break
        drain_seconds = time.time() - drain_started
        profile = _finish_py_spy(profiler)
        jobs = _job_outcomes(env, [r for r in load.results if r.ok])
    return _report_sustained(
        args,
        env,
        load.results,
        samples,
        timers_window,
        jobs,
        start,
        stop_at,
        drained,
        drain_seconds,
        profile,
    )


def _subtract(after: dict[str, list[float]], before: dict[str, list[float]]) -> dict[str, list[float]]:
    out = {}
    for label, values in after.items():
        old = before.get(label, [0.0, 0.0, 0.0])
        out[label] = [a - b for a, b in zip(values, old, strict=True)]
    return out


def _job_outcomes(env: Env, sent: list[Sent]) -> dict[str, dict[str, float]]:
    """Per confirm (by idempotency key): when its receipt and office jobs were done (server clock)."""
    from sqlmodel import col, select

    from app.models import CertificateIssue, CertificateRequest, PrintJob

    keys = {f"kiosk:{s.key}"[:64]: s for s in sent}
    out: dict[str, dict[str, float]] = {"receipt": {}, "office": {}}
    with env.db.session() as session:
        requests = session.exec(
            select(CertificateRequest.id, CertificateRequest.idempotency_key).where(
                col(CertificateRequest.idempotency_key).in_(list(keys))
            )
        ).all()
        by_request = {int(rid): keys[key].key for rid, key in requests if rid is not None}
        issues = session.exec(
            select(CertificateIssue.request_id, CertificateIssue.print_job_id).where(
                col(CertificateIssue.request_id).in_(list(by_request))
            )
        ).all()
        office_job = {int(job): by_request[int(rid)] for rid, job in issues if job is not None}
        jobs = session.exec(
            select(PrintJob).where(col(PrintJob.state) == "done", col(PrintJob.finished_at).is_not(None))
        ).all()
        for job in jobs:
            assert job.finished_at is not None and job.id is not None
            if job.printer.value == "receipt" and job.source_type == "certificate_request":
                key = by_request.get(int(job.source_id or 0))
                if key is not None:
                    out["receipt"][key] = job.finished_at.timestamp()
            elif job.id in office_job:
                out["office"][office_job[job.id]] = job.finished_at.timestamp()
    return out


def print_cpu_per_request(samples: list[Sample], start: float, *, done: int) -> None:
    """CPU a request over the whole run (load and drain), once every request's certificate, receipt
    and office job are done: the server's share (web with its print workers, PostgreSQL) apart
    from what, in a town hall, runs on the terminals' PCs or not at all (bridges, CUPS, this
    bench's load and simulated receipt printers)."""
    if not done or not samples:
        return
    totals = {"app": 0.0, "pg": 0.0, "bridges": 0.0, "bench": 0.0, "machine": 0.0}
    previous = start
    cores = os.cpu_count() or 1
    for sample in samples:
        seconds = sample.at - previous
        previous = sample.at
        totals["app"] += sample.web_cpu * seconds
        totals["pg"] += sample.pg_cpu * seconds
        totals["bridges"] += sample.bridges_cpu * seconds
        totals["bench"] += sample.bench_cpu * seconds
        totals["machine"] += sample.machine * cores * seconds
    per = {name: value / done * 1000 for name, value in totals.items()}
    other = max(0.0, per["machine"] - per["app"] - per["pg"] - per["bridges"] - per["bench"])
    server = per["app"] + per["pg"]
    print(
        f"CPU a request over the run ({done} requests, load and drain): server {server:.0f} ms "
        f"(web and print workers {per['app']:.0f}, PostgreSQL {per['pg']:.0f}) → {1000 * cores / server:.0f} requests/s "
        f"on {cores} cores given to the server alone; besides: bridges {per['bridges']:.0f} ms, this bench "
        f"{per['bench']:.0f} ms (load, simulated receipt printers), other processes {other:.0f} ms (CUPS, kernel, …)"
    )


def _report_sustained(
    args: argparse.Namespace,
    env: Env,
    results: list[Sent],
    samples: list[Sample],
    timers: dict[str, list[float]],
    jobs: dict[str, dict[str, float]],
    start: float,
    stop_at: float,
    drained: bool,
    drain_seconds: float,
    profile: list[str],
) -> bool:
    ok = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    in_window = [r for r in ok if r.answered <= stop_at]
    achieved = len(in_window) / args.duration
    offered = int(args.rate * args.duration)
    office = "CUPS simulator queue" if args.office_printer == "cups" else "the bench's fake office printer"
    print(
        f"conditions: {conditions(args, env)}; the demo's real bridges print receipts on simulated "
        f"ESC/POS printers and office PDFs to the {office}"
    )
    print(
        f"offered {offered} at {args.rate:g}/s; sent {len(results)}, answered /done {len(ok)}, failed {len(failed)}, "
        f"not sent in time {max(0, offered - len(results))}"
    )
    print(f"achieved rate: {achieved:.2f} confirms/s (answered within the {args.duration:g} s)")
    in_load = [s for s in samples if s.at <= stop_at]
    if in_load:
        made = in_load[-1].issued / max(1e-6, in_load[-1].at - start)
        print(
            f"certificates made (issue recorded, office job queued): {made:.2f}/s during the load; "
            f"{samples[-1].issued} in all by the end of the drain"
        )
    print(f"confirm POST latency (sent → 303):  {spread([(r.answered - r.sent) * 1000 for r in ok])}")
    print(f"  server time (Server-Timing):      {spread([r.server_ms for r in ok])}")
    print(
        f"  waiting in the bench to be sent (arrival → sent): {spread([(r.sent - r.due) * 1000 for r in ok])}"
    )
    for printer in ("receipt", "office"):
        done_at = jobs[printer]
        lat = [(done_at[r.key] - r.sent) * 1000 for r in ok if r.key in done_at]
        print(f"confirm sent → {printer} job done: {spread(lat)}; {len(lat)}/{len(ok)} done by the end")
    if failed:
        print(f"failures: {collections.Counter(r.error for r in failed).most_common(3)}")
    print(
        "time s   sent   done  rate/s  to-render  issued  receipts  office    app CPU  web RSS  bridges  bench  postgres  machine  lock waits\n"
        "       (confirms sent / answered /done; rate in the interval; requests waiting for their PDF; issues "
        "made; jobs not yet printed; CPU as % of one core (app = web + print workers), machine as % of all "
        "cores; PostgreSQL backends waiting for a lock)"
    )
    last_done, last_at = 0, start
    for s in samples:
        rate = (s.done - last_done) / max(1e-6, s.at - last_at)
        last_done, last_at = s.done, s.at
        print(
            f"{s.at - start:6.0f} {s.sent:6d} {s.done:6d} {rate:7.2f} {s.unrendered:10d} {s.issued:7d} "
            f"{s.receipts_open:9d} {s.office_open:7d} "
            f"{s.web_cpu * 100:9.0f}% {s.web_rss:5.0f}MiB {s.bridges_cpu * 100:7.0f}% {s.bench_cpu * 100:5.0f}% "
            f"{s.pg_cpu * 100:8.0f}% {s.machine * 100:7.0f}% {s.lock_waiters:11d}"
        )
    loaded = [s for s in samples if s.at <= stop_at]
    if loaded:
        cores = os.cpu_count() or 1

        def mean(values: Iterator[float]) -> float:
            return statistics.fmean(values) * 100

        web, bridges = mean(s.web_cpu for s in loaded), mean(s.bridges_cpu for s in loaded)
        bench, pg = mean(s.bench_cpu for s in loaded), mean(s.pg_cpu for s in loaded)
        machine = mean(s.machine for s in loaded) * cores
        print(
            f"CPU while loaded (mean, % of one core): web {web:.0f}%, bridges {bridges:.0f}%, bench {bench:.0f}%, "
            f"PostgreSQL {pg:.0f}%; the machine {machine:.0f}% of {cores * 100}%, of which other processes "
            f"(not this bench's) {max(0.0, machine - web - bridges - bench - pg):.0f}%"
        )
        print(f"web RSS: max {max(s.web_rss for s in samples):.0f} MiB (web process tree)")
    if drained:
        print(f"backlog after the load: all printed {drain_seconds:.0f} s after the end")
        print_cpu_per_request(samples, start, done=sum(1 for r in results if r.ok))
    elif samples:
        last = samples[-1]
        print(
            f"backlog after the load: still {last.unrendered} certificates to make, {last.receipts_open} "
            f"receipts and {last.office_open} office jobs unprinted {drain_seconds:.0f} s after the end (--drain)"
        )
    print_timers(timers)
    calls = {label.split(" ")[0]: values for label, values in timers.items()}
    verdict = achieved >= args.rate * 0.98 and not failed
    print(
        f"target {args.rate:g}/s: {'reached' if verdict else 'NOT reached'} — measured {achieved:.2f}/s on {os.cpu_count()} cores"
    )
    if "run_print_order" in calls and calls["run_print_order"][0]:
        n, wall, cpu = calls["run_print_order"]
        per_wall, per_cpu = wall / n, cpu / n
        render = calls.get("render_certificate", [0, 0, 0])
        sign = calls.get("sign_pdf", [0, 0, 0])
        seal = calls.get("make_demo_seal", [0, 0, 0])
        audit = calls.get("audit.record", [0, 0, 0])
        confirm = calls.get("kiosk", [0, 0, 0])
        print("where the time goes (per confirm, from the timers above):")
        print(
            f"  the certificate, after the confirm's commit: {per_wall * 1000:.0f} ms wall, {per_cpu * 1000:.0f} ms CPU, "
            f"of which CPU: render {render[2] / n * 1000:.0f} ms, sign {sign[2] / n * 1000:.0f} ms, "
            f"seal images {seal[2] / n * 1000:.0f} ms, the rest {(cpu - render[2] - sign[2] - seal[2]) / n * 1000:.0f} ms"
        )
        if confirm[0]:
            print(
                f"  the whole confirm service call: {confirm[1] / confirm[0] * 1000:.0f} ms wall, "
                f"{confirm[2] / confirm[0] * 1000:.0f} ms CPU"
            )
        if audit[0]:
            print(
                f"  audit.record: {audit[1] / audit[0] * 1000:.1f} ms wall per call, {audit[2] / audit[0] * 1000:.1f} ms CPU "
                "(wall ≫ CPU = waiting for the audit chain's row lock)"
            )
        print(
            f"  PDFs in parallel (certificates/s × PDF wall time): {n / args.duration * per_wall:.2f}; "
            f"CPU bound for this machine if PDFs were the only work: {(os.cpu_count() or 1) / per_cpu:.1f}/s, "
            f"for one process (one core: the GIL): {1 / per_cpu:.1f}/s"
        )
    for line in profile:
        print(line)
    return verdict


def _start_py_spy(
    args: argparse.Namespace, server: Server, start: float
) -> tuple[subprocess.Popen[bytes], Path] | None:
    """py-spy on the web process(es) for --py-spy seconds, a third into the load (steady state)."""
    if not args.py_spy:
        return None
    binary = shutil.which("py-spy")
    if binary is None:
        print("  (--py-spy: py-spy is not on PATH; run with `uv run --with py-spy python …`)")
        return None
    output = server.stats_dir / "py-spy.txt"
    delay = max(0.0, min(args.duration / 3, args.duration - args.py_spy))
    time.sleep(max(0.0, start - time.time()))
    command = [binary, "record", "--pid", str(server.process.pid), "--duration", str(int(args.py_spy))]
    command += ["--rate", "50", "--format", "raw", "--output", str(output), "--nonblocking", "--subprocesses"]
    shell = f"sleep {delay:.1f} && exec " + " ".join(command)
    log = server.stats_dir / "py-spy.log"
    with log.open("ab") as out:
        process = subprocess.Popen(["sh", "-c", shell], stdout=out, stderr=subprocess.STDOUT)
    return process, output


PROFILE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("render_certificate (frame + values)", ("render_certificate",)),
    ("sign_pdf (pyHanko)", ("sign_pdf",)),
    ("object store put", ("storage.py",)),
    ("kiosk confirm (all of it)", ("confirm_submit",)),
    ("device API (bridge reports, downloads, streams)", ("web/devices.py",)),
    ("event fan-out / SSE", ("events/hub.py", "sse_starlette")),
    ("database driver (psycopg / sqlite3)", ("psycopg", "sqlite3")),
    ("SQLAlchemy ORM", ("sqlalchemy",)),
    ("templates (Jinja2)", ("jinja2",)),
)


def _finish_py_spy(profiler: tuple[subprocess.Popen[bytes], Path] | None) -> list[str]:
    if profiler is None:
        return []
    process, output = profiler
    try:
        process.wait(120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return ["py-spy did not finish in time"]
    return summarise_py_spy(output)


def summarise_py_spy(path: Path) -> list[str]:
    """Shares of the web process's samples (raw collapsed stacks) in a few places, and top leaves."""
    if not path.exists():
        return [f"py-spy wrote nothing ({path})"]
    total = 0
    groups: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    via: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        for name, needles in PROFILE_GROUPS:
            if any(needle in stack for needle in needles):
                groups[name] += count
        frames = stack.split(";")
        leaves[frames[-1]] += count
        ours = [f for f in frames if "app/" in f and "site-packages" not in f and "bench_" not in f]
        via[frames[-1]][ours[-1] if ours else "(no app frame)"] += count
    if not total:
        return ["py-spy: no samples"]
    lines = [
        f"py-spy ({total} samples of busy threads in the web process(es); a sample can be in several rows):"
    ]
    for name, _ in PROFILE_GROUPS:
        lines.append(f"  {name:48} {groups[name] / total * 100:5.1f}%")
    lines.append("  top functions (self):")
    for leaf, count in leaves.most_common(8):
        caller = via[leaf].most_common(1)[0][0]
        lines.append(f"    {count / total * 100:5.1f}%  {leaf[:70]}  ← {caller[:80]}")
    return lines


# ------------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    which = parser.add_argument_group("measurements (none given: all three)")
    which.add_argument(
        "--staff-screen", action="store_true", help="1. confirm → certificate.requested at each SSE client"
    )
    which.add_argument("--office-print", action="store_true", help="2. confirm → office print job acked")
    which.add_argument(
        "--sustained", action="store_true", help="3. sustained confirms at --rate for --duration"
    )
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server URL (a temporary database is made there and dropped), or 'sqlite'",
    )
    parser.add_argument(
        "--events-url", default="redis://127.0.0.1:6379/15", help="event broker (or memory://)"
    )
    parser.add_argument("--residents", type=int, default=1500, help="demo town size")
    parser.add_argument("--web-workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--print-workers",
        type=int,
        default=0,
        help="arq worker processes that make the certificates (0: the web process's own print threads)",
    )
    parser.add_argument(
        "--worker-nice", type=int, default=0, help="run the print workers under `nice -n N` (web first)"
    )
    parser.add_argument("--clients", type=int, default=500, help="1: SSE clients")
    parser.add_argument("--client-procs", type=int, default=2, help="1: worker processes for the SSE clients")
    parser.add_argument("--confirms", type=int, default=30, help="1: kiosk confirms measured")
    parser.add_argument(
        "--interval", type=float, default=0.5, help="1: at least this many seconds between confirms"
    )
    parser.add_argument(
        "--manual-print", action="store_true", help="1: locations confirm first (no PDF in the confirm)"
    )
    parser.add_argument(
        "--office-printer",
        choices=("cups", "fake"),
        default="cups",
        help="2, 3: the CUPS simulator queue (fake when CUPS cannot be used) or the bench's fake printer",
    )
    parser.add_argument("--prints", type=int, default=20, help="2: confirms measured to office job done")
    parser.add_argument("--rate", type=float, default=50.0, help="3: confirms per second offered")
    parser.add_argument("--duration", type=float, default=300.0, help="3: seconds of load")
    parser.add_argument("--concurrency", type=int, default=16, help="3: sending threads (requests in flight)")
    parser.add_argument(
        "--drain", type=float, default=60.0, help="3: seconds to wait for the backlog afterwards"
    )
    parser.add_argument("--sample", type=float, default=5.0, help="3: seconds between backlog samples")
    parser.add_argument(
        "--unpatched-events",
        action="store_true",
        help="do not work around events published at SAVEPOINT release (see the note the bench prints)",
    )
    parser.add_argument("--keep-logs", default="", help="copy the web and bridge logs into this folder")
    parser.add_argument(
        "--py-spy", type=float, default=0.0, help="3: seconds of py-spy on the web process (0: off)"
    )
    args = parser.parse_args()
    if args.web_workers > 1 and args.events_url.startswith("memory"):
        parser.error("several web processes need a Redis --events-url")
    if args.print_workers and args.events_url.startswith("memory"):
        parser.error("--print-workers needs a Redis --events-url (it carries the job queue too)")
    if not (args.staff_screen or args.office_print or args.sustained):
        args.staff_screen = args.office_print = args.sustained = True
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    args.savepoint_bug = savepoint_publishes_early()
    args.defer_savepoint_events = args.savepoint_bug and not args.unpatched_events
    if args.savepoint_bug:
        print(
            "NOTE: app bug found — publish_on_commit hands events written inside a SAVEPOINT to the broker "
            "when the savepoint is released, before the transaction commits (SQLAlchemy fires after_commit "
            "for savepoints). With auto print the receipt and office print.job events go out from "
            "certificates._print_automatically's savepoint; a bridge that reads the job before the commit "
            "does not find it and the job waits for its next reconnect. "
            + (
                "The bench's launcher defers those events to the real commit (--unpatched-events: run as is)."
                if args.defer_savepoint_events
                else "Running as is (--unpatched-events): expect jobs that are never delivered."
            ),
            flush=True,
        )
    results: list[tuple[str, bool]] = []
    with environment(args) as env:
        if args.staff_screen:
            results.append(("confirm → staff screen", measure_staff_screen(args, env)))
        if args.office_print:
            results.append(("confirm → office print acked", measure_office_print(args, env)))
        if args.sustained:
            results.append((f"sustained {args.rate:g}/s", measure_sustained(args, env)))
    print(
        "\nsummary: "
        + "; ".join(f"{name}: {'target met' if ok else 'target NOT met'}" for name, ok in results)
    )
    return 0 if all(ok for _, ok in results) else 2


if __name__ == "__main__":
    if sys.argv[1:] == ["--as-worker"]:  # a print worker started by web_server
        sys.path.insert(0, str(ROOT))
        bench_worker_main()
        raise SystemExit(0)
    raise SystemExit(main())
