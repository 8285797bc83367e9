"""HTML → PDF with WeasyPrint, with the system's IPA fonts, kept warm between renders.

Fonts come from fontconfig (Debian packages fonts-ipaexfont and fonts-ipamj-mincho):
IPAex明朝 (12,000 glyphs) for text and IPAmj明朝 (60,000 MJ glyphs) for the characters of names
and addresses that IPAex lacks (𠮷 U+20BB7) or that carry an ideographic variation selector: the
templates mark those characters (see `needs_mj_font`), so a document without them never loads
IPAmj. WeasyPrint subsets every font it uses into each PDF; subsetting IPAmj takes ~20 ms however
few of its glyphs are used (HarfBuzz walks the whole 46 MB font).

What stays warm, per process (renders are serialised by a lock: WeasyPrint's font configuration
is not documented as thread-safe):

- one `FontConfiguration`, the parsed stylesheets (`stylesheet`) and the URL fetchers;
- the fonts' file bytes: WeasyPrint copies each font file out of HarfBuzz for every document
  (`_FontBlobCache`, ~20 ms a render);
- font subsets by font file and glyph set (`_SubsetCache`): a document that uses the same IPAmj
  glyphs as an earlier one (the few rare characters of a town's names recur) reuses the subset
  instead of paying the ~20 ms again. The subset is the same bytes HarfBuzz would make.
- raster images by URL (`_ImageCache`), with their PDF encoding: the 公印 and the masks of the
  background pattern are decoded and re-encoded for every document otherwise (~8 ms). SVG
  images are parsed per render (they keep a reference to the document they were loaded for).

Besides, a render uses WeasyPrint's user-agent stylesheet without the rules it does not need
(`_ua_stylesheet`, ~5 ms), and pauses the garbage collector: WeasyPrint makes some 100,000
short-lived objects a page, whose collections cost a few ms (more with big warm caches); the
collector runs as usual between renders.

Documents may only load `data:` URLs: no network or file access at render time, and a missing
image (a seal, a QR code) fails the render instead of printing a certificate without it.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import re
import shutil
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydyf  # type: ignore[import-untyped]
import weasyprint  # type: ignore[import-untyped]
import weasyprint.html as _weasy_html  # type: ignore[import-untyped]
import weasyprint.images as _weasy_images  # type: ignore[import-untyped]
import weasyprint.pdf.fonts as _weasy_pdf_fonts  # type: ignore[import-untyped]
from weasyprint.text.ffi import ffi as _ffi, harfbuzz as _harfbuzz  # type: ignore[import-untyped]
from weasyprint.text.fonts import FontConfiguration  # type: ignore[import-untyped]

__all__ = [
    "FONT_BODY",
    "FONT_GOTHIC",
    "FONT_NAMES",
    "PdfLayoutError",
    "RenderedPdf",
    "font_charset",
    "is_variation_selector",
    "missing_fonts",
    "mj_clusters",
    "needs_mj_font",
    "render_frame",
    "render_pdf",
    "stylesheet",
]

FONT_BODY = "IPAexMincho"
FONT_NAMES = "IPAmjMincho"
FONT_GOTHIC = "IPAexGothic"
REQUIRED_FONTS = (FONT_BODY, FONT_NAMES)


class PdfLayoutError(RuntimeError):
    """The document did not lay out as expected (e.g. content overflowed onto an extra page)."""


@dataclass(frozen=True, slots=True)
class RenderedPdf:
    pdf: bytes
    pages: int
    anchors: tuple[tuple[str, ...], ...] = ()  # per page: the HTML ids (anchors) laid out on it


_lock = threading.Lock()


@functools.cache
def font_configuration() -> Any:
    """The process-wide WeasyPrint font configuration (fontconfig + Pango), created once."""
    return FontConfiguration()


@functools.lru_cache(maxsize=32)
def stylesheet(source: Path | str) -> Any:
    """A parsed stylesheet — a file, or CSS text — parsed once per process (restart to pick up
    edits to files). CSS text is keyed by its content, so generate it once, not per render."""
    text = source.read_text(encoding="utf-8") if isinstance(source, Path) else source
    with _lock:  # the fetcher is shared with renders
        return weasyprint.CSS(string=text, font_config=font_configuration(), url_fetcher=_data_only_fetcher())


@functools.cache
def _data_only_fetcher() -> Any:
    """Made once: building urllib's handler chain costs more than fetching a `data:` URL. Used
    under `_lock` only (a fetcher keeps per-request state)."""
    return weasyprint.URLFetcher(allowed_protocols={"data"}, fail_on_errors=True)


def render_pdf(
    html: str,
    *,
    stylesheets: Sequence[Path | str] = (),
    expected_pages: int | None = None,
    title: str = "",
) -> RenderedPdf:
    """Lay out `html` and write the PDF. Raises PdfLayoutError if `expected_pages` is not met.

    `stylesheets` are files or CSS text (see `stylesheet`); images must be `data:` URLs.
    """
    with _laid_out(html, stylesheets, expected_pages) as document:
        anchors = tuple(tuple(page.anchors) for page in document.pages)
        if title:
            document.metadata.title = title
        pdf = document.write_pdf()
    return RenderedPdf(bytes(pdf), len(document.pages), anchors)


def render_frame(
    html: str,
    *,
    stylesheets: Sequence[Path | str] = (),
    expected_pages: int | None = None,
) -> tuple[bytes, Any]:
    """Lay out a frame-mode document (app/printing/overlay.py): its PDF, uncompressed (the frame's
    objects are copied into documents), and the places of its values read off the layout."""
    from app.printing.overlay import frame_slots

    with _laid_out(html, stylesheets, expected_pages) as document:
        places = frame_slots(document)
        pdf = document.write_pdf(uncompressed_pdf=True)
    return bytes(pdf), places


@contextlib.contextmanager
def _laid_out(html: str, stylesheets: Sequence[Path | str], expected_pages: int | None) -> Iterator[Any]:
    """The laid-out WeasyPrint document, under the render lock with the collector paused; write
    it inside the block. Raises PdfLayoutError if `expected_pages` is not met."""
    _install_caches()
    sheets = [stylesheet(path) for path in stylesheets]
    with _lock, _gc_paused():
        try:
            document = _HTML(string=html, url_fetcher=_data_only_fetcher()).render(
                stylesheets=sheets, font_config=font_configuration(), cache=_ImageCache.shared
            )
            pages = len(document.pages)
            if expected_pages is not None and pages != expected_pages:
                raise PdfLayoutError(
                    f"expected {expected_pages} pages, laid out {pages}: some content does not fit its sheet"
                )
            yield document
        finally:
            _ImageCache.shared.end_render()


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _HTML(weasyprint.HTML):  # type: ignore[misc]
    """`weasyprint.HTML` with WeasyPrint's user-agent stylesheet minus the rules for pseudo-elements
    of every element (`::marker`, `::footnote-call`, …; see `_ua_stylesheet`)."""

    def _ua_stylesheets(self, forms: bool = False) -> list[Any]:
        sheets = list(super()._ua_stylesheets(forms))
        reduced = _ua_stylesheet()
        if reduced is not None and sheets and sheets[0] is getattr(_weasy_html, "UA_STYLESHEET", None):
            sheets[0] = reduced
        return sheets


_UNIVERSAL_PSEUDO_ELEMENT_RULE = re.compile(r"^::[^{]*\{[^}]*\}[ \t]*$", re.MULTILINE)


@functools.cache
def _ua_stylesheet() -> Any:
    """WeasyPrint's HTML user-agent stylesheet without its rules on pseudo-elements of any element
    (`::marker`, `::footnote-call`, `::note-call`, …), or None if that stylesheet is not found.

    Such a rule matches every element, so WeasyPrint works out a pseudo-element style for each of
    them (~5 ms a page: 7 % of a certificate). They only matter for list items and footnotes,
    which documents rendered here do not have (tests/test_certificate_pdf.py checks that the
    certificates lay out the same with the full stylesheet).
    """
    text = getattr(_weasy_html, "UA", None)
    if not isinstance(text, str):
        return None
    reduced, dropped = _UNIVERSAL_PSEUDO_ELEMENT_RULE.subn("", text)
    if not dropped:
        return None
    return weasyprint.CSS(string=reduced, counter_style=getattr(_weasy_html, "UA_COUNTER_STYLE", None))


def _install_caches() -> None:
    _FontBlobCache.install()
    _SubsetCache.install()
    _ImageCache.install()


# --- Which characters need IPAmj明朝 ------------------------------------------------------------------


@functools.cache
def font_charset(family: str) -> frozenset[int]:
    """The code points a font family covers, from fontconfig (empty if it is not installed)."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return frozenset()
    result = subprocess.run(
        [fc_list, "--format=%{charset}\n", f"{family}:style=Regular"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    charsets: list[set[int]] = []
    for line in result.stdout.splitlines():  # one line a font file of the family
        code_points: set[int] = set()
        for part in line.split():
            start, _, end = part.partition("-")
            code_points.update(range(int(start, 16), int(end or start, 16) + 1))
        charsets.append(code_points)
    # What every file of the family covers (they are usually copies of one font).
    return frozenset(set.intersection(*charsets)) if charsets else frozenset()


def is_variation_selector(char: str) -> bool:
    code = ord(char)
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF


def mj_clusters(text: str) -> Iterator[tuple[str, bool]]:
    """Each character of `text` with its variation selectors, and whether it must be set in
    IPAmj明朝: characters IPAex明朝 lacks, and characters followed by a variation selector (an MJ
    glyph chosen by IVS)."""
    body = font_charset(FONT_BODY)
    index = 0
    while index < len(text):
        end = index + 1
        while end < len(text) and is_variation_selector(text[end]):
            end += 1
        yield (
            text[index:end],
            end > index + 1 or ord(text[index]) not in body or is_variation_selector(text[index]),
        )
        index = end


def needs_mj_font(text: str) -> list[tuple[str, bool]]:
    """`text` cut into runs, each with whether it must be set in IPAmj明朝 (see `mj_clusters`).
    The runs join back into `text`."""
    runs: list[tuple[str, bool]] = []
    for cluster, mj in mj_clusters(text):
        if runs and runs[-1][1] == mj:
            runs[-1] = (runs[-1][0] + cluster, mj)
        else:
            runs.append((cluster, mj))
    return runs


# --- Caches kept between renders ------------------------------------------------------------------


class _FontBlobCache:
    """Remembers the bytes of whole font files that WeasyPrint copies out of HarfBuzz per document.

    Keyed by the blob's address and length; the blob itself is kept referenced, so its memory is
    never freed and the address cannot come back for other data. Only large blobs (font files)
    are kept — subset fonts, made fresh for every document, pass through — and at most a few.
    """

    MIN_SIZE = 1 << 20
    MAX_ENTRIES = 16
    _entries: dict[tuple[int, int], tuple[Any, bytes]] = {}
    _keys_by_data: dict[int, tuple[int, int]] = {}  # id() of the kept bytes → key
    _installed = False
    _install_lock = threading.Lock()

    @classmethod
    def install(cls) -> None:
        with cls._install_lock:
            if cls._installed:
                return
            original = getattr(_weasy_pdf_fonts, "get_hb_object_data", None)
            if original is None:  # a WeasyPrint without this hook: render uncached
                cls._installed = True
                return

            def cached(hb_object: Any, ot_color: Any = None, glyph: Any = None) -> Any:
                if ot_color is not None or glyph is not None:
                    return original(hb_object, ot_color, glyph)
                return cls._whole_face(hb_object, original)

            _weasy_pdf_fonts.get_hb_object_data = cached
            cls._installed = True

    @classmethod
    def file_key(cls, data: object) -> tuple[int, int] | None:
        """The key of a whole font file this cache handed out (the very bytes object), or None.
        The bytes are kept for the life of the process, so their id() stays theirs."""
        return cls._keys_by_data.get(id(data))

    @classmethod
    def _whole_face(cls, hb_face: Any, original: Any) -> Any:
        blob = _harfbuzz.hb_face_reference_blob(hb_face)
        length = _ffi.new("unsigned int *")
        pointer = _harfbuzz.hb_blob_get_data(blob, length)
        size = int(length[0])
        if pointer == _ffi.NULL or size < cls.MIN_SIZE:
            _harfbuzz.hb_blob_destroy(blob)
            return original(hb_face)
        key = (int(_ffi.cast("uintptr_t", pointer)), size)
        entry = cls._entries.get(key)
        if entry is not None:
            _harfbuzz.hb_blob_destroy(blob)
            return entry[1]
        data = bytes(_ffi.unpack(_ffi.cast("char *", pointer), size))
        if len(cls._entries) < cls.MAX_ENTRIES:
            cls._entries[key] = (blob, data)  # keeps the blob referenced
            cls._keys_by_data[id(data)] = key
        else:
            _harfbuzz.hb_blob_destroy(blob)
        return data


class _SubsetCache:
    """Font subsets of whole font files from `_FontBlobCache`, by file, glyph set and options.

    WeasyPrint's `Font.subset(to_unicode, hinting)` replaces `font.file_content` (the whole file)
    with the subset; it depends only on the file, the glyph ids and the flags, so the bytes can be
    reused. Least recently used subsets are dropped beyond MAX_BYTES. Smaller fonts (not from
    `_FontBlobCache`) are subset as usual.
    """

    MAX_BYTES = 32 << 20  # ~60 IPAmj subsets (0.3–0.6 MB: glyph ids are kept, empty ones too)
    _entries: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
    _size = 0
    _entries_lock = threading.Lock()
    _installed = False
    _install_lock = threading.Lock()

    @classmethod
    def install(cls) -> None:
        with cls._install_lock:
            if cls._installed:
                return
            font_class: Any = getattr(_weasy_pdf_fonts, "Font", None)
            original = getattr(font_class, "subset", None)
            if original is None:  # a WeasyPrint without this method: subset uncached
                cls._installed = True
                return

            def cached(font: Any, to_unicode: Any, hinting: Any) -> None:
                file_key = _FontBlobCache.file_key(font.file_content)
                if file_key is None or not to_unicode:
                    original(font, to_unicode, hinting)
                    return
                key = (file_key, font.index, tuple(sorted(to_unicode)), bool(hinting), bool(font.missing))
                with cls._entries_lock:
                    subset = cls._entries.get(key)
                    if subset is not None:
                        cls._entries.move_to_end(key)
                if subset is not None:
                    font.file_content = subset
                    return
                original(font, to_unicode, hinting)
                if font.file_content is not _FontBlobCache._entries.get(file_key, (None, None))[1]:
                    cls._add(key, font.file_content)

            font_class.subset = cached
            cls._installed = True

    @classmethod
    def _add(cls, key: tuple[Any, ...], subset: bytes) -> None:
        with cls._entries_lock:
            if key in cls._entries or len(subset) > cls.MAX_BYTES // 4:
                return
            cls._entries[key] = subset
            cls._size += len(subset)
            while cls._size > cls.MAX_BYTES:
                _, dropped = cls._entries.popitem(last=False)
                cls._size -= len(dropped)


class _ImageCache(dict[str, Any]):
    """WeasyPrint's image cache (its `cache` option), shared by every render of the process.

    WeasyPrint stores, by URL, the decoded image (`RasterImage` or `SVGImage`, or None when it
    failed), and, by image id and slot, the image's bytes. Raster images are kept between renders,
    with the PDF image streams they encode to (see `_memo_x_object`), so the same 公印 or pattern
    mask is decoded and compressed once per process. SVG images and failures are kept for the
    current render only: an `SVGImage` holds the layout context of the document that loaded it.

    The whole cache is dropped between renders once it holds more than MAX_ENTRIES entries: each
    page's QR code is an image of its own, so entries accumulate; dropping everything at once keeps
    an image and its bytes together (WeasyPrint reads the bytes back by key).
    """

    MAX_ENTRIES = 400
    shared: _ImageCache
    _installed = False
    _install_lock = threading.Lock()

    def __init__(self) -> None:
        super().__init__()
        self._render_only: dict[str, Any] = {}

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or key in self._render_only

    def __getitem__(self, key: str) -> Any:
        if key in self._render_only:
            return self._render_only[key]
        return super().__getitem__(key)

    def __setitem__(self, key: str, value: Any) -> None:
        if value is None or isinstance(value, _weasy_images.SVGImage):
            self._render_only[key] = value
        else:
            super().__setitem__(key, value)

    def end_render(self) -> None:
        self._render_only.clear()
        if len(self) > self.MAX_ENTRIES:
            self.clear()

    @classmethod
    def install(cls) -> None:
        with cls._install_lock:
            if cls._installed:
                return
            raster: Any = getattr(_weasy_images, "RasterImage", None)
            original = getattr(raster, "get_x_object", None)
            if original is not None:
                raster.get_x_object = _memo_x_object(original)
            cls._installed = True


_ImageCache.shared = _ImageCache()


def _memo_x_object(original: Any) -> Any:
    """Wraps `RasterImage.get_x_object` (decode the image, split off its alpha channel, compress
    both: a few ms for a 300 px seal) to encode once per image and rebuild fresh PDF stream
    objects from the bytes for every document (pydyf numbers the objects of one PDF in them)."""

    def get_x_object(image: Any, interpolate: Any, dpi_ratio: Any) -> Any:
        memo: dict[tuple[Any, Any], tuple[bytes, dict[str, Any], tuple[bytes, dict[str, Any]] | None]]
        memo = image.__dict__.setdefault("_madoguchi_x_objects", {})
        key = (interpolate, dpi_ratio)
        if key not in memo:
            x_object = original(image, interpolate, dpi_ratio)
            extra = dict(x_object.extra)
            mask = extra.pop("SMask", None)
            if x_object.compress or (
                mask is not None and (not isinstance(mask, pydyf.Stream) or mask.compress)
            ):
                return x_object  # not the PNG / JPEG data streams this expects: leave it alone
            memo[key] = (
                _stream_bytes(x_object),
                extra,
                (_stream_bytes(mask), dict(mask.extra)) if mask is not None else None,
            )
        data, extra, mask_part = memo[key]
        fresh = pydyf.Dictionary(extra)
        if mask_part is not None:
            fresh["SMask"] = pydyf.Stream([mask_part[0]], pydyf.Dictionary(mask_part[1]))
        return pydyf.Stream([data], fresh)

    return get_x_object


def _stream_bytes(stream: Any) -> bytes:
    """The stream's data as pydyf writes it (uncompressed streams only)."""
    return b"\n".join(pydyf._to_bytes(item) for item in stream.stream)


def missing_fonts(families: Sequence[str] = REQUIRED_FONTS) -> list[str]:
    """The font families fontconfig does not know (empty when all are installed)."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return list(families)
    result = subprocess.run(
        [fc_list, "--format=%{family}\n"], capture_output=True, text=True, check=False, timeout=30
    )
    installed = {name.strip() for line in result.stdout.splitlines() for name in line.split(",")}
    return [family for family in families if family not in installed]
