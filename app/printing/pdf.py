"""HTML → PDF with WeasyPrint, with the system's IPA fonts, kept warm between renders.

Fonts come from fontconfig (Debian packages fonts-ipaexfont and fonts-ipamj-mincho):
IPAex明朝 (12,000 glyphs) for body text and IPAmj明朝 (60,000 MJ glyphs) for names and addresses:
IPAex lacks characters such as 𠮷 (U+20BB7), and names must print in their MJ shapes.
WeasyPrint subsets the fonts into each PDF; subsetting IPAmj costs ~20 ms a document.

What stays warm, per process: one `FontConfiguration`, the parsed stylesheets (`stylesheet`), and
the fonts' file bytes. WeasyPrint copies each font file out of HarfBuzz for every document (the
IPAmj file is 46 MB); `_FontBlobCache` keeps that copy, which takes ~20 ms (a fifth) off a
render. Renders are serialised by a lock: WeasyPrint's font configuration is not documented as
thread-safe.

Documents may only load `data:` URLs: no network or file access at render time, and a missing
image (a seal, a QR code) fails the render instead of printing a certificate without it.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import weasyprint  # type: ignore[import-untyped]
import weasyprint.pdf.fonts as _weasy_pdf_fonts  # type: ignore[import-untyped]
from weasyprint.text.ffi import ffi as _ffi, harfbuzz as _harfbuzz  # type: ignore[import-untyped]
from weasyprint.text.fonts import FontConfiguration  # type: ignore[import-untyped]

__all__ = [
    "FONT_BODY",
    "FONT_GOTHIC",
    "FONT_NAMES",
    "PdfLayoutError",
    "RenderedPdf",
    "missing_fonts",
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
    return weasyprint.CSS(string=text, font_config=font_configuration(), url_fetcher=_data_only_fetcher())


def _data_only_fetcher() -> Any:
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
    _FontBlobCache.install()
    sheets = [stylesheet(path) for path in stylesheets]
    with _lock:
        document = weasyprint.HTML(string=html, url_fetcher=_data_only_fetcher()).render(
            stylesheets=sheets, font_config=font_configuration()
        )
        pages = len(document.pages)
        if expected_pages is not None and pages != expected_pages:
            raise PdfLayoutError(
                f"expected {expected_pages} pages, laid out {pages}: some content does not fit its sheet"
            )
        if title:
            document.metadata.title = title
        pdf = document.write_pdf()
    return RenderedPdf(bytes(pdf), pages)


class _FontBlobCache:
    """Remembers the bytes of whole font files that WeasyPrint copies out of HarfBuzz per document.

    Keyed by the blob's address and length; the blob itself is kept referenced, so its memory is
    never freed and the address cannot come back for other data. Only large blobs (font files)
    are kept — subset fonts, made fresh for every document, pass through — and at most a few.
    """

    MIN_SIZE = 1 << 20
    MAX_ENTRIES = 16
    _entries: dict[tuple[int, int], tuple[Any, bytes]] = {}
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
        else:
            _harfbuzz.hb_blob_destroy(blob)
        return data


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
