"""The departments' case screens: list per department, floor overview, detail with check-offs,
cancel, and the hand-over QR (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from sqlmodel import col, select
from starlette.testclient import TestClient

from app.db import Database
from app.demo.generator import generate_demo
from app.domain.cases import CaseStatus, ProcedureStatus
from app.models import AuditEntry, EventRecord, LifeCase, StaffUser
from app.services import case_desk, cases
from app.services.certificates import today_jst
from app.services.lifeevent_rules import current_rules
from tests.conftest import StaffAccounts, csrf_of, sign_in
from tests.test_cases_service import SIGNED, _answer_all, _start, tx


@pytest.fixture
def town(db: Database, staff_accounts: StaffAccounts) -> Database:
    # Test accounts first: the demo then leaves "clerk", "admin" … as they are.
    generate_demo(db, residents=60, today=today_jst())
    return db


def submitted(db: Database) -> str:
    token = _start(db)
    _answer_all(db, token)
    with tx(db) as session:
        case = cases.by_token(session, token)
        assert case is not None
        cases.submit(session, case, revision=case.revision, signatures=[SIGNED])
    return token


def _case(db: Database, token: str) -> tuple[LifeCase, list[str]]:
    with db.session() as session:
        case = cases.by_token(session, token)
        assert case is not None
        rows = cases.procedures_of(session, case)
        return case, [r.department_id for r in rows]


def _audits(db: Database, action: str) -> list[AuditEntry]:
    with db.session() as session:
        return list(
            session.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.seq)))
        )


def _selected_department(html: str) -> str:
    match = re.search(r'<option value="([a-z_]+)" selected>', html)
    assert match, "no department selected"
    return match.group(1)


def test_list_shows_a_case_to_its_departments_only_and_is_audited(
    client: TestClient, town: Database, staff_accounts: StaffAccounts
) -> None:
    token = submitted(town)
    case, departments = _case(town, token)
    with town.session() as session:
        all_departments = [d.id for d in case_desk.departments(current_rules(session)[1])]
    outside = next(d for d in all_departments if d not in departments)
    sign_in(client, "clerk")
    mine = departments[0]
    page = client.get(f"/staff/cases?d={mine}")
    assert page.status_code == 200
    assert "L-0001" in page.text and "転入　太郎" in page.text
    assert f"/staff/cases/{token}" in page.text
    assert re.search(r"0/\d+", page.text)
    entry = _audits(town, "case.list")[-1]
    assert entry.detail["department"] == mine and entry.detail["cases"] == [case.id]
    assert entry.actor_id == str(staff_accounts.ids["clerk"])
    # Another department does not see it; an empty list is not a read of anyone's data.
    before = len(_audits(town, "case.list"))
    other = client.get(f"/staff/cases?d={outside}")
    assert "L-0001" not in other.text and "転入　太郎" not in other.text
    assert len(_audits(town, "case.list")) == before
    # The choice is remembered: without ?d= the last department chosen comes back.
    assert _selected_department(client.get("/staff/cases").text) == outside
    # The finished tab does not list a case this department has not finished; today's tab does.
    assert "L-0001" not in client.get(f"/staff/cases?d={mine}&tab=done").text
    assert "L-0001" in client.get(f"/staff/cases?d={mine}&tab=today").text


def test_the_list_starts_at_the_staff_members_department(
    client: TestClient, town: Database, staff_accounts: StaffAccounts
) -> None:
    with tx(town) as session:
        user = session.get(StaffUser, staff_accounts.ids["clerk"])
        assert user is not None
        user.department = "hoken_nenkin"
        session.add(user)
    sign_in(client, "clerk")
    assert _selected_department(client.get("/staff/cases").text) == "hoken_nenkin"
    # An unknown ?d= falls back to the account's department and is not remembered.
    assert _selected_department(client.get("/staff/cases?d=nowhere").text) == "hoken_nenkin"
    assert "madoguchi_department" not in client.cookies


def test_detail_shows_everything_and_audits_the_read(
    client: TestClient, town: Database, staff_accounts: StaffAccounts
) -> None:
    token = submitted(town)
    case, departments = _case(town, token)
    sign_in(client, "clerk")
    page = client.get(f"/staff/cases/{token}?d={departments[-1]}")
    assert page.status_code == 200
    html = page.text
    # Applicant and members: names, furigana, 和暦 birth dates, 続柄.
    assert "転入　太郎" in html and "てんにゅう　たろう" in html and "転入　花子" in html
    assert "昭和61年5月1日" in html and "世帯主" in html and "妻" in html
    assert "東京都千代田区千代田1-1" in html
    # Answers with the rules' question texts.
    with town.session() as session:
        event = current_rules(session)[1].catalog.event("tennyu")
        assert event is not None
        question = event.question("has_dog")
        assert question is not None
    assert question.text.ja in html
    # The selected department's procedures come first and are marked.
    first_group = re.search(r'<section class="department-group( selected)?" id="dept-([a-z_]+)"', html)
    assert first_group is not None and first_group.group(1) == " selected"
    assert first_group.group(2) == departments[-1]
    # The forms slot lists the forms by name.
    assert '<section id="case-forms">' in html
    with town.session() as session:
        catalog = current_rules(session)[1].catalog
        data = cases.case_data(case, cases.procedures_of(session, case))
        names = [catalog.form(f).name.ja for f in data.forms() if catalog.form(f) is not None]
    assert names and all(name in html for name in names)
    entry = _audits(town, "case.view")[-1]
    assert entry.target_id == str(case.id) and entry.detail["part"] == "page"
    assert entry.actor_id == str(staff_accounts.ids["clerk"])
    assert client.get("/staff/cases/no-such-token").status_code == 404
    english = client.get(f"/staff/cases/{token}?lang=en")
    assert english.status_code == 200 and "Procedures" in english.text and "Moving in" in english.text


def test_ticking_a_procedure_updates_progress_and_tells_every_screen(
    client: TestClient, town: Database, staff_accounts: StaffAccounts
) -> None:
    token = submitted(town)
    case, departments = _case(town, token)
    total = len(departments)
    sign_in(client, "clerk")
    csrf = csrf_of(client, f"/staff/cases/{token}")
    url = f"/staff/cases/{token}/procedures/0"
    # Without the CSRF token: refused.
    assert client.post(url, data={"status": "done"}).status_code == 403
    response = client.post(
        url, data={"csrf_token": csrf, "status": "done", "note": "窓口で受付"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert "<html" not in response.text  # the fragment only
    assert f"1/{total}" in response.text and "窓口で受付" in response.text
    assert "テスト clerk" in response.text  # the log says who
    with town.session() as session:
        row = cases.procedures_of(session, case)[0]
        assert row.status is ProcedureStatus.DONE and row.done_by == staff_accounts.ids["clerk"]
        event = session.exec(select(EventRecord).where(EventRecord.type == "case.progress")).one()
        assert event.topic == "staff"
        assert (event.data["done"], event.data["total"], event.data["position"]) == (1, total, 0)
        assert "転入" not in str(event.data)
    # The list shows the progress.
    assert f"1/{total}" in client.get(f"/staff/cases?d={departments[0]}&tab=today").text
    # Undo, without HTMX: back to the page.
    undo = client.post(url, data={"csrf_token": csrf, "status": "pending"})
    assert undo.status_code == 303 and undo.headers["location"] == f"/staff/cases/{token}"
    # A status that is not one of the buttons: explained, nothing changed.
    bad = client.post(url, data={"csrf_token": csrf, "status": "finished"}, headers={"HX-Request": "true"})
    assert bad.status_code == 422 and "完了・不要・戻す" in bad.text
    missing = client.post(f"/staff/cases/{token}/procedures/99", data={"csrf_token": csrf, "status": "done"})
    assert missing.status_code == 422 and "その手続きは見つかりません" in missing.text
    with town.session() as session:
        assert cases.procedures_of(session, case)[0].status is ProcedureStatus.PENDING
    # Tick everything: the case is done.
    for position in range(total):
        client.post(
            f"/staff/cases/{token}/procedures/{position}", data={"csrf_token": csrf, "status": "not_needed"}
        )
    with town.session() as session:
        done = session.get(LifeCase, case.id)
        assert done is not None and done.status is CaseStatus.DONE
    assert "L-0001" in client.get(f"/staff/cases?d={departments[0]}&tab=done").text
    assert "L-0001" not in client.get(f"/staff/cases?d={departments[0]}&tab=open").text


def test_cancel_needs_a_reason_and_stops_ticking(
    client: TestClient, town: Database, staff_accounts: StaffAccounts
) -> None:
    token = submitted(town)
    case, _ = _case(town, token)
    sign_in(client, "clerk")
    csrf = csrf_of(client, f"/staff/cases/{token}")
    empty = client.post(f"/staff/cases/{token}/cancel", data={"csrf_token": csrf, "reason": "  "})
    assert empty.status_code == 422 and "取消の理由を入力してください" in empty.text
    done = client.post(f"/staff/cases/{token}/cancel", data={"csrf_token": csrf, "reason": "本人の申し出"})
    assert done.status_code == 303
    with town.session() as session:
        cancelled = session.get(LifeCase, case.id)
        assert cancelled is not None and cancelled.status is CaseStatus.CANCELLED
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "case.cancel")).one()
        assert entry.detail["reason"] == "本人の申し出"
    page = client.get(f"/staff/cases/{token}").text
    assert "取消" in page and "本人の申し出" in page
    assert f"/staff/cases/{token}/procedures/0" not in page  # no buttons any more
    refused = client.post(f"/staff/cases/{token}/procedures/0", data={"csrf_token": csrf, "status": "done"})
    assert refused.status_code == 422 and "取り消されています" in refused.text


def test_scan_opens_the_case_from_a_url_or_a_bare_token(
    client: TestClient, town: Database, staff_accounts: StaffAccounts
) -> None:
    token = submitted(town)
    sign_in(client, "clerk")
    page = client.get("/staff/cases/scan")
    assert page.status_code == 200 and 'id="scan-code"' in page.text and "autofocus" in page.text
    url = f"https://madoguchi.example.jp/cases/scan/{token}?d=kosodate"
    by_url = client.get("/staff/cases/scan", params={"code": url})
    assert by_url.status_code == 303
    assert by_url.headers["location"] == f"/staff/cases/{token}?d=kosodate"
    by_token = client.get("/staff/cases/scan", params={"code": f"  {token}\n"})
    assert by_token.status_code == 303 and by_token.headers["location"] == f"/staff/cases/{token}"
    # Opening with ?d= selects that department (and remembers it).
    opened = client.get(by_url.headers["location"])
    assert _selected_department(opened.text) == "kosodate"
    assert client.cookies.get("madoguchi_department") == "kosodate"
    unknown = client.get("/staff/cases/scan", params={"code": "https://x.example/cases/scan/" + "A" * 32})
    assert unknown.status_code == 404 and "見つかりません" in unknown.text
    assert 'id="scan-code"' in unknown.text
    garbage = client.get("/staff/cases/scan", params={"code": "こんにちは"})
    assert garbage.status_code == 422 and "受付票のQRコードではありません" in garbage.text


def test_the_qr_url_signs_in_first_then_opens_the_case(
    client: TestClient, town: Database, staff_accounts: StaffAccounts
) -> None:
    token = submitted(town)
    anonymous = client.get(f"/cases/scan/{token}?d=hoken_nenkin")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/staff/login?next=" + quote(
        f"/cases/scan/{token}?d=hoken_nenkin", safe="/"
    )
    login = csrf_of(client, "/staff/login")
    back = client.post(
        "/staff/login",
        data={
            "login_id": "clerk",
            "password": "correct-horse-battery",
            "csrf_token": login,
            "next": f"/cases/scan/{token}?d=hoken_nenkin",
        },
    )
    assert back.status_code == 303 and back.headers["location"] == f"/cases/scan/{token}?d=hoken_nenkin"
    opened = client.get(back.headers["location"])
    assert opened.status_code == 303 and opened.headers["location"] == f"/staff/cases/{token}?d=hoken_nenkin"
    missing = client.get("/cases/scan/" + "B" * 32)
    assert missing.status_code == 404 and "見つかりません" in missing.text


def test_floor_overview_shows_each_departments_progress_without_names(
    client: TestClient, town: Database, staff_accounts: StaffAccounts
) -> None:
    token = submitted(town)
    case, departments = _case(town, token)
    sign_in(client, "clerk")
    csrf = csrf_of(client, "/staff/cases/floor")
    # Finish every procedure of the first department.
    first = departments[0]
    for position, department in enumerate(departments):
        if department == first:
            client.post(
                f"/staff/cases/{token}/procedures/{position}", data={"csrf_token": csrf, "status": "done"}
            )
    floor = client.get("/staff/cases/floor", headers={"HX-Request": "true"})
    assert floor.status_code == 200 and "L-0001" in floor.text
    assert "転入　太郎" not in floor.text and "転入" in floor.text  # the event name, not the person
    cells = dict(re.findall(r'<td data-department="([a-z_]+)" class="floor-cell ([a-z]+)">', floor.text))
    assert cells[first] == "done"
    assert set(cells) == set(departments)
    assert all(state == "waiting" for d, state in cells.items() if d != first)


def test_scanned_text_is_read_through_ime_and_keyboard_layout_mistakes() -> None:
    token = "abc_DEF-123_456789xyz"
    printed = case_desk.scan_url("https://madoguchi.example.jp/", token, "zeimu")
    assert printed == f"https://madoguchi.example.jp/cases/scan/{token}?d=zeimu"
    assert case_desk.read_scanned(printed) == case_desk.ScannedCode((token,), "zeimu")
    assert case_desk.read_scanned(f"http://h/cases/scan/{token}?d=zeimu") == case_desk.ScannedCode(
        (token,), "zeimu"
    )
    # Full-width (an IME left on) and a JIS layout typing '=' for '_' and '^' for '='.
    wide = "ｈｔｔｐ：／／ｈ／ｃａｓｅｓ／ｓｃａｎ／ａｂｃ＿ＤＥＦ－１２３＿４５６７８９ｘｙｚ"
    assert case_desk.read_scanned(wide) == case_desk.ScannedCode((token,), "")
    jis = case_desk.read_scanned(f"http+//h/cases/scan/{token.replace('_', '=')}?d^zeimu")
    assert jis is not None and token in jis.tokens and jis.department == "zeimu"
    assert case_desk.read_scanned("") is None
    assert case_desk.read_scanned("short") is None


def test_admin_picks_a_department_from_the_rules(
    client: TestClient, db: Database, staff_accounts: StaffAccounts
) -> None:
    sign_in(client, "admin")
    page = client.get("/admin/users")
    assert '<option value="hoken_nenkin">保険年金課</option>' in page.text
    token = csrf_of(client, "/admin/users")
    wrong = client.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "login_id": "tanaka",
            "display_name": "田中",
            "department": "住民課",
            "password": "a-long-password",
            "groups": ["clerk"],
        },
    )
    assert wrong.status_code == 422 and "部署「住民課」はありません" in wrong.text
    clerk = staff_accounts.ids["clerk"]
    moved = client.post(
        f"/admin/users/{clerk}",
        data={"csrf_token": token, "groups": ["clerk"], "active": "on", "department": "kosodate"},
    )
    assert moved.status_code == 303
    with db.session() as session:
        user = session.get(StaffUser, clerk)
        assert user is not None and user.department == "kosodate"
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "staff_user.update")).one()
        assert (
            entry.detail["before"]["department"] == "" and entry.detail["after"]["department"] == "kosodate"
        )
