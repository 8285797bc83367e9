"""The device bridge end to end: a fake server (tests/bridge_fake_server.py, uvicorn in a thread),
the simulated ESC/POS printer on another port, and the bridge on its own asyncio loop.

Also: the event-stream parser, the settings file, the signal light, and one run against the real
server (app.web) so the two sides of the device API are held to the same contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from device_bridge.client import MESSAGE_BAD_TOKEN, Bridge, PrintOrder, SseMessage, SseParser, job_key
from device_bridge.config import BridgeConfig, ConfigError, load_config
from device_bridge.journal import AMBIGUOUS_REASON, Journal, JournalState
from device_bridge.light import SerialLight, SimulatedLight, parse_bytes
from device_bridge.simulators.escpos_printer import EscposPrinterSimulator
from tests.bridge_fake_server import FakeServer, serve_in_thread

TOKEN = "mdg_bridge-test-token-5f2c9a"


# --- harness -----------------------------------------------------------------------------------


@dataclass
class Env:
    url: str
    fake: FakeServer
    sim: EscposPrinterSimulator
    http: httpx.Client
    tmp: Path

    def add_jobs(self, count: int = 1, **fields: Any) -> list[int]:
        response = self.http.post("/test/jobs", json={"count": count, **fields})
        response.raise_for_status()
        ids: list[int] = response.json()["ids"]
        return ids

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = self.http.get("/test/state").json()
        return data

    def job(self, job_id: int) -> dict[str, Any]:
        return next(job for job in self.state()["jobs"] if job["id"] == job_id)

    def printed(self) -> Counter[str]:
        """How often each QR payload came out of the printer."""
        return Counter(payload for receipt in self.sim.receipts for payload in receipt.qr)

    def reports(self, job_id: int) -> list[dict[str, Any]]:
        return [r for r in self.state()["reports"] if r["job_id"] == job_id]


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.03)


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while True:
        left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
        if not left:
            return
        assert time.monotonic() < deadline, f"threads left running: {left}"
        time.sleep(0.05)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with (
        EscposPrinterSimulator(port=0) as sim,
        serve_in_thread(tmp_path / "fake.db", TOKEN, ping_seconds=0.5) as (url, fake),
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        yield Env(url, fake, sim, http, tmp_path)


def config_for(env: Env, **overrides: Any) -> BridgeConfig:
    data: dict[str, Any] = {
        "server_url": env.url,
        "token": TOKEN,
        "data_dir": str(env.tmp / "bridge"),
        "printers": {"receipt": env.sim.driver_config(qr="native", text="kanji", timeout=2)},
        "heartbeat_seconds": 0.3,
        "retry_seconds": 0.1,
    }
    data.update(overrides)
    return BridgeConfig.from_dict(data)


class BridgeThread:
    """A bridge on its own event loop in a thread (as the process would run it)."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="bridge", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self.stop_event = asyncio.Event()
            await self.bridge.run(self.stop_event)

        try:
            self.loop.run_until_complete(main())
        except BaseException as exc:
            self.error = exc
        finally:
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    def start(self) -> None:
        self.thread.start()
        wait_for(lambda: self.stop_event is not None, 5, "the bridge loop")

    def stop(self) -> None:
        assert self.stop_event is not None
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(20)
        assert not self.thread.is_alive(), "the bridge did not stop"
        if self.error is not None:
            raise self.error


@contextlib.contextmanager
def running(config: BridgeConfig, **kwargs: Any) -> Iterator[Bridge]:
    kwargs.setdefault("unauthorized_retry_seconds", 0.3)
    kwargs.setdefault("max_backoff_seconds", 0.5)
    bridge = Bridge(config, **kwargs)
    runner = BridgeThread(bridge)
    runner.start()
    try:
        yield bridge
    finally:
        runner.stop()


def job_states(env: Env, ids: list[int]) -> list[str]:
    jobs = {job["id"]: job for job in env.state()["jobs"]}
    return [jobs[i]["state"] for i in ids]


# --- printing ----------------------------------------------------------------------------------


def test_jobs_print_once_and_are_acked(env: Env) -> None:
    ids = env.add_jobs(5)  # queued before the bridge connects: delivered at connect
    with running(config_for(env)) as bridge:
        wait_for(lambda: job_states(env, ids) == ["done"] * 5, what="5 jobs done")
        more = env.add_jobs(3)  # live
        wait_for(lambda: job_states(env, more) == ["done"] * 3, what="3 live jobs done")
        journal = bridge.journal
        assert journal is not None
        wait_for(lambda: journal.counts() == {"acked": 8}, what="journal acked")
    printed = env.printed()
    assert printed == Counter({f"madoguchi-job:{i}": 1 for i in ids + more})
    receipt = env.sim.receipts[0]
    assert receipt.texts[:2] == ["受付票", f"印刷ジョブ {ids[0]}"]
    done_reports = [r for r in env.state()["reports"] if r["state"] == "done"]
    assert sorted(r["job_id"] for r in done_reports) == sorted(ids + more)
    assert all(r["status_code"] == 200 for r in done_reports)


def test_redelivery_after_reconnect_prints_nothing_twice(env: Env) -> None:
    ids = env.add_jobs(4)
    with running(config_for(env)):
        wait_for(lambda: job_states(env, ids) == ["done"] * 4, what="jobs done")
        assert len(env.sim.receipts) == 4
        # The server "loses" the acks and the connection drops: every job comes again.
        env.http.post("/test/forget").raise_for_status()
        connects = len(env.state()["connects"])
        env.http.post("/test/disconnect").raise_for_status()
        wait_for(lambda: len(env.state()["connects"]) > connects, what="a reconnect")
        wait_for(lambda: job_states(env, ids) == ["done"] * 4, what="done again")
        time.sleep(0.3)
    assert len(env.sim.receipts) == 4
    assert max(env.printed().values()) == 1
    state = env.state()
    assert all(job["deliveries"] >= 2 for job in state["jobs"])
    # A live job carries an event id, sent back as Last-Event-ID after the reconnect.
    assert state["connects"][0]["last_event_id"] is None


def test_last_event_id_is_sent_on_reconnect(env: Env) -> None:
    with running(config_for(env)):
        wait_for(lambda: env.state()["streams"] == 1, what="connected")
        env.add_jobs(1)
        wait_for(lambda: len(env.sim.receipts) == 1, what="printed")
        env.http.post("/test/disconnect").raise_for_status()
        wait_for(lambda: len(env.state()["connects"]) >= 2, what="a reconnect")
    last_ids = [c["last_event_id"] for c in env.state()["connects"]]
    assert last_ids[0] is None and last_ids[1] is not None and last_ids[1].isdigit()


def test_bridge_restart_redelivers_without_reprinting(env: Env) -> None:
    ids = env.add_jobs(3)
    with running(config_for(env)):
        wait_for(lambda: job_states(env, ids) == ["done"] * 3, what="jobs done")
    env.http.post("/test/forget").raise_for_status()
    with running(config_for(env)):
        wait_for(lambda: len(env.reports(ids[-1])) >= 2, what="reported again")
        wait_for(lambda: job_states(env, ids) == ["done"] * 3, what="done again")
    assert len(env.sim.receipts) == 3


def test_died_while_sending_receipt_is_never_printed_again(env: Env) -> None:
    [job_id] = env.add_jobs(1)
    # The journal as a crash between "sending" and "sent" left it.
    with Journal(env.tmp / "bridge" / "journal.sqlite3") as journal:
        assert journal.begin_sending(job_id, 1, "receipt")
    with running(config_for(env)) as bridge:
        wait_for(lambda: env.job(job_id)["state"] == "failed", what="reported failed")
        assert bridge.journal is not None
        entry = bridge.journal.get(job_id, 1)
        assert entry is not None and entry.state is JournalState.AMBIGUOUS
        assert env.job(job_id)["reason"] == AMBIGUOUS_REASON
        # Staff check the printer and retry: a new attempt prints.
        env.http.post(f"/test/jobs/{job_id}/retry").raise_for_status()
        wait_for(lambda: env.job(job_id)["state"] == "done", what="retry printed")
        assert env.job(job_id)["attempt"] == 2
    assert env.printed() == Counter({f"madoguchi-job:{job_id}": 1})


def test_bad_receipt_payload_fails_with_a_reason(env: Env) -> None:
    [job_id] = env.add_jobs(1, payload={"receipt": {"title": 12}})
    [other] = env.add_jobs(1, payload={"no": "receipt"})
    with running(config_for(env)):
        wait_for(lambda: job_states(env, [job_id, other]) == ["failed", "failed"], what="failed")
    assert env.job(job_id)["reason"].startswith("印刷データが正しくありません")
    assert env.sim.receipts == []


def test_job_for_a_printer_this_terminal_lacks_fails(env: Env) -> None:
    [job_id] = env.add_jobs(1, printer="office", document_b64="JVBERi0xLjQK")
    with running(config_for(env)):
        wait_for(lambda: env.job(job_id)["state"] == "failed", what="failed")
    assert env.job(job_id)["reason"] == "この端末には事務用プリンターが設定されていません。"


# --- printer trouble, cancels ------------------------------------------------------------------


def test_paper_out_waits_reports_reason_then_prints(env: Env) -> None:
    env.sim.set_paper_out(True)
    [job_id] = env.add_jobs(1)
    with running(config_for(env)) as bridge:
        wait_for(lambda: env.job(job_id)["reason"] == "用紙切れ", what="用紙切れ reported")
        assert env.job(job_id)["state"] == "delivered"
        wait_for(
            lambda: bridge.last_status.get("printers", {}).get("receipt", {}).get("paper_out"), what="status"
        )
        assert bridge.last_status["printers"]["receipt"]["reason"] == "用紙切れ"
        time.sleep(0.4)  # several retries while the paper is out
        assert env.sim.receipts == []
        assert bridge.journal is not None
        assert bridge.journal.get(job_id, 1) is None  # refused before "sending": nothing journalled
        env.sim.set_paper_out(False)
        wait_for(lambda: env.job(job_id)["state"] == "done", what="printed after paper is back")
    assert env.printed() == Counter({f"madoguchi-job:{job_id}": 1})
    delivered = [r for r in env.reports(job_id) if r["state"] == "delivered"]
    assert delivered and {r["reason"] for r in delivered} == {"用紙切れ"}


def test_cover_open_then_paper_out_reports_each_reason(env: Env) -> None:
    env.sim.set_cover_open(True)
    [job_id] = env.add_jobs(1)
    with running(config_for(env)):
        wait_for(lambda: env.job(job_id)["reason"] == "カバーが開いています", what="cover reported")
        env.sim.set_cover_open(False)
        env.sim.set_paper_out(True)
        wait_for(lambda: env.job(job_id)["reason"] == "用紙切れ", what="paper reported")
        env.sim.set_paper_out(False)
        wait_for(lambda: env.job(job_id)["state"] == "done", what="printed")
    assert len(env.sim.receipts) == 1


def test_printer_offline_is_reported_and_retried(env: Env, tmp_path: Path) -> None:
    [job_id] = env.add_jobs(1)
    # Nothing listens on this port yet: "can't connect".
    with EscposPrinterSimulator(port=0) as spare:
        port = spare.port
    receipt = env.sim.driver_config(qr="native", text="kanji", timeout=1)
    receipt["port"] = port
    with running(config_for(env, printers={"receipt": receipt})):
        wait_for(lambda: "接続できません" in env.job(job_id)["reason"], what="offline reported")
        assert env.job(job_id)["state"] == "delivered"
        with EscposPrinterSimulator(port=port) as late:
            wait_for(lambda: env.job(job_id)["state"] == "done", what="printed once the printer is up")
            assert [r.qr for r in late.receipts] == [[f"madoguchi-job:{job_id}"]]


def test_cancel_before_printing_drops_the_job(env: Env) -> None:
    env.sim.set_paper_out(True)
    first, second = env.add_jobs(2)
    with running(config_for(env)) as bridge:
        wait_for(lambda: env.job(first)["reason"] == "用紙切れ", what="waiting for paper")
        env.http.post(f"/test/jobs/{first}/cancel").raise_for_status()  # the one at the printer
        env.http.post(f"/test/jobs/{second}/cancel").raise_for_status()  # the one queued behind it
        assert bridge.journal is not None
        journal = bridge.journal
        wait_for(
            lambda: (
                [journal.get(i, 1) and journal.get(i, 1).state for i in (first, second)]  # type: ignore[union-attr]
                == [JournalState.CANCELLED, JournalState.CANCELLED]
            ),
            what="both cancelled in the journal",
        )
        env.sim.set_paper_out(False)
        [third] = env.add_jobs(1)
        wait_for(lambda: env.job(third)["state"] == "done", what="the next job prints")
    assert env.printed() == Counter({f"madoguchi-job:{third}": 1})
    assert job_states(env, [first, second]) == ["cancelled", "cancelled"]


def test_stale_attempt_is_dropped(env: Env) -> None:
    """A waiting job is checked with the server before each retry: 409 → not printed."""
    env.sim.set_paper_out(True)
    [job_id] = env.add_jobs(1)
    with running(config_for(env)):
        wait_for(lambda: env.job(job_id)["reason"] == "用紙切れ", what="waiting")
        # The cancel goes out while the bridge is not listening (stream silenced): it's lost.
        env.http.post("/test/silence", json={"on": True}).raise_for_status()
        env.http.post(f"/test/jobs/{job_id}/cancel").raise_for_status()
        env.sim.set_paper_out(False)
        wait_for(lambda: any(r["status_code"] == 409 for r in env.reports(job_id)), what="a 409")
        env.http.post("/test/silence", json={"on": False}).raise_for_status()
        time.sleep(0.3)
    assert env.sim.receipts == []


# --- office printing through CUPS ----------------------------------------------------------------

TINY_PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
)


@pytest.fixture
def cups_queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A fresh queue per test: job titles repeat across tests (each fake server starts at job 1)."""
    from device_bridge.simulators import office_printer

    if office_printer.missing_tools():
        pytest.skip("CUPS is not installed (apt-get install cups cups-client)")
    if not office_printer.is_root():
        pytest.skip("setting up a CUPS queue needs root (scripts/test runs as root)")
    import os

    queue = f"madoguchi-bridge-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    sim = office_printer.setup(queue, tmp_path_factory.mktemp("office-print"))
    yield sim
    office_printer.teardown(queue)


def office_config(env: Env, queue: str) -> BridgeConfig:
    return config_for(env, printers={"office": {"queue": queue, "duplex": "long", "tray": "tray-1"}})


def cups_titles(queue: Any) -> list[str]:
    import json

    return [json.loads(p.read_text())["title"] for p in sorted(queue.folder.glob("job-*.json"))]


@pytest.mark.slow
def test_office_job_goes_to_cups_with_its_title(env: Env, cups_queue: Any) -> None:
    import base64

    [job_id] = env.add_jobs(
        1,
        printer="office",
        copies=2,
        options={"duplex": "short"},
        document_b64=base64.b64encode(TINY_PDF).decode(),
    )
    with running(office_config(env, cups_queue.queue)) as bridge:
        wait_for(lambda: env.job(job_id)["state"] == "done", timeout=30, what="office job done")
        assert bridge.journal is not None
        entry = bridge.journal.get(job_id, 1)
        assert entry is not None and entry.cups_job_id is not None
        info = cups_queue.wait_for_job(entry.cups_job_id)
        wait_for(lambda: env.state()["heartbeats"], what="a heartbeat")
        office = env.state()["heartbeats"][-1]["printers"]["office"]
    assert info["title"] == f"madoguchi-job-{job_id}-1"
    assert info["copies"] == 2 and "sides=two-sided-short-edge" in str(info["options"])
    assert "media-source=tray-1" in str(info["options"])
    # "printing" only while CUPS has not finished it at the bridge's first look (~50 ms)
    assert [r["state"] for r in env.reports(job_id)] in (["printing", "done"], ["done"])
    assert office["online"] is True and office["reason"] == ""


@pytest.mark.slow
def test_office_sending_is_resolved_by_asking_cups(env: Env, cups_queue: Any) -> None:
    """Died between the Print-Job and its answer: the job is in CUPS, so it is done, not printed again."""
    import base64
    import os
    import subprocess

    pdf = base64.b64encode(TINY_PDF).decode()
    taken, not_taken = env.add_jobs(2, printer="office", document_b64=pdf)
    with Journal(env.tmp / "bridge" / "journal.sqlite3") as journal:
        assert journal.begin_sending(taken, 1, "office")
        assert journal.begin_sending(not_taken, 1, "office")
    before = len(cups_titles(cups_queue))  # counted before lp: its job may land at once
    subprocess.run(
        ["lp", "-d", cups_queue.queue, "-t", f"madoguchi-job-{taken}-1", "--"],
        input=TINY_PDF,
        check=True,
        capture_output=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    with running(office_config(env, cups_queue.queue)):
        wait_for(
            lambda: job_states(env, [taken, not_taken]) == ["done", "done"], timeout=30, what="both done"
        )
        wait_for(lambda: len(cups_titles(cups_queue)) == before + 1 + 1, timeout=30, what="CUPS output")
    titles = cups_titles(cups_queue)
    assert titles.count(f"madoguchi-job-{taken}-1") == 1  # found in CUPS: not sent again
    assert titles.count(f"madoguchi-job-{not_taken}-1") == 1  # not in CUPS: printed now


@pytest.mark.slow
def test_office_queue_stopped_waits_with_reason(env: Env, cups_queue: Any) -> None:
    import base64
    import subprocess

    subprocess.run(["cupsdisable", cups_queue.queue], check=True)
    try:
        [job_id] = env.add_jobs(1, printer="office", document_b64=base64.b64encode(TINY_PDF).decode())
        with running(office_config(env, cups_queue.queue)):
            wait_for(lambda: "停止" in env.job(job_id)["reason"], timeout=30, what="stopped reported")
            assert env.job(job_id)["state"] == "delivered"
            subprocess.run(["cupsenable", cups_queue.queue], check=True)
            wait_for(lambda: env.job(job_id)["state"] == "done", timeout=30, what="printed once enabled")
    finally:
        subprocess.run(["cupsenable", cups_queue.queue], check=True)


# --- the connection ------------------------------------------------------------------------------


def test_invalid_token_is_logged_and_retried(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    env.http.post("/test/token", json={"token": "another-token"}).raise_for_status()
    [job_id] = env.add_jobs(1)
    with running(config_for(env)) as bridge:
        wait_for(lambda: len(env.state()["connects"]) >= 2, what="retries")
        assert MESSAGE_BAD_TOKEN in caplog.text
        assert caplog.text.count(MESSAGE_BAD_TOKEN) == 1  # once, not on every retry
        assert env.sim.receipts == [] and not bridge.connected
        env.http.post("/test/token", json={"token": TOKEN}).raise_for_status()
        wait_for(lambda: env.job(job_id)["state"] == "done", what="printed with the good token")
    assert TOKEN not in caplog.text
    assert [c["authorized"] for c in env.state()["connects"]][-1] == 1


def test_revoked_while_connected(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    with running(config_for(env)) as bridge:
        wait_for(lambda: bridge.connected, what="connected")
        env.http.post("/test/token", json={"token": "rotated"}).raise_for_status()
        wait_for(lambda: MESSAGE_BAD_TOKEN in caplog.text, what="the token message")
        assert not bridge.connected


def test_silent_connection_is_dropped_and_reopened(env: Env) -> None:
    with running(config_for(env, stream_timeout=1)) as bridge:
        wait_for(lambda: bridge.connected, what="connected")
        env.http.post("/test/silence", json={"on": True}).raise_for_status()
        connects = len(env.state()["connects"])
        wait_for(
            lambda: len(env.state()["connects"]) > connects, timeout=10, what="a reconnect after silence"
        )
        env.http.post("/test/silence", json={"on": False}).raise_for_status()
        [job_id] = env.add_jobs(1)
        wait_for(lambda: env.job(job_id)["state"] == "done", what="printed on the new connection")


def test_server_down_then_up(tmp_path: Path) -> None:
    """The bridge starts before the server, keeps trying, and works once it is up."""
    port = 0
    with EscposPrinterSimulator(port=0) as sim:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        config = BridgeConfig.from_dict(
            {
                "server_url": url,
                "token": TOKEN,
                "data_dir": str(tmp_path / "bridge"),
                "printers": {"receipt": sim.driver_config(qr="native", text="kanji")},
                "heartbeat_seconds": 0.3,
            }
        )
        with running(config) as bridge:
            time.sleep(0.8)
            assert not bridge.connected
            with (
                serve_in_thread(tmp_path / "fake.db", TOKEN, ping_seconds=0.5, port=port) as (_, _fake),
                httpx.Client(base_url=url) as http,
            ):
                http.post("/test/jobs", json={"count": 2}).raise_for_status()
                wait_for(lambda: http.get("/test/summary").json()["counts"] == {"done": 2}, what="done")
        assert len(sim.receipts) == 2


# --- heartbeat, card reader, light ---------------------------------------------------------------


@dataclass
class FakeWatcher:
    callback: Callable[[Any], None]
    name_filter: str | None
    reader: str | None = "Fake Reader 00 00"
    stopped: bool = False

    def stop(self) -> None:
        self.stopped = True


def test_heartbeat_and_card_events(env: Env) -> None:
    from device_bridge.drivers.pcsc import CardInserted, CardRemoved

    watchers: list[FakeWatcher] = []

    def factory(callback: Callable[[Any], None], name_filter: str | None) -> FakeWatcher:
        watchers.append(FakeWatcher(callback, name_filter))
        return watchers[-1]

    config = config_for(env, card_reader={"enabled": True, "reader": "Fake"})
    with running(config, card_watcher_factory=factory):
        wait_for(lambda: env.state()["heartbeats"], what="a heartbeat")
        status = env.state()["heartbeats"][-1]
        assert status["printers"]["receipt"] == {
            "online": True,
            "paper_out": False,
            "cover_open": False,
            "reason": "",
        }
        assert status["card_reader"] == {"present": True, "card": False, "reason": ""}
        assert status["version"]
        [watcher] = watchers
        assert watcher.name_filter == "Fake"
        watcher.callback(CardInserted("Fake Reader 00 00", bytes.fromhex("3b8f80")))
        watcher.callback(CardRemoved("Fake Reader 00 00"))
        wait_for(lambda: len(env.state()["events"]) == 2, what="card events")
        watcher.callback(CardInserted("Fake Reader 00 00", b"\x3b"))
        wait_for(lambda: env.state()["heartbeats"][-1]["card_reader"]["card"], what="card in the status")
        env.sim.set_paper_out(True)
        wait_for(lambda: env.state()["heartbeats"][-1]["printers"]["receipt"]["paper_out"], what="paper out")
        assert env.state()["heartbeats"][-1]["printers"]["receipt"]["reason"] == "用紙切れ"
        assert env.state()["heartbeats"][-1]["printers"]["receipt"]["online"] is False
    events = env.state()["events"]
    assert events[0] == {"type": "card_inserted", "data": {"reader": "Fake Reader 00 00", "atr": "3b8f80"}}
    assert events[1] == {"type": "card_removed", "data": {"reader": "Fake Reader 00 00"}}
    assert watchers[0].stopped


@pytest.mark.pcsc
def test_card_events_through_pcscd(env: Env) -> None:
    """The real PresenceWatcher: pcscd + vpcd with a simulated card put in and taken out."""
    from device_bridge.simulators.mynumber_card import OtherCard
    from device_bridge.simulators.vpcd import (
        VPCD_PORT,
        PcscdUnavailable,
        VpcdLink,
        running_pcscd,
        vpcd_reader_name,
    )

    slot = 1
    reader = vpcd_reader_name(slot)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(running_pcscd())
        except PcscdUnavailable as error:
            pytest.skip(f"pcscd with vpcd not available: {error}")
        link = stack.enter_context(VpcdLink(port=VPCD_PORT + slot))
        with running(config_for(env, card_reader={"enabled": True, "reader": reader})):
            wait_for(lambda: env.state()["heartbeats"], what="a heartbeat")
            wait_for(lambda: env.state()["heartbeats"][-1]["card_reader"]["present"], what="reader present")
            link.insert(OtherCard())
            wait_for(lambda: len(env.state()["events"]) >= 1, what="card_inserted")
            wait_for(lambda: env.state()["heartbeats"][-1]["card_reader"]["card"], what="card in the status")
            link.remove()
            wait_for(lambda: len(env.state()["events"]) >= 2, what="card_removed")
    events = env.state()["events"]
    assert events[0] == {"type": "card_inserted", "data": {"reader": reader, "atr": OtherCard.atr.hex()}}
    assert events[1] == {"type": "card_removed", "data": {"reader": reader}}
    assert not any(t.name == "pcsc-presence" for t in threading.enumerate())


def test_card_reader_without_pcscd_is_a_status_reason(env: Env) -> None:
    def broken(callback: Callable[[Any], None], name_filter: str | None) -> FakeWatcher:
        raise OSError("libpcsclite.so.1: cannot open shared object file")

    with running(config_for(env, card_reader={"enabled": True}), card_watcher_factory=broken):
        wait_for(lambda: env.state()["heartbeats"], what="a heartbeat")
        reader = env.state()["heartbeats"][-1]["card_reader"]
        assert reader["present"] is False and reader["reason"]


def test_printer_unreachable_in_heartbeat(env: Env) -> None:
    receipt = env.sim.driver_config(timeout=0.5)
    receipt["port"] = 1  # nothing there
    with running(config_for(env, printers={"receipt": receipt})):
        wait_for(lambda: env.state()["heartbeats"], what="a heartbeat")
        status = env.state()["heartbeats"][-1]["printers"]["receipt"]
        assert status["online"] is False and "接続できません" in status["reason"]


def test_signal_light_commands(env: Env, tmp_path: Path) -> None:
    state_file = tmp_path / "light.txt"
    config = config_for(env, signal_light={"kind": "simulated", "state_file": str(state_file)})
    with running(config) as bridge:
        wait_for(lambda: bridge.connected, what="connected")
        env.http.post("/test/command", json={"command": "light", "state": "on"}).raise_for_status()
        wait_for(lambda: state_file.exists() and state_file.read_text() == "on", what="light on")
        assert isinstance(bridge.light, SimulatedLight) and bridge.light.state is True
        env.http.post("/test/command", json={"command": "light", "state": "off"}).raise_for_status()
        env.http.post("/test/command", json={"command": "light", "state": "blink"}).raise_for_status()
        env.http.post("/test/command", json={"command": "self-destruct"}).raise_for_status()
        wait_for(lambda: state_file.read_text() == "off", what="light off")
        assert [on for _, on in bridge.light.history] == [True, False]


def test_card_read_face_command_answers_the_server(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``card.read_face``: the reader named in the config, the PIN once, the answer posted to
    /devices/api/commands/{id}; neither the PIN nor the face is logged."""
    from device_bridge.simulators.jpki_ca import Holder, JpkiDemoCa
    from device_bridge.simulators.mynumber_card import CardProfile, DirectTransport, SimulatedMyNumberCard

    ca = JpkiDemoCa.load_or_create(tmp_path / "ca")
    holder = Holder("佐藤　次郎", "山形県酒田市中町一丁目４－１０", date(1962, 1, 9), "1")
    card = SimulatedMyNumberCard(
        CardProfile.issued(ca, "BR1", holder, "3C4D5E6F", "3C4D5E70", kenhojo_pin="7391")
    )
    card.power_on()
    readers: list[str | None] = []

    def read_face_card(reader_filter: str | None, pin: str) -> dict[str, Any]:
        from device_bridge.drivers.mynumber import MyNumberCard
        from device_bridge.kiosk_card import read_face_with

        readers.append(reader_filter)
        return read_face_with(MyNumberCard(DirectTransport(card)), pin)

    monkeypatch.setattr("device_bridge.kiosk_card.read_face_card", read_face_card)
    caplog.set_level(logging.DEBUG)
    config = config_for(env, card_reader={"enabled": True, "reader": "Fake"})
    with running(
        config, card_watcher_factory=lambda callback, name_filter: FakeWatcher(callback, name_filter)
    ) as bridge:
        wait_for(lambda: bridge.connected, what="connected")
        for command_id, pin in (("c1", "7391"), ("c2", "0000")):
            env.http.post(
                "/test/command", json={"command": "card.read_face", "command_id": command_id, "pin": pin}
            ).raise_for_status()
        wait_for(lambda: len(env.state()["command_answers"]) == 2, what="two answers")
    answers = {a["command_id"]: a["answer"] for a in env.state()["command_answers"]}
    assert answers["c1"]["ok"] is True and answers["c1"]["face"]["name"] == "佐藤　次郎"
    assert answers["c1"]["auth_certificate"]
    assert answers["c2"] == {"ok": False, "error": "wrong_pin", "tries_left": 2}
    assert readers == ["Fake", "Fake"]
    # The bridge's own log lines (httpx's carry ports, which may hold any four digits).
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("device_bridge"))
    assert "card face read c1: ok" in logged and "card face read c2: wrong_pin" in logged
    assert "7391" not in logged and "0000" not in logged and "佐藤" not in logged and "酒田" not in logged


def test_serial_light_writes_configured_bytes(tmp_path: Path) -> None:
    import os
    import pty

    controller, device = pty.openpty()
    try:
        light = SerialLight(os.ttyname(device), parse_bytes("A0 01 01 A2"), parse_bytes("a00100a1"))
        light.set(True)
        light.set(False)
        got = b""
        deadline = time.monotonic() + 5
        while len(got) < 8 and time.monotonic() < deadline:
            got += os.read(controller, 64)
        assert got == bytes.fromhex("A00101A2A00100A1")
        assert light.state is False
        light.close()
    finally:
        os.close(controller)
        os.close(device)


def test_serial_light_missing_device_is_unavailable() -> None:
    from device_bridge.light import LightUnavailable

    light = SerialLight("/dev/does-not-exist", b"\x01", b"\x00")
    with pytest.raises(LightUnavailable, match="表示灯"):
        light.set(True)


# --- graceful stop, the process ----------------------------------------------------------------


def test_sigterm_stops_the_process_cleanly(env: Env, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    receipt = env.sim.driver_config(qr="native", text="kanji")
    toml = tmp_path / "bridge.toml"
    toml.write_text(
        f'server_url = "{env.url}"\ntoken_file = "token.txt"\ndata_dir = "data"\nheartbeat_seconds = 0.5\n'
        f'[printers.receipt]\nkind = "network"\nhost = "127.0.0.1"\nport = {receipt["port"]}\n'
        'qr = "native"\ntext = "kanji"\n',
        encoding="utf-8",
    )
    (tmp_path / "token.txt").write_text(TOKEN + "\n", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "device_bridge", "--config", str(toml)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        [job_id] = env.add_jobs(1)
        wait_for(lambda: env.job(job_id)["state"] == "done", what="printed by the process")
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert "bridge stopped" in output
    assert TOKEN not in output
    assert (tmp_path / "data" / "journal.sqlite3").exists()


def test_bad_config_exits_2_with_the_key(tmp_path: Path) -> None:
    import subprocess
    import sys

    toml = tmp_path / "bridge.toml"
    toml.write_text('server_url = "ftp://x"\ntoken = "t"\ndata_dir = "d"\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "device_bridge", "--config", str(toml)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "server_url" in result.stderr and "設定エラー" in result.stderr


# --- the real server ---------------------------------------------------------------------------


def test_against_the_real_server(live_server: Any, tmp_path: Path) -> None:
    """The bridge prints a job enqueued by app.services.devices and the server records it done."""
    from sse_starlette.sse import AppStatus

    from app.domain.devices import PrinterKind, PrintJobState
    from app.domain.registry import DeviceKind, SiteKind
    from app.models import Location, Municipality, PrintJob, Site
    from app.services import devices as device_service
    from app.services.audit import Actor

    AppStatus.should_exit = False
    db = live_server.db
    with db.write_session() as session:
        town = Municipality(code="993417", name="青葉台町")
        session.add(town)
        session.flush()
        site = Site(municipality_id=town.id, name="本庁", kind=SiteKind.MAIN_OFFICE)
        session.add(site)
        session.flush()
        location = Location(site_id=site.id, code="01", name="住民課窓口")
        session.add(location)
        session.flush()
        device, token = device_service.register(
            session,
            Actor(type="staff", id="1", name="admin"),
            location_id=location.id,
            code="K01",
            name="キオスク1",
            kind=DeviceKind.KIOSK,
        )
        session.commit()
        device_id = device.id

    def enqueue(title: str) -> int:
        with db.write_session() as session:
            job = device_service.enqueue(
                session,
                device_id=device_id,
                printer=PrinterKind.RECEIPT,
                title=title,
                payload={"receipt": {"title": title, "lines": ["テスト"], "qr": f"real:{title}"}},
            )
            session.commit()
            assert job.id is not None
            return job.id

    def state_of(job_id: int) -> PrintJobState:
        with db.session() as session:
            job = session.get(PrintJob, job_id)
            assert job is not None
            return job.state

    first = enqueue("A-001")  # waiting before the bridge connects
    with EscposPrinterSimulator(port=0) as sim:
        config = BridgeConfig.from_dict(
            {
                "server_url": live_server.url,
                "token": token,
                "data_dir": str(tmp_path / "bridge"),
                "printers": {"receipt": sim.driver_config(qr="native", text="kanji")},
                "heartbeat_seconds": 0.3,
            }
        )
        with running(config) as bridge:
            wait_for(lambda: state_of(first) == PrintJobState.DONE, what="the waiting job done")
            wait_for(lambda: bridge.connected, what="connected")
            second = enqueue("A-002")  # live, over the stream
            wait_for(lambda: state_of(second) == PrintJobState.DONE, what="the live job done")
            sim.set_paper_out(True)
            third = enqueue("A-003")

            def waiting_reason() -> str:
                with db.session() as session:
                    job = session.get(PrintJob, third)
                    return job.reason if job else ""

            wait_for(lambda: waiting_reason() == "用紙切れ", what="用紙切れ on the server")
            with db.write_session() as session:
                device_service.cancel(session, Actor(type="staff", id="1", name="admin"), third)
                session.commit()
            time.sleep(0.5)
            sim.set_paper_out(False)
            time.sleep(0.5)
            with db.session() as session:
                from app.models import Device

                row = session.get(Device, device_id)
                assert row is not None and row.status["printers"]["receipt"]["online"] in (True, False)
        assert [r.qr for r in sim.receipts] == [["real:A-001"], ["real:A-002"]]
        assert state_of(third) == PrintJobState.CANCELLED


# --- pieces ------------------------------------------------------------------------------------


def test_sse_parser() -> None:
    parser = SseParser()
    lines = [
        ": ping",
        "",
        "event: hello",
        'data: {"device": {}}',
        "",
        "id: 41",
        "event: job",
        'data: {"a":',
        "data: 1}",
        "",
        "data:no-space",
        "",
        "id",
        "retry: 100",
        "",
    ]
    messages = [m for m in (parser.feed(line) for line in lines) if m is not None]
    assert messages == [
        SseMessage("hello", '{"device": {}}', None),
        SseMessage("job", '{"a":\n1}', "41"),
        SseMessage("message", "no-space", None),
    ]
    assert parser.last_event_id is None  # an empty id resets it
    parser.feed("id: 7")
    parser.feed("data: x")
    parser.reset()
    assert parser.feed("") is None and parser.last_event_id == "7"


def test_print_order_parsing() -> None:
    order = PrintOrder.parse(
        {"id": 3, "attempt": 2, "printer": "receipt", "title": "t", "payload": {"receipt": {}}, "copies": 1}
    )
    assert order.key == (3, 2) and order.options == {}
    for bad in (
        {"attempt": 1},
        {"id": "3", "printer": "receipt"},
        {"id": 3, "printer": "receipt", "copies": 0},
    ):
        with pytest.raises(ValueError):
            PrintOrder.parse(bad)
    assert job_key({"job_id": 4, "attempt": 1}) == (4, 1)  # what the server sends
    assert job_key({"id": 4, "attempt": 2}) == (4, 2)
    assert job_key({"id": 4}) is None


def test_config_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("mdg_abc\n", encoding="utf-8")
    path = tmp_path / "bridge.toml"
    path.write_text(
        """
server_url = "https://madoguchi.example.lg.jp/"
token_file = "token"
data_dir = "var/bridge"
heartbeat_seconds = 15

[printers.receipt]
kind = "network"
host = "192.0.2.10"
paper_mm = 58

[printers.office]
queue = "office-1"
duplex = "long"
tray = "tray-2"

[card_reader]
reader = "Sony"

[signal_light]
kind = "serial"
device = "/dev/ttyUSB0"
on = "A0 01 01 A2"
off = "A0 01 00 A1"
""",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.server_url == "https://madoguchi.example.lg.jp"
    assert config.token == "mdg_abc"
    assert config.data_dir == tmp_path / "var" / "bridge"
    assert config.journal_path == tmp_path / "var" / "bridge" / "journal.sqlite3"
    assert config.receipt is not None and config.receipt.paper_mm == 58 and config.receipt.kind == "network"
    assert config.office is not None and config.office.queue == "office-1" and config.office.duplex == "long"
    assert config.office.tray == "tray-2" and config.office.options == {"queue": "office-1"}
    assert (
        config.card_reader is not None and config.card_reader.enabled and config.card_reader.reader == "Sony"
    )
    assert config.signal_light is not None and config.signal_light.on == bytes.fromhex("A00101A2")
    assert config.heartbeat_seconds == 15
    assert "mdg_abc" not in repr(config)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('token = "t"\ndata_dir = "d"', "server_url"),
        ('server_url = "http://x"\ndata_dir = "d"', "token"),
        ('server_url = "http://x"\ntoken = "t"', "data_dir"),
        ('server_url = "http://x"\ntoken = "t"\ndata_dir = "d"\nheartbeat_second = 3', "heartbeat_second"),
        (
            'server_url = "http://x"\ntoken = "t"\ndata_dir = "d"\nheartbeat_seconds = "x"',
            "heartbeat_seconds",
        ),
        (
            'server_url = "http://x"\ntoken = "t"\ndata_dir = "d"\n[printers.receipt]\nkind = "bluetooth"',
            "printers.receipt.kind",
        ),
        (
            'server_url = "http://x"\ntoken = "t"\ndata_dir = "d"\n[printers.receipt]\nkind = "network"',
            "printers.receipt",
        ),
        (
            'server_url = "http://x"\ntoken = "t"\ndata_dir = "d"\n[printers.office]\nduplex = "long"',
            "printers.office.queue",
        ),
        (
            'server_url = "http://x"\ntoken = "t"\ndata_dir = "d"\n[printers.office]\nqueue = "q"\nduplex = 2',
            "printers.office.duplex",
        ),
        ('server_url = "http://x"\ntoken = "t"\ndata_dir = "d"\n[printers.fax]\nx = 1', "printers.fax"),
        (
            'server_url = "http://x"\ntoken = "t"\ndata_dir = "d"\n[card_reader]\nenabled = "yes"',
            "card_reader.enabled",
        ),
        ('server_url = "http://x"\ntoken = "t"\ndata_dir = "d"\nsignal_light = "disco"', "signal_light"),
        (
            'server_url = "http://x"\ntoken = "t"\ndata_dir = "d"\n[signal_light]\nkind = "serial"\ndevice = "/dev/x"\non = "zz"\noff = "00"',
            "signal_light.on",
        ),
        ('server_url = "http://x"\ntoken = "t"\ntoken_file = "f"\ndata_dir = "d"', "token"),
        ('server_url = "http://x"\ntoken_file = "missing"\ndata_dir = "d"', "token_file"),
        ('server_url = "http://x"\ntoken = "t"\ndata_dir = "d"\nlog_level = "loud"', "log_level"),
        ("server_url = ", "bridge.toml"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert key in str(caught.value)
    assert "設定エラー" in str(caught.value) and "config error" in str(caught.value)


def test_simulated_light_config(tmp_path: Path) -> None:
    config = BridgeConfig.from_dict(
        {"server_url": "http://x", "token": "t", "data_dir": "d", "signal_light": "simulated"}, tmp_path
    )
    assert config.signal_light is not None and config.signal_light.kind == "simulated"
    assert config.receipt is None and config.office is None and config.card_reader is None
