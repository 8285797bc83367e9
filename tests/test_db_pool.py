"""app.db on PostgreSQL: idle pooled connections are pinged and replaced when dead; busy ones are
used without a ping."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, event, text

from app import db as db_module
from app.db import Database, is_sqlite


def _backend_pid(database: Database) -> int:
    with database.session() as session:
        return int(session.connection().execute(text("select pg_backend_pid()")).scalar_one())


def test_a_dead_idle_connection_is_replaced(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    if is_sqlite(db.engine):
        pytest.skip("PostgreSQL connection pool")
    first = _backend_pid(db)
    admin = create_engine(db.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as other:
            other.execute(text("select pg_terminate_backend(:pid)"), {"pid": first})
    finally:
        admin.dispose()
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)
    assert _backend_pid(db) != first  # the ping found it dead; the pool connected anew


def test_a_connection_in_use_is_not_pinged(db: Database) -> None:
    if is_sqlite(db.engine):
        pytest.skip("PostgreSQL connection pool")
    statements: list[str] = []
    _backend_pid(db)

    @event.listens_for(db.engine, "before_cursor_execute")
    def _seen(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    pings: list[object] = []
    original = db.engine.dialect.do_ping
    db.engine.dialect.do_ping = lambda connection: pings.append(connection) or original(connection)  # type: ignore[method-assign]
    try:
        for _ in range(5):
            _backend_pid(db)
    finally:
        db.engine.dialect.do_ping = original  # type: ignore[method-assign]
    assert pings == []
    assert statements.count("select pg_backend_pid()") == 5


def test_read_sessions_skip_begin_and_leave_the_pool_transactional(db: Database) -> None:
    """read_session on PostgreSQL runs without BEGIN/ROLLBACK (autocommit); the connection goes back
    to the pool in ordinary transactional mode, so a write session that gets it next can roll back."""
    if is_sqlite(db.engine):
        pytest.skip("PostgreSQL connection pool")
    # A statement sent after a BEGIN runs in a transaction that started before it.
    began_before = text("select xact_start < query_start from pg_stat_activity where pid = pg_backend_pid()")
    for _ in range(3):  # the pool hands the same connection around
        with db.read_session() as session:
            assert session.connection().execute(began_before).scalar_one() is False
        with db.write_session() as session:
            assert session.connection().execute(began_before).scalar_one() is True
            session.connection().execute(text("create temporary table t_rolled_back (x int)"))
            session.rollback()
        with db.session() as session:
            exists = session.connection().execute(text("select to_regclass('pg_temp.t_rolled_back')"))
            assert exists.scalar_one() is None  # the write session's transaction was rolled back
