"""Shared fixtures: databases on SQLite and PostgreSQL, the app, staff users per role.

Databases are migrated once per session into a template (a file for SQLite, a template database
for PostgreSQL) and copied for each test, so every test gets a fresh, fully migrated schema.
PostgreSQL runs when MADOGUCHI_TEST_POSTGRES_URL points at a server (scripts/test sets it).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from app.config import Settings
from app.db import Database
from app.domain.permissions import DEFAULT_GROUPS
from app.migrate import upgrade
from app.models import StaffUser, UserGroup
from app.services.passwords import hash_password
from app.services.staff import ensure_default_groups

POSTGRES_URL = os.environ.get("MADOGUCHI_TEST_POSTGRES_URL", "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests last: sync Playwright keeps an event loop on the main thread until the
    session ends, and tests that start their own loop after it would fail."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


TEST_PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(TEST_PASSWORD)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    # Fold the WAL into the main file so a plain copy carries everything.
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


def _admin_engine():  # type: ignore[no-untyped-def]
    return create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured (set MADOGUCHI_TEST_POSTGRES_URL; scripts/test does)")
    name = f"madoguchi_tmpl_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine()
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield name
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def fresh_postgres(template: str) -> tuple[str, str]:
    name = f"madoguchi_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    admin.dispose()
    return name, make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def drop_postgres(name: str) -> None:
    admin = _admin_engine()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A freshly migrated database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "madoguchi.db"
        shutil.copyfile(template, path)
        database = Database(f"sqlite:///{path}")
        yield database
        database.dispose()
    else:
        pg_template: str = request.getfixturevalue("postgres_template")
        name, url = fresh_postgres(pg_template)
        database = Database(url)
        yield database
        database.dispose()
        drop_postgres(name)


@pytest.fixture
def sqlite_db(sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    """SQLite only, for tests whose subject is not the database."""
    path = tmp_path / "madoguchi.db"
    shutil.copyfile(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


@dataclass(frozen=True)
class StaffAccounts:
    """login ids by role; every password is TEST_PASSWORD."""

    ids: dict[str, int]


@pytest.fixture
def staff_accounts(db: Database, password_hash: str) -> StaffAccounts:
    return make_staff(db, password_hash)


def make_staff(db: Database, password_hash: str) -> StaffAccounts:
    """One user per default group (login id = group name) and one with no group at all."""
    ids: dict[str, int] = {}
    with db.write_session() as session:
        groups = ensure_default_groups(session)
        for name in [*DEFAULT_GROUPS, "nogroup"]:
            user = StaffUser(login_id=name, display_name=f"テスト {name}", password_hash=password_hash)
            session.add(user)
            session.flush()
            assert user.id is not None
            ids[name] = user.id
            if name in groups:
                group_id = groups[name].id
                assert group_id is not None
                session.add(UserGroup(user_id=user.id, group_id=group_id))
        session.commit()
    return StaffAccounts(ids)


def make_settings(tmp_path: Path, db: Database, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "var",
        "database_url": db.url,
        "events_url": "memory://",
        "secret_key": "test-secret-key-not-for-production",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def client(db: Database, tmp_path: Path) -> Iterator[TestClient]:
    from app.web.app import create_app

    app = create_app(make_settings(tmp_path, db), db=db)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as test_client:
        yield test_client


CSRF_META = re.compile(r'<meta name="csrf-token" content="([0-9a-f]+)">')


def csrf_of(client: TestClient, path: str = "/kiosk/") -> str:
    response = client.get(path)
    match = CSRF_META.search(response.text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def sign_in(client: TestClient, login_id: str, password: str = TEST_PASSWORD) -> None:
    token = csrf_of(client)
    response = client.post(
        "/staff/login",
        data={"login_id": login_id, "password": password, "csrf_token": token, "next": "/staff/"},
    )
    assert response.status_code == 303, response.text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    url: str
    db: Database
    staff: StaffAccounts
    app: Any = None


@pytest.fixture
def live_server(sqlite_db: Database, tmp_path: Path, password_hash: str) -> Iterator[LiveServer]:
    from app.web.app import create_app

    staff = make_staff(sqlite_db, password_hash)
    port = _free_port()
    app = create_app(make_settings(tmp_path, sqlite_db, port=port), db=sqlite_db)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("live server did not start")
        time.sleep(0.02)
    yield LiveServer(url=f"http://127.0.0.1:{port}", db=sqlite_db, staff=staff, app=app)
    server.should_exit = True
    thread.join(timeout=10)
