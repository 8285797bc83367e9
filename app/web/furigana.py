"""Furigana (ふりがな) over kanji for the kiosk's furigana switch, as HTML <ruby>.

Readings come from pykakasi's dictionary (offline). A reading is shown over the kanji part of a
word only: 「引っ越し」 → <ruby>引<rt>ひ</rt></ruby>っ<ruby>越<rt>こ</rt></ruby>し is beyond a
dictionary lookup, so the okurigana at the ends of a word are kept outside the ruby instead:
<ruby>引っ越<rt>ひっこ</rt></ruby>し. Dictionary readings can be wrong for a word in context (方:
ほう/かた); the switch is a reading aid, the text itself is unchanged.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from markupsafe import Markup, escape

_lock = threading.Lock()
_kakasi: Any = None


def _converter() -> Any:
    global _kakasi
    if _kakasi is None:
        import pykakasi

        _kakasi = pykakasi.kakasi()  # type: ignore[no-untyped-call]
    return _kakasi


def _has_kanji(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or ch == "々" for ch in text)


def _to_hira(text: str) -> str:
    return "".join(chr(ord(c) - 0x60) if "\u30a1" <= c <= "\u30f6" else c for c in text)


def _word(orig: str, reading: str) -> str:
    if not _has_kanji(orig) or not reading:
        return str(escape(orig))
    head = 0
    while (
        head < len(orig)
        and head < len(reading)
        and not _has_kanji(orig[head])
        and _to_hira(orig[head]) == reading[head]
    ):
        head += 1
    tail = 0
    while (
        tail < len(orig) - head
        and tail < len(reading) - head
        and not _has_kanji(orig[-1 - tail])
        and _to_hira(orig[-1 - tail]) == reading[-1 - tail]
    ):
        tail += 1
    core = orig[head : len(orig) - tail]
    core_reading = reading[head : len(reading) - tail]
    if not core_reading:
        return str(escape(orig))
    return (
        f"{escape(orig[:head])}<ruby>{escape(core)}<rt>{escape(core_reading)}</rt></ruby>"
        f"{escape(orig[len(orig) - tail :])}"
    )


@lru_cache(maxsize=8192)
def ruby_html(text: str) -> Markup:
    """`text` with <ruby> readings over its kanji (HTML-escaped)."""
    if not _has_kanji(text):
        return Markup(escape(text))
    with _lock:
        parts = _converter().convert(text)
    return Markup("".join(_word(str(p["orig"]), str(p["hira"])) for p in parts))
