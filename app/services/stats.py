"""Statistics of certificates issued at the counters and kiosks (窓口交付分), and the 業務日報.

What counts
    A certificate request is one resident's request for one certificate type; `copies` is the
    number of sheets (通数) and `fee_total` the fee charged. A request counts as issued (交付) unless
    it was cancelled; `include_cancelled` counts cancelled requests too. Reprints are new
    `CertificateIssue` rows with `reprint_of` set: they are never new issues and are shown as a
    separate figure, dated by when they were printed (JST), whatever state their request is in.

Dates
    Requests are dated by `reception_date`, the Japan date their reception number belongs to.
    The hour of day comes from `created_at` (stored in UTC) converted to Japan time (UTC+9, no
    daylight saving time).

Query approach and cost
    Everything is aggregated in the database; Python only folds small result sets. Every query
    filters on a `reception_date` range (index `ix_request_day_state`), so its cost grows with
    the rows in the range, not with the table.

    - day, type, location, month and the summary come from ONE scan grouped by
      (reception_date, location_id, certificate_type, state) over the 12 months of the month
      section plus the period. That returns at most days × locations × types × states rows
      (≈ 400 × 4 × 3 × 3 ≈ 15,000 for the demo town) and is folded five ways in Python; grouping by
      state lets the summary show cancelled requests without a second scan. Months are bucketed
      in Python from the dates: portable, and no dialect-specific date functions for 366 rows.
    - hour: its own scan of the period with dialect-specific SQL, because the alternative
      (fetching every `created_at` to convert in Python) moves every row to Python: SQLite
      `strftime('%H', created_at, '+9 hours')`, PostgreSQL
      `date_part('hour', timezone('Asia/Tokyo', created_at))`. Other dialects fall back to
      streaming `created_at` through Python.
    - reprints: one join on `certificate_issue.created_at` (indexed).
    - the daily report: one scan of one day grouped by location, type, channel and state.

    Measured with synthetic requests in one month on a shared 2-CPU machine: the whole page
    (`overview`) takes ~0.2 s on PostgreSQL 15 and ~0.5 s on SQLite for 100,000 requests, and
    ~2 s and ~13 s for 1,000,000 (the hour scan is about half of it); the daily report ~0.03 s.
    The 12-month scan grows with the year's rows, so expect the page to cost about what these
    figures say per million requests in the 12 months shown. A month at 50 requests a second
    through office hours (~35 million rows) would take about a minute on PostgreSQL: at that
    scale the page needs a daily roll-up table (filled when a day closes) or at least a covering
    index (reception_date, location_id, certificate_type, state, copies, fee_total, created_at)
    for index-only scans; both need a migration. A real town's month is tens of thousands.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Executable,
    Integer,
    cast,
    func,
    literal_column,
    select as sa_select,
)
from sqlmodel import Session, col, select

from app.domain.certificates import CertificateType
from app.domain.requests import RequestState
from app.models import CertificateIssue, CertificateRequest, Location

__all__ = [
    "FIRST_HOUR",
    "LAST_HOUR",
    "MAX_PERIOD_DAYS",
    "OTHER_HOURS",
    "SECTIONS",
    "DailyReport",
    "Measure",
    "Overview",
    "ReportLine",
    "ReportLocation",
    "Row",
    "Section",
    "SectionName",
    "StatsFilter",
    "Summary",
    "Tally",
    "by_day",
    "by_hour",
    "by_location",
    "by_month",
    "by_type",
    "daily_report",
    "jst_day_bounds",
    "locations",
    "month_range",
    "overview",
    "section",
    "summary",
]

JST = ZoneInfo("Asia/Tokyo")
SectionName = Literal["day", "month", "type", "location", "hour"]
SECTIONS: tuple[SectionName, ...] = ("day", "month", "type", "location", "hour")
Measure = Literal["copies", "requests"]
# Hours of day (JST) the hour section shows one by one: 8時台 … 20時台. Requests outside them are
# summed into one OTHER_HOURS row, so the table's total still equals the other sections'.
FIRST_HOUR = 8
LAST_HOUR = 20
OTHER_HOURS = "other"
MAX_PERIOD_DAYS = 366


@dataclass
class Tally:
    """Requests (件数), copies (通数) and fees (円) of a group of requests."""

    requests: int = 0
    copies: int = 0
    fees: int = 0

    def add(self, requests: int, copies: int, fees: int) -> None:
        self.requests += requests
        self.copies += copies
        self.fees += fees

    def add_tally(self, other: Tally) -> None:
        self.add(other.requests, other.copies, other.fees)

    def value(self, measure: Measure) -> int:
        return self.copies if measure == "copies" else self.requests


@dataclass(frozen=True)
class StatsFilter:
    """The period (both ends included, JST dates) and what to count."""

    start: date
    end: date
    location_id: int | None = None
    certificate_type: CertificateType | None = None
    include_cancelled: bool = False

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("the period ends before it starts")


@dataclass(frozen=True)
class Row:
    """One line of a section: key is a date (day, first of month), a CertificateType, a location
    id, an hour (int) or OTHER_HOURS."""

    key: date | CertificateType | int | str
    tally: Tally


@dataclass(frozen=True)
class Section:
    name: SectionName
    rows: list[Row]

    @property
    def total(self) -> Tally:
        total = Tally()
        for row in self.rows:
            total.add_tally(row.tally)
        return total


@dataclass(frozen=True)
class Summary:
    issued: Tally  # not cancelled
    cancelled: Tally
    reprints: int  # reprinted issues (prints), not requests
    reprint_copies: int


@dataclass(frozen=True)
class Overview:
    filter: StatsFilter
    summary: Summary
    sections: dict[SectionName, Section]


# --- Shared pieces ------------------------------------------------------------------------------


def locations(session: Session) -> list[Location]:
    """All locations, by site then code (inactive ones too: they have history)."""
    return list(session.exec(select(Location).order_by(col(Location.site_id), col(Location.code))).all())


def jst_day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """UTC instants of [start 00:00 JST, the day after end 00:00 JST)."""
    low = datetime.combine(start, time(0), tzinfo=JST).astimezone(UTC)
    high = datetime.combine(end + timedelta(days=1), time(0), tzinfo=JST).astimezone(UTC)
    return low, high


def month_range(end: date, months: int = 12) -> tuple[date, date]:
    """First day of the month `months - 1` before end's month, and the last day of end's month."""
    index = end.year * 12 + end.month - 1 - (months - 1)
    first = date(index // 12, index % 12 + 1, 1)
    following = date(end.year + (end.month == 12), end.month % 12 + 1, 1)
    return first, following - timedelta(days=1)


def _months(first: date, last: date) -> list[date]:
    months = []
    current = first.replace(day=1)
    while current <= last:
        months.append(current)
        current = date(current.year + (current.month == 12), current.month % 12 + 1, 1)
    return months


def _aggregates() -> tuple[Any, Any, Any]:
    return (
        func.count(col(CertificateRequest.id)),
        func.coalesce(func.sum(col(CertificateRequest.copies)), 0),
        func.coalesce(func.sum(col(CertificateRequest.fee_total)), 0),
    )


def _conditions(
    f: StatsFilter, start: date | None = None, end: date | None = None, *, states: bool = True
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        col(CertificateRequest.reception_date) >= (start or f.start),
        col(CertificateRequest.reception_date) <= (end or f.end),
    ]
    if f.location_id is not None:
        conditions.append(col(CertificateRequest.location_id) == f.location_id)
    if f.certificate_type is not None:
        conditions.append(col(CertificateRequest.certificate_type) == f.certificate_type)
    if states and not f.include_cancelled:
        conditions.append(col(CertificateRequest.state) != RequestState.CANCELLED)
    return conditions


def _run(session: Session, statement: Executable) -> Any:
    """Run a Core aggregate query (sqlmodel's select() is typed for at most four columns)."""
    return session.connection().execute(statement)


def _types(f: StatsFilter) -> list[CertificateType]:
    return [f.certificate_type] if f.certificate_type is not None else list(CertificateType)


# --- Sections -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    """Requests of one (reception_date, location, type, state)."""

    day: date
    location_id: int
    kind: CertificateType
    state: RequestState
    tally: Tally


def _groups(session: Session, f: StatsFilter, start: date, end: date) -> list[_Group]:
    """All (reception_date, location_id, certificate_type, state) groups from start to end.

    Location and type filters apply in SQL; states are kept apart so the caller can count
    cancelled requests separately, or not at all, without another scan.
    """
    statement = (
        sa_select(
            col(CertificateRequest.reception_date),
            col(CertificateRequest.location_id),
            col(CertificateRequest.certificate_type),
            col(CertificateRequest.state),
            *_aggregates(),
        )
        .where(*_conditions(f, start, end, states=False))
        .group_by(
            col(CertificateRequest.reception_date),
            col(CertificateRequest.location_id),
            col(CertificateRequest.certificate_type),
            col(CertificateRequest.state),
        )
    )
    return [
        _Group(day, location_id, kind, state, Tally(int(n), int(copies), int(fees)))
        for day, location_id, kind, state, n, copies, fees in _run(session, statement).all()
    ]


def _counted(f: StatsFilter, groups: Iterable[_Group], start: date, end: date) -> list[_Group]:
    """The groups between start and end that count under f (cancelled only if asked for)."""
    return [
        group
        for group in groups
        if start <= group.day <= end and (f.include_cancelled or group.state != RequestState.CANCELLED)
    ]


def _fold_day(f: StatsFilter, groups: Iterable[_Group]) -> Section:
    days: dict[date, Tally] = {}
    current = f.start
    while current <= f.end:
        days[current] = Tally()
        current += timedelta(days=1)
    for group in _counted(f, groups, f.start, f.end):
        days[group.day].add_tally(group.tally)
    return Section("day", [Row(day, tally) for day, tally in days.items()])


def _fold_type(f: StatsFilter, groups: Iterable[_Group]) -> Section:
    kinds: dict[CertificateType, Tally] = {kind: Tally() for kind in _types(f)}
    for group in _counted(f, groups, f.start, f.end):
        kinds.setdefault(group.kind, Tally()).add_tally(group.tally)
    return Section("type", [Row(kind, tally) for kind, tally in kinds.items()])


def _fold_location(f: StatsFilter, groups: Iterable[_Group], known: Sequence[Location]) -> Section:
    """Every active location (and the chosen one) gets a row, with requests or not."""
    places: dict[int, Tally] = {}
    for location in known:
        assert location.id is not None
        if (f.location_id is None and location.active) or location.id == f.location_id:
            places[location.id] = Tally()
    for group in _counted(f, groups, f.start, f.end):
        places.setdefault(group.location_id, Tally()).add_tally(group.tally)
    order = {location.id: index for index, location in enumerate(known)}
    keys = sorted(places, key=lambda key: (order.get(key, len(order)), key))
    return Section("location", [Row(key, places[key]) for key in keys])


def _fold_month(f: StatsFilter, groups: Iterable[_Group], months: int = 12) -> Section:
    first, last = month_range(f.end, months)
    buckets: dict[date, Tally] = {month: Tally() for month in _months(first, last)}
    for group in _counted(f, groups, first, last):
        buckets[group.day.replace(day=1)].add_tally(group.tally)
    return Section("month", [Row(month, tally) for month, tally in buckets.items()])


def _fold_summary(f: StatsFilter, groups: Iterable[_Group], reprints: tuple[int, int]) -> Summary:
    issued, cancelled = Tally(), Tally()
    for group in groups:
        if f.start <= group.day <= f.end:
            target = cancelled if group.state == RequestState.CANCELLED else issued
            target.add_tally(group.tally)
    return Summary(issued, cancelled, *reprints)


def by_day(session: Session, f: StatsFilter) -> Section:
    return _fold_day(f, _groups(session, f, f.start, f.end))


def by_type(session: Session, f: StatsFilter) -> Section:
    return _fold_type(f, _groups(session, f, f.start, f.end))


def by_location(session: Session, f: StatsFilter) -> Section:
    return _fold_location(f, _groups(session, f, f.start, f.end), locations(session))


def by_month(session: Session, f: StatsFilter, months: int = 12) -> Section:
    """The `months` months up to and including the month of f.end (f.start is not used)."""
    first, last = month_range(f.end, months)
    return _fold_month(f, _groups(session, f, first, last), months)


def _jst_hour(dialect: str) -> ColumnElement[int] | None:
    """SQL for the Japan-time hour (0–23) of created_at, or None when the dialect has none here.

    Literal SQL, not bound parameters: PostgreSQL must see the GROUP BY expression as the same
    text as the selected one.
    """
    created = col(CertificateRequest.created_at)
    if dialect == "postgresql":
        # date_part (double precision) is cheaper per row than EXTRACT (numeric since PostgreSQL 14).
        return cast(
            func.date_part(literal_column("'hour'"), func.timezone(literal_column("'Asia/Tokyo'"), created)),
            Integer,
        )
    if dialect == "sqlite":
        # Stored as naive UTC text; JST is UTC+9 all year (no daylight saving time).
        return cast(func.strftime(literal_column("'%H'"), created, literal_column("'+9 hours'")), Integer)
    return None


def _hour_counts(session: Session, f: StatsFilter) -> dict[int, Tally]:
    hours: dict[int, Tally] = defaultdict(Tally)
    expression = _jst_hour(session.get_bind().dialect.name)
    if expression is not None:
        hour = expression.label("hour")
        statement = sa_select(hour, *_aggregates()).where(*_conditions(f)).group_by(expression)
        for value, n, copies, fees in _run(session, statement).all():
            hours[int(value)].add(int(n), int(copies), int(fees))
        return hours
    rows = _run(
        session,
        sa_select(
            col(CertificateRequest.created_at),
            col(CertificateRequest.copies),
            col(CertificateRequest.fee_total),
        ).where(*_conditions(f)),
    )
    for created_at, copies, fees in rows:
        hours[created_at.astimezone(JST).hour].add(1, copies, fees)
    return hours


def by_hour(session: Session, f: StatsFilter) -> Section:
    """Hours FIRST_HOUR … LAST_HOUR (JST), then one OTHER_HOURS row if anything fell outside."""
    counts = _hour_counts(session, f)
    rows = [Row(hour, counts.get(hour, Tally())) for hour in range(FIRST_HOUR, LAST_HOUR + 1)]
    other = Tally()
    for hour, tally in counts.items():
        if not FIRST_HOUR <= hour <= LAST_HOUR:
            other.add_tally(tally)
    if other.requests:
        rows.append(Row(OTHER_HOURS, other))
    return Section("hour", rows)


def section(session: Session, f: StatsFilter, name: SectionName) -> Section:
    if name == "day":
        return by_day(session, f)
    if name == "month":
        return by_month(session, f)
    if name == "type":
        return by_type(session, f)
    if name == "location":
        return by_location(session, f)
    if name == "hour":
        return by_hour(session, f)
    raise ValueError(f"unknown section {name!r}")


def summary(session: Session, f: StatsFilter) -> Summary:
    """Issued and cancelled requests of the period, and reprints printed in it (JST days)."""
    return _fold_summary(f, _groups(session, f, f.start, f.end), _reprints(session, f))


def _reprint_conditions(f: StatsFilter) -> Any:
    low, high = jst_day_bounds(f.start, f.end)
    conditions: list[ColumnElement[bool]] = [
        col(CertificateIssue.reprint_of).is_not(None),
        col(CertificateIssue.created_at) >= low,
        col(CertificateIssue.created_at) < high,
    ]
    if f.location_id is not None:
        conditions.append(col(CertificateRequest.location_id) == f.location_id)
    if f.certificate_type is not None:
        conditions.append(col(CertificateRequest.certificate_type) == f.certificate_type)
    return conditions


def _reprints(session: Session, f: StatsFilter) -> tuple[int, int]:
    statement = (
        sa_select(
            func.count(col(CertificateIssue.id)), func.coalesce(func.sum(col(CertificateIssue.copies)), 0)
        )
        .join(CertificateRequest, col(CertificateIssue.request_id) == col(CertificateRequest.id))
        .where(*_reprint_conditions(f))
    )
    n, copies = _run(session, statement).one()
    return int(n), int(copies)


def overview(session: Session, f: StatsFilter) -> Overview:
    """Everything the statistics page shows: two scans of certificate_request and one join.

    One grouped scan covers the 12 months of the month section and the period (a period of up
    to 366 days may start before them); day, type, location, month and summary are folded from
    it. The hour section needs its own scan of the period.
    """
    first, last = month_range(f.end)
    groups = _groups(session, f, min(first, f.start), max(last, f.end))
    sections: dict[SectionName, Section] = {
        "day": _fold_day(f, groups),
        "month": _fold_month(f, groups),
        "type": _fold_type(f, groups),
        "location": _fold_location(f, groups, locations(session)),
        "hour": by_hour(session, f),
    }
    return Overview(f, _fold_summary(f, groups, _reprints(session, f)), sections)


# --- 業務日報 (daily operations report) ---------------------------------------------------------


@dataclass
class ReportLine:
    """One line of the daily report. requests/copies/fees/kiosk/counter exclude cancelled requests."""

    requests: int = 0
    copies: int = 0
    fees: int = 0
    cancelled: int = 0
    reprints: int = 0
    kiosk: int = 0
    counter: int = 0

    def add(self, other: ReportLine) -> None:
        self.requests += other.requests
        self.copies += other.copies
        self.fees += other.fees
        self.cancelled += other.cancelled
        self.reprints += other.reprints
        self.kiosk += other.kiosk
        self.counter += other.counter

    @property
    def empty(self) -> bool:
        return not (self.requests or self.cancelled or self.reprints)


@dataclass
class ReportLocation:
    location_id: int
    name: str
    lines: dict[CertificateType, ReportLine] = field(default_factory=dict)

    @property
    def subtotal(self) -> ReportLine:
        total = ReportLine()
        for line in self.lines.values():
            total.add(line)
        return total


@dataclass(frozen=True)
class DailyReport:
    day: date
    locations: list[ReportLocation]

    @property
    def by_type(self) -> dict[CertificateType, ReportLine]:
        totals = {kind: ReportLine() for kind in CertificateType}
        for place in self.locations:
            for kind, line in place.lines.items():
                totals[kind].add(line)
        return totals

    @property
    def total(self) -> ReportLine:
        total = ReportLine()
        for place in self.locations:
            total.add(place.subtotal)
        return total


def daily_report(session: Session, day: date) -> DailyReport:
    """Per location and certificate type for one JST day; every active location is listed."""
    known = locations(session)
    places: dict[int, ReportLocation] = {}
    for location in known:
        assert location.id is not None
        if location.active:
            places[location.id] = ReportLocation(location.id, location.name)
    names = {location.id: location.name for location in known}

    def line(location_id: int, kind: CertificateType) -> ReportLine:
        place = places.get(location_id)
        if place is None:
            place = places[location_id] = ReportLocation(
                location_id, names.get(location_id, str(location_id))
            )
        return place.lines.setdefault(kind, ReportLine())

    statement = (
        sa_select(
            col(CertificateRequest.location_id),
            col(CertificateRequest.certificate_type),
            col(CertificateRequest.channel),
            col(CertificateRequest.state),
            *_aggregates(),
        )
        .where(col(CertificateRequest.reception_date) == day)
        .group_by(
            col(CertificateRequest.location_id),
            col(CertificateRequest.certificate_type),
            col(CertificateRequest.channel),
            col(CertificateRequest.state),
        )
    )
    for location_id, kind, channel, state, n, copies, fees in _run(session, statement).all():
        target = line(location_id, kind)
        if state == RequestState.CANCELLED:
            target.cancelled += int(n)
            continue
        target.requests += int(n)
        target.copies += int(copies)
        target.fees += int(fees)
        if channel == "kiosk":
            target.kiosk += int(n)
        elif channel == "counter":
            target.counter += int(n)

    f = StatsFilter(day, day, include_cancelled=True)
    reprints = (
        sa_select(
            col(CertificateRequest.location_id),
            col(CertificateRequest.certificate_type),
            func.count(col(CertificateIssue.id)),
        )
        .join(CertificateRequest, col(CertificateIssue.request_id) == col(CertificateRequest.id))
        .where(*_reprint_conditions(f))
        .group_by(col(CertificateRequest.location_id), col(CertificateRequest.certificate_type))
    )
    for location_id, kind, n in _run(session, reprints).all():
        line(location_id, kind).reprints += int(n)

    order = {location.id: index for index, location in enumerate(known)}
    result = []
    for location_id in sorted(places, key=lambda key: (order.get(key, len(order)), key)):
        place = places[location_id]
        place.lines = {kind: place.lines.get(kind, ReportLine()) for kind in CertificateType}
        result.append(place)
    return DailyReport(day, result)
