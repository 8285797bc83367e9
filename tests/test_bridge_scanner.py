"""Serial QR / 2D-code scanners: the driver (device_bridge/drivers/scanner.py) on a real tty (a
pseudo-terminal from SimulatedScanner), and the bridge posting scans to the fake server."""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from device_bridge.client import Bridge
from device_bridge.config import BridgeConfig, ConfigError, load_config
from device_bridge.drivers.scanner import SerialScanner, SimulatedScanner, decode_scan, normalise_encoding
from tests.bridge_fake_server import serve_in_thread

TOKEN = "mdg_scanner-test-token-81d0"


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _open_fds() -> dict[int, str]:
    out: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the directory's own fd, closed by now
            continue
    return out


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    """No thread left running, no pty (or any other file) left open."""
    threads = set(threading.enumerate())
    fds = _open_fds()
    yield
    deadline = time.monotonic() + 5
    while True:
        left = [t.name for t in set(threading.enumerate()) - threads if t.is_alive()]
        leaked = {fd: target for fd, target in _open_fds().items() if fds.get(fd) != target}
        if not left and not leaked:
            return
        assert time.monotonic() < deadline, f"left behind: threads {left}, files {leaked}"
        time.sleep(0.05)


class Scans:
    """A callback that collects scans, with a blocking ``next``."""

    def __init__(self) -> None:
        self.queue: queue.Queue[str] = queue.Queue()

    def __call__(self, text: str) -> None:
        self.queue.put(text)

    def next(self, timeout: float = 5.0) -> str:
        return self.queue.get(timeout=timeout)

    def empty_after(self, seconds: float) -> bool:
        time.sleep(seconds)
        return self.queue.empty()


# --- decoding ----------------------------------------------------------------------------------


def test_decode_utf8_then_shift_jis() -> None:
    assert decode_scan(b"https://example.jp/r/7f3a") == "https://example.jp/r/7f3a"
    assert decode_scan("住民票の写し①".encode()) == "住民票の写し①"
    assert decode_scan("住民票の写し①㈱髙".encode("cp932")) == "住民票の写し①㈱髙"
    assert decode_scan("ｶﾀｶﾅ".encode("shift_jis")) == "ｶﾀｶﾅ"  # half-width kana: one byte each
    assert decode_scan("\ufeff窓口".encode()) == "窓口"
    assert decode_scan(b"\xff\xfe\x80") == "\ufffd\ufffd\ufffd"  # nothing fits: replaced, no error
    # A named codec is used as it is; Shift_JIS means CP932.
    assert normalise_encoding("Shift_JIS") == "cp932" and normalise_encoding("sjis") == "cp932"
    assert normalise_encoding("UTF8") == "utf-8" and normalise_encoding("") == "auto"
    assert decode_scan("①".encode("cp932"), "shift_jis") == "①"
    assert decode_scan("窓口".encode("euc_jp"), "euc-jp") == "窓口"
    with pytest.raises(LookupError):
        normalise_encoding("klingon")


# --- the driver on a pty -----------------------------------------------------------------------


def test_scans_are_read_from_the_tty() -> None:
    scans = Scans()
    with (
        SimulatedScanner() as sim,
        SerialScanner(sim.device, 9600, b"\r", prefix="\x02", suffix="\x03") as sc,
    ):
        assert sim.device.startswith("/dev/pts/")
        sc.start(scans)
        assert sc.wait_connected(5) and sc.reason == ""
        sim.scan("https://madoguchi.example/r/7f3a")
        assert scans.next() == "https://madoguchi.example/r/7f3a"
        sim.scan("住民票の写し 1通")  # UTF-8
        assert scans.next() == "住民票の写し 1通"
        sim.scan("山田　太郎①", encoding="cp932")  # what many Japanese scanners send
        assert scans.next() == "山田　太郎①"
        sim.write(b"A-1\r\nB-2\r\n")  # CRLF although CR is configured; two scans in one read
        assert [scans.next(), scans.next()] == ["A-1", "B-2"]
        sim.write(b"\x02STX-framed\x03\r")  # the configured prefix and suffix are stripped
        assert scans.next() == "STX-framed"
        for byte in "分割".encode("cp932") + b"-9\r":  # byte by byte, as a slow line delivers them
            sim.write(bytes([byte]))
            time.sleep(0.005)
        assert scans.next() == "分割-9"
        sim.write(b"\r\r\n\r")  # empty lines are no scans
        assert scans.empty_after(0.2)
        sim.write(b"no terminator")  # a scanner set to send none: silence ends the scan
        assert scans.next() == "no terminator"
        assert sc.scans == 8
    assert not sc.running and not sc.connected


def test_other_terminators_and_a_fixed_encoding() -> None:
    scans = Scans()
    with SimulatedScanner() as sim, SerialScanner(sim.device, 115200, b"\n", encoding="shift_jis") as sc:
        sc.start(scans)
        assert sc.wait_connected(5)
        sim.scan("受付番号 012", encoding="shift_jis", terminator=b"\n")
        assert scans.next() == "受付番号 012"
        sim.write("①".encode("cp932") + b"\xff\n")  # not Shift_JIS: replaced, not guessed
        assert scans.next() == "①\ufffd"
    with SimulatedScanner() as sim, SerialScanner(sim.device, terminator=b"", idle_timeout=0.1) as sc:
        sc.start(scans)
        assert sc.wait_connected(5)
        sim.write(b"1234567890128")  # no terminator at all: only silence ends a scan
        assert scans.next() == "1234567890128"


def test_reconnects_when_the_scanner_is_unplugged(tmp_path: Path) -> None:
    scans = Scans()
    link = tmp_path / "usb-QR_Scanner-if00"  # like /dev/serial/by-id/…: the same name after a replug
    with (
        SimulatedScanner(link) as sim,
        SerialScanner(sim.device, retry_seconds=0.05, max_retry_seconds=0.2) as sc,
    ):
        sc.start(scans)
        assert sc.wait_connected(5)
        sim.scan("before")
        assert scans.next() == "before"
        sim.unplug()
        assert not link.exists()
        wait_for(lambda: not sc.connected, what="the disconnect noticed")
        wait_for(lambda: "見つかりません" in sc.reason, what="the reason")
        assert sc.running  # still trying
        time.sleep(0.3)  # several retries while it is away
        sim.plug()
        assert sc.wait_connected(5) and sc.reason == ""
        sim.scan("after", encoding="cp932")
        assert scans.next() == "after"
        # Unplugged and plugged back before the reader even noticed: it still comes back.
        assert sc.connects == 2
        sim.unplug()
        sim.plug()
        wait_for(lambda: sc.connected and sc.connects == 3, what="connected again")
        sim.scan("again")
        assert scans.next() == "again"


def test_missing_device_is_a_reason_and_stops_cleanly() -> None:
    with SerialScanner("/dev/does-not-exist", retry_seconds=0.05) as sc:
        sc.start(Scans())
        wait_for(lambda: sc.reason, what="a reason")
        assert sc.reason == "スキャナー（/dev/does-not-exist）が見つかりません（接続を確認してください）"
        assert not sc.connected
        with pytest.raises(RuntimeError):
            sc.start(Scans())
    assert not sc.running


def test_a_second_reader_cannot_take_the_port() -> None:
    with (
        SimulatedScanner() as sim,
        SerialScanner(sim.device) as first,
        SerialScanner(sim.device, retry_seconds=0.05) as second,
    ):
        first.start(Scans())
        assert first.wait_connected(5)
        second.start(Scans())
        wait_for(lambda: second.reason, what="refused")
        assert second.reason == f"スキャナー（{sim.device}）は別のプログラムが使用中です"
        assert not second.connected


def test_a_failing_callback_does_not_stop_the_scanner(caplog: pytest.LogCaptureFixture) -> None:
    scans = Scans()

    def callback(text: str) -> None:
        if text == "boom":
            raise ValueError(f"cannot use {text}")
        scans(text)

    caplog.set_level(logging.DEBUG, logger="device_bridge")
    with SimulatedScanner() as sim, SerialScanner(sim.device) as sc:
        sc.start(callback)
        assert sc.wait_connected(5)
        sim.scan("boom")
        sim.scan("ok")
        assert scans.next() == "ok"
    assert "scan handler failed (ValueError)" in caplog.text
    assert "boom" not in caplog.text  # nor the scanned text in the message


# --- the bridge --------------------------------------------------------------------------------


class BridgeThread:
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="bridge", daemon=True)

    def _run(self) -> None:
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

    def __enter__(self) -> Bridge:
        self.thread.start()
        wait_for(lambda: self.stop_event is not None, 5, "the bridge loop")
        return self.bridge

    def __exit__(self, *exc: object) -> None:
        assert self.stop_event is not None
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(20)
        assert not self.thread.is_alive(), "the bridge did not stop"
        if self.error is not None:
            raise self.error


def _config(url: str, tmp: Path, device: str, **scanner: Any) -> BridgeConfig:
    return BridgeConfig.from_dict(
        {
            "server_url": url,
            "token": TOKEN,
            "data_dir": str(tmp / "bridge"),
            "heartbeat_seconds": 0.2,
            "scanner": {"kind": "serial", "device": device, **scanner},
        }
    )


def test_scans_reach_the_server(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    link = tmp_path / "scanner"
    secret = "個人番号 123456789012"
    with (
        SimulatedScanner(link) as sim,
        serve_in_thread(tmp_path / "fake.db", TOKEN, ping_seconds=0.5) as (url, _fake),
        httpx.Client(base_url=url, timeout=10) as http,
    ):

        def events() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = http.get("/test/state").json()["events"]
            return found

        def scanner_status() -> dict[str, Any]:
            heartbeats = http.get("/test/state").json()["heartbeats"]
            return heartbeats[-1].get("scanner", {}) if heartbeats else {}

        config = _config(url, tmp_path, str(link), terminator="CRLF", encoding="auto", prefix="]Q1")
        with BridgeThread(Bridge(config)) as bridge:
            wait_for(lambda: bridge.scanner is not None and bridge.scanner.connected, what="scanner open")
            wait_for(lambda: scanner_status().get("present"), what="scanner in the heartbeat")
            assert scanner_status() == {"present": True, "reason": ""}
            sim.scan("]Q1https://madoguchi.example/r/7f3a", terminator=b"\r\n")
            sim.scan(secret, encoding="cp932", terminator=b"\r\n")
            wait_for(lambda: len(events()) == 2, what="two scan events")
            assert events() == [
                {"type": "scan", "data": {"text": "https://madoguchi.example/r/7f3a"}},
                {"type": "scan", "data": {"text": secret}},
            ]
            # Unplugged: the heartbeat says so; plugged back: scans arrive again.
            sim.unplug()
            wait_for(lambda: scanner_status().get("present") is False, what="scanner gone")
            assert "スキャナー" in scanner_status()["reason"]
            sim.plug()
            wait_for(lambda: scanner_status().get("present"), what="scanner back")
            sim.scan("再接続後", terminator=b"\r\n")
            wait_for(lambda: len(events()) == 3, what="a scan after the replug")
            assert events()[-1] == {"type": "scan", "data": {"text": "再接続後"}}
    # The scanned text is never logged; its length is, at debug level.
    assert all(secret not in record.getMessage() for record in caplog.records)
    assert all("7f3a" not in record.getMessage() for record in caplog.records)
    assert any(
        record.levelno == logging.DEBUG and record.getMessage() == f"scan of {len(secret)} characters"
        for record in caplog.records
    )


def test_scan_waits_for_the_server_then_arrives(tmp_path: Path) -> None:
    """Scans made while the server is down are sent when it is back (if not too old)."""
    from tests.bridge_fake_server import free_port

    port = free_port()
    with SimulatedScanner() as sim:
        config = _config(f"http://127.0.0.1:{port}", tmp_path, sim.device)
        with BridgeThread(Bridge(config, max_backoff_seconds=0.5)) as bridge:
            wait_for(lambda: bridge.scanner is not None and bridge.scanner.connected, what="scanner open")
            sim.scan("while-down")
            time.sleep(0.3)  # the first attempt fails: nothing listens yet
            with (
                serve_in_thread(tmp_path / "fake.db", TOKEN, ping_seconds=0.5, port=port),
                httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
            ):
                wait_for(lambda: http.get("/test/state").json()["events"], timeout=15, what="the scan")
                assert http.get("/test/state").json()["events"] == [
                    {"type": "scan", "data": {"text": "while-down"}}
                ]


# --- settings ----------------------------------------------------------------------------------


def test_scanner_config(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text(
        'server_url = "http://x"\ntoken = "t"\ndata_dir = "d"\n'
        '[scanner]\nkind = "serial"\ndevice = "/dev/ttyACM0"\nbaudrate = 115200\n'
        'terminator = "crlf"\nencoding = "Shift_JIS"\nsuffix = "\\u0003"\n',
        encoding="utf-8",
    )
    scanner = load_config(path).scanner
    assert scanner is not None
    assert (scanner.kind, scanner.device, scanner.baudrate) == ("serial", "/dev/ttyACM0", 115200)
    assert scanner.terminator == b"\r\n" and scanner.encoding == "cp932"
    assert scanner.prefix == "" and scanner.suffix == "\x03"
    minimal = BridgeConfig.from_dict(
        {
            "server_url": "http://x",
            "token": "t",
            "data_dir": "d",
            "scanner": {"kind": "serial", "device": "/dev/a"},
        }
    ).scanner
    assert minimal is not None
    assert (minimal.baudrate, minimal.terminator, minimal.encoding) == (9600, b"\r", "auto")
    assert BridgeConfig.from_dict({"server_url": "http://x", "token": "t", "data_dir": "d"}).scanner is None


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('scanner = "serial"', "scanner"),
        ('[scanner]\nkind = "hid"\ndevice = "/dev/a"', "scanner.kind"),
        ('[scanner]\nkind = "serial"', "scanner.device"),
        ('[scanner]\nkind = "serial"\ndevice = " "', "scanner.device"),
        ('[scanner]\nkind = "serial"\ndevice = "/dev/a"\nbaudrate = "fast"', "scanner.baudrate"),
        ('[scanner]\nkind = "serial"\ndevice = "/dev/a"\nbaudrate = 9600.5', "scanner.baudrate"),
        ('[scanner]\nkind = "serial"\ndevice = "/dev/a"\nterminator = "ETX"', "scanner.terminator"),
        ('[scanner]\nkind = "serial"\ndevice = "/dev/a"\nencoding = "klingon"', "scanner.encoding"),
        ('[scanner]\nkind = "serial"\ndevice = "/dev/a"\nprefix = 2', "scanner.prefix"),
        ('[scanner]\nkind = "serial"\ndevice = "/dev/a"\nparity = "E"', "scanner.parity"),
    ],
)
def test_scanner_config_errors_name_the_key(tmp_path: Path, table: str, key: str) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text(f'server_url = "http://x"\ntoken = "t"\ndata_dir = "d"\n{table}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == key
    assert "設定エラー" in str(caught.value) and "config error" in str(caught.value)
