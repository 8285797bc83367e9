"""The `madoguchi` command: serve, web, worker, bridge, db upgrade, demo-data, create-admin, audit verify."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from app.config import Settings, SettingsError, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        raise SystemExit(2) from None


def _database(settings: Settings):  # type: ignore[no-untyped-def]
    from app.db import Database

    return Database(settings.effective_database_url)


def _require_schema(settings: Settings) -> None:
    from app.db import Database
    from app.migrate import current_revision, head_revision

    db = Database(settings.effective_database_url)
    try:
        current = current_revision(db.engine)
    finally:
        db.dispose()
    head = head_revision(settings.effective_database_url)
    if current != head:
        print(
            f"データベースが最新ではありません / The database schema is at {current or 'nothing'}, "
            f"the code needs {head}.\n  → run: madoguchi db upgrade",
            file=sys.stderr,
        )
        raise SystemExit(2)


# ---------------------------------------------------------------------------------------------
# db upgrade


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from app.migrate import upgrade
    from app.services.lifeevent_rules import seed_if_empty
    from app.services.staff import ensure_default_groups

    settings = _settings()
    upgrade(settings.effective_database_url)
    db = _database(settings)
    try:
        with db.write_session() as session:
            ensure_default_groups(session)  # built-in groups get the permissions this release adds
            seeded = seed_if_empty(session)  # the bundled life-event rules become version 1
            session.commit()
    finally:
        db.dispose()
    if seeded:
        print("life-event rules: the bundled seed data was saved as version 1")
    print(f"database is up to date: {_redact(settings.effective_database_url)}")
    return 0


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


# ---------------------------------------------------------------------------------------------
# demo-data


def cmd_demo_data(args: argparse.Namespace) -> int:
    from sqlmodel import func, select

    from app.demo.generator import DemoDataError, generate_demo
    from app.models import Resident

    settings = _settings()
    _require_schema(settings)
    db = _database(settings)
    try:
        if args.if_empty:
            with db.session() as session:
                if session.exec(select(func.count()).select_from(Resident)).one() > 0:
                    print("demo data already loaded (database has residents); nothing to do")
                    return 0
        started = time.perf_counter()
        try:
            summary = generate_demo(
                db, residents=args.residents, seed=args.seed, reset=args.reset, today=args.today
            )
        except DemoDataError as error:
            print(error, file=sys.stderr)
            return 1
        elapsed = time.perf_counter() - started
    finally:
        db.dispose()
    print(
        f"demo municipality loaded in {elapsed:.1f} s: {summary.households} households, "
        f"{summary.residents} residents, {summary.seals} seals, {summary.tax_records} tax records"
    )
    if summary.credentials:
        print("demo staff accounts (ID / password / role):")
        for login_id, password, role in summary.credentials:
            print(f"  {login_id:10} {password:22} {role}")
    return 0


# ---------------------------------------------------------------------------------------------
# create-admin


def cmd_create_admin(args: argparse.Namespace) -> int:
    from app.services.audit import Actor
    from app.services.staff import StaffError, create_user

    settings = _settings()
    _require_schema(settings)
    password = os.environ.get("MADOGUCHI_ADMIN_PASSWORD") or ""
    if not password:
        if not sys.stdin.isatty():
            print("set MADOGUCHI_ADMIN_PASSWORD or run in a terminal to type the password", file=sys.stderr)
            return 2
        password = getpass.getpass("パスワード / Password: ")
        if getpass.getpass("もう一度 / Again: ") != password:
            print("パスワードが一致しません / The passwords differ", file=sys.stderr)
            return 1
    db = _database(settings)
    try:
        with db.write_session() as session:
            try:
                create_user(
                    session,
                    login_id=args.login_id,
                    display_name=args.name or args.login_id,
                    password=password,
                    groups=["admin"],
                    actor=Actor(type="system", name=f"cli create-admin ({getpass.getuser()})"),
                )
            except StaffError as error:
                print(error, file=sys.stderr)
                return 1
            session.commit()
    finally:
        db.dispose()
    print(f"administrator {args.login_id} created")
    return 0


# ---------------------------------------------------------------------------------------------
# audit verify


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from app.services.audit import verify

    settings = _settings()
    db = _database(settings)
    try:
        with db.session() as session:
            report = verify(session)
    finally:
        db.dispose()
    if report.ok:
        print(f"監査ログは改ざんされていません / audit chain intact: {report.checked} entries verified")
        return 0
    print(
        f"監査ログに不整合があります / audit chain BROKEN ({report.checked} entries read):", file=sys.stderr
    )
    for problem in report.problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


# ---------------------------------------------------------------------------------------------
# web / worker / bridge / serve


def cmd_web(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings()
    _require_schema(settings)
    workers = args.workers or settings.web_workers
    if workers > 1 and settings.effective_events_url == "memory://":
        print(
            f"{workers} web processes need Redis for events: memory:// cannot cross processes.\n"
            "  → set MADOGUCHI_REDIS_URL (or use `madoguchi serve`, which starts one)",
            file=sys.stderr,
        )
        return 2
    uvicorn.run(
        "app.web.app:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=workers,
        log_level=settings.log_level,
        proxy_headers=True,
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from arq.worker import run_worker

    from app.jobs.worker import WorkerSettings, redis_settings

    settings = _settings()
    _require_schema(settings)
    if not settings.redis_url:
        print(
            "MADOGUCHI_REDIS_URL is empty: the worker needs Redis.\n  → set it, or use `madoguchi serve`",
            file=sys.stderr,
        )
        return 2
    run_worker(
        WorkerSettings,  # type: ignore[arg-type]
        redis_settings=redis_settings(),
        queue_name=settings.job_queue,
    )
    return 0


def cmd_bridge(args: argparse.Namespace) -> int:
    from device_bridge.client import main as bridge_main

    return bridge_main(
        ["--config", str(args.config), *(["--log-level", args.log_level] if args.log_level else [])]
    )


def _wait_for_http(url: str, timeout: float = 30.0) -> bool:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def _wait_for_socket(path: Path, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.05)
    return False


def cmd_serve(args: argparse.Namespace) -> int:
    """Web + worker (+ a private Redis when none is configured), supervised together."""
    settings = _settings()
    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    _require_schema(settings)
    settings.resolved_secret_key()  # create it once, before several processes race to
    env = dict(os.environ)
    children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def stop_all() -> None:
        for _, child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for _, child in reversed(children):
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()

    if not settings.redis_url:
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            print(
                "redis-server is not installed.\n  → apt-get install redis-server, or set MADOGUCHI_REDIS_URL",
                file=sys.stderr,
            )
            return 2
        socket_path = settings.private_redis_socket
        socket_path.parent.mkdir(parents=True, exist_ok=True)
        socket_path.unlink(missing_ok=True)
        redis_dir = socket_path.parent / "redis"
        redis_dir.mkdir(exist_ok=True)
        children.append(
            (
                "redis",
                subprocess.Popen(
                    [
                        redis_server,
                        "--port",
                        "0",
                        "--unixsocket",
                        str(socket_path),
                        "--unixsocketperm",
                        "700",
                        "--dir",
                        str(redis_dir),
                        "--save",
                        "60 1",
                        "--appendonly",
                        "yes",
                        "--loglevel",
                        "warning",
                    ],
                ),
            )
        )
        if not _wait_for_socket(socket_path):
            stop_all()
            print("the private redis-server did not start", file=sys.stderr)
            return 1
        env["MADOGUCHI_REDIS_URL"] = f"unix://{socket_path}"
    if args.demo and not settings.jpki_trust_roots:
        # Kiosks trust the demo JPKI CA that device_bridge/simulators/demo.py keeps (never J-LIS's).
        demo_ca = (settings.data_dir / "demo" / "cards" / "ca" / "auth-ca").resolve()
        env["MADOGUCHI_JPKI_TRUST_ROOTS"] = str(demo_ca / "cert.pem")
        env["MADOGUCHI_JPKI_CRLS"] = str(demo_ca / "crl.pem")
    command = [sys.executable, "-m", "app.cli"]
    children.append(("worker", subprocess.Popen([*command, "worker"], env=env)))
    web_args = [*command, "web", "--host", settings.host, "--port", str(settings.port)]
    children.append(("web", subprocess.Popen(web_args, env=env)))

    base = (
        settings.public_url
        or f"http://{'localhost' if settings.host in ('127.0.0.1', '0.0.0.0') else settings.host}:{settings.port}"
    )
    print(
        "\n".join(
            [
                "",
                "Madoguchi is running / 起動しました:",
                f"  住民用キオスク  Resident kiosk : {base}/kiosk/",
                f"  職員画面        Staff screens  : {base}/staff/",
                f"  ライブイベント  Live events    : {base}/staff/events",
                f"  管理画面        Administration : {base}/admin/",
                "  Stop with Ctrl+C / 終了は Ctrl+C",
                "",
            ]
        ),
        flush=True,
    )
    if args.demo:
        # Simulated printers and card, real bridges, and their console (device_bridge/simulators/demo.py).
        local = f"http://127.0.0.1:{settings.port}"
        demo_args = [sys.executable, "-m", "device_bridge.simulators.demo", "--server-url", local]
        demo_args += ["--console-port", str(settings.port + 1)]
        _wait_for_http(f"{local}/health")
        children.append(("demo devices", subprocess.Popen(demo_args, env=env)))

    stopping = False
    failed = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stopping:
            for name, child in children:
                if child.poll() is not None:
                    print(f"{name} exited with code {child.returncode}; stopping everything", file=sys.stderr)
                    stopping = failed = True
                    break
            time.sleep(0.5)
    finally:
        stop_all()
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="madoguchi", description="Madoguchi — 書かない窓口")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    serve = sub.add_parser("serve", help="web + worker (+ private Redis) together")
    serve.add_argument("--demo", action="store_true", help="also start the simulated devices")
    serve.add_argument("--host", help="listen address (default MADOGUCHI_HOST)")
    serve.add_argument("--port", type=int, help="listen port (default MADOGUCHI_PORT)")
    serve.set_defaults(func=cmd_serve)

    web = sub.add_parser("web", help="the web server only")
    web.add_argument("--host")
    web.add_argument("--port", type=int)
    web.add_argument("--workers", type=int, default=0, help="default MADOGUCHI_WEB_WORKERS")
    web.set_defaults(func=cmd_web)

    worker = sub.add_parser("worker", help="the background worker only (needs MADOGUCHI_REDIS_URL)")
    worker.set_defaults(func=cmd_worker)

    bridge = sub.add_parser("bridge", help="the device bridge on a terminal PC")
    bridge.add_argument("--config", type=Path, default=Path("bridge.toml"))
    bridge.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    bridge.set_defaults(func=cmd_bridge)

    db = sub.add_parser("db", help="database commands")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="db-command")
    db_upgrade = db_sub.add_parser("upgrade", help="apply migrations up to the newest")
    db_upgrade.set_defaults(func=cmd_db_upgrade)

    demo = sub.add_parser("demo-data", help="load the fictional demo municipality")
    demo.add_argument("--residents", type=int, default=1500)
    demo.add_argument("--seed", type=int, default=20261121)
    demo.add_argument("--reset", action="store_true", help="replace existing registry data")
    demo.add_argument("--if-empty", action="store_true", help="do nothing when residents exist")
    demo.add_argument(
        "--today",
        type=date.fromisoformat,
        default=None,
        help="the town's 'today' (YYYY-MM-DD), for repeatable data",
    )
    demo.set_defaults(func=cmd_demo_data)

    admin = sub.add_parser("create-admin", help="create an administrator account")
    admin.add_argument("login_id")
    admin.add_argument("--name", default="")
    admin.set_defaults(func=cmd_create_admin)

    audit = sub.add_parser("audit", help="audit log commands")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="audit-command")
    verify = audit_sub.add_parser("verify", help="check the hash chain end to end")
    verify.set_defaults(func=cmd_audit_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
