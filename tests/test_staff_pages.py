"""Staff screens: resident look-up is audit-logged; administrators manage accounts and read the log."""

from __future__ import annotations

from datetime import date

from sqlmodel import col, select
from starlette.testclient import TestClient

from app.db import Database
from app.domain.atena import with_check_digit
from app.domain.registry import Sex
from app.domain.text import search_key
from app.models import AuditEntry, Household, Resident, StaffUser
from app.services.audit import verify
from tests.conftest import TEST_PASSWORD, StaffAccounts, csrf_of, sign_in


def _add_household(db: Database) -> int:
    with db.write_session() as session:
        household = Household(
            household_number="000123", head_name="𠮷田　太郎", address="架空県青葉台町本町1-2-3"
        )
        session.add(household)
        session.flush()
        assert household.id is not None
        people = [
            ("世帯主", "𠮷田", "太郎", "ヨシダ", "タロウ", Sex.MALE, date(1950, 4, 1)),
            ("妻", "𠮷田", "花子", "ヨシダ", "ハナコ", Sex.FEMALE, date(1952, 2, 29)),
        ]
        first_id = 0
        for i, (rel, family, given, fkana, gkana, sex, born) in enumerate(people):
            resident = Resident(
                atena_number=with_check_digit(f"00000012{i}"),
                household_id=household.id,
                relationship=rel,
                family_name=family,
                given_name=given,
                family_name_kana=fkana,
                given_name_kana=gkana,
                search_key=search_key(family, given, fkana, gkana),
                birth_date=born,
                sex=sex,
                address=household.address,
            )
            session.add(resident)
            session.flush()
            first_id = first_id or (resident.id or 0)
        session.commit()
        return first_id


def test_search_and_view_are_audit_logged(
    client: TestClient, staff_accounts: StaffAccounts, db: Database
) -> None:
    resident_id = _add_household(db)
    sign_in(client, "clerk")
    found = client.get("/staff/residents", params={"q": "よしだ"})
    assert found.status_code == 200
    assert "𠮷田　太郎" in found.text  # the rare character survives storage and rendering
    detail = client.get(f"/staff/residents/{resident_id}")
    assert detail.status_code == 200
    assert "花子" in detail.text  # household members are listed
    with db.session() as session:
        entries = session.exec(select(AuditEntry).order_by(col(AuditEntry.seq))).all()
        clerk_id = str(staff_accounts.ids["clerk"])
        searches = [e for e in entries if e.action == "resident.search"]
        views = [e for e in entries if e.action == "resident.view"]
        assert searches and searches[-1].actor_id == clerk_id and searches[-1].detail["results"] == 2
        assert views and views[-1].target_id == str(resident_id) and views[-1].actor_id == clerk_id
        assert verify(session).ok


def test_htmx_search_returns_only_the_results_fragment(
    client: TestClient, staff_accounts: StaffAccounts, db: Database
) -> None:
    _add_household(db)
    sign_in(client, "clerk")
    fragment = client.get("/staff/residents", params={"q": "ヨシダ"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert "𠮷田" in fragment.text


def test_missing_resident_is_404(client: TestClient, staff_accounts: StaffAccounts) -> None:
    sign_in(client, "clerk")
    assert client.get("/staff/residents/999999").status_code == 404


def test_admin_creates_a_user_who_can_sign_in(
    client: TestClient, staff_accounts: StaffAccounts, db: Database
) -> None:
    sign_in(client, "admin")
    token = csrf_of(client, "/admin/users")
    response = client.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "login_id": "suzuki",
            "display_name": "鈴木 一郎",
            "department": "shimin",
            "password": "a-long-password",
            "groups": ["clerk"],
        },
    )
    assert response.status_code == 303
    client.cookies.clear()
    sign_in(client, "suzuki", "a-long-password")
    assert client.get("/staff/residents").status_code == 200
    with db.session() as session:
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "staff_user.create")).one()
        assert entry.actor_id == str(staff_accounts.ids["admin"])
        assert entry.detail["groups"] == ["clerk"]


def test_bad_new_user_keeps_the_input_and_explains(
    client: TestClient, staff_accounts: StaffAccounts, db: Database
) -> None:
    sign_in(client, "admin")
    token = csrf_of(client, "/admin/users")
    response = client.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "login_id": "clerk",
            "display_name": "重複",
            "password": "a-long-password",
        },
    )
    assert response.status_code == 422
    assert "職員ID「clerk」はすでに使われています。" in response.text
    assert 'value="重複"' in response.text
    short = client.post(
        "/admin/users",
        data={"csrf_token": token, "login_id": "tanaka", "display_name": "田中", "password": "short"},
    )
    assert "パスワードは10文字以上にしてください。" in short.text
    with db.session() as session:
        assert session.exec(select(StaffUser).where(StaffUser.login_id == "tanaka")).first() is None


def test_admin_unlocks_and_disables(client: TestClient, staff_accounts: StaffAccounts, db: Database) -> None:
    sign_in(client, "admin")
    token = csrf_of(client, "/admin/users")
    clerk_id = staff_accounts.ids["clerk"]
    response = client.post(f"/admin/users/{clerk_id}", data={"csrf_token": token, "groups": ["clerk"]})
    assert response.status_code == 303  # unchecked "active" disables the account
    with db.session() as session:
        user = session.get(StaffUser, clerk_id)
        assert user is not None and not user.active
    other = TestClient(client.app, follow_redirects=False)
    token2 = csrf_of(other)
    refused = other.post(
        "/staff/login", data={"login_id": "clerk", "password": TEST_PASSWORD, "csrf_token": token2}
    )
    assert refused.status_code == 401


def test_admin_cannot_remove_own_admin_group(client: TestClient, staff_accounts: StaffAccounts) -> None:
    sign_in(client, "admin")
    token = csrf_of(client, "/admin/users")
    response = client.post(
        f"/admin/users/{staff_accounts.ids['admin']}",
        data={"csrf_token": token, "groups": ["clerk"], "active": "on"},
    )
    assert response.status_code == 422
    assert "自分自身をシステム管理者グループから外すことはできません。" in response.text


def test_audit_search_filters_and_is_itself_logged(
    client: TestClient, staff_accounts: StaffAccounts, db: Database
) -> None:
    sign_in(client, "clerk")
    client.cookies.clear()
    sign_in(client, "auditor")
    page = client.get("/admin/audit", params={"action": "auth.login"})
    assert page.status_code == 200
    assert "auth.login" in page.text
    assert "resident.view" not in page.text
    with db.session() as session:
        last = session.exec(select(AuditEntry).order_by(col(AuditEntry.seq).desc())).first()
        assert last is not None and last.action == "audit.search"
