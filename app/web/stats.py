"""Statistics of certificates issued (窓口交付分) and the daily operations report (業務日報).

Managers read these. Every graph has its data table beside it — the table is the real content,
the canvas (drawn by static/js/stats.js from a JSON block) illustrates it — and every table can be
downloaded as CSV (UTF-8 with a BOM, so spreadsheet programs read the Japanese correctly).
The counting rules and the queries are in app/services/stats.py.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from app import i18n
from app.domain.certificates import CertificateType
from app.domain.permissions import Permission
from app.domain.wareki import format_wareki
from app.i18n import gettext as _
from app.models import Location
from app.models._types import utcnow
from app.services import stats as stats_service
from app.services.certificates import today_jst
from app.services.stats import (
    MAX_PERIOD_DAYS,
    OTHER_HOURS,
    SECTIONS,
    DailyReport,
    Measure,
    ReportLine,
    Row,
    Section,
    SectionName,
    StatsFilter,
)
from app.web.guards import staff

WEEKDAYS_JA = "月火水木金土日"
WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CHART_TYPES: dict[SectionName, str] = {
    "day": "line",
    "month": "bar",
    "type": "doughnut",
    "location": "bar",
    "hour": "bar",
}


def routes() -> list[BaseRoute]:
    return [
        staff("/staff/stats", stats_page, name="staff:stats", permission=Permission.STATS_VIEW),
        staff("/staff/stats.csv", stats_csv, name="staff:stats-csv", permission=Permission.STATS_VIEW),
        staff(
            "/staff/stats/report", report_page, name="staff:stats-report", permission=Permission.STATS_VIEW
        ),
    ]


# --- Filters ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """The filters of the statistics page as read from the query string, with what was corrected."""

    filter: StatsFilter
    measure: Measure
    notices: list[str] = field(default_factory=list)

    def params(self, **extra: str) -> str:
        f = self.filter
        values = {"from": f.start.isoformat(), "to": f.end.isoformat(), "measure": self.measure}
        if f.location_id is not None:
            values["location"] = str(f.location_id)
        if f.certificate_type is not None:
            values["type"] = f.certificate_type.value
        if f.include_cancelled:
            values["cancelled"] = "1"
        values.update(extra)
        return urlencode(values)


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def parse_query(params: Any, today: date) -> Query:
    notices: list[str] = []
    start, end = _date(params.get("from")), _date(params.get("to"))
    if (params.get("from") and start is None) or (params.get("to") and end is None):
        notices.append(_("A date could not be read; the default period is shown."))
    if start is None:
        start = (end or today).replace(day=1)
    if end is None:
        end = max(today, start) if start.replace(day=1) == today.replace(day=1) else _month_end(start)
    if end < start:
        start, end = end, start
    if (end - start).days + 1 > MAX_PERIOD_DAYS:
        start = end - timedelta(days=MAX_PERIOD_DAYS - 1)
        notices.append(_("The period is limited to 366 days; it was shortened."))
    location_id: int | None = None
    raw_location = params.get("location", "")
    if raw_location.isdigit():
        location_id = int(raw_location)
    kind: CertificateType | None = None
    try:
        kind = CertificateType(params.get("type", "")) if params.get("type") else None
    except ValueError:
        kind = None
    measure: Measure = "requests" if params.get("measure") == "requests" else "copies"
    include_cancelled = params.get("cancelled") in ("1", "on", "true")
    return Query(StatsFilter(start, end, location_id, kind, include_cancelled), measure, notices)


def _month_end(day: date) -> date:
    following = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return following - timedelta(days=1)


# --- Labels -------------------------------------------------------------------------------------


def _english() -> bool:
    return i18n.current_language() == "en"


def day_label(day: date, *, short: bool = False) -> str:
    if _english():
        weekday = WEEKDAYS_EN[day.weekday()]
        return f"{day.month}/{day.day} {weekday}" if short else f"{day.isoformat()} ({weekday})"
    weekday = WEEKDAYS_JA[day.weekday()]
    return f"{day.month}/{day.day}（{weekday}）" if short else f"{day.isoformat()}（{weekday}）"


def month_label(month: date) -> str:
    return f"{month:%Y-%m}" if _english() else f"{month.year}年{month.month}月"


def type_label(kind: CertificateType) -> str:
    return kind.label_en if _english() else kind.label_ja


def hour_label(hour: int | str) -> str:
    if hour == OTHER_HOURS or not isinstance(hour, int):
        return _("Other hours")
    return f"{hour}:00–{hour}:59" if _english() else f"{hour}時台"


def report_day_label(day: date) -> str:
    if _english():
        return f"{WEEKDAYS_EN[day.weekday()]} {day.isoformat()}"
    return f"{format_wareki(day)}（{WEEKDAYS_JA[day.weekday()]}）"


def _labeller(name: SectionName, names: dict[int, str]) -> Callable[[Row], tuple[str, str, str]]:
    """(table label, chart label, CSV label) of a row."""

    def label(row: Row) -> tuple[str, str, str]:
        key = row.key
        if name == "day" and isinstance(key, date):
            return day_label(key), day_label(key, short=True), key.isoformat()
        if name == "month" and isinstance(key, date):
            return month_label(key), month_label(key), f"{key:%Y-%m}"
        if name == "type" and isinstance(key, CertificateType):
            text = type_label(key)
            return text, text, text
        if name == "location" and isinstance(key, int):
            text = names.get(key, f"#{key}")
            return text, text, text
        text = hour_label(key if isinstance(key, int | str) else str(key))
        return text, text, text

    return label


def section_titles() -> dict[SectionName, str]:
    return {
        "day": _("By day"),
        "month": _("By month (last 12 months)"),
        "type": _("By certificate type"),
        "location": _("By location"),
        "hour": _("By hour of day (Japan time)"),
    }


def key_headers() -> dict[SectionName, str]:
    return {
        "day": _("Date"),
        "month": _("Month"),
        "type": _("Certificate type"),
        "location": _("Location"),
        "hour": _("Hour"),
    }


def measure_label(measure: Measure) -> str:
    return _("Copies") if measure == "copies" else _("Requests")


# --- The statistics page ------------------------------------------------------------------------


@dataclass(frozen=True)
class SectionView:
    name: SectionName
    title: str
    key_header: str
    rows: list[tuple[str, Row]]
    total: stats_service.Tally
    chart: dict[str, Any]
    csv_url: str


def _section_view(section: Section, query: Query, names: dict[int, str]) -> SectionView:
    label = _labeller(section.name, names)
    labelled = [(label(row), row) for row in section.rows]
    chart = {
        "type": CHART_TYPES[section.name],
        "labels": [chart_label for (_table, chart_label, _csv), _row in labelled],
        "values": [row.tally.value(query.measure) for _labels, row in labelled],
        "series": measure_label(query.measure),
    }
    return SectionView(
        name=section.name,
        title=section_titles()[section.name],
        key_header=key_headers()[section.name],
        rows=[(table_label, row) for (table_label, _chart, _csv), row in labelled],
        total=section.total,
        chart=chart,
        csv_url=f"/staff/stats.csv?{query.params(section=section.name)}",
    )


def _location_names(known: Sequence[Location]) -> dict[int, str]:
    return {location.id: location.name for location in known if location.id is not None}


def stats_page(request: Request) -> Response:
    query = parse_query(request.query_params, today_jst())
    with request.app.state.db.session() as session:
        known = stats_service.locations(session)
        overview = stats_service.overview(session, query.filter)
    names = _location_names(known)
    sections = [_section_view(overview.sections[name], query, names) for name in SECTIONS]
    response: Response = request.app.state.templates.TemplateResponse(
        request,
        "staff/stats.html",
        {
            "query": query,
            "f": query.filter,
            "summary": overview.summary,
            "sections": sections,
            "locations": known,
            "types": [(kind.value, type_label(kind)) for kind in CertificateType],
            "measure_label": measure_label(query.measure),
            "report_url": f"/staff/stats/report?day={query.filter.end.isoformat()}",
        },
    )
    return response


def _csv_response(rows: list[list[str]], filename: str) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return Response(
        "\ufeff" + buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="{filename}"',
            "cache-control": "no-store",
        },
    )


def stats_csv(request: Request) -> Response:
    name = request.query_params.get("section") or "day"
    if name not in SECTIONS:
        raise HTTPException(status_code=400, detail="section must be one of: " + ", ".join(SECTIONS))
    section_name: SectionName = name
    query = parse_query(request.query_params, today_jst())
    with request.app.state.db.session() as session:
        names = _location_names(stats_service.locations(session))
        section = stats_service.section(session, query.filter, section_name)
    label = _labeller(section_name, names)
    rows = [[key_headers()[section_name], _("Requests"), _("Copies"), _("Fees (yen)")]]
    for row in section.rows:
        rows.append([label(row)[2], str(row.tally.requests), str(row.tally.copies), str(row.tally.fees)])
    total = section.total
    rows.append([_("Total"), str(total.requests), str(total.copies), str(total.fees)])
    f = query.filter
    if section_name == "month":
        first, last = stats_service.month_range(f.end)
        period = f"{first:%Y-%m}_{last:%Y-%m}"
    else:
        period = f"{f.start:%Y%m%d}-{f.end:%Y%m%d}"
    return _csv_response(rows, f"stats-{section_name}-{period}.csv")


# --- 業務日報 -------------------------------------------------------------------------------------


def _report_csv(report: DailyReport) -> Response:
    header = [
        _("Date"),
        _("Location"),
        _("Certificate type"),
        _("Requests"),
        _("Copies"),
        _("Fees (yen)"),
        _("Cancelled"),
        _("Reprints"),
        _("Kiosk"),
        _("Counter"),
    ]

    def numbers(line: ReportLine) -> list[str]:
        values = (line.requests, line.copies, line.fees, line.cancelled, line.reprints)
        return [str(value) for value in (*values, line.kiosk, line.counter)]

    day = report.day.isoformat()
    rows = [header]
    for place in report.locations:
        for kind, line in place.lines.items():
            rows.append([day, place.name, type_label(kind), *numbers(line)])
    rows.append([day, _("Total"), "", *numbers(report.total)])
    return _csv_response(rows, f"daily-report-{report.day:%Y%m%d}.csv")


def report_page(request: Request) -> Response:
    today = today_jst()
    raw = request.query_params.get("day")
    day = _date(raw) or today
    notice = _("A date could not be read; the default period is shown.") if raw and not _date(raw) else ""
    with request.app.state.db.session() as session:
        report = stats_service.daily_report(session, day)
    if request.query_params.get("format") == "csv":
        return _report_csv(report)
    response: Response = request.app.state.templates.TemplateResponse(
        request,
        "staff/stats_report.html",
        {
            "report": report,
            "day": day,
            "day_label": report_day_label(day),
            "previous_day": (day - timedelta(days=1)).isoformat(),
            "next_day": (day + timedelta(days=1)).isoformat(),
            "is_today": day == today,
            "generated_at": utcnow(),
            "notice": notice,
            "type_label": type_label,
            "stats_url": f"/staff/stats?from={day:%Y-%m-%d}&to={day:%Y-%m-%d}",
        },
    )
    return response
