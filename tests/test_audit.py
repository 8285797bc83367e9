"""The audit chain: appends in order, detects edits, inserts and deletions; the DB refuses tampering."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from app.db import Database, is_sqlite
from app.models import AuditEntry
from app.services import audit
from app.services.audit import Actor, verify

ACTOR = Actor(type="staff", id="7", name="監査 太郎 (clerk)", ip="192.0.2.1")


def _fill(db: Database, n: int = 5) -> None:
    with db.write_session() as session:
        for i in range(n):
            audit.record(
                session,
                ACTOR,
                "resident.view",
                target_type="resident",
                target_id=i,
                detail={"name": "𠮷田 﨑"},
            )
        session.commit()


def _disable_guards(db: Database) -> None:
    """What someone with direct database access could do first."""
    with db.engine.begin() as connection:
        if is_sqlite(db.engine):
            connection.execute(text("DROP TRIGGER audit_entry_no_update"))
            connection.execute(text("DROP TRIGGER audit_entry_no_early_delete"))
        else:
            connection.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_guard"))


def test_intact_chain_verifies(db: Database) -> None:
    _fill(db)
    with db.session() as session:
        report = verify(session)
    assert report.ok, report.problems
    assert report.checked == 5


def test_database_refuses_update_and_early_delete(db: Database) -> None:
    _fill(db, 1)
    for statement in ("UPDATE audit_entry SET action = 'x'", "DELETE FROM audit_entry"):
        with pytest.raises(DBAPIError), db.engine.begin() as connection:
            connection.execute(text(statement))


def test_edited_entry_is_detected(db: Database) -> None:
    _fill(db)
    _disable_guards(db)
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_entry SET target_id = '999' WHERE seq = 3"))
    with db.session() as session:
        report = verify(session)
    assert not report.ok
    assert any("seq 3" in p and "edited" in p for p in report.problems)


def test_deleted_entry_is_detected(db: Database) -> None:
    _fill(db)
    _disable_guards(db)
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_entry WHERE seq = 2"))
    with db.session() as session:
        report = verify(session)
    assert not report.ok
    assert any("seq 2" in p for p in report.problems)


def test_deleted_tail_is_detected(db: Database) -> None:
    _fill(db)
    _disable_guards(db)
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_entry WHERE seq = 5"))
    with db.session() as session:
        report = verify(session)
    assert not report.ok
    assert any("head" in p for p in report.problems)


def test_inserted_entry_is_detected(db: Database) -> None:
    _fill(db)
    _disable_guards(db)
    with db.engine.begin() as connection:
        # Make room at seq 3 and forge an entry there, with a self-consistent hash of its own.
        connection.execute(text("UPDATE audit_entry SET seq = seq + 100 WHERE seq >= 3"))
        connection.execute(text("UPDATE audit_entry SET seq = seq - 99 WHERE seq >= 103"))
        row = connection.execute(text("SELECT entry_hash FROM audit_entry WHERE seq = 2")).one()
        connection.execute(
            text(
                "INSERT INTO audit_entry (seq, at, actor_type, actor_id, actor_name, action, target_type, target_id,"
                " detail, ip, prev_hash, entry_hash) VALUES (3, :at, 'staff', '1', 'forger', 'x', '', '', '{}', '',"
                " :prev, :hash)"
            ),
            {"at": "2026-01-01 00:00:00", "prev": row.entry_hash, "hash": "f" * 64},
        )
        connection.execute(text("UPDATE audit_head SET seq = 6"))
    with db.session() as session:
        report = verify(session)
    assert not report.ok


def test_concurrent_writers_keep_the_chain(db: Database) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                with db.write_session() as session:
                    audit.record(session, ACTOR, "test.concurrent", target_id=f"{n}-{i}")
                    session.commit()
        except BaseException as error:  # collected and re-raised below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    with db.session() as session:
        report = verify(session)
    assert report.ok, report.problems
    assert report.checked == 40


def test_cli_audit_verify(sqlite_db: Database, tmp_path: Path) -> None:
    _fill(sqlite_db)
    env = {
        "MADOGUCHI_DATABASE_URL": sqlite_db.url,
        "MADOGUCHI_DATA_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    ok = subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "verify"], env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "audit chain intact: 5 entries" in ok.stdout
    _disable_guards(sqlite_db)
    with sqlite_db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_entry SET actor_name = 'someone else' WHERE seq = 4"))
    broken = subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "verify"], env=env, capture_output=True, text=True
    )
    assert broken.returncode == 1
    assert "seq 4" in broken.stderr


def test_entries_are_chained_at_commit_and_dropped_with_a_rollback(db: Database) -> None:
    """record() writes at commit: nothing of a rolled-back transaction or savepoint is kept, and
    entries of concurrent transactions are numbered in commit order."""
    with db.write_session() as session:
        audit.record(session, ACTOR, "test.rolled_back")
        session.rollback()
        audit.record(session, ACTOR, "test.kept_outer")
        with pytest.raises(RuntimeError), session.begin_nested():
            audit.record(session, ACTOR, "test.in_failed_savepoint")
            raise RuntimeError("savepoint rolls back")
        with session.begin_nested():
            audit.record(session, ACTOR, "test.in_released_savepoint")
        session.commit()
    with db.session() as session:
        actions = [e.action for e in session.exec(select(AuditEntry).order_by(col(AuditEntry.seq))).all()]
        assert actions == ["test.kept_outer", "test.in_released_savepoint"]
        assert verify(session).ok
