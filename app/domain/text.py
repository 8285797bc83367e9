"""Search-key normalisation for names, and clean-up of kana typed into kana fields.

Stored names are never normalised (NFC/NFKC would fold compatibility ideographs such as 﨑 and
the record must match the core system byte for byte). Only the search key is folded, so that
「ｱｵﾊﾞ」, 「アオバ」 and 「あおば」 find the same people, and 「山崎」 finds 「山﨑」. Pure functions.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["ITAIJI_FOLD", "normalize_kana_input", "search_key", "to_hiragana", "to_katakana"]

# Katakana ァ..ヶ (U+30A1..U+30F6) sit exactly 0x60 above hiragana ぁ..ゖ; ヽヾ likewise above ゝゞ.
_KATA_TO_HIRA = {code: code - 0x60 for code in range(0x30A1, 0x30F7)} | {0x30FD: 0x309D, 0x30FE: 0x309E}
_HIRA_TO_KATA = {hira: kata for kata, hira in _KATA_TO_HIRA.items()}

# Variant kanji (異体字) folded to their common form, for search keys only. NFKC leaves most of
# these alone: 﨑 U+FA11 is a "unified" compatibility ideograph without a decomposition, and 髙,
# 𠮷 and the old forms are ordinary ideographs. Extend as staff report misses.
ITAIJI_FOLD: dict[str, str] = {
    "髙": "高",
    "﨑": "崎",
    "嵜": "崎",
    "𠮷": "吉",
    "邊": "辺",
    "邉": "辺",
    "澤": "沢",
    "齋": "斎",
    "濱": "浜",
    "嶋": "島",
    "嶌": "島",
    "廣": "広",
    "國": "国",
    "櫻": "桜",
    "惠": "恵",
    "眞": "真",
    "德": "徳",
    "瀨": "瀬",
    "淺": "浅",
    "藏": "蔵",
    "壽": "寿",
    "實": "実",
    "榮": "栄",
    "曾": "曽",
    "舘": "館",
    "冨": "富",
}
_ITAIJI_TABLE = str.maketrans(ITAIJI_FOLD)

# Variation selectors (including the ideographic variation sequences of IVS/MJ glyphs) only
# choose a glyph; they must not make two keys differ.
_VARIATION_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
_SPACES = re.compile(r"\s+")
_KANA_BEFORE_DASH = re.compile(
    r"(?<=[\u30a1-\u30fa\u30fc])[-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\uff0d]"
)


def to_hiragana(text: str) -> str:
    return text.translate(_KATA_TO_HIRA)


def to_katakana(text: str) -> str:
    return text.translate(_HIRA_TO_KATA)


def search_key(*parts: str) -> str:
    """One key for finding a person by any of the given names.

    Folds full/half width (NFKC), katakana to hiragana, variant kanji to their common form and
    Latin letters to lower case, and drops spaces and variation selectors. The parts are joined
    without a separator, so 「山田 太郎」 typed with or without a space matches family + given.
    """
    joined = "".join(part for part in parts if part)
    folded = unicodedata.normalize("NFKC", joined)
    folded = _VARIATION_SELECTORS.sub("", folded)
    folded = folded.translate(_ITAIJI_TABLE)
    folded = to_hiragana(folded).casefold()
    return _SPACES.sub("", folded)


def normalize_kana_input(text: str) -> str:
    """Clean up a reading typed into a kana (フリガナ) field; returns full-width katakana.

    Readings are stored in katakana, as core systems keep them (standard spec 1.1.18). Half-width
    kana and full-width spaces are folded (NFKC), hiragana becomes katakana, a hyphen typed after
    kana becomes the long-vowel mark 「ー」, and runs of spaces become one full-width space.
    """
    folded = unicodedata.normalize("NFKC", text)
    folded = to_katakana(folded)
    folded = _KANA_BEFORE_DASH.sub("ー", folded)
    return _SPACES.sub("\u3000", folded.strip())
