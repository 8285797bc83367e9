"""和暦 (Japanese era calendar): formatting and parsing dates such as 「令和8年11月21日」.

Japanese residents' dates are kept and printed in 和暦; foreign residents' birth dates in 西暦
(住民記録システム標準仕様書 1.1.2 / 1.1.9). Pure functions, no I/O.

明治 is counted from 1868-10-23 with year 1 = 1868, the usual convention for converting dates
(the Gregorian calendar itself only began in Japan in 1873). An era's first day is also the last
day of the previous one for 明治→大正 and 大正→昭和 (the era changed during the day), so
「明治45年7月30日」 and 「大正15年12月25日」 parse; 昭和→平成 and 平成→令和 changed at midnight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

__all__ = [
    "ERAS",
    "Era",
    "era_year",
    "format_date_for_resident",
    "format_seireki",
    "format_wareki",
    "parse_wareki",
]


@dataclass(frozen=True, slots=True)
class Era:
    name: str
    start: date  # first day
    last: date | None  # last day that may still be written in this era (inclusive); None: current era
    abbreviations: tuple[str, ...]  # one-character forms accepted when parsing (明/M …)


# A new era is one row here; nothing else needs to change.
ERAS: tuple[Era, ...] = (
    Era("明治", date(1868, 10, 23), date(1912, 7, 30), ("明", "M")),
    Era("大正", date(1912, 7, 30), date(1926, 12, 25), ("大", "T")),
    Era("昭和", date(1926, 12, 25), date(1989, 1, 7), ("昭", "S")),
    Era("平成", date(1989, 1, 8), date(2019, 4, 30), ("平", "H")),
    Era("令和", date(2019, 5, 1), None, ("令", "R")),
)

_BY_NAME: dict[str, Era] = {}
for _era in ERAS:
    _BY_NAME[_era.name] = _era
    for _abbr in _era.abbreviations:
        _BY_NAME[_abbr] = _era
        _BY_NAME[_abbr.lower()] = _era


def era_year(d: date) -> tuple[str, int]:
    """The era name and year for `d`, e.g. (「平成」, 1) for 1989-01-08.

    On a day that belongs to two eras the newer one wins. Raises ValueError before 明治.
    """
    for era in reversed(ERAS):
        if d >= era.start:
            return era.name, d.year - era.start.year + 1
    raise ValueError(f"{d.isoformat()} is before 明治 (1868-10-23); write it in 西暦")


def format_wareki(d: date) -> str:
    """「令和8年11月21日」, with 「元年」 for an era's first year; 西暦 before 明治."""
    try:
        name, year = era_year(d)
    except ValueError:
        return format_seireki(d)
    year_text = "元" if year == 1 else str(year)
    return f"{name}{year_text}年{d.month}月{d.day}日"


def format_seireki(d: date) -> str:
    """「1985年3月4日」."""
    return f"{d.year}年{d.month}月{d.day}日"


def format_date_for_resident(d: date, foreign: bool) -> str:
    """A resident's date as certificates print it: 西暦 for foreign residents, 和暦 otherwise."""
    return format_seireki(d) if foreign else format_wareki(d)


# Full-width digits and the separators people type; applied before matching.
_FOLD = str.maketrans("０１２３４５６７８９．／－‐―ＭＴＳＨＲｍｔｓｈｒ　", "0123456789./---MTSHRmtshr ")
_ERA_NAMES = "|".join(sorted(_BY_NAME, key=len, reverse=True))
_WAREKI = re.compile(
    rf"^(?P<era>{_ERA_NAMES})\s*(?P<year>元|\d{{1,2}})\s*(?:年\s*(?P<m1>\d{{1,2}})\s*月\s*(?P<d1>\d{{1,2}})\s*日"
    rf"|[./-]\s*(?P<m2>\d{{1,2}})\s*[./-]\s*(?P<d2>\d{{1,2}}))$"
)
_SEIREKI = re.compile(
    r"^(?P<year>\d{4})\s*(?:年\s*(?P<m1>\d{1,2})\s*月\s*(?P<d1>\d{1,2})\s*日"
    r"|[./-]\s*(?P<m2>\d{1,2})\s*[./-]\s*(?P<d2>\d{1,2}))$"
)


def parse_wareki(text: str) -> date | None:
    """Parse a complete date written in 和暦 (or 西暦); None if it is not one.

    Accepts 「昭和55年2月17日」, 「平成元年1月8日」, full-width digits (「令和８年１１月２１日」),
    「S55.2.17」 / 「昭55.2.17」, and 西暦 「1985年3月4日」 / 「1985-03-04」. Partial or uncertain
    dates (「大正15年頃」, 「年月日不詳」) and dates outside their era (「昭和64年1月8日」) give None;
    keep such text beside the stored date instead.
    """
    folded = text.translate(_FOLD).strip()
    match = _WAREKI.match(folded)
    if match is not None:
        era = _BY_NAME[match["era"]]
        year = 1 if match["year"] == "元" else int(match["year"])
        if year < 1:
            return None
        candidate = _make_date(
            era.start.year + year - 1, match["m1"] or match["m2"], match["d1"] or match["d2"]
        )
        if candidate is None or candidate < era.start or (era.last is not None and candidate > era.last):
            return None
        return candidate
    match = _SEIREKI.match(folded)
    if match is not None:
        return _make_date(int(match["year"]), match["m1"] or match["m2"], match["d1"] or match["d2"])
    return None


def _make_date(year: int, month: str, day: str) -> date | None:
    try:
        return date(year, int(month), int(day))
    except ValueError:
        return None  # non-calendar dates such as 2/29 of a common year
