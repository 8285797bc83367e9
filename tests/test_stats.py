"""Statistics (窓口交付分) and the daily operations report (業務日報), on SQLite and PostgreSQL.

Requests are inserted straight into the database with chosen times, so hour buckets can be checked
across the midnight-UTC boundary (09:00 JST) and the JST midnight (15:00 UTC).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient

from app.db import Database
from app.domain.certificates import CertificateType
from app.domain.registry import Sex
from app.domain.requests import RequestState
from app.models import (
    CertificateIssue,
    CertificateRequest,
    Household,
    Location,
    Municipality,
    Resident,
    Site,
)
from app.services import stats
from app.services.stats import StatsFilter
from app.web.stats import parse_query
from tests.conftest import StaffAccounts, sign_in

JST = ZoneInfo("Asia/Tokyo")
JUMINHYO, INKAN, TAX = CertificateType.JUMINHYO, CertificateType.INKAN, CertificateType.TAX
_numbers = itertools.count(1)


@dataclass(frozen=True)
class Town:
    main: int  # location ids
    branch: int
    closed: int  # an inactive location
    resident: int


def make_town(db: Database) -> Town:
    with db.write_session() as session:
        town = Municipality(code="999997", name="試験町")
        session.add(town)
        session.flush()
        assert town.id is not None
        site = Site(municipality_id=town.id, name="本庁")
        session.add(site)
        session.flush()
        assert site.id is not None
        places = [
            Location(site_id=site.id, code="S1", name="本庁 住民課窓口"),
            Location(site_id=site.id, code="S2", name="北支所 窓口"),
            Location(site_id=site.id, code="S9", name="旧出張所", active=False),
        ]
        household = Household(household_number="S-0001", address="試験町1-1")
        session.add_all([*places, household])
        session.flush()
        assert household.id is not None
        resident = Resident(
            atena_number="S000000001",
            household_id=household.id,
            relationship="世帯主",
            family_name="試験",
            given_name="太郎",
            sex=Sex.MALE,
            address="試験町1-1",
        )
        session.add(resident)
        session.flush()
        session.commit()
        ids = [place.id for place in places]
        assert all(ids) and resident.id is not None
        return Town(ids[0] or 0, ids[1] or 0, ids[2] or 0, resident.id)


def jst(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=JST)


def add(
    db: Database,
    town: Town,
    at: datetime,
    *,
    location: int | None = None,
    kind: CertificateType = JUMINHYO,
    copies: int = 1,
    state: RequestState = RequestState.HANDED_OVER,
    channel: str = "kiosk",
) -> int:
    with db.write_session() as session:
        request = CertificateRequest(
            location_id=location or town.main,
            channel=channel,
            reception_date=at.astimezone(JST).date(),
            reception_number=next(_numbers),
            idempotency_key=uuid.uuid4().hex,
            applicant_id=town.resident,
            certificate_type=kind,
            copies=copies,
            fee_total=300 * copies,
            state=state,
            created_at=at.astimezone(UTC),
            updated_at=at.astimezone(UTC),
        )
        session.add(request)
        session.commit()
        assert request.id is not None
        return request.id


def add_issue(db: Database, request_id: int, at: datetime, *, reprint_of: int | None = None) -> int:
    with db.write_session() as session:
        issue = CertificateIssue(
            request_id=request_id,
            document_key=f"test/{uuid.uuid4().hex}.pdf",
            sha256="0" * 64,
            copies=1,
            reprint_of=reprint_of,
            created_at=at.astimezone(UTC),
        )
        session.add(issue)
        session.commit()
        assert issue.id is not None
        return issue.id


def as_dict(section: stats.Section) -> dict[object, tuple[int, int, int]]:
    return {row.key: (row.tally.requests, row.tally.copies, row.tally.fees) for row in section.rows}


@pytest.fixture
def town(db: Database) -> Town:
    return make_town(db)


@pytest.fixture
def march(db: Database, town: Town) -> Town:
    """A small March 2025: two locations, three types, one cancelled request, one reprint."""
    add(db, town, jst(2025, 3, 3, 9, 5), kind=JUMINHYO, copies=2)
    add(db, town, jst(2025, 3, 3, 9, 40), kind=INKAN, copies=1, channel="counter")
    add(db, town, jst(2025, 3, 3, 14, 0), kind=TAX, copies=1, location=town.branch)
    add(
        db,
        town,
        jst(2025, 3, 4, 10, 0),
        kind=JUMINHYO,
        copies=3,
        location=town.branch,
        state=RequestState.PRINTED,
    )
    cancelled = add(db, town, jst(2025, 3, 4, 11, 0), kind=JUMINHYO, copies=2, state=RequestState.CANCELLED)
    original = add(db, town, jst(2025, 3, 31, 16, 0), kind=INKAN, copies=1)
    first = add_issue(db, original, jst(2025, 3, 31, 16, 1))
    add_issue(db, original, jst(2025, 3, 31, 16, 30), reprint_of=first)
    add_issue(db, cancelled, jst(2025, 3, 4, 11, 1))
    # Outside the period: the day before and the day after.
    add(db, town, jst(2025, 2, 28, 23, 59), copies=5)
    add(db, town, jst(2025, 4, 1, 0, 0), copies=7)
    return town


MARCH = StatsFilter(date(2025, 3, 1), date(2025, 3, 31))


def test_day_type_location_and_summary(db: Database, march: Town) -> None:
    with db.session() as session:
        overview = stats.overview(session, MARCH)
    days = as_dict(overview.sections["day"])
    assert len(days) == 31 and min(days) == date(2025, 3, 1) and max(days) == date(2025, 3, 31)  # type: ignore[type-var]
    assert days[date(2025, 3, 3)] == (3, 4, 1200)
    assert days[date(2025, 3, 4)] == (1, 3, 900)  # the cancelled request does not count
    assert days[date(2025, 3, 31)] == (1, 1, 300)
    assert days[date(2025, 3, 2)] == (0, 0, 0)  # empty days are listed
    assert as_dict(overview.sections["type"]) == {
        JUMINHYO: (2, 5, 1500),
        INKAN: (2, 2, 600),
        TAX: (1, 1, 300),
    }
    assert as_dict(overview.sections["location"]) == {
        march.main: (3, 4, 1200),
        march.branch: (2, 4, 1200),
    }  # the inactive location without requests is left out
    for name in stats.SECTIONS:
        if name != "month":
            assert overview.sections[name].total.requests == 5, name
    summary = overview.summary
    assert (summary.issued.requests, summary.issued.copies, summary.issued.fees) == (5, 8, 2400)
    assert (summary.cancelled.requests, summary.cancelled.copies) == (1, 2)
    assert (summary.reprints, summary.reprint_copies) == (1, 1)  # the first print is no reprint


def test_include_cancelled_and_filters(db: Database, march: Town) -> None:
    with db.session() as session:
        everything = stats.by_type(session, StatsFilter(MARCH.start, MARCH.end, include_cancelled=True))
        branch = stats.by_day(session, StatsFilter(MARCH.start, MARCH.end, location_id=march.branch))
        seals = stats.summary(session, StatsFilter(MARCH.start, MARCH.end, certificate_type=INKAN))
        juminhyo = stats.summary(session, StatsFilter(MARCH.start, MARCH.end, certificate_type=JUMINHYO))
        closed = stats.by_location(session, StatsFilter(MARCH.start, MARCH.end, location_id=march.closed))
    assert as_dict(everything)[JUMINHYO] == (3, 7, 2100)
    assert branch.total.requests == 2 and as_dict(branch)[date(2025, 3, 4)] == (1, 3, 900)
    assert seals.issued.requests == 2 and seals.reprints == 1
    assert juminhyo.reprints == 0 and juminhyo.cancelled.requests == 1
    assert as_dict(closed) == {march.closed: (0, 0, 0)}  # a chosen location always has its row


def test_hour_buckets_are_japan_time_across_utc_midnight(db: Database, town: Town) -> None:
    day = date(2025, 6, 10)
    add(db, town, jst(2025, 6, 10, 8, 59))  # 23:59 UTC the day before
    add(db, town, jst(2025, 6, 10, 9, 0))  # 00:00 UTC
    add(db, town, jst(2025, 6, 10, 9, 30), copies=2)
    add(db, town, jst(2025, 6, 10, 20, 59))
    add(db, town, jst(2025, 6, 10, 21, 0))  # after the hours shown
    add(db, town, jst(2025, 6, 10, 0, 30))  # 15:30 UTC the day before
    with db.session() as session:
        hours = stats.by_hour(session, StatsFilter(day, day))
        days = stats.by_day(session, StatsFilter(date(2025, 6, 9), date(2025, 6, 10)))
    counts = as_dict(hours)
    assert [row.key for row in hours.rows][:13] == list(range(stats.FIRST_HOUR, stats.LAST_HOUR + 1))
    assert counts[8] == (1, 1, 300)
    assert counts[9] == (2, 3, 900)
    assert counts[20] == (1, 1, 300)
    assert counts[stats.OTHER_HOURS] == (2, 2, 600)
    assert counts[12] == (0, 0, 0)
    assert hours.total.requests == 6
    # Reception dates are Japan dates: nothing belongs to 9 June.
    assert as_dict(days) == {date(2025, 6, 9): (0, 0, 0), date(2025, 6, 10): (6, 7, 2100)}


def test_no_other_hours_row_when_everything_is_in_hours(db: Database, town: Town) -> None:
    add(db, town, jst(2025, 6, 10, 13, 0))
    with db.session() as session:
        hours = stats.by_hour(session, StatsFilter(date(2025, 6, 10), date(2025, 6, 10)))
    assert stats.OTHER_HOURS not in as_dict(hours) and len(hours.rows) == 13


def test_months_are_the_twelve_up_to_the_period_end(db: Database, town: Town) -> None:
    add(db, town, jst(2024, 2, 29), copies=9)  # 13 months back: outside
    add(db, town, jst(2024, 3, 1), copies=2)
    add(db, town, jst(2024, 12, 31, 23, 30))
    add(db, town, jst(2025, 1, 1, 0, 10))
    add(db, town, jst(2025, 1, 20), copies=3)
    add(db, town, jst(2025, 2, 28), state=RequestState.CANCELLED)
    add(db, town, jst(2025, 3, 2))  # after the period end, same month: counted
    with db.session() as session:
        months = stats.by_month(session, StatsFilter(date(2025, 3, 1), date(2025, 3, 1)))
    counts = as_dict(months)
    assert list(counts) == [date(2024, m, 1) for m in range(4, 13)] + [date(2025, m, 1) for m in (1, 2, 3)]
    assert counts[date(2024, 12, 1)] == (1, 1, 300)
    assert counts[date(2025, 1, 1)] == (2, 4, 1200)
    assert counts[date(2025, 2, 1)] == (0, 0, 0)
    assert counts[date(2025, 3, 1)] == (1, 1, 300)
    assert months.total.requests == 4  # 2024-03 is the 13th month back


def test_month_range_across_the_year() -> None:
    assert stats.month_range(date(2025, 3, 15)) == (date(2024, 4, 1), date(2025, 3, 31))
    assert stats.month_range(date(2024, 12, 1)) == (date(2024, 1, 1), date(2024, 12, 31))
    assert stats.month_range(date(2024, 2, 10), 1) == (date(2024, 2, 1), date(2024, 2, 29))


def test_daily_report(db: Database, march: Town) -> None:
    with db.session() as session:
        report = stats.daily_report(session, date(2025, 3, 3))
        later = stats.daily_report(session, date(2025, 3, 4))
        last = stats.daily_report(session, date(2025, 3, 31))
    names = [place.name for place in report.locations]
    assert names == ["本庁 住民課窓口", "北支所 窓口"]  # active locations, in order
    main = report.locations[0]
    assert list(main.lines) == list(CertificateType)
    line = main.lines[JUMINHYO]
    assert (line.requests, line.copies, line.fees, line.kiosk, line.counter) == (1, 2, 600, 1, 0)
    assert (main.lines[INKAN].kiosk, main.lines[INKAN].counter) == (0, 1)
    assert main.subtotal.requests == 2 and main.subtotal.fees == 900
    total = report.total
    assert (total.requests, total.copies, total.fees, total.cancelled, total.reprints) == (3, 4, 1200, 0, 0)
    assert report.by_type[TAX].requests == 1
    assert later.total.cancelled == 1 and later.total.requests == 1 and later.total.copies == 3
    assert later.locations[0].lines[JUMINHYO].cancelled == 1
    assert last.total.reprints == 1 and last.locations[0].lines[INKAN].reprints == 1


def test_parse_query_defaults_and_corrections() -> None:
    today = date(2025, 3, 18)
    query = parse_query({}, today)
    assert (query.filter.start, query.filter.end, query.measure) == (date(2025, 3, 1), today, "copies")
    assert not query.filter.include_cancelled and not query.notices
    swapped = parse_query({"from": "2025-03-10", "to": "2025-03-01", "measure": "requests"}, today)
    assert (swapped.filter.start, swapped.filter.end, swapped.measure) == (
        date(2025, 3, 1),
        date(2025, 3, 10),
        "requests",
    )
    long = parse_query({"from": "2020-01-01", "to": "2025-03-01"}, today)
    assert (long.filter.end - long.filter.start).days == stats.MAX_PERIOD_DAYS - 1 and long.notices
    bad = parse_query({"from": "yesterday", "type": "passport", "location": "x", "cancelled": "1"}, today)
    assert bad.notices and bad.filter.certificate_type is None and bad.filter.location_id is None
    assert bad.filter.include_cancelled
    past = parse_query({"from": "2025-01-05"}, today)
    assert past.filter.end == date(2025, 1, 31)


# --- Web ----------------------------------------------------------------------------------------

PERIOD = {"from": "2025-03-01", "to": "2025-03-31"}


def _csv(text: str) -> list[list[str]]:
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_stats_page_has_charts_tables_and_totals(
    client: TestClient, staff_accounts: StaffAccounts, march: Town
) -> None:
    sign_in(client, "manager")
    response = client.get("/staff/stats", params=PERIOD)
    assert response.status_code == 200
    html = response.text
    assert "/static/vendor/chart.umd.min.js" in html and "/static/js/stats.js" in html
    for name in stats.SECTIONS:
        assert f'<canvas id="chart-{name}"' in html
        assert f'aria-details="table-{name}"' in html
        assert f'<table class="grid" id="table-{name}">' in html
        assert (
            f"/staff/stats.csv?from=2025-03-01&amp;to=2025-03-31&amp;measure=copies&amp;section={name}"
            in html
        )
    blocks = dict(re.findall(r'<script type="application/json" id="chart-(\w+)-data">(.*?)</script>', html))
    day = json.loads(blocks["day"])
    assert day["type"] == "line" and len(day["labels"]) == 31 and sum(day["values"]) == 8
    kinds = json.loads(blocks["type"])
    assert kinds["labels"] == ["住民票の写し", "印鑑登録証明書", "課税・非課税証明書"] and kinds[
        "values"
    ] == [5, 2, 1]
    assert "本庁 住民課窓口" in html and "8時台" in html and "2025年3月" in html
    assert "2,400" in html  # fees in the summary and totals

    by_requests = client.get("/staff/stats", params={**PERIOD, "measure": "requests", "cancelled": "1"})
    blocks = dict(
        re.findall(r'<script type="application/json" id="chart-(\w+)-data">(.*?)</script>', by_requests.text)
    )
    assert json.loads(blocks["type"])["values"] == [3, 2, 1]


def test_stats_page_defaults_to_this_month(client: TestClient, staff_accounts: StaffAccounts) -> None:
    sign_in(client, "admin")
    response = client.get("/staff/stats")
    assert response.status_code == 200
    assert 'name="from" value="' in response.text


def test_stats_csv(client: TestClient, staff_accounts: StaffAccounts, march: Town) -> None:
    sign_in(client, "manager")
    response = client.get("/staff/stats.csv", params={**PERIOD, "section": "day"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="stats-day-20250301-20250331.csv"' in response.headers["content-disposition"]
    rows = _csv(response.content.decode("utf-8"))
    assert rows[0] == ["日付", "件数", "通数", "手数料（円）"]
    assert rows[1] == ["2025-03-01", "0", "0", "0"]
    assert rows[3] == ["2025-03-03", "3", "4", "1200"]
    assert rows[-1] == ["合計", "5", "8", "2400"]
    assert len(rows) == 1 + 31 + 1

    types = _csv(client.get("/staff/stats.csv", params={**PERIOD, "section": "type"}).text)
    assert types[1] == ["住民票の写し", "2", "5", "1500"]
    hours = _csv(client.get("/staff/stats.csv", params={**PERIOD, "section": "hour"}).text)
    assert hours[0][0] == "時間帯" and hours[2] == ["9時台", "2", "3", "900"]
    months = client.get("/staff/stats.csv", params={**PERIOD, "section": "month"})
    assert 'filename="stats-month-2024-04_2025-03.csv"' in months.headers["content-disposition"]
    assert _csv(months.text)[-2] == ["2025-03", "5", "8", "2400"]
    places = _csv(client.get("/staff/stats.csv", params={**PERIOD, "section": "location", "lang": "en"}).text)
    assert places[0] == ["Location", "Requests", "Copies", "Fees (yen)"] and places[-1][0] == "Total"

    assert client.get("/staff/stats.csv", params={**PERIOD, "section": "nope"}).status_code == 400
    default = client.get("/staff/stats.csv", params={**PERIOD, "lang": "ja"})
    assert _csv(default.text)[0][0] == "日付"  # the day table by default


def test_daily_report_page_and_csv(client: TestClient, staff_accounts: StaffAccounts, march: Town) -> None:
    sign_in(client, "manager")
    response = client.get("/staff/stats/report", params={"day": "2025-03-03"})
    assert response.status_code == 200
    html = response.text
    assert "業務日報" in html and "令和7年3月3日（月）" in html
    assert "@media print" in html and "data-print" in html and "onclick" not in html
    assert "本庁 住民課窓口" in html and "北支所 窓口" in html and "旧出張所" not in html

    csv_response = client.get("/staff/stats/report", params={"day": "2025-03-03", "format": "csv"})
    assert csv_response.status_code == 200
    assert 'filename="daily-report-20250303.csv"' in csv_response.headers["content-disposition"]
    rows = _csv(csv_response.text)
    assert rows[0] == [
        "日付",
        "拠点",
        "証明書の種類",
        "件数",
        "通数",
        "手数料（円）",
        "取消済",
        "再発行",
        "キオスク",
        "窓口",
    ]
    assert rows[1] == ["2025-03-03", "本庁 住民課窓口", "住民票の写し", "1", "2", "600", "0", "0", "1", "0"]
    assert len(rows) == 1 + 2 * 3 + 1
    assert rows[-1] == ["2025-03-03", "合計", "", "3", "4", "1200", "0", "0", "2", "1"]

    assert client.get("/staff/stats/report").status_code == 200  # today by default


@pytest.mark.parametrize("path", ["/staff/stats", "/staff/stats.csv?section=day", "/staff/stats/report"])
def test_clerk_may_not_see_statistics(client: TestClient, staff_accounts: StaffAccounts, path: str) -> None:
    sign_in(client, "clerk")
    assert client.get(path).status_code == 403
