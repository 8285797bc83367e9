"""Fixed-coordinate documents: a frame laid out once by WeasyPrint, the values set on it per document.

A certificate is a form (帳票): its frame — background pattern, title, table rules, labels, the
認証文 with the mayor's name and the 公印 — is the same for every resident whose certificate has the
same structure, and only the values (names, dates, addresses, numbers, QR codes) change. Laying out
the whole page with WeasyPrint costs ~55 ms, nearly all of it per box of text; setting ~40 values at
known places costs ~2 ms. So:

1. The template is filled in *frame mode* (see `FieldSink`): every value becomes an invisible
   sample of its place (a hidden 「国」 a line), every image an empty box of its size. That HTML holds
   only what is the same for every certificate of this structure; it is the frame's cache key, so a
   frame can never be reused for a document it does not fit.
2. `build_frame` lays that HTML out with WeasyPrint (the only layout engine here), reads where each
   sample line's baseline, left edge and available width are and where each image box is, and keeps
   the PDF it writes as objects that can be copied into any number of documents: each page's
   content becomes a Form XObject.
3. `compose` writes a document: the frame's objects as they are, and per page a content stream
   that draws the frame, then the values as text in IPAex明朝 / IPAmj明朝 (embedded subsets, with a
   ToUnicode map so text can be searched and copied) and the QR codes and images at their places.

A value wider than its place is broken into lines (kinsoku: no line starts with 、。」ー and the like,
Latin words are kept whole when they can be); the frame for that many lines is laid out by
WeasyPrint in turn (the column widths do not change with the number of lines), so a long address
grows its row exactly as the flowing layout would, and content that does not fit the sheet still
fails with PdfLayoutError.

Text is set with each font's own advance widths, no kerning or ligatures: right for Japanese text
and names in Latin capitals; the words land where WeasyPrint would put them (tests compare the
bounding boxes with the flowing layout).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import segno
from cffi import FFI  # type: ignore[import-untyped]
from markupsafe import Markup, escape

from app.printing.pdf import FONT_BODY, FONT_NAMES, is_variation_selector, mj_clusters, needs_mj_font
from app.printing.qr import install as install_qr, qr_matrix

__all__ = [
    "BLANK_IMAGE",
    "FieldSink",
    "Frame",
    "FrameCache",
    "ImageValue",
    "QrValue",
    "TextValue",
    "break_lines",
    "build_frame",
    "compose",
    "frame_slots",
    "lines_needed",
    "text_layouts",
]

PX_TO_PT = 0.75  # CSS px → PDF points
SAMPLE = "国"  # a full-width character of IPAex明朝: one line of a value's place in the frame
BLANK_IMAGE = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="


# --- Values, as the templates hand them over ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextValue:
    text: str
    pre: bool = False  # white-space: pre (a blank part of an issue number keeps its spaces)


@dataclass(frozen=True, slots=True)
class QrValue:
    """A QR code filling its box (error correction M, no quiet zone: the box's padding is one)."""

    url: str

    @property
    def data_uri(self) -> str:
        """As a PNG, one module a pixel (for the flowing layout; scaled without smoothing)."""
        install_qr()
        return str(segno.make(self.url, error="m", micro=False).png_data_uri(scale=1, border=0))


@dataclass(frozen=True, slots=True)
class ImageValue:
    """A PNG shown whole in its box (object-fit: contain)."""

    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


Value = TextValue | QrValue | ImageValue


class FieldSink:
    """What templates call for every value: `f.text(*parts)` and `f.image(value, css_class, alt)`.

    In flowing mode (`frame=False`) the value's markup is returned, as a template without a sink
    would print it (rare characters wrapped for IPAmj明朝). In frame mode the value is recorded and
    its place is returned: a hidden sample of `lines[index]` lines (1 by default), or an empty
    image of the value's box. Indexes follow the template's order, so the same frame HTML always
    numbers its places the same way.
    """

    def __init__(self, *, frame: bool, lines: Mapping[int, int] | None = None) -> None:
        self.frame = frame
        self.lines = dict(lines or {})
        self.values: list[Value] = []

    def text(self, *parts: object, pre: bool = False) -> Markup:
        """The non-empty parts joined by an ideographic space (address and 方書, …)."""
        text = "　".join(str(part) for part in parts if part not in (None, ""))
        if not self.frame:
            return _mj_markup(text)
        index = len(self.values)
        self.values.append(TextValue(text, pre))
        sample = Markup("<br>").join([SAMPLE] * max(1, self.lines.get(index, 1)))
        return Markup('<span class="slot" data-slot="{}">{}</span>').format(index, sample)

    def image(self, value: QrValue | ImageValue, css_class: str, alt: str) -> Markup:
        if not self.frame:
            return Markup('<img class="{}" src="{}" alt="{}">').format(css_class, value.data_uri, alt)
        index = len(self.values)
        self.values.append(value)
        return Markup('<img class="{}" data-slot="{}" src="{}" alt="">').format(css_class, index, BLANK_IMAGE)


def _mj_markup(text: str) -> Markup:
    return Markup("").join(
        Markup('<span class="mj">{}</span>').format(run) if rare else escape(run)
        for run, rare in needs_mj_font(text)
    )


# --- Where the values go: read off WeasyPrint's boxes --------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinePlace:
    x: float  # pt from the page's left edge: where the sample line starts
    baseline: float  # pt from the page's top edge
    sample_width: float  # pt
    left: float  # pt: the containing block's content box, left and right edges
    right: float


@dataclass(frozen=True, slots=True)
class TextPlace:
    page: int
    lines: tuple[LinePlace, ...]
    font_size: float  # pt
    letter_spacing: float  # pt, after every character as WeasyPrint sets it
    align: str  # left | right | center
    wrap: bool = True  # False for white-space: pre / nowrap (the value may run past its box)


@dataclass(frozen=True, slots=True)
class BoxPlace:
    page: int
    x: float  # pt, the content box (inside padding): top-left corner and size
    y: float
    width: float
    height: float


Place = TextPlace | BoxPlace


def frame_slots(document: Any) -> dict[int, Place]:
    """The places of a frame-mode document laid out by WeasyPrint (`weasyprint.Document`)."""
    from weasyprint.formatting_structure import boxes  # type: ignore[import-untyped]

    lines: dict[int, list[tuple[int, LinePlace, Any, Any]]] = {}
    images: dict[int, BoxPlace] = {}

    def walk(box: Any, page: int, block: Any) -> None:
        box = box.__dict__.get("_box", box)  # an absolutely placed box stands in an AbsolutePlaceholder
        if isinstance(box, boxes.BlockContainerBox) and not isinstance(box, boxes.LineBox):
            block = box
        element = getattr(box, "element", None)
        slot = element.get("data-slot") if element is not None else None
        if slot is not None:
            if isinstance(box, boxes.TextBox) and box.text.strip():
                left = block.content_box_x() * PX_TO_PT
                lines.setdefault(int(slot), []).append(
                    (
                        page,
                        LinePlace(
                            x=box.position_x * PX_TO_PT,
                            baseline=(box.position_y + box.baseline) * PX_TO_PT,
                            sample_width=box.width * PX_TO_PT,
                            left=left,
                            right=left + block.width * PX_TO_PT,
                        ),
                        box.style,
                        block.style,
                    )
                )
            elif isinstance(box, boxes.ReplacedBox):
                images[int(slot)] = BoxPlace(
                    page,
                    box.content_box_x() * PX_TO_PT,
                    box.content_box_y() * PX_TO_PT,
                    box.width * PX_TO_PT,
                    box.height * PX_TO_PT,
                )
        for child in getattr(box, "children", ()):
            walk(child, page, block)

    for number, page in enumerate(document.pages):
        walk(page._page_box, number, None)

    places: dict[int, Place] = dict(images)
    for slot, found in lines.items():
        page, _, style, block_style = found[0]
        spacing = style["letter_spacing"]
        align = str(block_style["text_align_all"])
        places[slot] = TextPlace(
            page=page,
            lines=tuple(line for _, line, _, _ in found),
            font_size=float(style["font_size"]) * PX_TO_PT,
            letter_spacing=0.0 if spacing == "normal" else float(spacing) * PX_TO_PT,
            align="right" if align in ("right", "end") else "center" if align == "center" else "left",
            wrap=str(style["white_space"]) not in ("pre", "nowrap"),
        )
    return places


# --- Fonts: glyphs, advances and subsets through HarfBuzz ----------------------------------------------

_ffi = FFI()
_ffi.cdef(
    """
    typedef struct hb_blob_t hb_blob_t;
    typedef struct hb_face_t hb_face_t;
    typedef struct hb_font_t hb_font_t;
    typedef struct hb_set_t hb_set_t;
    typedef struct hb_subset_input_t hb_subset_input_t;
    typedef uint32_t hb_codepoint_t;
    typedef int32_t hb_position_t;
    typedef int hb_bool_t;
    typedef uint32_t hb_tag_t;
    hb_blob_t *hb_blob_create_from_file(const char *file_name);
    void hb_blob_destroy(hb_blob_t *blob);
    const char *hb_blob_get_data(hb_blob_t *blob, unsigned int *length);
    hb_face_t *hb_face_create(hb_blob_t *blob, unsigned int index);
    void hb_face_destroy(hb_face_t *face);
    unsigned int hb_face_get_upem(const hb_face_t *face);
    hb_blob_t *hb_face_reference_blob(hb_face_t *face);
    hb_blob_t *hb_face_reference_table(const hb_face_t *face, hb_tag_t tag);
    hb_font_t *hb_font_create(hb_face_t *face);
    hb_bool_t hb_font_get_nominal_glyph(hb_font_t *font, hb_codepoint_t unicode, hb_codepoint_t *glyph);
    hb_bool_t hb_font_get_variation_glyph(hb_font_t *font, hb_codepoint_t unicode,
                                          hb_codepoint_t variation_selector, hb_codepoint_t *glyph);
    hb_position_t hb_font_get_glyph_h_advance(hb_font_t *font, hb_codepoint_t glyph);
    void hb_set_add(hb_set_t *set, hb_codepoint_t codepoint);
    hb_subset_input_t *hb_subset_input_create_or_fail(void);
    void hb_subset_input_destroy(hb_subset_input_t *input);
    hb_set_t *hb_subset_input_glyph_set(hb_subset_input_t *input);
    void hb_subset_input_set_flags(hb_subset_input_t *input, unsigned value);
    hb_face_t *hb_subset_or_fail(hb_face_t *source, const hb_subset_input_t *input);
    """
)
_SUBSET_RETAIN_GIDS = 0x2
_SUBSET_NO_HINTING = 0x1


@functools.cache
def _harfbuzz() -> tuple[Any, Any]:
    return _ffi.dlopen("libharfbuzz.so.0"), _ffi.dlopen("libharfbuzz-subset.so.0")


class EmbeddedFont:
    """One font file: its glyphs by character (with variation sequences), advances, metrics and
    subsets as PDF font files — kept by glyph set with `keep_subsets` (IPAmj明朝: subsetting it
    costs ~17 ms whatever it keeps, HarfBuzz walks all 46 MB; its fonts hold one glyph each, see
    `_text_ops`, so a rare character is subset once per process; a one-glyph file is ~2.5 KB)."""

    SUBSET_CACHE_BYTES = 8 << 20

    def __init__(self, family: str, path: Path, *, keep_subsets: bool) -> None:
        hb, _ = _harfbuzz()
        self.family = family
        self.keep_subsets = keep_subsets  # worth it only where subsetting is slow (IPAmj明朝)
        self._files: OrderedDict[frozenset[int], bytes] = OrderedDict()
        self._files_bytes = 0
        self.path = path
        self._blob = hb.hb_blob_create_from_file(str(path).encode())
        self._face = hb.hb_face_create(self._blob, 0)
        self._font = hb.hb_font_create(self._face)
        self.upem = int(hb.hb_face_get_upem(self._face))
        self._glyphs: dict[str, int] = {}
        self._advances: dict[int, int] = {}
        self._lock = threading.Lock()
        head = self._table(b"head")
        hhea = self._table(b"hhea")
        os2 = self._table(b"OS/2")
        scale = 1000 / self.upem
        x_min, y_min, x_max, y_max = (
            int.from_bytes(head[o : o + 2], "big", signed=True) for o in (36, 38, 40, 42)
        )
        self.bbox = tuple(round(v * scale) for v in (x_min, y_min, x_max, y_max))
        self.ascent = round(int.from_bytes(hhea[4:6], "big", signed=True) * scale)
        self.descent = round(int.from_bytes(hhea[6:8], "big", signed=True) * scale)
        cap = int.from_bytes(os2[88:90], "big", signed=True) if len(os2) >= 90 else 0
        self.cap_height = round(cap * scale) if cap else self.ascent

    def _table(self, tag: bytes) -> bytes:
        hb, _ = _harfbuzz()
        blob = hb.hb_face_reference_table(self._face, int.from_bytes(tag, "big"))
        try:
            length = _ffi.new("unsigned int *")
            data = hb.hb_blob_get_data(blob, length)
            return bytes(_ffi.buffer(data, length[0])) if length[0] else b""
        finally:
            hb.hb_blob_destroy(blob)

    def glyph(self, cluster: str) -> int:
        """The glyph of a character, or of a character and its variation selector (0: none)."""
        found = self._glyphs.get(cluster)
        if found is not None:
            return found
        hb, _ = _harfbuzz()
        out = _ffi.new("hb_codepoint_t *")
        gid = 0
        base = ord(cluster[0])
        variant = len(cluster) > 1 and is_variation_selector(cluster[1])
        with self._lock:  # HarfBuzz fonts are read from one thread at a time here
            if variant and hb.hb_font_get_variation_glyph(self._font, base, ord(cluster[1]), out):
                gid = int(out[0])
            if not gid and hb.hb_font_get_nominal_glyph(self._font, base, out):
                gid = int(out[0])
        self._glyphs[cluster] = gid
        return gid

    def advance(self, gid: int) -> int:
        """In font units."""
        found = self._advances.get(gid)
        if found is None:
            hb, _ = _harfbuzz()
            with self._lock:
                found = self._advances[gid] = int(hb.hb_font_get_glyph_h_advance(self._font, gid))
        return found

    def subset_file(self, glyphs: frozenset[int]) -> bytes:
        """The subset as a PDF font file stream object (compressed), kept like the subset."""
        with self._lock:
            cached = self._files.get(glyphs)
            if cached is not None:
                self._files.move_to_end(glyphs)
                return cached
        data = self.subset(glyphs)
        stream = b"<</Length1 %d" % len(data) + _stream_object("", data)[2:]
        if self.keep_subsets:
            with self._lock:
                self._files[glyphs] = stream
                self._files_bytes += len(stream)
                while self._files_bytes > self.SUBSET_CACHE_BYTES:
                    _, dropped = self._files.popitem(last=False)
                    self._files_bytes -= len(dropped)
        return stream

    def subset(self, glyphs: frozenset[int]) -> bytes:
        """A TrueType subset with the glyph ids kept (so a page's glyph codes stay valid)."""
        hb, hb_subset = _harfbuzz()
        request = _ffi.gc(hb_subset.hb_subset_input_create_or_fail(), hb_subset.hb_subset_input_destroy)
        glyph_set = hb_subset.hb_subset_input_glyph_set(request)
        for gid in sorted(glyphs):
            hb.hb_set_add(glyph_set, gid)
        hb_subset.hb_subset_input_set_flags(request, _SUBSET_RETAIN_GIDS | _SUBSET_NO_HINTING)
        face = hb_subset.hb_subset_or_fail(self._face, request)
        if face == _ffi.NULL:
            raise RuntimeError(f"HarfBuzz could not subset {self.path}")
        blob = hb.hb_face_reference_blob(face)
        try:
            length = _ffi.new("unsigned int *")
            return bytes(_ffi.buffer(hb.hb_blob_get_data(blob, length), length[0]))
        finally:
            hb.hb_blob_destroy(blob)
            hb.hb_face_destroy(face)


@functools.cache
def _fonts() -> tuple[EmbeddedFont, EmbeddedFont]:
    from app.printing.seal import font_file

    return (
        EmbeddedFont(FONT_BODY, font_file(FONT_BODY), keep_subsets=False),
        EmbeddedFont(FONT_NAMES, font_file(FONT_NAMES), keep_subsets=True),
    )


_SPACES = re.compile(r"[ \t\r\n\f]+")


def _shape(text: str, place: TextPlace) -> list[tuple[str, int, int, float]]:
    """(cluster, font, glyph, advance in pt including letter spacing) for each character."""
    fonts = _fonts()
    shaped: list[tuple[str, int, int, float]] = []
    for cluster, rare in mj_clusters(text):
        font = 1 if rare else 0
        gid = fonts[font].glyph(cluster)
        if not gid and not rare:
            font, gid = 1, fonts[1].glyph(cluster)
        advance = fonts[font].advance(gid) * place.font_size / fonts[font].upem
        shaped.append((cluster, font, gid, advance + place.letter_spacing))
    return shaped


_NO_LINE_START = set(
    "、。，．,.・：；:;？！?!ー‐－～」』）］｝〕〉》】’”ゃゅょっぁぃぅぇぉゎャュョッァィゥェォヮヵヶ々ゝゞヽヾ"
)
_NO_LINE_END = set("「『（［｛〔〈《【‘“")
_WORD = re.compile(r"[A-Za-z0-9]")


def break_lines(
    shaped: Sequence[tuple[str, int, int, float]], widths: Callable[[int], float]
) -> list[list[tuple[str, int, int, float]]]:
    """Greedy line breaking: `widths(i)` is the room on line i (pt)."""
    lines: list[list[tuple[str, int, int, float]]] = []
    rest = list(shaped)
    while rest:
        room = widths(len(lines)) + 0.01
        used, end = 0.0, 0
        while end < len(rest) and used + rest[end][3] <= room:
            used += rest[end][3]
            end += 1
        if end == len(rest):
            lines.append(rest)
            break
        end = max(end, 1)
        # Keep Latin words whole, then kinsoku: move characters to the next line while the break
        # would start a line with a closing mark or end one with an opening mark.
        if _WORD.match(rest[end][0]) and _WORD.match(rest[end - 1][0]):
            space = max((i for i in range(end) if rest[i][0] == " "), default=-1)
            if space > 0:
                end = space + 1
        while end > 1 and (rest[end][0][0] in _NO_LINE_START or rest[end - 1][0][0] in _NO_LINE_END):
            end -= 1
        line = rest[:end]
        while line and line[-1][0] == " ":
            line.pop()
        lines.append(line)
        rest = rest[end:]
        while rest and rest[0][0] == " ":
            rest.pop(0)
    return lines


def _room(place: TextPlace) -> Callable[[int], float]:
    def room(index: int) -> float:
        line = place.lines[min(index, len(place.lines) - 1)]
        if place.align == "left":
            return line.right - (line.x if index < len(place.lines) else line.left)
        return line.right - line.left

    return room


def lay_out_text(value: TextValue, place: TextPlace) -> TextLines:
    text = value.text if value.pre else _SPACES.sub(" ", value.text).strip()
    if not text:
        return []
    shaped = _shape(text, place)
    if not place.wrap:
        return [shaped]
    return break_lines(shaped, _room(place))


TextLines = list[list[tuple[str, int, int, float]]]


def text_layouts(values: Sequence[Value], places: Mapping[int, Place]) -> dict[int, TextLines]:
    """Every text value broken into lines for its place."""
    return {
        index: lay_out_text(value, place)
        for index, value in enumerate(values)
        if isinstance(value, TextValue) and isinstance(place := places.get(index), TextPlace)
    }


def lines_needed(layouts: Mapping[int, TextLines], places: Mapping[int, Place]) -> dict[int, int]:
    """The places whose value needs more lines than the frame gives them, with how many."""
    more: dict[int, int] = {}
    for index, lines in layouts.items():
        place = places[index]
        if isinstance(place, TextPlace) and len(lines) > len(place.lines):
            more[index] = len(lines)
    return more


# --- The frame as reusable PDF objects -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """A laid-out frame: its places and its PDF objects, ready to be copied into documents."""

    places: dict[int, Place]
    objects: bytes  # every object the pages' drawings need, numbered 1 … size-1
    offsets: tuple[tuple[int, int], ...]  # (object number, offset in `objects`)
    size: int  # the next free object number
    forms: tuple[int, ...]  # per page: the Form XObject that draws the frame
    media_boxes: tuple[str, ...]
    page_heights: tuple[float, ...]


_OBJECT = re.compile(rb"(\d+) 0 obj\s*")
_REF = r"(\d+) 0 R"


def _dictionary_entry(text: str, key: str) -> str | None:
    found = re.search(rf"/{key}\s*((\d+) 0 R|\[[^\]]*\])", text)
    if found is None:
        return None
    return found.group(2) or found.group(1)


def build_frame(pdf: bytes, places: dict[int, Place]) -> Frame:
    """Take apart an uncompressed PDF written by WeasyPrint (pydyf: one classic xref table): keep
    every object but the catalog, page tree, pages and info; turn each page's content stream into a
    Form XObject; compress the streams that are not."""
    start = int(pdf[pdf.rindex(b"startxref") + 9 :].split()[0])
    table = pdf[start:].split(b"trailer", 1)
    trailer = table[1].decode("latin-1")
    lines = table[0].split(b"\n")[1:]
    first, count = (int(v) for v in lines[0].split())
    offsets: dict[int, int] = {}
    for number, row in enumerate(lines[1 : 1 + count], start=first):
        fields = row.split()
        if len(fields) == 3 and fields[2] == b"n":
            offsets[number] = int(fields[0])
    ordered = sorted(offsets.items(), key=lambda item: item[1])
    bodies: dict[int, bytes] = {}
    for position, (number, offset) in enumerate(ordered):
        end = ordered[position + 1][1] if position + 1 < len(ordered) else start
        chunk = pdf[offset:end]
        header = _OBJECT.match(chunk)
        if header is None or int(header.group(1)) != number:
            raise ValueError(f"unexpected PDF object at {offset}")
        body = chunk[header.end() :].rstrip()
        if not body.endswith(b"endobj"):
            raise ValueError(f"unexpected end of PDF object {number}")
        bodies[number] = body[: -len(b"endobj")].rstrip()

    def text_of(number: int) -> str:
        return bodies[number].decode("latin-1")

    root = int(re.search(rf"/Root\s+{_REF}", trailer).group(1))  # type: ignore[union-attr]
    info_match = re.search(rf"/Info\s+{_REF}", trailer)
    pages_ref = int(re.search(rf"/Pages\s+{_REF}", text_of(root)).group(1))  # type: ignore[union-attr]
    kids = [int(n) for n in re.findall(_REF, re.search(r"/Kids\s*\[([^\]]*)\]", text_of(pages_ref)).group(1))]  # type: ignore[union-attr]
    dropped = {root, pages_ref, *kids}
    if info_match:
        dropped.add(int(info_match.group(1)))
    forms: list[int] = []
    media_boxes: list[str] = []
    heights: list[float] = []
    for kid in kids:
        page = text_of(kid)
        contents = _dictionary_entry(page, "Contents")
        resources = _dictionary_entry(page, "Resources")
        media = _dictionary_entry(page, "MediaBox")
        if contents is None or not contents.isdigit() or resources is None or media is None:
            raise ValueError("unexpected page object in the frame PDF")
        box = [float(v) for v in media.strip("[]").split()]
        content = int(contents)
        stream = _stream_data(bodies[content])
        bodies[content] = _stream_object(
            f"/Type /XObject /Subtype /Form /BBox [{' '.join(_num(v) for v in box)}] /Resources {resources} 0 R",
            stream,
        )
        forms.append(content)
        media_boxes.append(media)
        heights.append(box[3])
    chunks: list[bytes] = []
    out_offsets: list[tuple[int, int]] = []
    position = 0
    for number in sorted(bodies):
        if number in dropped:
            continue
        body = bodies[number]
        if number not in forms and b"stream" in body:
            body = _compress_stream_object(body)
        chunk = b"%d 0 obj\n%s\nendobj\n" % (number, body)
        out_offsets.append((number, position))
        chunks.append(chunk)
        position += len(chunk)
    return Frame(
        places=places,
        objects=b"".join(chunks),
        offsets=tuple(out_offsets),
        size=max(offsets) + 1,
        forms=tuple(forms),
        media_boxes=tuple(media_boxes),
        page_heights=tuple(heights),
    )


_STREAM = re.compile(rb"^(<<.*?>>)\s*stream\r?\n", re.DOTALL)


def _stream_data(body: bytes) -> bytes:
    match = _STREAM.match(body)
    if match is None:
        raise ValueError("expected a stream object")
    length = re.search(rb"/Length\s+(\d+)", match.group(1))
    if length is None:
        raise ValueError("stream without /Length")
    return body[match.end() : match.end() + int(length.group(1))]


def _compress_stream_object(body: bytes) -> bytes:
    match = _STREAM.match(body)
    if match is None:
        return body
    dictionary = match.group(1)
    if b"/Filter" in dictionary:
        return body
    data = _stream_data(body)
    packed = zlib.compress(data, 6)
    inner = re.sub(rb"/Length\s+\d+", b"", dictionary[2:-2])
    return b"<<%s/Filter /FlateDecode/Length %d>>\nstream\n%s\nendstream" % (inner, len(packed), packed)


_LEVEL = 1  # zlib level of a document's own streams: font subsets are mostly empty tables (6: 2× the time, 6 % smaller)


def _stream_object(dictionary: str, data: bytes, compress: bool = True) -> bytes:
    if compress:
        data = zlib.compress(data, _LEVEL)
        dictionary += " /Filter /FlateDecode"
    return b"<<%s /Length %d>>\nstream\n%s\nendstream" % (dictionary.encode("latin-1"), len(data), data)


def _num(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


class FrameCache:
    """Frames by their HTML (which holds everything they print), least recently used dropped."""

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Frame] = OrderedDict()
        self._lock = threading.Lock()
        self.builds = 0

    def get(self, key: str, build: Callable[[], Frame]) -> Frame:
        with self._lock:
            frame = self._entries.get(key)
            if frame is not None:
                self._entries.move_to_end(key)
                return frame
        frame = build()
        with self._lock:
            self.builds += 1
            self._entries[key] = frame
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return frame

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


# --- A document: the frame and the values -------------------------------------------------------------


@dataclass(slots=True)
class _Writer:
    next_number: int
    chunks: list[bytes] = field(default_factory=list)
    numbered: list[tuple[int, bytes]] = field(default_factory=list)

    def reserve(self) -> int:
        number = self.next_number
        self.next_number += 1
        return number

    def add(self, body: bytes, number: int | None = None) -> int:
        number = self.reserve() if number is None else number
        self.numbered.append((number, body))
        return number


def compose(
    frame: Frame,
    values: Sequence[Value],
    *,
    layouts: Mapping[int, TextLines] | None = None,
    title: str = "",
    producer: str = "Madoguchi",
) -> bytes:
    """The document: each page of `frame` with `values` set at their places (`layouts`: the text
    values already broken into lines for this frame, by `text_layouts`)."""
    fonts = _fonts()
    if layouts is None:
        layouts = text_layouts(values, frame.places)
    pages: list[list[bytes]] = [[] for _ in frame.forms]
    page_images: list[list[tuple[str, _Image]]] = [[] for _ in frame.forms]
    used: dict[str, tuple[int, dict[int, str]]] = {}  # font resource → (font, glyph → characters)
    for index, value in enumerate(values):
        place = frame.places.get(index)
        if place is None:  # laid out nowhere (hidden content?): never print a certificate without it
            raise ValueError(f"value {index} has no place in the frame")
        if isinstance(value, TextValue) and isinstance(place, TextPlace):
            lines = layouts[index]
            if len(lines) > len(place.lines):
                raise ValueError(f"value {index} needs {len(lines)} lines, its place has {len(place.lines)}")
            pages[place.page].append(_text_ops(lines, place, frame.page_heights[place.page], used))
        elif isinstance(place, BoxPlace) and not isinstance(value, TextValue):
            name = f"Im{index}"
            image = _qr_image(value.url) if isinstance(value, QrValue) else _png_image(value.png)
            page_images[place.page].append((name, image))
            width, height = place.width, place.height
            if isinstance(value, ImageValue):  # object-fit: contain, centred
                ratio = min(place.width / image.width, place.height / image.height)
                width, height = image.width * ratio, image.height * ratio
            x = place.x + (place.width - width) / 2
            y = frame.page_heights[place.page] - place.y - (place.height + height) / 2
            pages[place.page].append(
                f"q {_num(width)} 0 0 {_num(height)} {_num(x)} {_num(y)} cm /{name} Do Q\n".encode()
            )

    writer = _Writer(frame.size)
    font_resources = "".join(
        f"/{name} {_embed_font(writer, fonts[font], glyph_text)} 0 R"
        for name, (font, glyph_text) in used.items()
    )
    pages_number = writer.reserve()
    kids: list[int] = []
    for page, form in enumerate(frame.forms):
        images = ""
        for name, image in page_images[page]:
            images += f"/{name} {image.write(writer)} 0 R"
        content = b"q /Fr Do Q\n" + b"".join(pages[page])
        stream = writer.add(_stream_object("", content))
        kids.append(
            writer.add(
                (
                    f"<</Type /Page /Parent {pages_number} 0 R /MediaBox {frame.media_boxes[page]} "
                    f"/Contents {stream} 0 R /Resources <</XObject <</Fr {form} 0 R{images}>> "
                    f"/Font <<{font_resources}>>>>>>"
                ).encode("latin-1")
            )
        )
    writer.add(
        f"<</Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)}>>".encode(),
        pages_number,
    )
    catalog = writer.add(f"<</Type /Catalog /Pages {pages_number} 0 R /Lang (ja)>>".encode())
    info = writer.add(b"<</Producer %s /Title %s>>" % (_pdf_text(producer), _pdf_text(title)))
    return _serialize(frame, writer, catalog, info)


def _serialize(frame: Frame, writer: _Writer, catalog: int, info: int) -> bytes:
    header = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    offsets: dict[int, int] = {number: len(header) + offset for number, offset in frame.offsets}
    parts = [header, frame.objects]
    position = len(header) + len(frame.objects)
    for number, body in writer.numbered:
        chunk = b"%d 0 obj\n%s\nendobj\n" % (number, body)
        offsets[number] = position
        parts.append(chunk)
        position += len(chunk)
    size = writer.next_number
    rows = [b"0000000000 65535 f \n"]
    for number in range(1, size):
        offset = offsets.get(number)
        rows.append(b"%010d 00000 n \n" % offset if offset is not None else b"0000000000 00000 f \n")
    identifier = hashlib.md5(b"".join(parts[2:]), usedforsecurity=False).hexdigest().encode()
    parts.append(b"xref\n0 %d\n" % size)
    parts.append(b"".join(rows))
    parts.append(
        b"trailer\n<</Size %d /Root %d 0 R /Info %d 0 R /ID [<%s> <%s>]>>\nstartxref\n%d\n%%%%EOF\n"
        % (size, catalog, info, identifier, identifier, position)
    )
    return b"".join(parts)


def _pdf_text(text: str) -> bytes:
    if all(ord(c) < 128 for c in text):
        return b"(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode() + b")"
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">"


def _text_ops(
    lines: list[list[tuple[str, int, int, float]]],
    place: TextPlace,
    page_height: float,
    used: dict[str, tuple[int, dict[int, str]]],
) -> bytes:
    """The text operators of a value's lines. IPAex明朝 glyphs come from one font a document (its
    subset is made for the document, ~1.5 ms); each IPAmj明朝 glyph from a font of its own, whose
    subset is made once per process and kept (`EmbeddedFont.subset_file`): subsetting IPAmj costs
    ~17 ms however few glyphs it keeps, and rare characters recur in a town in ever new
    combinations."""
    ops: list[str] = [f"BT {_num(place.letter_spacing)} Tc"]
    for number, line in enumerate(lines):
        geometry = place.lines[number]
        width = sum(item[3] for item in line)
        if place.align == "right":
            x = geometry.x + geometry.sample_width - width
        elif place.align == "center":
            x = geometry.x + (geometry.sample_width - width) / 2
        else:
            x = geometry.x
        ops.append(f"1 0 0 1 {_num(x)} {_num(page_height - geometry.baseline)} Tm")
        current = ""
        codes: list[str] = []
        for cluster, font, gid, _ in line:
            name = "M0" if font == 0 else f"J{gid}"
            if name != current:
                if codes:
                    ops.append(f"<{''.join(codes)}> Tj")
                    codes = []
                ops.append(f"/{name} {_num(place.font_size)} Tf")
                current = name
            codes.append(f"{gid:04X}")
            used.setdefault(name, (font, {}))[1].setdefault(gid, cluster)
        if codes:
            ops.append(f"<{''.join(codes)}> Tj")
    ops.append("ET\n")
    return " ".join(ops).encode("latin-1")


def _embed_font(writer: _Writer, font: EmbeddedFont, glyph_text: dict[int, str]) -> int:
    glyphs = frozenset(glyph_text) | {0}
    tag = "".join(chr(65 + b % 26) for b in hashlib.sha1(repr(sorted(glyphs)).encode()).digest()[:6])
    name = f"{tag}+{font.family}"
    file_ref = writer.add(font.subset_file(glyphs))
    bbox = " ".join(str(v) for v in font.bbox)
    descriptor = writer.add(
        (
            f"<</Type /FontDescriptor /FontName /{name} /Flags 6 /FontBBox [{bbox}] /ItalicAngle 0 "
            f"/Ascent {font.ascent} /Descent {font.descent} /CapHeight {font.cap_height} /StemV 80 "
            f"/FontFile2 {file_ref} 0 R>>"
        ).encode()
    )
    scale = 1000 / font.upem
    widths = " ".join(f"{gid} [{_num(font.advance(gid) * scale)}]" for gid in sorted(glyph_text))
    cid_font = writer.add(
        (
            f"<</Type /Font /Subtype /CIDFontType2 /BaseFont /{name} "
            "/CIDSystemInfo <</Registry (Adobe) /Ordering (Identity) /Supplement 0>> "
            f"/FontDescriptor {descriptor} 0 R /DW 1000 /W [{widths}] /CIDToGIDMap /Identity>>"
        ).encode()
    )
    to_unicode = writer.add(_stream_object("", _to_unicode(glyph_text)))
    return writer.add(
        (
            f"<</Type /Font /Subtype /Type0 /BaseFont /{name} /Encoding /Identity-H "
            f"/DescendantFonts [{cid_font} 0 R] /ToUnicode {to_unicode} 0 R>>"
        ).encode()
    )


def _to_unicode(glyph_text: Mapping[int, str]) -> bytes:
    entries = [
        f"<{gid:04X}> <{''.join(c for c in text if not is_variation_selector(c)).encode('utf-16-be').hex().upper()}>"
        for gid, text in sorted(glyph_text.items())
    ]
    blocks = []
    for start in range(0, len(entries), 100):
        chunk = entries[start : start + 100]
        blocks.append(f"{len(chunk)} beginbfchar\n" + "\n".join(chunk) + "\nendbfchar")
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo <</Registry (Adobe) /Ordering (UCS) /Supplement 0>> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        + "\n".join(blocks)
        + "\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    ).encode("ascii")


@dataclass(frozen=True, slots=True)
class _Image:
    dictionary: str
    data: bytes  # compressed
    width: int
    height: int
    mask: _Image | None = None

    def write(self, writer: _Writer) -> int:
        extra = f" /SMask {self.mask.write(writer)} 0 R" if self.mask is not None else ""
        return writer.add(
            b"<<%s%s /Filter /FlateDecode /Length %d>>\nstream\n%s\nendstream"
            % (self.dictionary.encode(), extra.encode(), len(self.data), self.data)
        )


def _image(width: int, height: int, space: str, bits: int, data: bytes, mask: _Image | None = None) -> _Image:
    dictionary = (
        f"/Type /XObject /Subtype /Image /Width {width} /Height {height} /ColorSpace {space} "
        f"/BitsPerComponent {bits} /Interpolate false"
    )
    return _Image(dictionary, zlib.compress(data, _LEVEL), width, height, mask)


def _qr_image(url: str) -> _Image:
    """A QR code as a 1-bit image, one sample a module (black = 0)."""
    matrix = qr_matrix(url)
    size = len(matrix)
    row_bytes = (size + 7) // 8
    data = bytearray()
    for row in matrix:
        packed = bytearray(row_bytes)
        for column, dark in enumerate(row):
            if not dark:
                packed[column // 8] |= 0x80 >> (column % 8)
        data += packed
    return _image(size, size, "/DeviceGray", 1, bytes(data))


@functools.lru_cache(maxsize=16)
def _png_image(png: bytes) -> _Image:
    """A PNG as an 8-bit gray or RGB image, its alpha channel as a soft mask."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as opened:
        opened.load()
        image = opened.convert("RGBA") if opened.mode == "P" and "transparency" in opened.info else opened
        alpha = image.getchannel("A") if "A" in image.getbands() else None
        colour = image.convert("L" if image.mode in ("1", "L", "LA") else "RGB")
    width, height = colour.size
    mask = _image(width, height, "/DeviceGray", 8, alpha.tobytes()) if alpha is not None else None
    space = "/DeviceGray" if colour.mode == "L" else "/DeviceRGB"
    return _image(width, height, space, 8, colour.tobytes(), mask)
