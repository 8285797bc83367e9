"""The bridge's print journal: states per (job id, attempt), crash safety, concurrency."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_bridge.journal import AMBIGUOUS_REASON, Journal, JournalState, job_title


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.sqlite3")
    yield j
    j.close()


def test_happy_path(journal: Journal) -> None:
    assert journal.get(1, 1) is None  # unknown = received, nothing written yet
    assert journal.begin_sending(1, 1, "receipt")
    assert journal.get(1, 1).state is JournalState.SENDING  # type: ignore[union-attr]
    journal.mark_sent(1, 1)
    assert journal.get(1, 1).state is JournalState.SENT  # type: ignore[union-attr]
    journal.mark_acked(1, 1, "done")
    entry = journal.get(1, 1)
    assert entry is not None
    assert entry.state is JournalState.ACKED and entry.acked_state == "done"
    assert entry.printer == "receipt" and entry.title == "madoguchi-job-1-1"


def test_sending_only_once(journal: Journal) -> None:
    assert journal.begin_sending(7, 1, "receipt")
    assert not journal.begin_sending(7, 1, "receipt")  # already under way
    journal.mark_sent(7, 1)
    assert not journal.begin_sending(7, 1, "receipt")


def test_attempts_are_separate(journal: Journal) -> None:
    assert journal.begin_sending(3, 1, "receipt")
    journal.mark_ambiguous(3, 1)
    assert journal.begin_sending(3, 2, "receipt")  # a staff retry is a new attempt
    assert journal.get(3, 1).state is JournalState.AMBIGUOUS  # type: ignore[union-attr]
    assert journal.get(3, 1).reason == AMBIGUOUS_REASON  # type: ignore[union-attr]


def test_printer_unavailable_goes_back_to_received(journal: Journal) -> None:
    assert journal.begin_sending(4, 1, "office")
    journal.back_to_received(4, 1, "用紙切れ")
    entry = journal.get(4, 1)
    assert entry is not None and entry.state is JournalState.RECEIVED and entry.reason == "用紙切れ"
    assert journal.begin_sending(4, 1, "office")


def test_cancel_only_before_sending(journal: Journal) -> None:
    assert journal.cancel(5, 1, "receipt")
    assert not journal.begin_sending(5, 1, "receipt")  # cancelled: must not print
    assert journal.begin_sending(6, 1, "receipt")
    assert not journal.cancel(6, 1)  # too late
    assert journal.get(6, 1).state is JournalState.SENDING  # type: ignore[union-attr]


def test_failed_is_final(journal: Journal) -> None:
    assert journal.mark_failed(8, 1, "receipt", "印刷データが正しくありません")
    assert not journal.begin_sending(8, 1, "receipt")
    assert journal.get(8, 1).reason == "印刷データが正しくありません"  # type: ignore[union-attr]


def test_cups_job_id_is_kept(journal: Journal) -> None:
    assert journal.begin_sending(9, 2, "office")
    journal.mark_sent(9, 2, cups_job_id=321)
    assert journal.get(9, 2).cups_job_id == 321  # type: ignore[union-attr]
    assert job_title(9, 2) == "madoguchi-job-9-2"


def test_counts_entries_and_meta(journal: Journal) -> None:
    journal.begin_sending(1, 1, "receipt")
    journal.begin_sending(2, 1, "receipt")
    journal.mark_sent(2, 1)
    assert journal.counts() == {"sending": 1, "sent": 1}
    assert [e.job_id for e in journal.entries(JournalState.SENT)] == [2]
    assert journal.get_meta("x") is None
    journal.set_meta("x", "1")
    journal.set_meta("x", "2")
    assert journal.get_meta("x") == "2"


def test_prune_keeps_unfinished(journal: Journal, tmp_path: Path) -> None:
    journal.begin_sending(1, 1, "receipt")
    journal.mark_sent(1, 1)
    journal.mark_acked(1, 1, "done")
    journal.begin_sending(2, 1, "receipt")  # sending: never forgotten
    journal.cancel(3, 1)
    raw = sqlite3.connect(tmp_path / "journal.sqlite3")
    raw.execute("UPDATE print_journal SET updated_at = 0")
    raw.commit()
    raw.close()
    assert journal.prune(older_than_days=1) == 2
    assert journal.get(1, 1) is None and journal.get(3, 1) is None
    assert journal.get(2, 1) is not None


def test_wal_mode_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal(path) as first:
        first.begin_sending(1, 1, "receipt")
    with Journal(path) as second:
        assert second.get(1, 1).state is JournalState.SENDING  # type: ignore[union-attr]
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_committed_sending_survives_sigkill(tmp_path: Path) -> None:
    """'sending' is committed before begin_sending returns: a process killed right after keeps it."""
    path = tmp_path / "j.sqlite3"
    code = (
        "import os, signal, sys\n"
        "from device_bridge.journal import Journal\n"
        f"j = Journal({str(path)!r})\n"
        "j.begin_sending(42, 1, 'receipt')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert result.returncode == -9
    with Journal(path) as journal:
        assert journal.get(42, 1).state is JournalState.SENDING  # type: ignore[union-attr]


def test_threads_race_for_one_job(journal: Journal) -> None:
    """Many threads start the same job: exactly one may send it."""
    winners: list[int] = []
    barrier = threading.Barrier(8)

    def contender(n: int) -> None:
        barrier.wait()
        if journal.begin_sending(99, 1, "receipt"):
            winners.append(n)

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1


def test_cancel_and_send_race(journal: Journal) -> None:
    """A cancel and the worker racing: either it is cancelled or it is sent, never both."""
    for job_id in range(1, 51):
        results: dict[str, bool] = {}
        barrier = threading.Barrier(2)

        def send(
            job_id: int = job_id, barrier: threading.Barrier = barrier, results: dict[str, bool] = results
        ) -> None:
            barrier.wait()
            results["send"] = journal.begin_sending(job_id, 1, "receipt")

        def cancel(
            job_id: int = job_id, barrier: threading.Barrier = barrier, results: dict[str, bool] = results
        ) -> None:
            barrier.wait()
            results["cancel"] = journal.cancel(job_id, 1, "receipt")

        threads = [threading.Thread(target=send), threading.Thread(target=cancel)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results["send"] != results["cancel"]
