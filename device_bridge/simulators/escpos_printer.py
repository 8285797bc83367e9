"""A simulated ESC/POS receipt printer on TCP (like a network printer's port 9100).

It parses the byte stream the way a printer does and "prints" each receipt — everything between
two cuts — into ``<out_dir>/receipt-<n>.png`` (Pillow: raster images pasted, text drawn with IPAex
Gothic, QR codes drawn with segno) with a JSON sidecar ``receipt-<n>.json`` listing the decoded
text lines, QR payloads, barcodes, raster image sizes, the cut and anything it did not understand.

Understood: ``ESC @`` init, text (code page per ``ESC t``; Kanji mode ``FS &`` / ``FS .`` with
Shift_JIS, as on Japanese models), ``ESC a`` align, ``ESC E``/``ESC G`` bold, ``ESC -`` underline,
``ESC !`` print mode, ``GS !`` size, ``FS !`` Kanji mode size, ``ESC M`` font, ``LF``, ``ESC d``/``ESC J``
feed, ``ESC 2``/``ESC 3`` line spacing, ``GS v 0`` raster images (all four densities), ``ESC *``
column images, ``GS ( L``/``GS 8 L`` graphics (store ``p`` + print ``2``), ``GS ( k`` QR codes
(model, module size, error level, store, print), ``GS k`` barcodes (recorded, drawn as a plain
box), ``GS V`` cuts (functions A–D), ``ESC i``/``ESC m`` legacy cuts, ``DLE EOT n`` status. Other
known fixed-length commands are skipped; an unknown one is listed in the sidecar's ``unknown``.

Status (``DLE EOT``), answered at once with the bytes a real Epson-compatible printer sends::

    n=1 printer        0x12, +0x08 offline (paper out, cover open and offline all take it offline)
    n=2 offline cause  0x12, +0x04 cover open, +0x20 stopped by paper end, +0x40 error
    n=3 error cause    0x12, +0x08 autocutter error, +0x20 unrecoverable, +0x40 auto-recoverable
    n=4 paper sensor   0x12, +0x0C paper near end, +0x60 paper out (out also reads as near end)

While the paper is out, the cover open, the printer offline or in error, it does not print: text,
images, codes, feeds and cuts that arrive are discarded (counted in ``discarded_bytes``) while mode
settings still apply and status requests are still answered. A real printer would hold the data in
its receive buffer and print it once paper is back; discarding makes "nothing was printed" exact
and keeps a refused job from appearing later. Commands are parsed by structure, so bytes inside
image data are never taken for a command (a real printer acts on ``DLE EOT`` even there; the driver
keeps such sequences out of its image data).

All connections are served by one thread; printer state (what is on the paper since the last cut,
the status switches) is shared like on a real printer, modes (alignment, size, …) are per
connection and reset by ``ESC @``.

    with EscposPrinterSimulator(port=0, out_dir=tmp) as sim:   # port 0: a free port, see sim.port
        ... print to 127.0.0.1:sim.port ...
        [receipt] = sim.wait_for_receipts(1, timeout=5)
        receipt.texts, receipt.qr, receipt.png

Command line (Ctrl-C stops it; ``kill -USR1`` toggles paper out, ``-USR2`` the cover)::

    python -m device_bridge.simulators.escpos_printer --port 9100 --out var/receipts [--paper-mm 58]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import re
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Literal

import segno
from PIL import Image, ImageDraw, ImageFont, ImageOps

__all__ = ["EscposPrinterSimulator", "SimulatedReceipt", "main"]

FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/truetype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
)
PAPER_DOTS = {58: 384, 80: 576}
DEFAULT_LINE_SPACING = 30  # dots (1/6 inch at 180 dpi, rounded for 203 dpi)
CHAR_HEIGHT = {0: 24, 1: 17}  # font A 12×24, font B 9×17

_CODE_PAGES = {
    0: "cp437",
    1: "cp932",
    2: "cp850",
    3: "cp860",
    4: "cp863",
    5: "cp865",
    16: "cp1252",
    17: "cp866",
    18: "cp852",
    19: "cp858",
}

# Commands skipped by length: (prefix, total length). Those that need parsing are handled apart.
_FIXED: dict[bytes, int] = {
    b"\x1b ": 3,
    b"\x1b$": 4,
    b"\x1b%": 3,
    b"\x1b<": 2,
    b"\x1b=": 3,
    b"\x1b?": 3,
    b"\x1bL": 2,
    b"\x1bR": 3,
    b"\x1bS": 2,
    b"\x1bT": 3,
    b"\x1bU": 3,
    b"\x1bV": 3,
    b"\x1bW": 10,
    b"\x1b\\": 4,
    b"\x1bc": 4,
    b"\x1bp": 5,
    b"\x1br": 3,
    b"\x1bu": 3,
    b"\x1bv": 2,
    b"\x1b{": 3,
    b"\x1bK": 3,
    b"\x1be": 3,
    b"\x1bB": 4,
    b"\x1b(": 0,
    b"\x1b\x0c": 2,
    b"\x1bC": 3,
    b"\x1d$": 4,
    b"\x1d/": 3,
    b"\x1d:": 2,
    b"\x1dB": 3,
    b"\x1dH": 3,
    b"\x1dI": 3,
    b"\x1dL": 4,
    b"\x1dP": 4,
    b"\x1dT": 3,
    b"\x1dW": 4,
    b"\x1d\\": 4,
    b"\x1d^": 5,
    b"\x1da": 3,
    b"\x1db": 3,
    b"\x1df": 3,
    b"\x1dh": 3,
    b"\x1dr": 3,
    b"\x1dw": 3,
    b"\x1dz": 3,
    b"\x1dc": 2,
    b"\x1dE": 3,
    b"\x1c-": 3,
    b"\x1cS": 4,
    b"\x1cW": 3,
    b"\x1cp": 4,
    b"\x10\x05": 3,
    b"\x10\x14": 5,
}


@dataclass
class SimulatedReceipt:
    """One printed receipt: everything between two cuts."""

    index: int
    image: Image.Image
    texts: list[str]
    qr: list[str]
    barcodes: list[str]
    rasters: list[Image.Image]  # raster images as received (black = printed), before scaling
    cut: Literal["full", "partial"]
    byte_count: int
    unknown: list[str]
    png: Path | None = None
    json: Path | None = None

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    def sidecar(self) -> dict[str, object]:
        return {
            "index": self.index,
            "png": self.png.name if self.png else None,
            "width": self.width,
            "height": self.height,
            "cut": self.cut,
            "texts": self.texts,
            "qr": self.qr,
            "barcodes": self.barcodes,
            "rasters": [{"width": r.width, "height": r.height} for r in self.rasters],
            "bytes": self.byte_count,
            "unknown": self.unknown,
            "printed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }


@dataclass
class _Segment:
    """A run of text with the same look, or an image, on the line being built."""

    text: str = ""
    image: Image.Image | None = None
    bold: bool = False
    underline: bool = False
    width_mult: int = 1
    height_mult: int = 1
    font_b: bool = False


@dataclass
class _Modes:
    """Per-connection settings; ``ESC @`` resets them."""

    align: Literal["left", "center", "right"] = "left"
    bold: bool = False
    underline: bool = False
    width_mult: int = 1
    height_mult: int = 1
    kanji_width_mult: int = 1
    kanji_height_mult: int = 1
    font_b: bool = False
    kanji: bool = False
    code_page: int = 0
    line_spacing: int = DEFAULT_LINE_SPACING
    qr_module: int = 3
    qr_error: str = "L"
    qr_data: bytes | None = None
    graphics: Image.Image | None = None
    line: list[_Segment] = field(default_factory=list)


class _NeedMore(Exception):
    """The buffer ends inside a command; wait for more bytes."""


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.modes = _Modes()


def _font_path() -> str:
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    raise FileNotFoundError("IPAex Gothic not found: apt-get install fonts-ipaexfont-gothic")


class EscposPrinterSimulator:
    """An ESC/POS printer listening on ``host:port`` (port 0 picks a free one; see ``.port``)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9100,
        out_dir: str | Path | None = None,
        paper_mm: int = 80,
        dots: int | None = None,
        on_receipt: Callable[[SimulatedReceipt], None] | None = None,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.width = dots or PAPER_DOTS[paper_mm]
        self.on_receipt = on_receipt
        self._font_file = _font_path()
        self._fonts: dict[int, ImageFont.FreeTypeFont] = {}
        self._lock = threading.Condition()
        self._receipts: list[SimulatedReceipt] = []
        self._next_index = self._first_free_index()
        self._paper_out = False
        self._paper_near_end = False
        self._cover_open = False
        self._offline = False
        self._error: Literal["autocutter", "unrecoverable", "recoverable"] | None = None
        self.discarded_bytes = 0
        self.connections_served = 0
        # What is on the paper since the last cut (shared by all connections, as on a printer).
        self._blocks: list[tuple[Image.Image, str]] = []
        self._texts: list[str] = []
        self._qr: list[str] = []
        self._barcodes: list[str] = []
        self._rasters: list[Image.Image] = []
        self._unknown: list[str] = []
        self._page_bytes = 0
        self._listener: socket.socket | None = None
        self._selector: selectors.DefaultSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._connections: dict[socket.socket, _Connection] = {}

    # --- lifecycle ---

    def start(self) -> EscposPrinterSimulator:
        if self._thread is not None:
            return self
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.requested_port))
            listener.listen(8)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name=f"escpos-sim:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
        thread.join(timeout=10)
        self._thread = None
        for sock in list(self._connections):
            self._drop(sock)
        for other in (self._listener, self._wake_r, self._wake_w):
            if other is not None:
                other.close()
        self._listener = self._wake_r = self._wake_w = None
        if self._selector is not None:
            self._selector.close()
            self._selector = None

    def __enter__(self) -> EscposPrinterSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._listener is None:
            return self.requested_port
        return int(self._listener.getsockname()[1])

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def driver_config(self, **extra: object) -> dict[str, object]:
        """A receipt-driver configuration pointing at this simulator."""
        paper = {576: 80, 384: 58}.get(self.width)
        config: dict[str, object] = {"kind": "network", "host": self.host, "port": self.port}
        config.update({"paper_mm": paper} if paper else {"dots": self.width})
        config.update(extra)
        return config

    # --- control ---

    def set_paper_out(self, value: bool) -> None:
        with self._lock:
            self._paper_out = value

    def set_paper_near_end(self, value: bool) -> None:
        with self._lock:
            self._paper_near_end = value

    def set_cover_open(self, value: bool) -> None:
        with self._lock:
            self._cover_open = value

    def set_offline(self, value: bool) -> None:
        with self._lock:
            self._offline = value

    def set_error(self, kind: Literal["autocutter", "unrecoverable", "recoverable"] | None) -> None:
        with self._lock:
            self._error = kind

    @property
    def paper_out(self) -> bool:
        return self._paper_out

    @property
    def cover_open(self) -> bool:
        return self._cover_open

    @property
    def receipts(self) -> list[SimulatedReceipt]:
        with self._lock:
            return list(self._receipts)

    def wait_for_receipts(self, n: int, timeout: float = 10.0) -> list[SimulatedReceipt]:
        """Wait until at least ``n`` receipts are out; returns them all. ``TimeoutError`` if not."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._receipts) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self._receipts)} receipt(s) printed, waited for {n}")
                self._lock.wait(remaining)
            return list(self._receipts)

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def wait_until_idle(self, timeout: float = 10.0, served: int = 0) -> None:
        """Wait until at least ``served`` connections have been accepted, every client has
        disconnected and all it sent has been handled (a client's connect returns before the
        simulator accepts, so say how many connections you made)."""
        deadline = time.monotonic() + timeout
        while self.connections_served < served or self._connections:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{self.connections_served} connection(s) served, {len(self._connections)} still open"
                )
            time.sleep(0.01)

    def status_bytes(self) -> bytes:
        """The answers to DLE EOT 1, 2, 3 and 4 right now."""
        return bytes(self._status(n) for n in (1, 2, 3, 4))

    # --- server loop ---

    def _serve(self) -> None:
        selector = self._selector
        assert selector is not None
        while not self._stopping:
            for key, _events in selector.select(timeout=0.5):
                if key.data == "wake":
                    return
                if key.data == "accept":
                    self._accept()
                else:
                    self._receive(key.fileobj)  # type: ignore[arg-type]

    def _accept(self) -> None:
        assert self._listener is not None and self._selector is not None
        try:
            sock, _addr = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._connections[sock] = _Connection(sock)
        self._selector.register(sock, selectors.EVENT_READ, "conn")
        self.connections_served += 1

    def _drop(self, sock: socket.socket) -> None:
        self._connections.pop(sock, None)
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
        sock.close()

    def _receive(self, sock: socket.socket) -> None:
        conn = self._connections.get(sock)
        if conn is None:
            return
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._end_of_connection(conn)
            self._drop(sock)
            return
        conn.buffer += data
        replies = self._parse(conn)
        if replies:
            try:
                sock.setblocking(True)
                sock.sendall(replies)
                sock.setblocking(False)
            except OSError:
                self._drop(sock)

    def _end_of_connection(self, conn: _Connection) -> None:
        # A line left without LF is printed when the printer's buffer is flushed; do the same.
        if conn.modes.line:
            self._print_line(conn.modes)

    # --- parser ---

    def _parse(self, conn: _Connection) -> bytes:
        replies = bytearray()
        buf = conn.buffer
        pos = 0
        while pos < len(buf):
            try:
                used, reply = self._command(conn, buf, pos)
            except _NeedMore:
                break
            if reply:
                replies += reply
            pos += used
        del buf[:pos]
        return bytes(replies)

    def _blocked(self) -> bool:
        return self._paper_out or self._cover_open or self._offline or self._error is not None

    def _command(self, conn: _Connection, buf: bytearray, pos: int) -> tuple[int, bytes]:
        """Run the command at ``buf[pos]``; returns (bytes used, reply)."""
        m = conn.modes
        b = buf[pos]

        def need(n: int) -> None:
            if pos + n > len(buf):
                raise _NeedMore

        if b == 0x10:  # DLE
            need(2)
            if buf[pos + 1] == 0x04:  # DLE EOT n [a]
                need(3)
                n = buf[pos + 2]
                if n in (7, 8):
                    need(4)
                    return 4, b""
                return 3, bytes((self._status(n),)) if 1 <= n <= 4 else b""
            length = _FIXED.get(bytes(buf[pos : pos + 2]), 2)
            need(length)
            return length, b""
        if b == 0x1B:
            return self._esc(conn, buf, pos, need)
        if b == 0x1D:
            return self._gs(conn, buf, pos, need)
        if b == 0x1C:
            return self._fs(conn, buf, pos, need)
        if b == 0x0A:  # LF
            self._printable(1, lambda: self._print_line(m, empty_feed=True))
            return 1, b""
        if b == 0x09:  # HT: to the next 8-character stop, near enough
            self._add_text(m, "    ")
            return 1, b""
        if b < 0x20 or b == 0x7F:  # CR, FF, other controls: nothing to print in standard mode
            return 1, b""
        # Text.
        if m.kanji and (0x81 <= b <= 0x9F or 0xE0 <= b <= 0xFC):
            need(2)
            char = bytes(buf[pos : pos + 2]).decode("cp932", errors="replace")
            self._printable(2, lambda: self._add_text(m, char))
            return 2, b""
        # A run of single-byte text up to the next control byte (or Kanji lead byte).
        end = pos
        while end < len(buf) and buf[end] >= 0x20 and buf[end] != 0x7F:
            if m.kanji and (0x81 <= buf[end] <= 0x9F or 0xE0 <= buf[end] <= 0xFC):
                break
            end += 1
        raw = bytes(buf[pos:end])
        encoding = "cp932" if m.kanji else _CODE_PAGES.get(m.code_page, "cp437")
        if m.code_page == 1 and not m.kanji:
            encoding = "cp932"  # Katakana page: JIS X 0201, i.e. half-width kana at 0xA1–0xDF
        text = raw.decode(encoding, errors="replace")
        self._printable(len(raw), lambda: self._add_text(m, text))
        return len(raw), b""

    def _printable(self, size: int, action: Callable[[], None]) -> None:
        with self._lock:
            blocked = self._blocked()
        if blocked:
            self.discarded_bytes += size
            return
        self._page_bytes += size
        action()

    def _esc(
        self, conn: _Connection, buf: bytearray, pos: int, need: Callable[[int], None]
    ) -> tuple[int, bytes]:
        m = conn.modes
        need(2)
        c = buf[pos + 1]
        if c == 0x40:  # ESC @: clears the print buffer (the unprinted line) and resets modes
            conn.modes = _Modes()
            return 2, b""
        if c == 0x32:  # ESC 2
            m.line_spacing = DEFAULT_LINE_SPACING
            return 2, b""
        if c in (0x69, 0x6D):  # ESC i / ESC m: legacy full / partial cut
            self._printable(2, lambda: self._cut(m, "full" if c == 0x69 else "partial", 0))
            return 2, b""
        if c == 0x2A:  # ESC * m nL nH data: column image
            need(5)
            mode, n = buf[pos + 2], buf[pos + 3] | buf[pos + 4] << 8
            rows = 3 if mode in (32, 33) else 1
            need(5 + n * rows)
            data = bytes(buf[pos + 5 : pos + 5 + n * rows])
            self._printable(5 + n * rows, lambda: self._column_image(m, data, n, rows, mode))
            return 5 + n * rows, b""
        need(3)
        n = buf[pos + 2]
        if c == 0x61:  # ESC a n
            m.align = {0: "left", 48: "left", 1: "center", 49: "center", 2: "right", 50: "right"}.get(
                n, m.align
            )  # type: ignore[assignment]
        elif c in (0x45, 0x47):  # ESC E n / ESC G n
            m.bold = bool(n & 1)
        elif c == 0x2D:  # ESC - n
            m.underline = n in (1, 2, 49, 50)
        elif c == 0x21:  # ESC ! n
            m.font_b = bool(n & 0x01)
            m.bold = bool(n & 0x08)
            m.height_mult = 2 if n & 0x10 else 1
            m.width_mult = 2 if n & 0x20 else 1
            m.underline = bool(n & 0x80)
        elif c == 0x4D:  # ESC M n
            m.font_b = n in (1, 49)
        elif c == 0x64:  # ESC d n: print and feed n lines
            self._printable(3, lambda: self._feed(m, n * m.line_spacing))
        elif c == 0x4A:  # ESC J n: print and feed n dots
            self._printable(3, lambda: self._feed(m, n))
        elif c == 0x33:  # ESC 3 n
            m.line_spacing = n
        elif c == 0x74:  # ESC t n
            m.code_page = n
        else:
            length = _FIXED.get(bytes(buf[pos : pos + 2]))
            if length is None:
                self._unknown.append(f"ESC 0x{c:02x}")
                return 2, b""
            if length == 0:
                return self._length_prefixed(buf, pos, need)
            need(length)
            return length, b""
        return 3, b""

    def _gs(
        self, conn: _Connection, buf: bytearray, pos: int, need: Callable[[int], None]
    ) -> tuple[int, bytes]:
        m = conn.modes
        need(2)
        c = buf[pos + 1]
        if c == 0x76:  # GS v 0 m xL xH yL yH data
            need(8)
            if buf[pos + 2] not in (0x30, 0x00):
                self._unknown.append("GS v")
                return 3, b""
            mode = buf[pos + 3] & 0x03
            width_bytes = buf[pos + 4] | buf[pos + 5] << 8
            height = buf[pos + 6] | buf[pos + 7] << 8
            size = width_bytes * height
            need(8 + size)
            data = bytes(buf[pos + 8 : pos + 8 + size])
            self._printable(8 + size, lambda: self._raster(m, data, width_bytes, height, mode))
            return 8 + size, b""
        if c == 0x28:  # GS ( X pL pH ...
            need(5)
            fn_letter = buf[pos + 2]
            length = buf[pos + 3] | buf[pos + 4] << 8
            need(5 + length)
            body = bytes(buf[pos + 5 : pos + 5 + length])
            if fn_letter == 0x6B:  # GS ( k: 2D codes
                self._two_d_code(m, body, 5 + length)
            elif fn_letter == 0x4C:  # GS ( L: graphics
                self._graphics(m, body, 5 + length)
            return 5 + length, b""
        if c == 0x38:  # GS 8 X p1 p2 p3 p4 ...: large graphics data
            need(7)
            fn_letter = buf[pos + 2]
            length = int.from_bytes(buf[pos + 3 : pos + 7], "little")
            need(7 + length)
            if fn_letter == 0x4C:
                self._graphics(m, bytes(buf[pos + 7 : pos + 7 + length]), 7 + length)
            return 7 + length, b""
        if c == 0x56:  # GS V m [n]
            need(3)
            mode = buf[pos + 2]
            if mode in (0, 48, 1, 49):
                self._printable(3, lambda: self._cut(m, "full" if mode in (0, 48) else "partial", 0))
                return 3, b""
            need(4)
            feed = buf[pos + 3]
            kind: Literal["full", "partial"] = "full" if mode in (65, 97, 103) else "partial"
            self._printable(4, lambda: self._cut(m, kind, feed))
            return 4, b""
        if c == 0x6B:  # GS k m ...: barcode
            need(3)
            mode = buf[pos + 2]
            if mode <= 6:
                end = buf.find(b"\x00", pos + 3)
                if end < 0:
                    raise _NeedMore
                data = bytes(buf[pos + 3 : end])
                self._printable(end + 1 - pos, lambda: self._barcode(m, data))
                return end + 1 - pos, b""
            need(4)
            n = buf[pos + 3]
            need(4 + n)
            data = bytes(buf[pos + 4 : pos + 4 + n])
            self._printable(4 + n, lambda: self._barcode(m, data))
            return 4 + n, b""
        need(3)
        n = buf[pos + 2]
        if c == 0x21:  # GS ! n
            m.width_mult = (n >> 4 & 0x07) + 1
            m.height_mult = (n & 0x07) + 1
            return 3, b""
        skip = _FIXED.get(bytes(buf[pos : pos + 2]))
        if skip is None:
            self._unknown.append(f"GS 0x{c:02x}")
            return 2, b""
        if skip == 0:
            return self._length_prefixed(buf, pos, need)
        need(skip)
        return skip, b""

    def _fs(
        self, conn: _Connection, buf: bytearray, pos: int, need: Callable[[int], None]
    ) -> tuple[int, bytes]:
        m = conn.modes
        need(2)
        c = buf[pos + 1]
        if c == 0x26:  # FS &
            m.kanji = True
            return 2, b""
        if c == 0x2E:  # FS .
            m.kanji = False
            return 2, b""
        if c == 0x28:  # FS ( X pL pH ...
            return self._length_prefixed(buf, pos, need)
        need(3)
        n = buf[pos + 2]
        if c == 0x43:  # FS C n: Kanji code system (only Shift_JIS is drawn)
            return 3, b""
        if c == 0x21:  # FS ! n: Kanji print mode
            m.kanji_width_mult = 2 if n & 0x04 else 1
            m.kanji_height_mult = 2 if n & 0x08 else 1
            m.underline = bool(n & 0x80)
            return 3, b""
        length = _FIXED.get(bytes(buf[pos : pos + 2]))
        if length is None:
            self._unknown.append(f"FS 0x{c:02x}")
            return 2, b""
        if length == 0:
            return self._length_prefixed(buf, pos, need)
        need(length)
        return length, b""

    def _length_prefixed(self, buf: bytearray, pos: int, need: Callable[[int], None]) -> tuple[int, bytes]:
        # <prefix> X pL pH data: skip it whole.
        need(5)
        length = buf[pos + 3] | buf[pos + 4] << 8
        need(5 + length)
        return 5 + length, b""

    # --- status ---

    def _status(self, n: int) -> int:
        with self._lock:
            value = 0x12
            if n == 1:
                if self._paper_out or self._cover_open or self._offline or self._error:
                    value |= 0x08
            elif n == 2:
                if self._cover_open:
                    value |= 0x04
                if self._paper_out:
                    value |= 0x20
                if self._error:
                    value |= 0x40
            elif n == 3:
                value |= {"autocutter": 0x08, "unrecoverable": 0x20, "recoverable": 0x40}.get(
                    self._error or "", 0
                )
            elif n == 4:
                if self._paper_out:
                    value |= 0x6C
                elif self._paper_near_end:
                    value |= 0x0C
            return value

    # --- the paper ---

    def _font(self, size: int) -> ImageFont.FreeTypeFont:
        font = self._fonts.get(size)
        if font is None:
            font = self._fonts[size] = ImageFont.truetype(self._font_file, size)
        return font

    def _add_text(self, m: _Modes, text: str) -> None:
        wide = m.kanji
        width_mult = m.width_mult * (m.kanji_width_mult if wide else 1)
        height_mult = m.height_mult * (m.kanji_height_mult if wide else 1)
        look = (m.bold, m.underline, width_mult, height_mult, m.font_b)
        if m.line and m.line[-1].image is None:
            last = m.line[-1]
            if (last.bold, last.underline, last.width_mult, last.height_mult, last.font_b) == look:
                last.text += text
                return
        m.line.append(_Segment(text, None, *look))

    def _render_segment(self, seg: _Segment) -> Image.Image:
        if seg.image is not None:
            return seg.image
        height = CHAR_HEIGHT[1 if seg.font_b else 0]
        font = self._font(height)
        width = max(1, int(font.getlength(seg.text) + 0.5) + (1 if seg.bold else 0))
        img = Image.new("L", (width, height + 2), 255)
        draw = ImageDraw.Draw(img)
        draw.text((0, 1), seg.text, font=font, fill=0, stroke_width=1 if seg.bold else 0, stroke_fill=0)
        if seg.underline:
            draw.line((0, height, width, height), fill=0, width=2 if seg.bold else 1)
        if seg.width_mult > 1 or seg.height_mult > 1:
            img = img.resize(
                (img.width * seg.width_mult, img.height * seg.height_mult), Image.Resampling.NEAREST
            )
        return img

    def _print_line(self, m: _Modes, empty_feed: bool = False) -> None:
        segments, m.line = m.line, []
        text = "".join(s.text for s in segments).rstrip()
        if text:
            self._texts.append(text)
        if not segments:
            if empty_feed:
                self._feed_blank(m.line_spacing)
            return
        for row in self._wrap(segments):
            images = [self._render_segment(s) for s in row]
            width = sum(i.width for i in images)
            height = max(i.height for i in images)
            line = Image.new("L", (width, max(height, m.line_spacing)), 255)
            x = 0
            for img in images:
                line.paste(img, (x, height - img.height))  # on a common baseline at the bottom
                x += img.width
            self._place(line, m.align)

    def _wrap(self, segments: list[_Segment]) -> list[list[_Segment]]:
        """Split a line into rows that fit the paper, as a printer does at the end of the print area."""
        rows: list[list[_Segment]] = [[]]
        x = 0.0
        for seg in segments:
            if seg.image is not None:
                if x + seg.image.width > self.width and rows[-1]:
                    rows.append([])
                    x = 0
                rows[-1].append(seg)
                x += seg.image.width
                continue
            font = self._font(CHAR_HEIGHT[1 if seg.font_b else 0])
            current = ""
            for char in seg.text:
                advance = font.getlength(char) * seg.width_mult
                if x + advance > self.width and (current or rows[-1]):
                    if current:
                        rows[-1].append(dataclasses.replace(seg, text=current))
                        current = ""
                    rows.append([])
                    x = 0
                current += char
                x += advance
            if current:
                rows[-1].append(dataclasses.replace(seg, text=current))
        return [row for row in rows if row]

    def _feed(self, m: _Modes, dots: int) -> None:
        if m.line:
            self._print_line(m)
        self._feed_blank(dots)

    def _feed_blank(self, dots: int) -> None:
        if dots > 0:
            self._blocks.append((Image.new("L", (1, dots), 255), "left"))

    def _place(self, image: Image.Image, align: str) -> None:
        if image.width > self.width:
            self._unknown.append(f"image {image.width} dots wide on {self.width}-dot paper (cropped)")
        self._blocks.append((image, align))

    def _raster(self, m: _Modes, data: bytes, width_bytes: int, height: int, mode: int) -> None:
        if m.line:
            self._print_line(m)
        if width_bytes == 0 or height == 0:
            return
        bits = Image.frombytes("1", (width_bytes * 8, height), data)  # 1 = print
        image = ImageOps.invert(bits.convert("L"))  # black = printed
        self._rasters.append(image)
        if mode:
            image = image.resize(
                (image.width * (2 if mode & 1 else 1), image.height * (2 if mode & 2 else 1)),
                Image.Resampling.NEAREST,
            )
        self._place(image, m.align)

    def _column_image(self, m: _Modes, data: bytes, n: int, rows: int, mode: int) -> None:
        height = 8 * rows
        image = Image.new("L", (n, height), 255)
        pixels = image.load()
        assert pixels is not None
        for x in range(n):
            for r in range(rows):
                byte = data[x * rows + r]
                for bit in range(8):
                    if byte & (0x80 >> bit):
                        pixels[x, r * 8 + bit] = 0
        if mode in (0, 32):  # single density: double width
            image = image.resize((n * 2, height), Image.Resampling.NEAREST)
        self._rasters.append(image)
        m.line.append(_Segment(image=image))

    def _graphics(self, m: _Modes, body: bytes, size: int) -> None:
        if len(body) < 2:
            return
        fn = body[1]
        if fn in (0x70, 112) and len(body) >= 10:  # store raster graphics: m fn a bx by c xL xH yL yH d
            width = body[6] | body[7] << 8
            height = body[8] | body[9] << 8
            width_bytes = (width + 7) // 8
            data = body[10 : 10 + width_bytes * height]
            if len(data) == width_bytes * height and width and height:
                bits = Image.frombytes("1", (width_bytes * 8, height), data)
                m.graphics = ImageOps.invert(bits.convert("L")).crop((0, 0, width, height))
        elif fn in (0x32, 50):  # print the stored graphics
            graphics = m.graphics

            def draw() -> None:
                if graphics is not None:
                    if m.line:
                        self._print_line(m)
                    self._rasters.append(graphics)
                    self._place(graphics, m.align)

            self._printable(size, draw)

    def _two_d_code(self, m: _Modes, body: bytes, size: int) -> None:
        if len(body) < 2 or body[0] != 49:  # cn 49 = QR code; others are not drawn
            if len(body) >= 2:
                self._unknown.append(f"GS ( k cn={body[0]}")
            return
        fn = body[1]
        if fn == 67 and len(body) >= 3:
            m.qr_module = max(1, min(16, body[2]))
        elif fn == 69 and len(body) >= 3:
            m.qr_error = {48: "L", 49: "M", 50: "Q", 51: "H"}.get(body[2], "L")
        elif fn == 80 and len(body) >= 3:
            m.qr_data = body[3:]
        elif fn == 81:
            data = m.qr_data
            if data:
                self._printable(size, lambda: self._draw_qr(m, data))

    def _draw_qr(self, m: _Modes, data: bytes) -> None:
        if m.line:
            self._print_line(m)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp932", errors="replace")
        self._qr.append(text)
        symbol = segno.make_qr(
            text, error=m.qr_error.lower(), encoding=None if text.isascii() else "utf-8", boost_error=False
        )
        matrix = symbol.matrix
        n = len(matrix)
        module = m.qr_module
        core = Image.frombytes("L", (n, n), bytes(0 if v else 255 for row in matrix for v in row))
        border = 4 * module
        image = Image.new("L", (n * module + 2 * border, n * module + 2 * border), 255)
        image.paste(core.resize((n * module, n * module), Image.Resampling.NEAREST), (border, border))
        self._place(image, m.align)

    def _barcode(self, m: _Modes, data: bytes) -> None:
        if m.line:
            self._print_line(m)
        text = data.decode("ascii", errors="replace")
        self._barcodes.append(text)
        font = self._font(CHAR_HEIGHT[0])
        width = max(120, int(font.getlength(text)) + 16)
        image = Image.new("L", (width, 90), 255)
        draw = ImageDraw.Draw(image)
        for x in range(4, width - 4, 3):  # a stand-in for the bars
            draw.line((x, 4, x, 60), fill=0, width=1 if (x // 3) % 2 else 2)
        draw.text((8, 62), text, font=font, fill=0)
        self._place(image, m.align)

    def _cut(self, m: _Modes, kind: Literal["full", "partial"], feed: int) -> None:
        if m.line:
            self._print_line(m)
        self._feed_blank(feed)
        page = Image.new("L", (self.width, max(1, sum(img.height for img, _ in self._blocks))), 255)
        top = 0
        for img, align in self._blocks:
            x = 0
            if align == "center":
                x = max(0, (self.width - img.width) // 2)
            elif align == "right":
                x = max(0, self.width - img.width)
            page.paste(img, (x, top))
            top += img.height
        mono = page.point(lambda v: 255 if v >= 128 else 0, mode="1")
        with self._lock:
            index = self._next_index
            self._next_index += 1
        receipt = SimulatedReceipt(
            index=index,
            image=mono,
            texts=self._texts,
            qr=self._qr,
            barcodes=self._barcodes,
            rasters=self._rasters,
            cut=kind,
            byte_count=self._page_bytes,
            unknown=self._unknown,
        )
        self._blocks, self._texts, self._qr, self._barcodes, self._rasters, self._unknown = (
            [],
            [],
            [],
            [],
            [],
            [],
        )
        self._page_bytes = 0
        if self.out_dir is not None:
            receipt.png = self.out_dir / f"receipt-{index}.png"
            receipt.json = self.out_dir / f"receipt-{index}.json"
            mono.save(receipt.png, optimize=False, compress_level=1)
            tmp = receipt.json.with_suffix(".json.tmp")
            tmp.write_text(
                json.dumps(receipt.sidecar(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
            )
            tmp.replace(receipt.json)
        with self._lock:
            self._receipts.append(receipt)
            self._lock.notify_all()
        if self.on_receipt is not None:
            self.on_receipt(receipt)

    def _first_free_index(self) -> int:
        if self.out_dir is None or not self.out_dir.is_dir():
            return 1
        taken = [
            int(match.group(1))
            for p in self.out_dir.glob("receipt-*.png")
            if (match := re.fullmatch(r"receipt-(\d+)\.png", p.name))
        ]
        return max(taken, default=0) + 1


# --- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m device_bridge.simulators.escpos_printer",
        description="A simulated ESC/POS receipt printer: each cut becomes receipt-<n>.png + .json.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--out", default="var/receipts", help="folder for receipt-<n>.png/.json")
    parser.add_argument("--paper-mm", type=int, choices=sorted(PAPER_DOTS), default=80)
    parser.add_argument("--paper-out", action="store_true", help="start with the paper out")
    parser.add_argument("--cover-open", action="store_true", help="start with the cover open")
    args = parser.parse_args(argv)

    def announce(receipt: SimulatedReceipt) -> None:
        summary = " / ".join(receipt.texts[:3]) or f"{len(receipt.rasters)} image(s)"
        qr = f" QR={receipt.qr}" if receipt.qr else ""
        print(f"receipt {receipt.index}: {receipt.png} ({summary}){qr}", flush=True)

    sim = EscposPrinterSimulator(args.host, args.port, args.out, paper_mm=args.paper_mm, on_receipt=announce)
    sim.set_paper_out(args.paper_out)
    sim.set_cover_open(args.cover_open)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGUSR1:
            sim.set_paper_out(not sim.paper_out)
            print(f"paper {'out' if sim.paper_out else 'loaded'}", flush=True)
        elif signum == signal.SIGUSR2:
            sim.set_cover_open(not sim.cover_open)
            print(f"cover {'open' if sim.cover_open else 'closed'}", flush=True)
        else:
            stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, on_signal)
    with sim:
        print(
            f"ESC/POS printer simulator on {sim.host}:{sim.port}, {sim.width} dots, receipts → {args.out}",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
