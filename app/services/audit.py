"""The audit log: append-only and hash-chained.

Each entry's hash covers its own fields and the previous entry's hash, and entries are numbered
1, 2, 3 … without gaps; the head row names the last entry. So an edited entry breaks its own hash,
an inserted or deleted one breaks the numbering or the chain, and a deleted tail disagrees with
the head. The database refuses UPDATE and DELETE on audit rows (migration 0002).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session as SqlAlchemySession, SessionTransaction
from sqlmodel import Session, col, select

from app.db import forget_rolled_back
from app.models import AuditEntry, AuditHead
from app.models._types import utcnow

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class Actor:
    """Who did something: a staff user, a device, a resident at a kiosk, or the system."""

    type: str
    id: str = ""
    name: str = ""
    ip: str = ""

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(type="system", id="", name=name)


def _canonical(entry: AuditEntry) -> bytes:
    assert entry.at is not None
    payload = {
        "seq": entry.seq,
        "at": entry.at.isoformat(timespec="microseconds"),
        "actor_type": entry.actor_type,
        "actor_id": entry.actor_id,
        "actor_name": entry.actor_name,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "detail": entry.detail,
        "ip": entry.ip,
        "prev_hash": entry.prev_hash,
    }
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def compute_hash(entry: AuditEntry) -> str:
    return hashlib.sha256(_canonical(entry)).hexdigest()


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    target_type: str = "",
    target_id: str | int = "",
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append an entry in the caller's transaction (it commits with the change it describes).

    The entry is written when the transaction commits (`_append_pending`, just before the
    commit): only then is the chain's head row locked (SELECT … FOR UPDATE on PostgreSQL; SQLite
    write transactions are already exclusive), numbered and hashed. Concurrent writers append one
    after another, and each holds the head for its last statements only, not for the whole
    transaction (under load the audit chain serialised every transaction that recorded anything:
    12 certificate requests a second, waiting ~260 ms each for the head). A transaction rolled back
    drops its entries. `at` is the commit time unless given. The returned entry is numbered and
    hashed once the transaction commits.
    """
    # Round-trip through JSON so the hash covers exactly what the database will return.
    clean_detail = json.loads(json.dumps(detail or {}, ensure_ascii=False, default=str))
    entry = AuditEntry(
        seq=0,
        at=at or utcnow(),
        actor_type=actor.type,
        actor_id=actor.id,
        actor_name=actor.name,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        detail=clean_detail,
        ip=actor.ip,
        prev_hash="",
        entry_hash="",
    )
    if session.get_transaction() is None:
        session.connection()  # begin the transaction the entry belongs to (a rollback drops it)
    savepoint = session.get_nested_transaction()
    session.info.setdefault(_PENDING, []).append((entry, at is not None, savepoint))
    return entry


_PENDING = "madoguchi.audit.pending"


def write_pending(session: Session) -> None:
    """Number, hash and add the entries recorded in this transaction (called before it commits;
    call it yourself to see them in a query before the commit)."""
    pending: list[tuple[AuditEntry, bool, SessionTransaction | None]] = session.info.pop(_PENDING, [])
    if not pending:
        return
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
    now = utcnow()
    for entry, time_given, _ in pending:
        entry.seq = head.seq + 1
        if not time_given:
            entry.at = now
        entry.prev_hash = head.last_hash
        entry.entry_hash = compute_hash(entry)
        head.seq = entry.seq
        head.last_hash = entry.entry_hash
        session.add(entry)
    session.add(head)
    session.flush()


@event.listens_for(SqlAlchemySession, "before_commit")
def _append_pending(session: SqlAlchemySession) -> None:
    if session.info.get(_PENDING):
        write_pending(session)  # type: ignore[arg-type]


@event.listens_for(SqlAlchemySession, "after_soft_rollback")
def _drop_pending(session: SqlAlchemySession, previous_transaction: SessionTransaction) -> None:
    """A rollback drops the entries recorded in what it rolled back: the whole transaction, or a
    savepoint (with the savepoints inside it)."""
    forget_rolled_back(session.info, _PENDING, previous_transaction)


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _entries(session: Session, batch: int = 5000) -> Iterator[AuditEntry]:
    last = 0
    while True:
        rows = session.exec(
            select(AuditEntry).where(AuditEntry.seq > last).order_by(col(AuditEntry.seq)).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def verify(session: Session, *, max_problems: int = 50) -> VerifyReport:
    """Walk the whole chain and report every place it does not hold."""
    report = VerifyReport()
    expected_seq = 1
    prev_hash = GENESIS_HASH

    def problem(text: str) -> None:
        if len(report.problems) < max_problems:
            report.problems.append(text)

    for entry in _entries(session):
        report.checked += 1
        if entry.seq != expected_seq:
            problem(f"seq {expected_seq}: missing; the chain jumps to seq {entry.seq} (entry deleted?)")
        if entry.prev_hash != prev_hash:
            problem(
                f"seq {entry.seq}: prev_hash does not match the entry before it (entry inserted or deleted?)"
            )
        if compute_hash(entry) != entry.entry_hash:
            problem(f"seq {entry.seq}: contents do not match its hash (entry edited?)")
        expected_seq = entry.seq + 1
        prev_hash = entry.entry_hash

    head = session.exec(select(AuditHead).where(AuditHead.id == 1)).first()
    if head is None:
        problem("the chain head row is missing")
    elif head.seq != expected_seq - 1 or head.last_hash != prev_hash:
        problem(
            f"the chain head says the last entry is seq {head.seq}, but the log ends at seq {expected_seq - 1}"
            " (entries deleted from the end?)"
        )
    return report
