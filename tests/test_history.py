"""Certificate issue history: search filters, one request's record, reprints, CSV export, access.

Requests are made through the real kiosk walk (tests/test_kiosk_flow.py) in the demo town, where
location 01 prints automatically, so each request has one issue with real 発行番号.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta

from sqlmodel import col, select

from app.db import Database
from app.domain.certificates import CertificateType
from app.domain.registry import ResidentStatus
from app.domain.requests import RequestState
from app.domain.text import search_key
from app.models import AuditEntry, CertificateIssue, CertificateRequest, IssuedCopy, Location, Resident
from app.services import history
from app.services.certificates import today_jst
from app.services.history import CSV_COLUMNS, HistoryFilters, parse_filters
from tests.test_kiosk_flow import Kiosk, _eligible, _staff_sign_in, _walk_to_request, kiosk

# Fixtures that the tests below take by name (imported into this module so pytest finds them).
FIXTURES = (kiosk,)

CSRF = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')


def _two_residents(db: Database) -> tuple[Resident, Resident]:
    """Two kiosk-eligible adults of different households and family names."""
    first = _eligible(db)
    today = date.today()
    with db.session() as session:
        residents = session.exec(select(Resident).order_by(col(Resident.id))).all()
        households: dict[int, list[Resident]] = {}
        for r in residents:
            households.setdefault(r.household_id, []).append(r)
        for r in residents:
            members = households[r.household_id]
            if (
                r.household_id != first.household_id
                and r.family_name != first.family_name
                and r.family_name_kana != first.family_name_kana
                and r.auth_cert_serial
                and r.birth_date
                and (today - r.birth_date).days > 20 * 366
                and all(m.status == ResidentStatus.RESIDENT and not m.suppressions for m in members)
                and all(m.became_resident_on != today and m.address_set_on != today for m in members)
            ):
                return first, r
    raise AssertionError("no second eligible demo resident")


def _requests(db: Database) -> list[CertificateRequest]:
    with db.session() as session:
        return list(session.exec(select(CertificateRequest).order_by(col(CertificateRequest.id))).all())


def _numbers(db: Database, request_id: int) -> list[str]:
    with db.session() as session:
        return list(
            session.exec(
                select(IssuedCopy.issue_number)
                .join(CertificateIssue, col(CertificateIssue.id) == col(IssuedCopy.issue_id))
                .where(CertificateIssue.request_id == request_id)
                .order_by(col(IssuedCopy.id))
            ).all()
        )


def _actions(db: Database, action: str) -> list[AuditEntry]:
    with db.session() as session:
        return list(
            session.exec(
                select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.seq))
            ).all()
        )


def _ids(db: Database, filters: HistoryFilters) -> list[int]:
    with db.session() as session:
        return [row.request.id or 0 for row in history.search(session, filters).rows]


# Filters without a database ---------------------------------------------------------------------


def test_filters_default_to_today_and_ignore_what_is_malformed() -> None:
    today = date(2026, 4, 21)
    default = parse_filters({}, today=today)
    assert default.date_from == default.date_to == today and default.page == 1
    open_range = parse_filters({"from": "", "to": ""}, today=today)
    assert open_range.date_from is None and open_range.date_to is None
    swapped = parse_filters({"from": "2026-04-21", "to": "2026-04-01"}, today=today)
    assert (swapped.date_from, swapped.date_to) == (date(2026, 4, 1), date(2026, 4, 21))
    odd = parse_filters(
        {
            "from": "yesterday",
            "number": "abc",
            "type": "passport",
            "state": "lost",
            "page": "-3",
            "location": "x",
        },
        today=today,
    )
    assert odd.date_from == today and odd.reception_number is None and odd.certificate_type is None
    assert odd.state is None and odd.page == 1 and odd.location_id is None
    wide = parse_filters({"number": "００７", "issue": "　20260421 999991 ", "type": "inkan"}, today=today)
    assert wide.reception_number == 7 and wide.issue_number == "20260421 999991"
    assert wide.certificate_type == CertificateType.INKAN
    assert wide.describe() == {
        "date_from": "2026-04-21",
        "date_to": "2026-04-21",
        "reception_number": "7",
        "issue_number": "20260421 999991",
        "certificate_type": "inkan",
    }


# Search -----------------------------------------------------------------------------------------


def test_search_filters_by_date_type_resident_number_issue_number_place_and_state(kiosk: Kiosk) -> None:
    first, second = _two_residents(kiosk.db)
    _walk_to_request(kiosk, first)
    _walk_to_request(kiosk, second, copies="2")
    _walk_to_request(kiosk, first)
    one, two, old = _requests(kiosk.db)
    today = today_jst()
    with kiosk.db.write_session() as session:
        moved = session.get(CertificateRequest, old.id)
        assert moved is not None
        moved.reception_date = today - timedelta(days=1)  # yesterday's request
        changed = session.get(CertificateRequest, two.id)
        assert changed is not None
        changed.certificate_type = CertificateType.INKAN
        session.add_all([moved, changed])
        session.commit()
        location = session.exec(select(Location).where(Location.code == "01")).one()
        other = session.exec(select(Location).where(Location.code != "01")).first()

    def ids(**params: str) -> list[int]:
        return _ids(kiosk.db, parse_filters(params, today=today))

    # Dates: today by default, newest first; empty dates search every day.
    assert ids() == [two.id, one.id]
    assert ids(**{"from": "", "to": ""}) == [two.id, one.id, old.id]
    yesterday = (today - timedelta(days=1)).isoformat()
    assert ids(**{"from": yesterday, "to": yesterday}) == [old.id]
    # Type
    assert ids(type="inkan") == [two.id]
    assert ids(type="juminhyo") == [one.id]
    # Resident: 宛名番号 exactly, or the name / kana however it is typed
    assert ids(resident=second.atena_number) == [two.id]
    assert ids(resident=first.family_name_kana) == [one.id]
    assert ids(resident=f"{first.family_name} {first.given_name}", **{"from": "", "to": ""}) == [
        one.id,
        old.id,
    ]
    assert ids(resident="存在しない名前") == []
    # Reception number
    assert ids(number=str(one.reception_number)) == [one.id]
    # 発行番号: a full number, the same without spaces, or its beginning
    number = _numbers(kiosk.db, one.id or 0)[0]
    assert ids(issue=number) == [one.id]
    assert ids(issue=number.replace(" ", "")) == [one.id]
    assert ids(issue=" ".join(number.split(" ")[:3])) == [two.id, one.id]
    assert ids(issue="19990101") == []
    # Place and state
    assert ids(location=str(location.id)) == [two.id, one.id]
    if other is not None:
        assert ids(location=str(other.id)) == []
    assert ids(state="received") == [two.id, one.id]
    assert ids(state="handed_over") == []
    # The page knows how many there are and counts reprints apart.
    with kiosk.db.session() as session:
        page = history.search(session, parse_filters({}, today=today), page_size=1)
    assert page.total == 2 and page.pages == 2 and len(page.rows) == 1
    row = page.rows[0]
    assert row.number == f"{two.reception_number:03d}" and row.issues == 1 and row.reprints == 0
    assert row.applicant is not None and row.applicant.id == second.id and row.terminal == "0101"


def test_history_page_shows_results_and_audits_each_search(kiosk: Kiosk) -> None:
    resident = _eligible(kiosk.db)
    _walk_to_request(kiosk, resident)
    _staff_sign_in(kiosk)
    page = kiosk.client.get("/staff/history")
    assert page.status_code == 200
    assert "証明書の交付履歴" in page.text and resident.family_name in page.text and "001" in page.text
    fragment = kiosk.client.get("/staff/history?type=tax", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "条件に合う申請はありません" in fragment.text
    searches = _actions(kiosk.db, "certificate.history_search")
    assert [e.detail["results"] for e in searches] == [1, 0]
    assert searches[1].detail["filters"]["certificate_type"] == "tax"
    assert searches[0].actor_type == "staff"


# Detail -----------------------------------------------------------------------------------------


def test_detail_shows_the_request_its_issues_and_its_audit_trail(kiosk: Kiosk) -> None:
    resident = _eligible(kiosk.db)
    _walk_to_request(kiosk, resident, copies="2")
    (request,) = _requests(kiosk.db)
    _staff_sign_in(kiosk)
    page = kiosk.client.get(f"/staff/history/{request.id}")
    assert page.status_code == 200
    text = page.text
    assert resident.family_name in text and resident.atena_number in text
    for number in _numbers(kiosk.db, request.id or 0):
        assert number in text
    assert "初回印刷" in text and "自動" in text and "600円" in text
    assert "certificate.request" in text and "certificate.print" in text
    views = _actions(kiosk.db, "certificate.history_view")
    assert len(views) == 1 and views[0].target_id == str(request.id)
    assert kiosk.client.get("/staff/history/999999").status_code == 404


# Reprint ----------------------------------------------------------------------------------------


def test_reprint_makes_a_new_issue_with_new_numbers_and_logs_the_reason(kiosk: Kiosk) -> None:
    resident = _eligible(kiosk.db)
    _walk_to_request(kiosk, resident)
    (request,) = _requests(kiosk.db)
    token = _staff_sign_in(kiosk)
    before = _numbers(kiosk.db, request.id or 0)
    with kiosk.db.session() as session:
        original = session.exec(select(CertificateIssue)).one()
    url = f"/staff/history/{request.id}/reprint"

    no_reason = kiosk.client.post(url, data={"csrf_token": token, "reason": "  "})
    assert no_reason.status_code == 422 and "再印刷の理由を入力してください。" in no_reason.text

    done = kiosk.client.post(
        url,
        data={
            "csrf_token": token,
            "reason": "紙詰まり",
            "latest_issue": str(original.id),
            "back": "type=juminhyo",
        },
    )
    assert done.status_code == 303
    kiosk.drain_prints()
    assert done.headers["location"].startswith(f"/staff/history/{request.id}?reprinted=")
    assert done.headers["location"].endswith("&back=type%3Djuminhyo")  # the way back to the search
    with kiosk.db.session() as session:
        issues = session.exec(select(CertificateIssue).order_by(col(CertificateIssue.id))).all()
    assert len(issues) == 2
    reprinted = issues[1]
    assert reprinted.reprint_of == original.id and reprinted.issued_by is not None
    after = _numbers(kiosk.db, request.id or 0)
    assert len(after) == 2 * len(before) and not set(after[len(before) :]) & set(before)
    (logged,) = _actions(kiosk.db, "certificate.reprint")
    assert logged.detail["reprint_of"] == original.id and logged.target_id == str(request.id)
    (reason,) = _actions(kiosk.db, "certificate.reprint_reason")
    assert reason.detail == {"issue_id": reprinted.id, "reprint_of": original.id, "reason": "紙詰まり"}
    shown = kiosk.client.get(done.headers["location"]).text
    assert "再印刷しました" in shown and f"#{original.id} の再印刷" in shown
    assert 'href="/staff/history?type=juminhyo"' in shown

    # A second click from the page as it was (a double submit) prints nothing more.
    again = kiosk.client.post(
        url, data={"csrf_token": token, "reason": "紙詰まり", "latest_issue": str(original.id)}
    )
    assert again.status_code == 422 and "この画面を開いた後に" in again.text
    with kiosk.db.session() as session:
        assert len(session.exec(select(CertificateIssue)).all()) == 2


def test_reprint_is_refused_for_cancelled_requests_with_a_japanese_message(kiosk: Kiosk) -> None:
    _walk_to_request(kiosk, _eligible(kiosk.db))
    (request,) = _requests(kiosk.db)
    token = _staff_sign_in(kiosk)
    cancel = kiosk.client.post(
        f"/staff/queue/{request.id}/cancel", data={"csrf_token": token, "reason": "本人が不要と申し出"}
    )
    assert cancel.status_code == 303
    refused = kiosk.client.post(
        f"/staff/history/{request.id}/reprint", data={"csrf_token": token, "reason": "再交付"}
    )
    assert refused.status_code == 422 and "「取消」の申請は印刷できません。" in refused.text
    assert _actions(kiosk.db, "certificate.reprint_reason") == []


# CSV --------------------------------------------------------------------------------------------


def test_csv_has_a_bom_the_documented_columns_and_a_row_per_request(kiosk: Kiosk) -> None:
    resident = _eligible(kiosk.db)
    _walk_to_request(kiosk, resident, copies="2")
    (request,) = _requests(kiosk.db)
    _staff_sign_in(kiosk)
    response = kiosk.client.get("/staff/history.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[0][:3] == ["受付日", "受付番号", "窓口"]
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["受付日"] == request.reception_date.isoformat() and row["受付番号"] == "001"
    assert row["端末"] == "0101" and row["証明書"] == "住民票の写し" and row["通数"] == "2"
    assert row["手数料"] == "600" and row["状態"] == "受付" and row["申請者宛名番号"] == resident.atena_number
    assert row["発行番号"].split(";") == _numbers(kiosk.db, request.id or 0)
    assert row["再印刷"] == "0" and row["印刷者"] == "自動" and row["交付者"] == "" and row["交付日時"] == ""
    assert resident.family_name not in response.content.decode("utf-8-sig")  # no names exported
    (export,) = _actions(kiosk.db, "certificate.history_export")
    assert export.detail["rows"] == 1


def test_csv_of_a_day_without_requests_is_only_the_header(kiosk: Kiosk) -> None:
    _staff_sign_in(kiosk)
    response = kiosk.client.get("/staff/history.csv?from=2000-01-01&to=2000-01-01")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows == [list(CSV_COLUMNS)]
    assert "20000101-20000101" in response.headers["content-disposition"]


# Access -----------------------------------------------------------------------------------------


def test_manager_without_certificate_issue_is_refused(kiosk: Kiosk) -> None:
    token = CSRF.search(kiosk.client.get("/kiosk/").text)
    assert token
    signed_in = kiosk.client.post(
        "/staff/login",
        data={"login_id": "manager", "password": "demo-manager-pass", "csrf_token": token.group(1)},
    )
    assert signed_in.status_code == 303
    for path in ("/staff/history", "/staff/history.csv", "/staff/history/1"):
        assert kiosk.client.get(path).status_code == 403, path
    refused = kiosk.client.post(
        "/staff/history/1/reprint", data={"csrf_token": token.group(1), "reason": "試し"}
    )
    assert refused.status_code == 403
    assert _actions(kiosk.db, "certificate.history_search") == []
    assert all(e.detail["needs"] == "certificate.issue" for e in _actions(kiosk.db, "auth.forbidden"))


# The queries on both databases (rows written by hand, no kiosk) ---------------------------------


def _seed(db: Database) -> dict[str, int]:
    """Two requests at one location: today's (issued and reprinted, handed over) and yesterday's."""
    from app.domain.registry import DeviceKind, Sex
    from app.models import Device, Household, Municipality, Site, StaffUser

    today = today_jst()
    with db.write_session() as session:
        town = Municipality(code="999991", name="テスト町")
        session.add(town)
        session.flush()
        site = Site(municipality_id=town.id or 0, name="本庁")
        session.add(site)
        session.flush()
        place = Location(site_id=site.id or 0, code="01", name="=本庁 1階")  # a name Excel would run
        session.add(place)
        session.flush()
        terminal = Device(location_id=place.id or 0, code="K01", name="キオスク", kind=DeviceKind.KIOSK)
        household = Household(household_number="H1", address="テスト町1-1")
        clerk = StaffUser(login_id="c", display_name="窓口 一郎", password_hash="x")
        session.add_all([terminal, household, clerk])
        session.flush()
        people = [
            Resident(
                atena_number=atena,
                household_id=household.id or 0,
                relationship="世帯主",
                family_name=family,
                given_name="太郎",
                family_name_kana=kana,
                given_name_kana="タロウ",
                search_key=search_key(family, "太郎", kana, "タロウ"),
                sex=Sex.MALE,
                address="テスト町1-1",
            )
            for atena, family, kana in (("1000001", "山﨑", "ヤマザキ"), ("1000002", "髙橋", "タカハシ"))
        ]
        session.add_all(people)
        session.flush()
        made = []
        for number, (person, day, kind) in enumerate(
            (
                (people[0], today, CertificateType.JUMINHYO),
                (people[1], today - timedelta(days=1), CertificateType.TAX),
            ),
            start=1,
        ):
            request = CertificateRequest(
                location_id=place.id or 0,
                device_id=terminal.id,
                reception_date=day,
                reception_number=number,
                idempotency_key=f"k{number}",
                applicant_id=person.id or 0,
                certificate_type=kind,
                copies=1,
                fee_total=300,
            )
            session.add(request)
            session.flush()
            made.append(request)
        first = CertificateIssue(request_id=made[0].id or 0, document_key="a", sha256="0" * 64)
        session.add(first)
        session.flush()
        again = CertificateIssue(
            request_id=made[0].id or 0,
            document_key="b",
            sha256="1" * 64,
            reprint_of=first.id,
            issued_by=clerk.id,
        )
        session.add(again)
        session.flush()
        stamp = f"{today:%Y%m%d}"
        for issue, serial in ((first, "001"), (again, "002")):
            session.add(
                IssuedCopy(
                    issue_id=issue.id or 0,
                    issue_number=f"{stamp} 999991 K01  {serial} 1/1",  # no printer code: two spaces
                    certificate_type=CertificateType.JUMINHYO,
                    issued_on=today,
                    content_hash="0" * 64,
                )
            )
        made[0].state = RequestState.HANDED_OVER
        made[0].handed_over_by = clerk.id
        made[0].handed_over_at = made[0].created_at
        session.add(made[0])
        session.commit()
        return {"today": made[0].id or 0, "yesterday": made[1].id or 0, "location": place.id or 0}


def test_queries_work_on_both_databases(db: Database) -> None:
    ids = _seed(db)
    today = today_jst()

    def found(**params: str) -> list[int]:
        return _ids(db, parse_filters(params, today=today))

    everything = {"from": "", "to": ""}
    assert found(**everything) == [ids["today"], ids["yesterday"]]
    assert found() == [ids["today"]]
    assert found(resident="ﾔﾏｻﾞｷ", **everything) == [ids["today"]]  # half-width kana folded
    assert found(resident="山崎 太郎", **everything) == [ids["today"]]  # 﨑 folded, space ignored
    assert found(resident="高橋", **everything) == [ids["yesterday"]]
    assert found(resident="1000002", **everything) == [ids["yesterday"]]
    assert found(issue=f"{today:%Y%m%d} 999991 K01  002", **everything) == [ids["today"]]
    assert found(issue=f"{today:%Y%m%d}999991K01002", **everything) == [ids["today"]]
    assert found(issue="100%", **everything) == []  # LIKE wildcards are taken literally
    assert found(type="tax", **everything) == [ids["yesterday"]]
    assert found(state="handed_over", **everything) == [ids["today"]]
    assert found(location=str(ids["location"]), **everything) == [ids["today"], ids["yesterday"]]
    with db.session() as session:
        page = history.search(session, parse_filters(everything, today=today))
        view = history.detail(session, ids["today"])
        rows = list(history.csv_rows(session, parse_filters(everything, today=today)))
    assert page.rows[0].issues == 2 and page.rows[0].reprints == 1
    assert view is not None and [i.is_reprint for i in view.issues] == [False, True]
    assert view.printed_by is None and view.handed_over_by is not None  # first print was automatic
    assert view.latest_issue_id == view.issues[1].issue.id and len(view.issues[1].issue_numbers) == 1
    assert len(rows) == 3 and rows[1][0] == (today - timedelta(days=1)).isoformat()  # oldest first
    newest = dict(zip(rows[0], rows[2], strict=True))
    assert newest["窓口"] == "'=本庁 1階"  # not a formula
    assert newest["発行番号"] == f"{today:%Y%m%d} 999991 K01  001 1/1;{today:%Y%m%d} 999991 K01  002 1/1"
    assert newest["再印刷"] == "1" and newest["印刷者"] == "自動" and newest["交付者"] == "窓口 一郎"
    assert newest["状態"] == "交付済" and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", newest["交付日時"])
    with db.session() as session:
        assert history.detail(session, 999999) is None
