"""Certificate rules (証明書交付): types, 住民票の写し options, fees, 発行番号, tax years, paging.

Pure functions and value objects, no I/O. Sources: docs/design domain.md and
research/municipal-standards.md §2–3 (住民記録システム標準仕様書 5.1 selection and omission,
5.5 発行番号, 5.6 公印; 課税証明書 practice after 標準化).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Protocol, TypeVar

from app.domain.wareki import era_year

__all__ = [
    "DEFAULT_FEES",
    "PERSONS_PER_HOUSEHOLD_SHEET",
    "CertificateType",
    "IssueNumber",
    "JuminhyoLayout",
    "JuminhyoOptions",
    "TaxCertificateKind",
    "certification_sentence",
    "copy_serials",
    "fee_for",
    "fees_with_overrides",
    "fiscal_year_label",
    "fiscal_year_of",
    "income_year",
    "income_year_label",
    "issue_number",
    "juminhyo_sheets",
    "kiosk_tax_fiscal_year",
    "parse_issue_number",
    "select_members",
    "split_sheets",
    "tax_certificate_kind",
    "total_fee",
]


class CertificateType(StrEnum):
    JUMINHYO = "juminhyo"  # 住民票の写し
    INKAN = "inkan"  # 印鑑登録証明書
    TAX = "tax"  # 課税・非課税証明書

    @property
    def label_ja(self) -> str:
        return _LABELS[self][0]

    @property
    def label_en(self) -> str:
        return _LABELS[self][1]

    @property
    def label_easy(self) -> str:
        """やさしい日本語 (easy Japanese) for the kiosk, with spaces between phrases."""
        return _LABELS[self][2]

    def label(self, language: str) -> str:
        """The label in `language`: "ja", "en" or "ja-easy" (anything else: Japanese)."""
        if language == "en":
            return self.label_en
        if language in ("ja-easy", "easy"):
            return self.label_easy
        return self.label_ja


_LABELS: dict[CertificateType, tuple[str, str, str]] = {
    CertificateType.JUMINHYO: (
        "住民票の写し",
        "Certificate of residence (copy of the resident record)",
        "じゅうみんひょう（すんでいる ところの しょうめい）",
    ),
    CertificateType.INKAN: (
        "印鑑登録証明書",
        "Seal registration certificate",
        "いんかん とうろく しょうめいしょ（はんこの しょうめい）",
    ),
    CertificateType.TAX: (
        "課税・非課税証明書",
        "Tax assessment / tax exemption certificate",
        "ぜいきんの しょうめいしょ",
    ),
}


# --- 住民票の写し options -------------------------------------------------------------------


class JuminhyoLayout(StrEnum):
    HOUSEHOLD = "household"  # 世帯連記式: up to 4 persons a sheet (the usual default)
    INDIVIDUAL = "individual"  # 個人票: one person a sheet, A4 portrait


PERSONS_PER_HOUSEHOLD_SHEET = 4


@dataclass(frozen=True, slots=True)
class JuminhyoOptions:
    """What a 住民票の写し shows. Optional items are omitted unless asked for (標準仕様書 5.1).

    `member_ids` None means the whole household (世帯全員); otherwise the chosen residents' ids,
    printed in household order whatever order they are given in.
    """

    member_ids: tuple[int, ...] | None = None
    show_head_relationship: bool = False  # 世帯主・続柄
    show_honseki: bool = False  # 本籍・筆頭者
    show_my_number: bool = False  # 個人番号
    show_resident_code: bool = False  # 住民票コード
    layout: JuminhyoLayout = JuminhyoLayout.HOUSEHOLD

    def __post_init__(self) -> None:
        if self.member_ids is not None:
            if not self.member_ids:
                raise ValueError("choose at least one member, or None for the whole household")
            if len(set(self.member_ids)) != len(self.member_ids):
                raise ValueError("a member is chosen twice")

    @property
    def whole_household(self) -> bool:
        return self.member_ids is None

    def items_shown(self) -> tuple[str, ...]:
        """The optional items printed, as recorded in the issue history (記載事項)."""
        flags = (
            ("head_relationship", self.show_head_relationship),
            ("honseki", self.show_honseki),
            ("my_number", self.show_my_number),
            ("resident_code", self.show_resident_code),
        )
        return tuple(name for name, shown in flags if shown)


class _HasResidentId(Protocol):
    @property
    def resident_id(self) -> int | None: ...


_M = TypeVar("_M", bound=_HasResidentId)
_T = TypeVar("_T")


def select_members(options: JuminhyoOptions, household_members: Sequence[_M]) -> list[_M]:
    """The members a 住民票の写し prints, in household order.

    Raises ValueError when a chosen id is not in the household (never print a stranger's record).
    """
    if options.member_ids is None:
        return list(household_members)
    known = {member.resident_id for member in household_members}
    missing = [rid for rid in options.member_ids if rid not in known]
    if missing:
        raise ValueError(f"residents {missing} are not members of this household")
    chosen = set(options.member_ids)
    return [member for member in household_members if member.resident_id in chosen]


def split_sheets(items: Sequence[_T], per_sheet: int) -> list[list[_T]]:
    """Consecutive groups of at most `per_sheet` items; at least one item is required."""
    if per_sheet < 1:
        raise ValueError("per_sheet must be at least 1")
    if not items:
        raise ValueError("a certificate needs at least one person")
    return [list(items[start : start + per_sheet]) for start in range(0, len(items), per_sheet)]


def juminhyo_sheets(persons: Sequence[_T], layout: JuminhyoLayout) -> list[list[_T]]:
    """Persons per sheet: 4 a sheet for 世帯連記式, one a sheet for 個人票."""
    per_sheet = PERSONS_PER_HOUSEHOLD_SHEET if layout is JuminhyoLayout.HOUSEHOLD else 1
    return split_sheets(persons, per_sheet)


# --- Fees -------------------------------------------------------------------------------------

DEFAULT_FEES: Mapping[CertificateType, int] = {
    CertificateType.JUMINHYO: 300,
    CertificateType.INKAN: 300,
    CertificateType.TAX: 300,
}


def fees_with_overrides(overrides: Mapping[str, object] | None = None) -> dict[CertificateType, int]:
    """Fees per type (yen a copy), with a location's overrides applied.

    `overrides` is what a location's settings hold under "fees", e.g. {"juminhyo": 200} for a
    kiosk that is cheaper than the counter. Unknown types or non-integer / negative amounts raise
    ValueError so a typo in the admin screen is caught, not silently ignored.
    """
    fees = dict(DEFAULT_FEES)
    for key, value in (overrides or {}).items():
        try:
            kind = CertificateType(key)
        except ValueError:
            raise ValueError(f"unknown certificate type in fees: {key!r}") from None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"fee for {key} must be a whole number of yen ≥ 0, not {value!r}")
        fees[kind] = value
    return fees


def fee_for(kind: CertificateType, overrides: Mapping[str, object] | None = None) -> int:
    """The fee for one copy, in yen."""
    return fees_with_overrides(overrides)[kind]


def total_fee(kind: CertificateType, copies: int, overrides: Mapping[str, object] | None = None) -> int:
    if copies < 1:
        raise ValueError("copies must be at least 1")
    return fee_for(kind, overrides) * copies


# --- 発行番号 ---------------------------------------------------------------------------------

# Parts may be codes or names (「本庁1」「プリンタ001」) but never contain a space, "/" or "_":
# spaces separate the parts, "/" the page, and "_" stands in for spaces in verification URLs.
_PART = re.compile(r"^[^\s/_]+$")
SERIAL_WIDTH = 3


@dataclass(frozen=True, slots=True)
class IssueNumber:
    day: date
    municipality: str
    terminal: str
    printer: str  # may be empty when the printer is not known (標準仕様書 5.5)
    serial: int
    page: int
    pages: int

    def __str__(self) -> str:
        return issue_number(
            self.day, self.municipality, self.terminal, self.printer, self.serial, self.page, self.pages
        )

    @property
    def copy_key(self) -> str:
        """The number without its page part: the same for every page of one copy."""
        return str(self).rsplit(" ", 1)[0]


def issue_number(
    day: date,
    municipality_code: str,
    terminal_code: str,
    printer_code: str,
    serial: int,
    page: int,
    pages: int,
) -> str:
    """`YYYYMMDD <municipality> <terminal> <printer> <serial> <page>/<pages>` (標準仕様書 5.5).

    E.g. 「20260421 999991 K01 P01 012 1/2」. One serial per copy; every page of the copy carries
    it with its own page number. The serial is zero-padded to 3 digits and grows past 999. An
    unknown printer is left blank (two spaces), as the standard allows.
    """
    for label, part in (("municipality", municipality_code), ("terminal", terminal_code)):
        if not _PART.match(part):
            raise ValueError(f"{label} part {part!r} must be non-empty, without spaces, '/' or '_'")
    if printer_code and not _PART.match(printer_code):
        raise ValueError(f"printer part {printer_code!r} must not contain spaces, '/' or '_'")
    if serial < 0:
        raise ValueError("serial must be ≥ 0")
    if not 1 <= page <= pages:
        raise ValueError(f"page {page} is outside 1..{pages}")
    return (
        f"{day:%Y%m%d} {municipality_code} {terminal_code} {printer_code} "
        f"{serial:0{SERIAL_WIDTH}d} {page}/{pages}"
    )


_ISSUE = re.compile(
    r"^(?P<day>\d{8}) (?P<municipality>[^\s/_]+) (?P<terminal>[^\s/_]+) (?P<printer>[^\s/_]*) "
    r"(?P<serial>\d+) (?P<page>\d+)/(?P<pages>\d+)$"
)


def parse_issue_number(text: str) -> IssueNumber:
    """The parts of a 発行番号; ValueError if `text` is not one."""
    match = _ISSUE.match(text)
    if match is None:
        raise ValueError(f"not an issue number: {text!r}")
    raw_day = match["day"]
    day = date(int(raw_day[:4]), int(raw_day[4:6]), int(raw_day[6:]))
    page, pages = int(match["page"]), int(match["pages"])
    if not 1 <= page <= pages:
        raise ValueError(f"page {page} is outside 1..{pages}")
    return IssueNumber(
        day, match["municipality"], match["terminal"], match["printer"], int(match["serial"]), page, pages
    )


def copy_serials(serial_start: int, copies: int) -> list[int]:
    """Each copy has its own serial: start, start+1, …"""
    if copies < 1:
        raise ValueError("copies must be at least 1")
    return [serial_start + index for index in range(copies)]


# --- Tax certificates (課税・非課税証明書) ---------------------------------------------------


class TaxCertificateKind(StrEnum):
    TAXABLE = "taxable"  # 課税証明書
    NON_TAXABLE = "non_taxable"  # 非課税証明書

    @property
    def document_title(self) -> str:
        return "課税証明書" if self is TaxCertificateKind.TAXABLE else "非課税証明書"


def fiscal_year_of(day: date) -> int:
    """The 年度 (Gregorian year it starts in) that `day` belongs to; a 年度 starts on April 1."""
    return day.year if day.month >= 4 else day.year - 1


def kiosk_tax_fiscal_year(day: date, available_from: tuple[int, int] = (4, 1)) -> int:
    """The one 年度 the kiosk offers on `day` (current year only, as at コンビニ交付).

    `available_from` (month, day) is when a 年度's certificates become issuable. April 1 follows the
    年度 itself; many municipalities only switch after 当初課税 in June — a per-municipality setting.
    """
    month, first_day = available_from
    start = fiscal_year_of(day)
    switch = date(start if month >= 4 else start + 1, month, first_day)
    return start if day >= switch else start - 1


def income_year(fiscal_year: int) -> int:
    """A 課税証明書 for 年度 N shows income earned in calendar year N-1 (賦課期日 January 1 of N)."""
    return fiscal_year - 1


def fiscal_year_label(fiscal_year: int) -> str:
    """「令和8年度」; FY2019 is 「令和元年度」 as municipalities print it (the era on December 31)."""
    name, year = era_year(date(fiscal_year, 12, 31))
    return f"{name}{'元' if year == 1 else year}年度"


def income_year_label(fiscal_year: int) -> str:
    """The income period of a 年度's certificate, e.g. 「令和7年中」 for 令和8年度."""
    name, year = era_year(date(income_year(fiscal_year), 12, 31))
    return f"{name}{'元' if year == 1 else year}年中"


def tax_certificate_kind(municipal_tax: int, prefectural_tax: int) -> TaxCertificateKind:
    """課税証明書 when any 住民税 is assessed (所得割 or 均等割), else 非課税証明書."""
    if municipal_tax < 0 or prefectural_tax < 0:
        raise ValueError("tax amounts cannot be negative")
    return (
        TaxCertificateKind.TAXABLE if municipal_tax + prefectural_tax > 0 else TaxCertificateKind.NON_TAXABLE
    )


def certification_sentence(kind: CertificateType, whole_household: bool = True) -> str:
    """認証文, printed once, on the last page."""
    if kind is CertificateType.JUMINHYO:
        scope = "世帯全員の" if whole_household else ""
        return f"この写しは、{scope}住民票の原本と相違ないことを証明する。"
    if kind is CertificateType.INKAN:
        return "この写しは、登録されている印影と相違ないことを証明する。"
    return "上記のとおり証明する。"
