"""The bridge's print journal: what happened to each (job id, attempt), kept across crashes.

The server redelivers every unfinished job whenever the bridge (re)connects, so the bridge sees
the same job many times. The journal is what makes a redelivery print nothing twice:

    received ──► sending ──► sent ──► acked            (the happy path)
        │           │          │                         sending: written (and committed) *before*
        │           │          └──► ambiguous            the bytes go to the printer; sent: the
        │           ├──► received   printer unavailable  moment the write returns (a printer that
        │           └──► ambiguous  died / error mid-way  then doesn't answer: ambiguous)
        ├──► failed      bad job data (never printed)
        └──► cancelled   cancelled or stale before printing

An entry that doesn't exist yet counts as ``received``: the hot path writes (and syncs) twice
per job, ``sending`` and ``sent``. On redelivery (look it up with :meth:`Journal.get`):

- ``sent`` / ``acked`` → report done again, print nothing;
- ``sending`` → the bridge died between starting and confirming. Office (CUPS) jobs: ask CUPS
  whether a job titled ``madoguchi-job-<id>-<attempt>`` exists; receipt jobs: unknowable, so
  ``ambiguous`` — never printed again, reported failed for staff to check and retry;
- ``received`` → nothing reached a printer: print;
- ``ambiguous`` / ``failed`` → report failed again; ``cancelled`` → ignore.

A staff retry is a new attempt, so a new row. SQLite in WAL mode with ``synchronous=FULL``: a
committed ``sending`` survives a crash and a power cut. Safe to use from several threads.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

__all__ = [
    "AMBIGUOUS_REASON",
    "Entry",
    "Journal",
    "JournalState",
]

AMBIGUOUS_REASON = "印刷が完了したか確認できません。印刷物を確認し、必要なら再印刷してください。"

_SCHEMA_VERSION = 1


class JournalState(StrEnum):
    RECEIVED = "received"
    SENDING = "sending"
    SENT = "sent"
    ACKED = "acked"
    AMBIGUOUS = "ambiguous"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Entry:
    job_id: int
    attempt: int
    printer: str
    state: JournalState
    reason: str = ""
    cups_job_id: int | None = None
    acked_state: str = ""
    updated_at: float = 0.0

    @property
    def title(self) -> str:
        return job_title(self.job_id, self.attempt)


def job_title(job_id: int, attempt: int) -> str:
    """The title a job carries on the printer side (the CUPS job name), unique per attempt."""
    return f"madoguchi-job-{job_id}-{attempt}"


class Journal:
    """``Journal(path)``; close it with :meth:`close` (or use it as a context manager)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS print_journal (
                job_id INTEGER NOT NULL,
                attempt INTEGER NOT NULL,
                printer TEXT NOT NULL,
                state TEXT NOT NULL,
                reason TEXT NOT NULL DEFAULT '',
                cups_job_id INTEGER,
                acked_state TEXT NOT NULL DEFAULT '',
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL,
                PRIMARY KEY (job_id, attempt)
            );
            CREATE INDEX IF NOT EXISTS ix_print_journal_updated ON print_journal (updated_at);
            CREATE TABLE IF NOT EXISTS bridge_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            """
        )
        self._db.execute(
            "INSERT OR IGNORE INTO bridge_meta (key, value) VALUES ('schema_version', ?)",
            (str(_SCHEMA_VERSION),),
        )

    # -- lifecycle --

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads --

    def get(self, job_id: int, attempt: int) -> Entry | None:
        with self._lock:
            row = self._db.execute(
                "SELECT job_id, attempt, printer, state, reason, cups_job_id, acked_state, updated_at"
                " FROM print_journal WHERE job_id = ? AND attempt = ?",
                (job_id, attempt),
            ).fetchone()
        return _entry(row) if row else None

    def entries(self, state: JournalState | None = None) -> list[Entry]:
        query = "SELECT job_id, attempt, printer, state, reason, cups_job_id, acked_state, updated_at FROM print_journal"
        args: tuple[str, ...] = ()
        if state is not None:
            query += " WHERE state = ?"
            args = (state.value,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY job_id, attempt", args).fetchall()
        return [_entry(row) for row in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM print_journal GROUP BY state").fetchall()
        return {str(state): int(count) for state, count in rows}

    # -- transitions --

    def receive(self, job_id: int, attempt: int, printer: str) -> Entry:
        """Record a delivered job (a no-op for one already known) and return its entry."""
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO print_journal (job_id, attempt, printer, state, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, attempt, printer, JournalState.RECEIVED.value, now, now),
            )
            row = self._db.execute(
                "SELECT job_id, attempt, printer, state, reason, cups_job_id, acked_state, updated_at"
                " FROM print_journal WHERE job_id = ? AND attempt = ?",
                (job_id, attempt),
            ).fetchone()
        return _entry(row)

    def begin_sending(self, job_id: int, attempt: int, printer: str) -> bool:
        """(new) / received → sending, committed before any byte goes to a printer.

        False when the job is no longer ``received`` (cancelled meanwhile, or already under way):
        then the caller must not print.
        """
        return self._upsert(job_id, attempt, printer, JournalState.SENDING)

    def mark_sent(self, job_id: int, attempt: int, cups_job_id: int | None = None) -> None:
        """sending → sent: the printer (or CUPS) took the job. Call right after the write returns."""
        with self._lock:
            self._db.execute(
                "UPDATE print_journal SET state = ?, reason = '', cups_job_id = COALESCE(?, cups_job_id),"
                " updated_at = ? WHERE job_id = ? AND attempt = ? AND state = ?",
                (
                    JournalState.SENT.value,
                    cups_job_id,
                    time.time(),
                    job_id,
                    attempt,
                    JournalState.SENDING.value,
                ),
            )

    def back_to_received(self, job_id: int, attempt: int, reason: str = "") -> None:
        """sending → received: the printer refused before taking anything (paper out, offline)."""
        self._move(job_id, attempt, JournalState.RECEIVED, reason=reason, from_states=(JournalState.SENDING,))

    def mark_ambiguous(self, job_id: int, attempt: int, reason: str = AMBIGUOUS_REASON) -> None:
        """sending (or sent, when the printer didn't confirm) → ambiguous: whether it printed
        can't be known; it is never printed again."""
        self._move(
            job_id,
            attempt,
            JournalState.AMBIGUOUS,
            reason=reason,
            from_states=(JournalState.SENDING, JournalState.SENT),
        )

    def mark_failed(self, job_id: int, attempt: int, printer: str, reason: str) -> bool:
        """(new) / received → failed: the job can't be printed (bad data); nothing reached a printer."""
        return self._upsert(job_id, attempt, printer, JournalState.FAILED, reason)

    def cancel(self, job_id: int, attempt: int, printer: str = "") -> bool:
        """(new) / received → cancelled. False when it is already under way or finished (too late)."""
        return self._upsert(job_id, attempt, printer, JournalState.CANCELLED)

    def mark_acked(self, job_id: int, attempt: int, reported: str) -> None:
        """The server acknowledged a final report (done/failed); ``sent`` becomes ``acked``."""
        with self._lock:
            self._db.execute(
                "UPDATE print_journal SET acked_state = ?, updated_at = ?,"
                " state = CASE WHEN state = ? THEN ? ELSE state END WHERE job_id = ? AND attempt = ?",
                (
                    reported,
                    time.time(),
                    JournalState.SENT.value,
                    JournalState.ACKED.value,
                    job_id,
                    attempt,
                ),
            )

    def set_cups_job(self, job_id: int, attempt: int, cups_job_id: int) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE print_journal SET cups_job_id = ?, updated_at = ? WHERE job_id = ? AND attempt = ?",
                (cups_job_id, time.time(), job_id, attempt),
            )

    def prune(self, older_than_days: float = 30.0) -> int:
        """Forget finished entries older than this; returns how many went.

        Unfinished ones (received, sending, sent) stay whatever their age: the server may still
        redeliver them.
        """
        cutoff = time.time() - older_than_days * 86400
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM print_journal WHERE updated_at < ? AND state IN (?, ?, ?, ?)",
                (
                    cutoff,
                    JournalState.ACKED.value,
                    JournalState.AMBIGUOUS.value,
                    JournalState.FAILED.value,
                    JournalState.CANCELLED.value,
                ),
            )
            return cursor.rowcount

    # -- meta (small key/value facts, e.g. the last SSE event id) --

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM bridge_meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO bridge_meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- internals --

    def _upsert(self, job_id: int, attempt: int, printer: str, to: JournalState, reason: str = "") -> bool:
        """Insert the entry in state ``to``, or move it there from ``received``; True if either."""
        now = time.time()
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO print_journal (job_id, attempt, printer, state, reason, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (job_id, attempt) DO UPDATE SET state = excluded.state, reason = excluded.reason,"
                " updated_at = excluded.updated_at WHERE print_journal.state = ?",
                (job_id, attempt, printer, to.value, reason, now, now, JournalState.RECEIVED.value),
            )
            return cursor.rowcount == 1

    def _move(
        self,
        job_id: int,
        attempt: int,
        to: JournalState,
        *,
        from_states: tuple[JournalState, ...],
        reason: str = "",
    ) -> bool:
        marks = ", ".join("?" for _ in from_states)
        with self._lock:
            cursor = self._db.execute(
                f"UPDATE print_journal SET state = ?, reason = ?, updated_at = ?"
                f" WHERE job_id = ? AND attempt = ? AND state IN ({marks})",
                (to.value, reason, time.time(), job_id, attempt, *(s.value for s in from_states)),
            )
            return cursor.rowcount == 1


def _entry(row: tuple[object, ...]) -> Entry:
    job_id, attempt, printer, state, reason, cups_job_id, acked_state, updated_at = row
    assert isinstance(job_id, int) and isinstance(attempt, int)
    return Entry(
        job_id=job_id,
        attempt=attempt,
        printer=str(printer),
        state=JournalState(str(state)),
        reason=str(reason or ""),
        cups_job_id=cups_job_id if isinstance(cups_job_id, int) else None,
        acked_state=str(acked_state or ""),
        updated_at=float(updated_at) if isinstance(updated_at, int | float) else 0.0,
    )
