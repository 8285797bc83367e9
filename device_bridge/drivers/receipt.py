"""Receipt printer driver: ESC/POS thermal printers over the network (TCP 9100), USB or serial.

Transport is python-escpos (its ``Network``, ``Usb`` and ``Serial`` printers, wrapped here in a
small typed layer); the bytes are built here. Japanese is printed reliably by rendering the text
with Pillow and IPAex Gothic into a 1-bit image sent as ``GS v 0`` raster, which every ESC/POS
printer prints, whatever its fonts and code pages. ``"text": "kanji"`` in the configuration sends
lines as Shift_JIS in Kanji mode (``FS &``) instead — much less data, for slow serial lines and
printers with a Japanese font — and still rasters a line that Shift_JIS can't encode.

    printer = ReceiptPrinter.from_config({"kind": "network", "host": "192.0.2.10", "paper_mm": 80})
    printer.print_receipt(Receipt(title="市民課", number="012", lines=[ReceiptLine("住民票の写し 1通")],
                                  qr="https://madoguchi.example/r/7f3a"))
    printer.status()          # PrinterStatus(online=True, cover_open=False, paper_out=False, …)

``print_receipt`` asks the printer for its status first (``DLE EOT`` 1–4) and raises
:class:`PrinterUnavailable` with a Japanese reason (「用紙切れ」「カバーが開いています」「オフライン」…)
instead of sending anything when it can't print, or when it can't be reached. After sending it
asks again; that answer is kept in ``last_status`` (e.g. ``paper_near_end`` for a staff warning).

Configuration (a dict from the bridge's settings)::

    {"kind": "network", "host": "127.0.0.1", "port": 9100}
    {"kind": "usb", "vendor": 0x04B8, "product": 0x0202, "in_ep": 0x82, "out_ep": 0x01}
    {"kind": "serial", "device": "/dev/ttyUSB0", "baudrate": 38400}
    # common, all optional:
    {"paper_mm": 80,            # 58 (384 dots) or 80 (576 dots)
     "dots": None,              # printable width in dots, to override paper_mm (e.g. 512)
     "profile": None,           # python-escpos profile name, e.g. "TM-T88V"
     "qr": "auto",              # "native" (GS ( k), "raster" (segno image), "auto": native when the
                                #   profile says it has QR, else raster
     "text": "raster",          # or "kanji" (see above)
     "check_status": True,      # False for printers that never answer DLE EOT
     "timeout": 5.0,            # seconds to connect / wait for a status answer
     "font": None}              # a TrueType/OpenType font instead of IPAex Gothic

Calls block; the bridge runs them in a worker thread (``asyncio.to_thread``). One instance may be
shared between threads: calls are serialised. Every call opens the connection and closes it again
(network printers serve one connection at a time).
"""

from __future__ import annotations

import contextlib
import functools
import re
import socket
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import segno
from PIL import Image, ImageDraw, ImageFont

from app.printing.qr import install as install_fast_qr_masks
from device_bridge.drivers.office import PrinterUnavailable

with warnings.catch_warnings():
    # python-escpos and its helpers (qrcode, python-barcode, pyusb) import old-style modules;
    # keep whatever they warn about at import out of the warnings-are-errors test run.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", PendingDeprecationWarning)
    from escpos.capabilities import get_profile  # type: ignore[import-untyped]
    from escpos.exceptions import DeviceNotFoundError  # type: ignore[import-untyped]
    from escpos.printer import Network, Serial, Usb  # type: ignore[import-untyped]

__all__ = [
    "FONT_CANDIDATES",
    "PAPER_DOTS",
    "PrinterStatus",
    "PrinterUnavailable",
    "Receipt",
    "ReceiptConnection",
    "ReceiptLine",
    "ReceiptPrinter",
    "ReceiptPrinterConfig",
    "build_receipt_bytes",
    "decode_status",
    "find_font",
    "native_qr_commands",
    "qr_image",
    "raster_commands",
    "render_lines",
    "render_receipt",
    "wrap_text",
]

FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/truetype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
)
PAPER_DOTS = {58: 384, 80: 576}

ESC = b"\x1b"
GS = b"\x1d"
FS = b"\x1c"
DLE = b"\x10"
EOT = b"\x04"
LF = b"\n"

Align = Literal["left", "center", "right"]
Size = Literal["normal", "large"]
Cut = Literal["full", "partial", "none"]

# Pixel sizes at 203 dpi (8 dots/mm).
FONT_NORMAL = 24
FONT_LARGE = 44
FONT_NUMBER = 150
MARGIN = 8
BAND_ROWS = 256  # rows per GS v 0 command
CUT_FEED_LINES = 5  # ESC d n before the cut: gets the last line past the cutter


# --- printer status (DLE EOT) ------------------------------------------------------------------


@dataclass(frozen=True)
class PrinterStatus:
    """What the printer said to ``DLE EOT`` 1–4 (real-time status transmission)."""

    online: bool
    cover_open: bool
    paper_out: bool
    paper_near_end: bool
    error: bool
    autocutter_error: bool = False
    unrecoverable_error: bool = False
    raw: bytes = b""

    @property
    def can_print(self) -> bool:
        return self.online and not (self.cover_open or self.paper_out or self.error)

    @property
    def reasons(self) -> list[str]:
        """Why it can't print, in Japanese for staff (empty when it can)."""
        out: list[str] = []
        if self.paper_out:
            out.append("用紙切れ")
        if self.cover_open:
            out.append("カバーが開いています")
        if self.autocutter_error:
            out.append("オートカッターのエラー（紙詰まりを確認してください）")
        if self.unrecoverable_error:
            out.append("プリンターの故障（電源を入れ直してください）")
        if self.error and not (self.autocutter_error or self.unrecoverable_error):
            out.append("プリンターエラー")
        if not out and not self.online:
            out.append("オフライン")
        return out

    @property
    def warnings(self) -> list[str]:
        """Things staff should see although it still prints."""
        return ["用紙が残りわずかです"] if self.paper_near_end and not self.paper_out else []

    @property
    def reason(self) -> str:
        return "、".join(self.reasons)


def _check_status_byte(value: int, n: int) -> None:
    # Every DLE EOT answer has bit 1 and bit 4 set, bits 0 and 7 clear.
    if value & 0x93 != 0x12:
        raise ValueError(f"0x{value:02x} is not an answer to DLE EOT {n}")


def decode_status(printer: int, offline_cause: int, error_cause: int, paper: int) -> PrinterStatus:
    """Decode the answers to ``DLE EOT`` 1 (printer), 2 (offline cause), 3 (error cause) and
    4 (roll paper sensor), as in Epson's ESC/POS reference."""
    for n, value in enumerate((printer, offline_cause, error_cause, paper), start=1):
        _check_status_byte(value, n)
    autocutter = bool(error_cause & 0x08)
    unrecoverable = bool(error_cause & 0x20)
    auto_recoverable = bool(error_cause & 0x40)
    return PrinterStatus(
        online=not printer & 0x08,
        cover_open=bool(offline_cause & 0x04),
        paper_out=(paper & 0x60) == 0x60 or bool(offline_cause & 0x20),
        paper_near_end=(paper & 0x0C) == 0x0C,
        error=bool(offline_cause & 0x40) or autocutter or unrecoverable or auto_recoverable,
        autocutter_error=autocutter,
        unrecoverable_error=unrecoverable,
        raw=bytes((printer, offline_cause, error_cause, paper)),
    )


# --- the layout model --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptLine:
    text: str
    size: Size = "normal"
    align: Align = "left"
    bold: bool = False

    @classmethod
    def from_value(cls, value: object) -> ReceiptLine:
        """A line from a plain string or a dict ``{"text", "size", "align", "bold"}``."""
        if isinstance(value, ReceiptLine):
            return value
        if isinstance(value, str):
            return cls(value)
        if not isinstance(value, Mapping):
            raise ValueError(f"a receipt line must be a string or an object, not {type(value).__name__}")
        text = value.get("text", "")
        size = value.get("size", "normal")
        align = value.get("align", "left")
        bold = value.get("bold", False)
        if not isinstance(text, str):
            raise ValueError("receipt line 'text' must be a string")
        if size not in ("normal", "large"):
            raise ValueError("receipt line 'size' must be 'normal' or 'large'")
        if align not in ("left", "center", "right"):
            raise ValueError("receipt line 'align' must be 'left', 'center' or 'right'")
        if not isinstance(bold, bool):
            raise ValueError("receipt line 'bold' must be true or false")
        unknown = set(value) - {"text", "size", "align", "bold"}
        if unknown:
            raise ValueError(f"unknown receipt line fields: {', '.join(sorted(map(str, unknown)))}")
        return cls(text, size, align, bold)


@dataclass(frozen=True)
class Receipt:
    """What a receipt says, top to bottom: title, the big reception number, lines, QR, footer."""

    title: str = ""
    lines: Sequence[ReceiptLine] = ()
    number: str | None = None
    number_label: str = "受付番号"
    qr: str | None = None
    footer: Sequence[ReceiptLine] = ()
    cut: Cut = "partial"

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Receipt:
        """The print-job payload form: ``{"title", "number", "number_label", "lines": [str |
        {"text", "size", "align", "bold"}], "qr", "footer": [...], "cut"}``."""
        unknown = set(data) - {"title", "lines", "number", "number_label", "qr", "footer", "cut"}
        if unknown:
            raise ValueError(f"unknown receipt fields: {', '.join(sorted(unknown))}")
        title = data.get("title", "")
        number = data.get("number")
        number_label = data.get("number_label", "受付番号")
        qr = data.get("qr")
        cut = data.get("cut", "partial")
        if not isinstance(title, str) or not isinstance(number_label, str):
            raise ValueError("receipt 'title' and 'number_label' must be strings")
        if number is not None and not isinstance(number, str | int):
            raise ValueError("receipt 'number' must be a string")
        if qr is not None and not isinstance(qr, str):
            raise ValueError("receipt 'qr' must be a string")
        if cut not in ("full", "partial", "none"):
            raise ValueError("receipt 'cut' must be 'full', 'partial' or 'none'")

        def lines_of(key: str) -> tuple[ReceiptLine, ...]:
            value = data.get(key, ())
            if not isinstance(value, list | tuple):
                raise ValueError(f"receipt '{key}' must be a list")
            return tuple(ReceiptLine.from_value(item) for item in value)

        return cls(
            title=title,
            lines=lines_of("lines"),
            number=None if number is None else str(number),
            number_label=number_label,
            qr=qr or None,
            footer=lines_of("footer"),
            cut=cut,
        )


# --- rendering ---------------------------------------------------------------------------------


def find_font(path: str | None = None) -> str:
    """The Japanese font to render with: ``path`` when given, else IPAex Gothic."""
    candidates = (path,) if path else FONT_CANDIDATES
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise FileNotFoundError(
        f"Japanese font not found ({', '.join(c for c in candidates if c)}); "
        "install it with: apt-get install fonts-ipaexfont-gothic"
    )


@functools.lru_cache(maxsize=64)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


# Characters that must not start a line (kinsoku shori, the common subset).
_NO_LINE_START = set(
    "、。，．,.・：；:;？！?!ー―‐)）]］｝〕〉》」』】’”ゝゞ々ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ…"
)

# … and that must not end one (opening brackets).
_NO_LINE_END = set("(（[［｛〔〈《「『【‘“")


def wrap_text(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Break ``text`` into lines no wider than ``width`` pixels, character by character (Japanese
    has no spaces), keeping closing punctuation and small kana off the start of a line and
    opening brackets off its end."""
    out: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for char in paragraph:
            if line and font.getlength(line + char) > width:
                base = len(line) - 1 if char in _NO_LINE_START and len(line) > 1 else len(line)
                cut = base
                while cut > 1 and line[cut - 1] in _NO_LINE_END:
                    cut -= 1
                if line[cut - 1] in _NO_LINE_END:  # nothing but opening brackets: give up
                    cut = base
                out.append(line[:cut])
                line = line[cut:]
            line += char
        out.append(line)
    return out


class _Canvas:
    """A growing white image that blocks of black text and images are stacked onto."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.blocks: list[Image.Image] = []

    @property
    def empty(self) -> bool:
        return not self.blocks

    def space(self, height: int) -> None:
        if height > 0:
            self.blocks.append(Image.new("L", (self.width, height), 255))

    def image(self, image: Image.Image, align: Align = "center") -> None:
        block = Image.new("L", (self.width, image.height), 255)
        block.paste(image.convert("L"), (_x_for(align, image.width, self.width), 0))
        self.blocks.append(block)

    def text(self, text: str, font_path: str, size: int, align: Align = "left", bold: bool = False) -> None:
        self.blocks.extend(_text_blocks(text, font_path, size, align, bold, self.width))

    def rule(self, thickness: int = 2) -> None:
        self.space(6)
        block = Image.new("L", (self.width, thickness), 255)
        ImageDraw.Draw(block).rectangle((MARGIN, 0, self.width - MARGIN - 1, thickness - 1), fill=0)
        self.blocks.append(block)
        self.space(10)

    def take(self) -> Image.Image:
        """Everything stacked so far as one image (white background, black ink); clears it."""
        height = sum(block.height for block in self.blocks)
        out = Image.new("L", (self.width, height), 255)
        top = 0
        for block in self.blocks:
            out.paste(block, (0, top))
            top += block.height
        self.blocks = []
        return out


@functools.lru_cache(maxsize=512)
def _text_blocks(
    text: str, font_path: str, size: int, align: Align, bold: bool, width: int
) -> tuple[Image.Image, ...]:
    """``text`` wrapped to ``width`` dots, one white image a line, black text.

    Cached: most lines of a location's receipts repeat (title, label, items, fee, footer), and
    drawing Japanese text with FreeType is most of a receipt's cost. The images are shared, so
    nothing may draw on them (the canvas only pastes them)."""
    font = _font(font_path, size)
    ascent, descent = font.getmetrics()
    line_height = int((ascent + descent) * 1.15)
    blocks: list[Image.Image] = []
    for line in wrap_text(text, font, width - 2 * MARGIN):
        block = Image.new("L", (width, line_height), 255)
        if line:
            draw = ImageDraw.Draw(block)
            length = font.getlength(line) + (2 if bold else 0)
            x = _x_for(align, int(length + 0.5), width)
            draw.text(
                (x, (line_height - ascent - descent) // 2),
                line,
                font=font,
                fill=0,
                stroke_width=1 if bold else 0,
                stroke_fill=0,
            )
        blocks.append(block)
    return tuple(blocks)


def _x_for(align: Align, content_width: int, width: int) -> int:
    if align == "center":
        return max(0, (width - content_width) // 2)
    if align == "right":
        return max(0, width - MARGIN - content_width)
    return MARGIN


def render_lines(lines: Iterable[ReceiptLine], width: int, font_path: str | None = None) -> Image.Image:
    """Lines of text as they go out in raster: white background, black text, ``width`` dots wide."""
    canvas = _Canvas(width)
    path = find_font(font_path)
    for line in lines:
        canvas.text(
            line.text, path, FONT_LARGE if line.size == "large" else FONT_NORMAL, line.align, line.bold
        )
    return canvas.take()


def _number_font_size(number: str, font_path: str, width: int) -> int:
    size = FONT_NUMBER
    while size > FONT_LARGE and _font(font_path, size).getlength(number) > width - 2 * MARGIN:
        size -= 10
    return size


@functools.lru_cache(maxsize=8)
def _qr_symbol(payload: str) -> segno.QRCode:
    """The receipt's QR code (made once for its size and its image: most of a receipt's cost).

    segno chooses the data mask module by module in Python; `app.printing.qr` makes exactly the
    same choice row by row (tests/test_qr.py), several times faster."""
    install_fast_qr_masks()
    encoding = None if payload.isascii() else "utf-8"
    return segno.make_qr(payload, error="m", encoding=encoding, boost_error=False)


def qr_module_size(payload: str, width: int) -> int:
    """Dots per QR module so the code is at most ~55 % of the paper width (3 to 8)."""
    modules = int(_qr_symbol(payload).symbol_size(scale=1, border=0)[0])
    return max(3, min(8, int(width * 0.55) // modules))


def qr_image(payload: str, module: int) -> Image.Image:
    """The QR code as a black-on-white image with a 4-module quiet zone."""
    symbol = _qr_symbol(payload)
    matrix = symbol.matrix
    n = len(matrix)
    core = Image.frombytes("L", (n, n), bytes(0 if value else 255 for row in matrix for value in row))
    border = 4 * module
    out = Image.new("L", (n * module + 2 * border, n * module + 2 * border), 255)
    out.paste(core.resize((n * module, n * module), Image.Resampling.NEAREST), (border, border))
    return out


# --- ESC/POS encoding --------------------------------------------------------------------------

_INK_LUT = [255 if value < 128 else 0 for value in range(256)]  # dark → bit 1 (GS v 0: 1 = print)


def raster_commands(image: Image.Image, band_rows: int = BAND_ROWS) -> bytes:
    """``GS v 0`` commands (normal density) printing ``image`` (dark pixels print), in bands."""
    gray = image.convert("L")
    if gray.width % 8:
        padded = Image.new("L", ((gray.width + 7) // 8 * 8, gray.height), 255)
        padded.paste(gray, (0, 0))
        gray = padded
    bits = gray.point(_INK_LUT, mode="1")
    width_bytes = bits.width // 8
    out = bytearray()
    for top in range(0, bits.height, band_rows):
        band = bits.crop((0, top, bits.width, min(bits.height, top + band_rows)))
        out += GS + b"v0\x00" + width_bytes.to_bytes(2, "little") + band.height.to_bytes(2, "little")
        out += _without_realtime_commands(band.tobytes())
    return bytes(out)


_REALTIME = re.compile(rb"\x10[\x04\x05\x14]")


def _without_realtime_commands(data: bytes) -> bytes:
    """Printers act on DLE EOT / DLE ENQ / DLE DC4 (status, recover-and-clear-buffers, pulse or
    power off) wherever they occur in the stream, even inside image data. Clearing the byte after
    such a DLE in image data costs at most a few dots and keeps the printer from obeying it."""
    return _REALTIME.sub(b"\x10\x00", data)


def _gs_k(fn: int, payload: bytes) -> bytes:
    # GS ( k pL pH cn fn [params]: cn 49 = QR code.
    return GS + b"(k" + (len(payload) + 2).to_bytes(2, "little") + bytes((49, fn)) + payload


def native_qr_commands(payload: str, module: int, error_level: Literal["L", "M", "Q", "H"] = "M") -> bytes:
    """``GS ( k`` commands: model 2, module size, error correction, store the data, print it."""
    data = payload.encode("utf-8")
    if not 1 <= module <= 16:
        raise ValueError("QR module size must be 1 to 16 dots")
    if len(data) > 7089:
        raise ValueError("QR payload too long")
    return (
        _gs_k(65, b"\x32\x00")  # model 2
        + _gs_k(67, bytes((module,)))
        + _gs_k(69, bytes((48 + "LMQH".index(error_level),)))
        + _gs_k(80, b"\x30" + data)  # store in the symbol storage area
        + _gs_k(81, b"\x30")  # print it
    )


_ALIGN_BYTE: dict[str, bytes] = {"left": b"\x00", "center": b"\x01", "right": b"\x02"}


def _kanji_line(line: ReceiptLine) -> bytes | None:
    """A line as Kanji-mode text (Shift_JIS), or None when Shift_JIS can't encode it."""
    try:
        data = line.text.encode("cp932")
    except UnicodeEncodeError:
        return None
    size = b"\x11" if line.size == "large" else b"\x00"
    return (
        ESC
        + b"a"
        + _ALIGN_BYTE[line.align]
        + GS
        + b"!"
        + size
        + ESC
        + b"E"
        + (b"\x01" if line.bold else b"\x00")
        + data.replace(b"\n", LF)
        + LF
    )


def _compose(
    receipt: Receipt, width: int, font_path: str, native_qr: bool, text_mode: Literal["raster", "kanji"]
) -> list[Image.Image | bytes]:
    """The receipt, top to bottom, as raster images and (Kanji text, native QR) command bytes."""
    parts: list[Image.Image | bytes] = []
    canvas = _Canvas(width)

    def flush() -> None:
        if not canvas.empty:
            parts.append(canvas.take())

    def text_lines(lines: Iterable[ReceiptLine]) -> None:
        for line in lines:
            encoded = _kanji_line(line) if text_mode == "kanji" else None
            if encoded is None:
                size = FONT_LARGE if line.size == "large" else FONT_NORMAL
                canvas.text(line.text, font_path, size, line.align, line.bold)
            else:
                flush()
                parts.append(FS + b"C\x01" + FS + b"&" + encoded + FS + b"." + GS + b"!\x00" + ESC + b"E\x00")

    if receipt.title:
        text_lines([ReceiptLine(receipt.title, "large", "center", True)])
        canvas.rule()
    if receipt.number is not None:
        number = str(receipt.number)
        if receipt.number_label:
            text_lines([ReceiptLine(receipt.number_label, "normal", "center")])
        canvas.text(number, font_path, _number_font_size(number, font_path, width), "center", True)
        canvas.space(12)
    text_lines(receipt.lines)
    if receipt.qr:
        module = qr_module_size(receipt.qr, width)
        if native_qr:
            flush()
            parts.append(ESC + b"a\x01" + native_qr_commands(receipt.qr, module) + LF + ESC + b"a\x00")
        else:
            canvas.space(8)
            canvas.image(qr_image(receipt.qr, module), "center")
    text_lines(receipt.footer)
    flush()
    return parts


def render_receipt(receipt: Receipt, width: int, font_path: str | None = None) -> Image.Image:
    """The whole receipt as the raster the printer gets in the default mode (raster text and QR):
    a preview for screens, and what the printer's paper shows above the cut feed."""
    parts = _compose(receipt, width, find_font(font_path), native_qr=False, text_mode="raster")
    images = [part for part in parts if isinstance(part, Image.Image)]
    out = Image.new("L", (width, sum(image.height for image in images)), 255)
    top = 0
    for image in images:
        out.paste(image, (0, top))
        top += image.height
    return out


def build_receipt_bytes(
    receipt: Receipt,
    width: int,
    *,
    font_path: str | None = None,
    native_qr: bool = False,
    text_mode: Literal["raster", "kanji"] = "raster",
) -> bytes:
    """Everything sent to the printer for one receipt, from ``ESC @`` to the cut."""
    out = bytearray(ESC + b"@")
    for part in _compose(receipt, width, find_font(font_path), native_qr, text_mode):
        if isinstance(part, Image.Image):
            out += ESC + b"a\x00" + raster_commands(part)
        else:
            out += part
    if receipt.cut != "none":
        out += ESC + b"d" + bytes((CUT_FEED_LINES,))
        out += GS + b"V" + (b"\x01" if receipt.cut == "partial" else b"\x00")
    return bytes(out)


# --- configuration -----------------------------------------------------------------------------


def _int_value(data: Mapping[str, object], key: str, default: int | None = None) -> int:
    value = data.get(key, default)
    if isinstance(value, str):
        try:
            value = int(value, 0)
        except ValueError:
            raise ValueError(f"receipt printer '{key}' must be a number, not {value!r}") from None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"receipt printer needs '{key}' (a number)")
    return value


@dataclass(frozen=True)
class ReceiptPrinterConfig:
    kind: Literal["network", "usb", "serial"]
    host: str = ""
    port: int = 9100
    vendor: int = 0
    product: int = 0
    in_ep: int = 0x82
    out_ep: int = 0x01
    device: str = ""
    baudrate: int = 38400
    paper_mm: int = 80
    dots: int = 576
    profile: str | None = None
    qr: Literal["auto", "native", "raster"] = "auto"
    text: Literal["raster", "kanji"] = "raster"
    check_status: bool = True
    timeout: float = 5.0
    font: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ReceiptPrinterConfig:
        kind = data.get("kind")
        common = {"kind", "paper_mm", "dots", "profile", "qr", "text", "check_status", "timeout", "font"}
        per_kind = {
            "network": {"host", "port"},
            "usb": {"vendor", "product", "in_ep", "out_ep"},
            "serial": {"device", "baudrate"},
        }
        if kind not in per_kind:
            raise ValueError("receipt printer 'kind' must be 'network', 'usb' or 'serial'")
        unknown = set(data) - common - per_kind[str(kind)]
        if unknown:
            raise ValueError(f"unknown settings for a {kind} receipt printer: {', '.join(sorted(unknown))}")
        paper_mm = _int_value(data, "paper_mm", 80)
        if "dots" in data:
            dots = _int_value(data, "dots")
        elif paper_mm in PAPER_DOTS:
            dots = PAPER_DOTS[paper_mm]
        else:
            raise ValueError("receipt printer 'paper_mm' must be 58 or 80 (or give 'dots')")
        if not 64 <= dots <= 2048 or dots % 8:
            raise ValueError("receipt printer 'dots' must be a multiple of 8 from 64 to 2048")
        profile = data.get("profile")
        if profile is not None:
            if not isinstance(profile, str):
                raise ValueError("receipt printer 'profile' must be a python-escpos profile name")
            try:
                get_profile(profile)
            except Exception as exc:
                raise ValueError(f"unknown python-escpos profile {profile!r}") from exc
        qr = data.get("qr", "auto")
        if qr not in ("auto", "native", "raster"):
            raise ValueError("receipt printer 'qr' must be 'auto', 'native' or 'raster'")
        text = data.get("text", "raster")
        if text not in ("raster", "kanji"):
            raise ValueError("receipt printer 'text' must be 'raster' or 'kanji'")
        check_status = data.get("check_status", True)
        if not isinstance(check_status, bool):
            raise ValueError("receipt printer 'check_status' must be true or false")
        timeout = data.get("timeout", 5.0)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise ValueError("receipt printer 'timeout' must be a positive number of seconds")
        font = data.get("font")
        if font is not None and not isinstance(font, str):
            raise ValueError("receipt printer 'font' must be a file path")
        values: dict[str, Any] = {
            "kind": kind,
            "paper_mm": paper_mm,
            "dots": dots,
            "profile": profile,
            "qr": qr,
            "text": text,
            "check_status": check_status,
            "timeout": float(timeout),
            "font": font,
        }
        if kind == "network":
            host = data.get("host")
            if not isinstance(host, str) or not host:
                raise ValueError("a network receipt printer needs 'host'")
            port = _int_value(data, "port", 9100)
            if not 0 < port < 65536:
                raise ValueError("receipt printer 'port' must be 1 to 65535")
            values.update(host=host, port=port)
        elif kind == "usb":
            vendor = _int_value(data, "vendor")
            product = _int_value(data, "product")
            for key, value in (("vendor", vendor), ("product", product)):
                if not 0 < value <= 0xFFFF:
                    raise ValueError(f"receipt printer '{key}' must be a USB id from 0x0001 to 0xFFFF")
            in_ep = _int_value(data, "in_ep", 0x82)
            out_ep = _int_value(data, "out_ep", 0x01)
            values.update(vendor=vendor, product=product, in_ep=in_ep, out_ep=out_ep)
        else:
            device = data.get("device")
            if not isinstance(device, str) or not device:
                raise ValueError("a serial receipt printer needs 'device' (e.g. /dev/ttyUSB0)")
            baudrate = _int_value(data, "baudrate", 38400)
            if baudrate not in (2400, 4800, 9600, 19200, 38400, 57600, 115200):
                raise ValueError("receipt printer 'baudrate' must be a standard rate (9600, 19200, 38400, …)")
            values.update(device=device, baudrate=baudrate)
        return cls(**values)


# --- transport: python-escpos, typed at the edge -----------------------------------------------


class _Network(Network):  # type: ignore[misc]  # python-escpos has no type hints
    """python-escpos's Network, but closing the socket when connecting fails (it leaks it) and
    with Nagle off so small status requests aren't held back behind the receipt data."""

    def open(self, raise_not_found: bool = True) -> None:
        if self._device:
            self.close()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            self.device = None
            raise DeviceNotFoundError(f"Could not open socket for {self.host}:{self.port}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.device = sock


@dataclass
class ReceiptPrinter:
    config: ReceiptPrinterConfig
    last_status: PrinterStatus | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.font_path = find_font(self.config.font)

    @classmethod
    def from_config(cls, data: Mapping[str, object]) -> ReceiptPrinter:
        return cls(ReceiptPrinterConfig.from_dict(data))

    @property
    def width(self) -> int:
        return self.config.dots

    @property
    def native_qr(self) -> bool:
        if self.config.qr == "auto":
            # Only a named profile is evidence; python-escpos's "default" claims everything.
            return bool(self.config.profile) and bool(get_profile(self.config.profile).supports("qrCode"))
        return self.config.qr == "native"

    def make_device(self) -> Any:
        """The python-escpos printer object for this configuration (not opened)."""
        c = self.config
        profile = c.profile
        if c.kind == "network":
            return _Network(host=c.host, port=c.port, timeout=c.timeout, profile=profile)
        if c.kind == "usb":
            return Usb(
                idVendor=c.vendor,
                idProduct=c.product,
                timeout=int(c.timeout * 1000),
                in_ep=c.in_ep,
                out_ep=c.out_ep,
                profile=profile,
            )
        return Serial(devfile=c.device, baudrate=c.baudrate, timeout=c.timeout, profile=profile)

    def describe(self) -> str:
        c = self.config
        if c.kind == "network":
            return f"{c.host}:{c.port}"
        if c.kind == "usb":
            return f"USB {c.vendor:04x}:{c.product:04x}"
        return f"{c.device} ({c.baudrate} bps)"

    # -- connection --

    def _open(self) -> Any:
        device = self.make_device()
        try:
            device.open()
        except DeviceNotFoundError as exc:
            raise PrinterUnavailable(
                "レシートプリンターに接続できません（電源・ケーブル・ネットワークを確認してください）"
            ) from exc
        except Exception as exc:  # pyusb/pyserial errors (permissions, no backend) end up here
            raise PrinterUnavailable(f"レシートプリンターに接続できません（{type(exc).__name__}）") from exc
        return device

    def _send(self, device: Any, data: bytes) -> None:
        try:
            device._raw(data)
        except Exception as exc:
            raise PrinterUnavailable(
                "レシートプリンターにデータを送れませんでした（接続が切れました）"
            ) from exc

    def _query(self, device: Any, n: int) -> int:
        self._send(device, DLE + EOT + bytes((n,)))
        deadline = time.monotonic() + self.config.timeout
        while True:
            try:
                answer = bytes(device._read())
            except TimeoutError as exc:
                raise PrinterUnavailable("レシートプリンターが応答しません") from exc
            except Exception as exc:
                raise PrinterUnavailable("レシートプリンターの状態を読めませんでした") from exc
            if answer:
                return answer[-1]
            if self.config.kind == "network" or time.monotonic() >= deadline:
                # An empty read on a socket means the printer closed the connection.
                raise PrinterUnavailable("レシートプリンターが応答しません")

    def _read_status(self, device: Any) -> PrinterStatus:
        answers = [self._query(device, n) for n in (1, 2, 3, 4)]
        try:
            status = decode_status(*answers)
        except ValueError as exc:
            raise PrinterUnavailable(
                "レシートプリンターの応答が読めません（設定を確認してください）"
            ) from exc
        self.last_status = status
        return status

    @staticmethod
    def _close(device: Any) -> None:
        with contextlib.suppress(Exception):  # closing a dead connection; nothing left to do
            device.close()

    # -- public --

    def status(self) -> PrinterStatus:
        """Ask the printer (DLE EOT 1–4). Raises :class:`PrinterUnavailable` when unreachable."""
        with self.connect() as connection:
            return connection.status()

    def build(self, receipt: Receipt) -> bytes:
        """The ESC/POS bytes for ``receipt`` with this printer's width, QR and text settings."""
        return build_receipt_bytes(
            receipt,
            self.width,
            font_path=self.font_path,
            native_qr=self.native_qr,
            text_mode=self.config.text,
        )

    def print_receipt(self, receipt: Receipt) -> None:
        """Print one receipt; :class:`PrinterUnavailable` (Japanese reason) when it can't."""
        self.print_raw(self.build(receipt))

    def print_raw(self, data: bytes) -> None:
        """Send prepared ESC/POS bytes, with the same status checks as :meth:`print_receipt`."""
        with self.connect() as connection:
            if self.config.check_status:
                status = connection.status()
                if not status.can_print:
                    raise PrinterUnavailable(status.reason)
            connection.send(data)
            if self.config.check_status:
                # Also a barrier: the answer comes after the printer has taken all the data.
                connection.status()

    @contextlib.contextmanager
    def connect(self) -> Iterator[ReceiptConnection]:
        """An open connection, for callers that must know on which side of the send a failure
        fell (the bridge's journal)::

            with printer.connect() as connection:      # PrinterUnavailable: unreachable
                if not connection.status().can_print:  # PrinterUnavailable: no answer
                    ...                                # nothing was sent
                connection.send(data)                  # PrinterUnavailable: maybe half sent
                connection.status()                    # barrier: the printer has it all

        Holds the printer's lock until the block ends, and closes the connection.
        """
        with self._lock:
            device = self._open()
            try:
                yield ReceiptConnection(self, device)
            finally:
                self._close(device)


class ReceiptConnection:
    """One open connection to a receipt printer (see :meth:`ReceiptPrinter.connect`)."""

    def __init__(self, printer: ReceiptPrinter, device: Any) -> None:
        self._printer = printer
        self._device = device

    def status(self) -> PrinterStatus:
        """DLE EOT 1–4 now; also kept in the printer's ``last_status``."""
        return self._printer._read_status(self._device)

    def send(self, data: bytes) -> None:
        """Send ESC/POS bytes as they are (no status check)."""
        self._printer._send(self._device, data)
