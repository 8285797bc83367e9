"""Engine and sessions. SQLite (WAL, foreign keys on) by default; PostgreSQL by URL.

Writes go through `write_session()`. On SQLite it opens the transaction with BEGIN IMMEDIATE, so a
request that reads and then writes never fails half-way on a lock upgrade; PostgreSQL needs
nothing special.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session

_IMMEDIATE = "madoguchi_sqlite_immediate"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, echo=echo, pool_size=10, max_overflow=20)
    _ping_idle_connections(engine)
    return engine


IDLE_PING_SECONDS = 10.0


def _ping_idle_connections(engine: Engine) -> None:
    """Ping a pooled connection before use when it has been idle for IDLE_PING_SECONDS (it may
    have been cut: a database restart, a firewall's idle timeout); a dead one is replaced.

    SQLAlchemy's `pool_pre_ping` pings at every checkout: under load that was one extra round
    trip for every session (~17 a certificate request, PostgreSQL's statement log), on connections
    used milliseconds before. A connection that breaks while in steady use fails the statement
    that finds out, and SQLAlchemy then replaces the pool's connections, as it would without any
    ping.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return  # a new connection, or one in use moments ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError("idle connection failed its ping") from error
        if not alive:
            raise DisconnectionError("idle connection failed its ping")


_IDLE_SINCE = "madoguchi_idle_since"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def forget_rolled_back(info: dict[Any, Any], key: str, rolled_back: SessionTransaction) -> None:
    """Drop from ``info[key]`` what a rollback undid, for work a session keeps until its commit
    (audit entries, events): tuples whose last item is the savepoint they were recorded in (None:
    the transaction itself). Rolling back the transaction drops them all; a savepoint, those
    recorded in it or in savepoints inside it."""
    if rolled_back.parent is None:
        info.pop(key, None)
        return
    items = info.get(key)
    if items:
        info[key] = [item for item in items if not _within(item[-1], rolled_back)]


def _within(savepoint: SessionTransaction | None, rolled_back: SessionTransaction) -> bool:
    while savepoint is not None:
        if savepoint is rolled_back:
            return True
        savepoint = savepoint.parent
    return False


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class Database:
    """One engine and its session factories; the web app, worker and CLI each hold one."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, echo=echo)
        self._write_engine = self.engine.execution_options(**{_IMMEDIATE: True})
        # PostgreSQL: reads without BEGIN and ROLLBACK (two round trips); see read_session.
        self._read_engine = (
            self.engine
            if is_sqlite(self.engine)
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for reads (and writes that cannot race)."""
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for reads only, each statement on its own: on PostgreSQL in autocommit, so the
        hot paths (a device's token on every bridge call, a print order's registry rows) save the
        BEGIN and ROLLBACK round trips. Under READ COMMITTED every statement sees the data committed
        when it starts, in a transaction or not, so what the reads see does not change. Nothing
        stops a write in it (on PostgreSQL each would commit at once): write in write_session()."""
        with Session(self._read_engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A session whose transaction takes the write lock first (SQLite) and rolls back on error."""
        with Session(self._write_engine, expire_on_commit=False) as session:
            try:
                yield session
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()
