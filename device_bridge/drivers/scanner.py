"""QR / 2D-code scanners on a serial port (RS-232C, or USB in its virtual COM port mode).

Keyboard-wedge scanners (USB HID) need nothing from the bridge: they type into whatever input has
the focus. A scanner in serial mode sends each code as a line of bytes instead; the bridge reads
them here and posts them to the server as ``scan`` events, which staff pages receive.

    scanner = SerialScanner("/dev/serial/by-id/usb-DENSO_WAVE_QR_Scanner-if00", baudrate=9600)
    scanner.start(on_scan=lambda text: ...)      # called from the scanner's thread, once per code
    ...
    scanner.stop()

- A scan ends at the terminator (``b"\\r"`` by default; ``b"\\n"``, ``b"\\r\\n"``, …) — or, when
  the scanner sends none (or another one than configured), after ``idle_timeout`` seconds of
  silence. Leading and trailing CR/LF, and an optional ``prefix`` / ``suffix`` the scanner is set
  to add, are stripped; empty scans are dropped.
- Bytes are decoded as UTF-8, else as Shift_JIS (CP932, which many Japanese scanners send for
  kanji in QR codes), unless ``encoding`` names one codec.
- The port is opened exclusively. When it disappears (USB unplugged) the scanner reconnects by
  itself, backing off from ``retry_seconds`` to ``max_retry_seconds``; ``connected`` and
  ``reason`` (Japanese, for staff) say how it is now. Use a stable name such as
  ``/dev/serial/by-id/…``: ``/dev/ttyACM0`` may become ``ttyACM1`` when plugged in again.

Scanned text can be personal data (a My Number in a form's QR code, an address): it is never
logged, only its length at debug level.

:class:`SimulatedScanner` is a scanner for tests and the demo: a pseudo-terminal pair whose
device side :class:`SerialScanner` opens like any tty, and whose other side the test writes to.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import importlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "DEFAULT_ENCODING",
    "SerialScanner",
    "SimulatedScanner",
    "decode_scan",
    "normalise_encoding",
]

log = logging.getLogger(__name__)

DEFAULT_ENCODING = "auto"  # UTF-8, else CP932
MAX_SCAN_BYTES = 16384  # far more than a QR code holds (2953 bytes); more is noise (wrong baudrate)

ScanCallback = Callable[[str], None]


def normalise_encoding(name: str) -> str:
    """The codec to decode scans with: ``"auto"``, or a Python codec name (Shift_JIS → CP932).

    Raises ``LookupError`` for an unknown codec. Shift_JIS becomes CP932, its superset with the
    NEC/IBM extensions (①, ㈱, 髙 …) that Japanese scanners send as Shift_JIS too.
    """
    cleaned = name.strip().lower()
    if cleaned in ("", DEFAULT_ENCODING):
        return DEFAULT_ENCODING
    codec = codecs.lookup(cleaned).name
    return "cp932" if codec in ("shift_jis", "ms932", "windows-31j") else codec


def decode_scan(raw: bytes, encoding: str = DEFAULT_ENCODING) -> str:
    """Text from a scan's bytes: UTF-8, else CP932 (``"auto"``), or the given codec.

    Never raises: bytes that fit no codec are replaced with U+FFFD.
    """
    codec = normalise_encoding(encoding)
    if codec == DEFAULT_ENCODING:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = _cp932(raw)
            if "\ufffd" in text:  # not Shift_JIS either
                text = raw.decode("utf-8", "replace")
    elif codec == "cp932":
        text = _cp932(raw)
    else:
        text = raw.decode(codec, "replace")
    return text.removeprefix("\ufeff")


# Single bytes that Python's CP932 maps to U+0080 and private-use characters: never sent as text.
_CP932_ODD = str.maketrans(dict.fromkeys(map(ord, "\x80\uf8f0\uf8f1\uf8f2\uf8f3"), "\ufffd"))


def _cp932(raw: bytes) -> str:
    return raw.decode("cp932", "replace").translate(_CP932_ODD)


class SerialScanner:
    """A scanner on a serial port, read in a thread; see the module's documentation."""

    def __init__(
        self,
        device: str,
        baudrate: int = 9600,
        terminator: bytes = b"\r",
        *,
        encoding: str = DEFAULT_ENCODING,
        prefix: str = "",
        suffix: str = "",
        idle_timeout: float | None = 0.5,
        retry_seconds: float = 0.5,
        max_retry_seconds: float = 10.0,
        read_timeout: float = 0.1,
    ) -> None:
        if not device:
            raise ValueError("a serial scanner needs a device, e.g. /dev/ttyACM0")
        if not terminator and idle_timeout is None:
            raise ValueError("a scanner without a terminator needs an idle_timeout")
        self.device = device
        self.baudrate = baudrate
        self.terminator = bytes(terminator)
        self.encoding = normalise_encoding(encoding)  # LookupError: unknown codec
        self.prefix = prefix
        self.suffix = suffix
        self.idle_timeout = idle_timeout
        self.retry_seconds = retry_seconds
        self.max_retry_seconds = max(max_retry_seconds, retry_seconds)
        self.read_timeout = read_timeout
        self.connected = False
        self.reason = ""  # why it is not connected (Japanese, for staff); "" when it is
        self.scans = 0  # scans read since start
        self.connects = 0  # times the port was opened since start
        self._on_scan: ScanCallback | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"SerialScanner({self.device!r}, baudrate={self.baudrate})"

    # -- lifecycle --

    def start(self, on_scan: ScanCallback) -> None:
        """Start reading; ``on_scan(text)`` is called from the scanner's thread for every scan.

        The callback should be quick (hand the text to a queue). Never raises for a missing
        device: the thread keeps trying to open it.
        """
        if self._thread is not None:
            raise RuntimeError("the scanner is already started")
        self._on_scan = on_scan
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="scanner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading and close the port (waits for the thread, at most ``timeout`` seconds)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("scanner %s: the reading thread did not stop", self.device)

    def __enter__(self) -> SerialScanner:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_connected(self, timeout: float) -> bool:
        """True once the port is open (polls; for tests and start-up checks)."""
        deadline = time.monotonic() + timeout
        while not self.connected:
            if time.monotonic() >= deadline or self._stop.is_set():
                return False
            time.sleep(0.01)
        return True

    # -- the reading thread --

    def _run(self) -> None:
        delay = self.retry_seconds
        complained = False  # said once that it is gone; not again at every retry
        while not self._stop.is_set():
            try:
                port = self._open()
            except _Unavailable as exc:
                self.reason = exc.reason
                if not complained:
                    log.warning("scanner %s unavailable (%s); retrying", self.device, exc.detail)
                    complained = True
                else:
                    log.debug("scanner %s still unavailable (%s)", self.device, exc.detail)
                self._stop.wait(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.max_retry_seconds)
                continue
            self.connects += 1
            self.connected, self.reason = True, ""
            log.info("scanner %s connected", self.device)
            complained = False
            opened = time.monotonic()
            try:
                healthy = self._read(port)
            except (OSError, ValueError) as exc:  # serial.SerialException is an OSError
                healthy = False
                log.warning("scanner %s disconnected (%s); reconnecting", self.device, type(exc).__name__)
                self.reason = f"スキャナー（{self.device}）との接続が切れました"
                complained = True
            finally:
                self.connected = False
                with contextlib.suppress(OSError, ValueError):
                    port.close()
            if self._stop.is_set():
                break
            # A port that fails at once again and again must not be reopened in a busy loop.
            if healthy or time.monotonic() - opened > self.max_retry_seconds:
                delay = self.retry_seconds
            self._stop.wait(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.max_retry_seconds)
        self.connected = False

    def _open(self) -> Any:
        try:
            serial = importlib.import_module("serial")
        except ImportError as exc:
            raise _Unavailable(
                "シリアル通信のライブラリ（pyserial）がありません", "pyserial is not installed"
            ) from exc
        try:
            return serial.Serial(
                self.device,
                baudrate=self.baudrate,
                timeout=self.read_timeout,
                exclusive=True,  # one reader per scanner: a second bridge would steal half the scans
            )
        except (OSError, ValueError) as exc:
            cause = exc.__context__ if isinstance(exc.__context__, OSError) else exc
            code = getattr(cause, "errno", None) or getattr(exc, "errno", None)
            if code == errno.ENOENT or not Path(self.device).exists():
                reason = f"スキャナー（{self.device}）が見つかりません（接続を確認してください）"
            elif code in (errno.EACCES, errno.EPERM):
                reason = (
                    f"スキャナー（{self.device}）を開く権限がありません（dialout グループを確認してください）"
                )
            elif code in (errno.EAGAIN, errno.EWOULDBLOCK) or "lock" in str(exc).lower():
                reason = f"スキャナー（{self.device}）は別のプログラムが使用中です"
            else:
                reason = f"スキャナー（{self.device}）に接続できません"
            raise _Unavailable(reason, type(exc).__name__ if code is None else os.strerror(code)) from exc

    def _read(self, port: Any) -> bool:
        """Read scans until stopped (returns) or the port fails (raises). True once data came."""
        buffer = bytearray()
        last_byte = time.monotonic()
        got_data = False
        while not self._stop.is_set():
            waiting = port.in_waiting
            chunk: bytes = port.read(max(1, min(waiting, 4096)))
            now = time.monotonic()
            if chunk:
                got_data = True
                buffer += chunk
                last_byte = now
                if self.terminator:
                    while (end := buffer.find(self.terminator)) >= 0:
                        line = bytes(buffer[:end])
                        del buffer[: end + len(self.terminator)]
                        self._emit(line)
                if len(buffer) > MAX_SCAN_BYTES:
                    log.warning(
                        "scanner %s: %d bytes without a terminator dropped (check baudrate and terminator)",
                        self.device,
                        len(buffer),
                    )
                    buffer.clear()
            elif buffer and self.idle_timeout is not None and now - last_byte >= self.idle_timeout:
                # No terminator (or another one than configured): silence ends the scan.
                line = bytes(buffer)
                buffer.clear()
                self._emit(line)
        return got_data

    def _emit(self, raw: bytes) -> None:
        text = decode_scan(raw, self.encoding).strip("\r\n")
        if self.prefix:
            text = text.removeprefix(self.prefix)
        if self.suffix:
            text = text.removesuffix(self.suffix)
        text = text.strip("\r\n")
        if not text:
            return
        self.scans += 1
        log.debug("scanner %s: a scan of %d characters", self.device, len(text))
        callback = self._on_scan
        if callback is None:
            return
        try:
            callback(text)
        except Exception as exc:  # the type only: the message may quote the scanned text
            log.warning("scanner %s: scan handler failed (%s)", self.device, type(exc).__name__)


class _Unavailable(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


# --- the simulated scanner ----------------------------------------------------------------------


class SimulatedScanner:
    """A serial scanner stand-in: a pseudo-terminal pair (``os.openpty``).

    ``device`` is the tty a :class:`SerialScanner` opens (the pty's device side, or ``link``, a
    symlink to it that stays put — like ``/dev/serial/by-id/…``); :meth:`write` and :meth:`scan`
    send bytes from the scanner's side. :meth:`unplug` closes the pair (the tty disappears, as a
    USB scanner's does), :meth:`plug` makes a new one. Close it (or use ``with``) to free the pty.
    """

    def __init__(self, link: str | Path | None = None) -> None:
        self.link = Path(link) if link is not None else None
        self._controller: int | None = None
        self._device_fd: int | None = None
        self._device_name = ""
        self._lock = threading.Lock()
        self.plug()

    @property
    def device(self) -> str:
        return str(self.link) if self.link is not None else self._device_name

    @property
    def plugged(self) -> bool:
        return self._controller is not None

    def plug(self) -> None:
        """Connect (again): a new pty pair; ``link``, if any, points to it."""
        with self._lock:
            if self._controller is not None:
                return
            import tty  # POSIX only, like os.openpty: the simulator is for Linux tests and the demo

            controller, device_fd = os.openpty()
            try:
                tty.setraw(device_fd)  # no CR → LF translation or echo before the reader opens it
                name = os.ttyname(device_fd)
                if self.link is not None:
                    tmp = self.link.with_name(f".{self.link.name}.tmp")
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
                    tmp.symlink_to(name)
                    os.replace(tmp, self.link)
            except BaseException:
                os.close(controller)
                os.close(device_fd)
                raise
            self._controller, self._device_fd, self._device_name = controller, device_fd, name

    def unplug(self) -> None:
        """Disconnect: the tty (and ``link``) disappear; a reader's next read fails."""
        with self._lock:
            if self.link is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.link.unlink()
            controller, self._controller = self._controller, None
            device_fd, self._device_fd = self._device_fd, None
            for fd in (controller, device_fd):
                if fd is not None:
                    os.close(fd)

    def write(self, data: bytes) -> None:
        """Bytes as the scanner would send them."""
        with self._lock:
            if self._controller is None:
                raise OSError(errno.ENODEV, "the simulated scanner is unplugged")
            view = memoryview(data)
            while view:
                view = view[os.write(self._controller, view) :]

    def scan(self, text: str, *, encoding: str = "utf-8", terminator: bytes = b"\r") -> None:
        """One scan: ``text`` in ``encoding``, then the terminator."""
        self.write(text.encode(encoding) + terminator)

    def close(self) -> None:
        self.unplug()

    def __enter__(self) -> SimulatedScanner:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
