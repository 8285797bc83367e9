"""Opening hours (開庁時間) of a location: a weekly table and dated exceptions. Pure functions.

Stored in `Location.settings` as JSON:

- ``"hours"``: weekday → ``["HH:MM", "HH:MM"]`` (opens, closes), e.g.
  ``{"mon": ["08:30", "17:15"], …, "thu": ["08:30", "19:30"]}``. Days that are missing (or
  ``null``) are closed. Weekdays are ``mon tue wed thu fri sat sun``.
- ``"hours_exceptions"``: a list of dated exceptions, each
  ``{"from": "12-29", "to": "01-03", "hours": null, "note": "年末年始"}``:

  - ``from`` / ``to`` are either ``"MM-DD"`` (every year; a range may run over the year end, as
    12/29–1/3 does) or ``"YYYY-MM-DD"`` (one date or range); ``to`` may be left out for one day;
  - ``hours`` ``null`` means closed; ``["09:00", "12:00"]`` means open those hours instead
    (休日開庁, a shortened day);
  - ``note`` is a short label for staff.

Which rule decides a day: exceptions with a year come first, then yearly ones, then the weekly
table; among exceptions of the same kind the one listed first wins. So 「2026/12/28 9:00-12:00」
can open one day inside a yearly closed range. National holidays (祝日) are not built in: enter
them as dated closed days.

A period includes its opening minute and excludes its closing one: open 08:30–17:15 means open at
08:30:00 and closed from 17:15:00. Hours do not run past midnight (the closing time must be
after the opening time, 00:00–23:59).

Staff edit exceptions as lines of text (`parse_exception_lines`), e.g.::

    12/29-1/3 年末年始
    2026/5/9 9:00-12:00 休日開庁
    2026/8/14

Validation messages are Japanese and name the field or line they are about.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

__all__ = [
    "JST",
    "MAX_EXCEPTIONS",
    "MAX_NOTE_LENGTH",
    "WEEKDAYS",
    "WEEKDAY_LABELS_JA",
    "DateRule",
    "HoursError",
    "OpeningHours",
    "Span",
    "YearlyDay",
    "format_exception_line",
    "format_exception_lines",
    "format_time",
    "is_open",
    "next_opening",
    "parse_exception_lines",
    "parse_exceptions_json",
    "parse_span",
    "parse_time",
    "parse_weekly",
    "parse_weekly_json",
    "weekly_groups",
    "weekly_json",
]

JST = ZoneInfo("Asia/Tokyo")
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_LABELS_JA: Mapping[str, str] = {
    "mon": "月曜日",
    "tue": "火曜日",
    "wed": "水曜日",
    "thu": "木曜日",
    "fri": "金曜日",
    "sat": "土曜日",
    "sun": "日曜日",
}
MAX_EXCEPTIONS = 100
MAX_NOTE_LENGTH = 40
# How far next_opening looks ahead: a yearly closure plus a little.
_HORIZON_DAYS = 400


class HoursError(ValueError):
    """Invalid opening hours: messages (Japanese) per field, e.g. {"hours.thu": ["…"]}."""

    def __init__(self, errors: Mapping[str, Sequence[str]]) -> None:
        self.errors: dict[str, list[str]] = {key: list(messages) for key, messages in errors.items()}
        super().__init__(" ".join(m for messages in self.errors.values() for m in messages))


# --- Times ------------------------------------------------------------------------------------

_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")


def _normalize(text: str) -> str:
    """Full-width digits and colons (８：３０) become ASCII; surrounding spaces go."""
    return unicodedata.normalize("NFKC", text).strip()


def parse_time(text: str) -> time:
    """「08:30」「8:30」「８：３０」 → 08:30. ValueError (Japanese) for anything else."""
    value = _normalize(text)
    if not value:
        raise ValueError("時刻を入力してください。")
    match = _TIME.match(value)
    if match is None:
        raise ValueError(
            f"「{text.strip()}」は時刻ではありません。「08:30」のように 時:分 で入力してください。"
        )
    hour, minute = int(match[1]), int(match[2])
    if hour > 23 or minute > 59:
        raise ValueError(f"「{text.strip()}」は 00:00～23:59 の範囲にありません。")
    return time(hour, minute)


def format_time(value: time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}"


@dataclass(frozen=True, slots=True)
class Span:
    """One opening period of a day: from `opens` (included) to `closes` (excluded)."""

    opens: time
    closes: time

    def __post_init__(self) -> None:
        if self.closes <= self.opens:
            raise ValueError(
                f"閉庁時刻（{format_time(self.closes)}）は開庁時刻（{format_time(self.opens)}）より後にしてください。"
            )

    def contains(self, moment: time) -> bool:
        return self.opens <= moment < self.closes

    def to_json(self) -> list[str]:
        return [format_time(self.opens), format_time(self.closes)]

    def __str__(self) -> str:
        return f"{format_time(self.opens)}-{format_time(self.closes)}"


def parse_span(opens: str, closes: str) -> Span:
    """A period from two texts; ValueError (Japanese) naming 開庁時刻 / 閉庁時刻 when one is wrong."""
    problems: list[str] = []
    start = end = None
    try:
        start = parse_time(opens)
    except ValueError as error:
        problems.append(f"開庁時刻：{error}")
    try:
        end = parse_time(closes)
    except ValueError as error:
        problems.append(f"閉庁時刻：{error}")
    if problems:
        raise ValueError(" ".join(problems))
    assert start is not None and end is not None
    return Span(start, end)


# --- The weekly table -------------------------------------------------------------------------


def parse_weekly(days: Mapping[str, tuple[str, str] | Sequence[str] | None]) -> dict[str, Span | None]:
    """The weekly table from texts: weekday → (opens, closes), or None for a closed day.

    Weekdays that are not given are closed. Raises HoursError keyed "hours.<weekday>".
    """
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(days) - set(WEEKDAYS))
    if unknown:
        errors["hours"] = [f"曜日「{'、'.join(unknown)}」はありません（mon～sun）。"]
    weekly: dict[str, Span | None] = {}
    for day in WEEKDAYS:
        raw = days.get(day)
        if raw is None:
            weekly[day] = None
            continue
        label = WEEKDAY_LABELS_JA[day]
        if isinstance(raw, str) or len(raw) != 2 or not all(isinstance(part, str) for part in raw):
            errors[f"hours.{day}"] = [f"{label}：開庁時刻と閉庁時刻の2つを入力してください。"]
            continue
        opens, closes = str(raw[0]), str(raw[1])
        if not _normalize(opens) and not _normalize(closes):
            errors[f"hours.{day}"] = [
                f"{label}：開庁時刻と閉庁時刻を入力してください（閉庁日は「休み」にしてください）。"
            ]
            continue
        try:
            weekly[day] = parse_span(opens, closes)
        except ValueError as error:
            errors[f"hours.{day}"] = [f"{label}の{error}" if "：" in str(error) else f"{label}：{error}"]
    if errors:
        raise HoursError(errors)
    return weekly


def parse_weekly_json(raw: object) -> dict[str, Span | None]:
    """The weekly table as stored (``{"mon": ["08:30", "17:15"], …}``); HoursError if malformed."""
    if raw is None:
        return dict.fromkeys(WEEKDAYS)
    if not isinstance(raw, Mapping):
        raise HoursError({"hours": ["開庁時間の形式が正しくありません。"]})
    return parse_weekly({str(key): value for key, value in raw.items()})


def weekly_json(weekly: Mapping[str, Span | None]) -> dict[str, list[str]]:
    """The stored form of a weekly table: open days only, in weekday order."""
    return {day: span.to_json() for day in WEEKDAYS if (span := weekly.get(day)) is not None}


def weekly_groups(weekly: Mapping[str, Span | None]) -> list[tuple[tuple[str, ...], Span | None]]:
    """Runs of consecutive weekdays with the same hours, Monday first, for short summaries:
    [(("mon", "tue", "wed"), 08:30–17:15), (("thu",), 08:30–19:30), …]."""
    groups: list[tuple[tuple[str, ...], Span | None]] = []
    for day in WEEKDAYS:
        span = weekly.get(day)
        if groups and groups[-1][1] == span:
            groups[-1] = ((*groups[-1][0], day), span)
        else:
            groups.append(((day,), span))
    return groups


# --- Dated exceptions -------------------------------------------------------------------------


class YearlyDay(NamedTuple):
    """A day that recurs every year (12/29). February 29 matches in leap years only."""

    month: int
    day: int

    def __str__(self) -> str:
        return f"{self.month}/{self.day}"


Day = date | YearlyDay


def _day_text(value: Day) -> str:
    if isinstance(value, date):
        return f"{value.year}/{value.month}/{value.day}"
    return str(value)


def _day_json(value: Day) -> str:
    if isinstance(value, date):
        return value.isoformat()
    return f"{value.month:02d}-{value.day:02d}"


@dataclass(frozen=True, slots=True)
class DateRule:
    """A dated exception: closed (`span` None) or open `span` on `first` … `last` (inclusive)."""

    first: Day
    last: Day
    span: Span | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.first, date) != isinstance(self.last, date):
            raise ValueError("期間の始めと終わりは、両方とも年を付けるか、両方とも付けないでください。")
        if isinstance(self.first, date) and isinstance(self.last, date):
            if self.last < self.first:
                raise ValueError("期間の終わりが始めより前になっています。")
            if (self.last - self.first).days > 366:
                raise ValueError("期間は1年以内にしてください。")

    @property
    def yearly(self) -> bool:
        return isinstance(self.first, YearlyDay)

    def matches(self, day: date) -> bool:
        if isinstance(self.first, date) and isinstance(self.last, date):
            return self.first <= day <= self.last
        key = (day.month, day.day)
        start, end = (self.first.month, self.first.day), (self.last.month, self.last.day)
        if start <= end:
            return start <= key <= end
        return key >= start or key <= end  # over the year end: 12/29–1/3

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"from": _day_json(self.first)}
        if self.last != self.first:
            data["to"] = _day_json(self.last)
        data["hours"] = self.span.to_json() if self.span else None
        if self.note:
            data["note"] = self.note
        return data


def _valid_yearly(month: int, day: int) -> YearlyDay:
    date(2024, month, day)  # a leap year, so 2/29 is allowed; ValueError for 2/30, 13/1 …
    return YearlyDay(month, day)


_DAY_SLASH = re.compile(r"^(?:(\d{4})/)?(\d{1,2})/(\d{1,2})$")
_DAY_KANJI = re.compile(r"^(?:(\d{4})年)?(\d{1,2})月(\d{1,2})日?$")
_RANGE_SEP = "-~〜–—―"
_SPACED_SEP = re.compile(rf"\s*([{_RANGE_SEP}])\s*")
_TIME_RANGE = re.compile(rf"^(\d{{1,2}}:\d{{2}})[{_RANGE_SEP}](\d{{1,2}}:\d{{2}})$")
_CLOSED_WORDS = frozenset({"休", "休み", "休業", "閉庁", "閉館", "休館"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _parse_day(text: str) -> tuple[int | None, int, int]:
    match = _DAY_SLASH.match(text) or _DAY_KANJI.match(text)
    if match is None:
        raise ValueError(f"「{text}」は日付ではありません。「12/29」「2026/5/9」のように入力してください。")
    year = int(match[1]) if match[1] else None
    return year, int(match[2]), int(match[3])


def _make_day(year: int | None, month: int, day: int, text: str) -> Day:
    try:
        return date(year, month, day) if year is not None else _valid_yearly(month, day)
    except ValueError:
        raise ValueError(f"「{text}」という日付はありません。") from None


def _parse_days(text: str) -> tuple[Day, Day]:
    parts = re.split(f"[{_RANGE_SEP}]", text)
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"「{text}」は日付か「12/29-1/3」のような期間にしてください。")
    first_parts = _parse_day(parts[0])
    first = _make_day(*first_parts, parts[0])
    if len(parts) == 1:
        return first, first
    year, month, day = _parse_day(parts[1])
    if year is None and isinstance(first, date):
        # 「2026/12/29-1/3」: the end takes the start's year, or the next one over the year end.
        year = first.year if (month, day) >= (first.month, first.day) else first.year + 1
    last = _make_day(year, month, day, parts[1])
    if isinstance(last, date) and not isinstance(first, date):
        raise ValueError("期間の始めにも年を付けてください（例「2026/12/29-2027/1/3」）。")
    return first, last


def _check_note(note: str) -> str:
    if _CONTROL.search(note):
        raise ValueError("メモに制御文字は使えません。")
    if len(note) > MAX_NOTE_LENGTH:
        raise ValueError(f"メモは{MAX_NOTE_LENGTH}文字以内にしてください（{len(note)}文字）。")
    return note


def _parse_line(line: str) -> DateRule:
    text = _SPACED_SEP.sub(r"\1", _normalize(line))
    tokens = text.split()
    first, last = _parse_days(tokens[0])
    rest = tokens[1:]
    span: Span | None = None
    if rest:
        times = _TIME_RANGE.match(rest[0])
        if times is not None:
            span = parse_span(times[1], times[2])
            rest = rest[1:]
        elif ":" in rest[0] or rest[0][0].isdigit():
            raise ValueError(f"時間「{rest[0]}」は「9:00-12:00」のように入力してください。")
    if rest and rest[0] in _CLOSED_WORDS and span is None and len(rest) == 1:
        rest = []  # 「12/31 休み」: the word only says what a line without hours means
    note = _check_note(" ".join(rest))
    return DateRule(first, last, span, note)


def parse_exception_lines(text: str) -> list[DateRule]:
    """Exceptions typed one a line: 「日付[-日付] [時:分-時:分] [メモ]」; blank lines and lines
    starting with # are skipped. A line without hours is a closed day (range).

    Raises HoursError keyed "hours_exceptions", one message per wrong line (「3行目「…」：…」).
    """
    rules: list[DateRule] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = _normalize(line)
        if not stripped or stripped.startswith("#"):
            continue
        try:
            rules.append(_parse_line(line))
        except ValueError as error:
            problems.append(f"{number}行目「{line.strip()}」：{error}")
    if len(rules) > MAX_EXCEPTIONS:
        problems.append(f"日付の例外は{MAX_EXCEPTIONS}行までにしてください（{len(rules)}行）。")
    if problems:
        raise HoursError({"hours_exceptions": problems})
    return rules


def format_exception_line(rule: DateRule) -> str:
    """The line staff see for a rule; parse_exception_lines reads it back to the same rule."""
    days = (
        _day_text(rule.first)
        if rule.first == rule.last
        else f"{_day_text(rule.first)}-{_day_text(rule.last)}"
    )
    parts = [days]
    if rule.span is not None:
        parts.append(str(rule.span))
    if rule.note:
        parts.append(rule.note)
    return " ".join(parts)


def format_exception_lines(rules: Iterable[DateRule]) -> str:
    return "\n".join(format_exception_line(rule) for rule in rules)


def _json_day(raw: object) -> Day:
    if not isinstance(raw, str):
        raise ValueError(f"日付 {raw!r} の形式が正しくありません。")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        return date.fromisoformat(raw)
    match = re.fullmatch(r"(\d{2})-(\d{2})", raw)
    if match is None:
        raise ValueError(f"日付「{raw}」は YYYY-MM-DD か MM-DD にしてください。")
    return _valid_yearly(int(match[1]), int(match[2]))


def parse_exceptions_json(raw: object) -> list[DateRule]:
    """Exceptions as stored (a list of {"from", "to", "hours", "note"}); HoursError if malformed."""
    if raw is None:
        return []
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise HoursError({"hours_exceptions": ["日付の例外の形式が正しくありません。"]})
    rules: list[DateRule] = []
    problems: list[str] = []
    for number, item in enumerate(raw, start=1):
        try:
            if not isinstance(item, Mapping):
                raise ValueError("形式が正しくありません。")
            first = _json_day(item.get("from"))
            last = _json_day(item["to"]) if item.get("to") else first
            hours = item.get("hours")
            span: Span | None = None
            if hours is not None:
                if not isinstance(hours, Sequence) or isinstance(hours, str) or len(hours) != 2:
                    raise ValueError("時間は [開庁, 閉庁] の2つにしてください。")
                span = parse_span(str(hours[0]), str(hours[1]))
            rules.append(DateRule(first, last, span, _check_note(str(item.get("note") or ""))))
        except (ValueError, KeyError) as error:
            problems.append(f"{number}件目：{error}")
    if len(rules) > MAX_EXCEPTIONS:
        problems.append(f"日付の例外は{MAX_EXCEPTIONS}件までにしてください（{len(rules)}件）。")
    if problems:
        raise HoursError({"hours_exceptions": problems})
    return rules


# --- Opening hours ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OpeningHours:
    """A location's weekly table and dated exceptions."""

    weekly: Mapping[str, Span | None] = field(default_factory=lambda: dict.fromkeys(WEEKDAYS))
    exceptions: tuple[DateRule, ...] = ()

    @classmethod
    def from_json(cls, hours: object, exceptions: object = None) -> OpeningHours:
        """From the stored settings values; HoursError if either is malformed."""
        return cls(parse_weekly_json(hours), tuple(parse_exceptions_json(exceptions)))

    @property
    def configured(self) -> bool:
        """Whether any weekday has hours (a table with none is taken as "not set up")."""
        return any(span is not None for span in self.weekly.values())

    def rule_for(self, day: date) -> DateRule | None:
        """The exception that decides `day`, if any: dated ones first, then yearly ones."""
        for yearly in (False, True):
            for rule in self.exceptions:
                if rule.yearly == yearly and rule.matches(day):
                    return rule
        return None

    def hours_on(self, day: date) -> Span | None:
        """The hours of `day`, or None when closed all day."""
        rule = self.rule_for(day)
        if rule is not None:
            return rule.span
        return self.weekly.get(WEEKDAYS[day.weekday()])


def _local(moment: datetime) -> datetime:
    """`moment` in Japan time; a naive moment is taken to be Japan time already."""
    return moment.replace(tzinfo=JST) if moment.tzinfo is None else moment.astimezone(JST)


def is_open(hours: OpeningHours, moment_jst: datetime) -> bool:
    """Whether the location is open at `moment_jst` (any time zone; naive means JST)."""
    local = _local(moment_jst)
    span = hours.hours_on(local.date())
    return span is not None and span.contains(local.time().replace(tzinfo=None))


def next_opening(hours: OpeningHours, moment_jst: datetime) -> datetime | None:
    """The next time (JST) an opening period starts, at or after `moment_jst`.

    While open, that is the start of a later period (tomorrow's, usually). None when no day in
    the next 400 days is open.
    """
    local = _local(moment_jst)
    for offset in range(_HORIZON_DAYS):
        day = local.date() + timedelta(days=offset)
        span = hours.hours_on(day)
        if span is None:
            continue
        start = datetime.combine(day, span.opens, tzinfo=JST)
        if start >= local:
            return start
    return None
