"""Staff sign-in: passwords, lockout, idle timeout, CSRF, sign-out."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select
from starlette.testclient import TestClient

from app.db import Database
from app.models import AuditEntry, StaffSession, StaffUser
from app.services.audit import verify
from tests.conftest import TEST_PASSWORD, StaffAccounts, csrf_of, sign_in


def _login(client: TestClient, login_id: str, password: str, next_url: str = "/staff/") -> object:
    token = csrf_of(client)
    return client.post(
        "/staff/login",
        data={"login_id": login_id, "password": password, "csrf_token": token, "next": next_url},
    )


def test_sign_in_and_out(client: TestClient, staff_accounts: StaffAccounts, db: Database) -> None:
    response = _login(client, "clerk", TEST_PASSWORD)
    assert response.status_code == 303  # type: ignore[attr-defined]
    assert response.headers["location"] == "/staff/"  # type: ignore[attr-defined]
    cookie = response.headers["set-cookie"]  # type: ignore[attr-defined]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    home = client.get("/staff/")
    assert home.status_code == 200
    assert "テスト clerk" in home.text
    token = csrf_of(client, "/staff/")
    out = client.post("/staff/logout", data={"csrf_token": token})
    assert out.status_code == 303
    assert client.get("/staff/").status_code == 303
    with db.session() as session:
        actions = [e.action for e in session.exec(select(AuditEntry).order_by(col(AuditEntry.seq))).all()]
    assert actions[-2:] == ["auth.login", "auth.logout"]


def test_wrong_password_is_explained_in_japanese(client: TestClient, staff_accounts: StaffAccounts) -> None:
    response = _login(client, "clerk", "wrong-password")
    assert response.status_code == 401  # type: ignore[attr-defined]
    assert "職員IDまたはパスワードが違います" in response.text  # type: ignore[attr-defined]
    # the ID typed is kept, the password is not
    assert 'value="clerk"' in response.text  # type: ignore[attr-defined]
    assert "wrong-password" not in response.text  # type: ignore[attr-defined]


def test_lockout_after_repeated_failures(
    client: TestClient, staff_accounts: StaffAccounts, db: Database
) -> None:
    for _ in range(4):
        assert _login(client, "clerk", "nope-nope-nope").status_code == 401  # type: ignore[attr-defined]
    locked = _login(client, "clerk", "nope-nope-nope")
    assert locked.status_code == 403  # type: ignore[attr-defined]
    assert "ロック" in locked.text  # type: ignore[attr-defined]
    # even the right password is refused while locked
    refused = _login(client, "clerk", TEST_PASSWORD)
    assert refused.status_code == 403  # type: ignore[attr-defined]
    with db.session() as session:
        user = session.exec(select(StaffUser).where(StaffUser.login_id == "clerk")).one()
        assert user.locked_until is not None
        actions = [e.action for e in session.exec(select(AuditEntry)).all()]
    assert "auth.locked" in actions and "auth.login_refused_locked" in actions


def test_unknown_user_is_the_same_message(client: TestClient, staff_accounts: StaffAccounts) -> None:
    response = _login(client, "nobody", TEST_PASSWORD)
    assert response.status_code == 401  # type: ignore[attr-defined]
    assert "職員IDまたはパスワードが違います" in response.text  # type: ignore[attr-defined]


def test_idle_session_expires_and_returns_to_the_page(
    client: TestClient, staff_accounts: StaffAccounts, db: Database
) -> None:
    sign_in(client, "clerk")
    with db.write_session() as session:
        row = session.exec(select(StaffSession)).one()
        row.last_seen_at = row.last_seen_at - timedelta(minutes=31)
        session.add(row)
        session.commit()
    response = client.get("/staff/residents?q=abc")
    assert response.status_code == 303
    assert response.headers["location"] == "/staff/login?next=/staff/residents%3Fq%3Dabc&expired=1"
    page = client.get(response.headers["location"])
    assert "一定時間操作がなかったため" in page.text
    # signing in again goes on to where the user was going
    token = csrf_of(client, response.headers["location"])
    again = client.post(
        "/staff/login",
        data={
            "login_id": "clerk",
            "password": TEST_PASSWORD,
            "csrf_token": token,
            "next": "/staff/residents?q=abc",
        },
    )
    assert again.headers["location"] == "/staff/residents?q=abc"


def test_post_without_csrf_token_is_refused(
    client: TestClient, staff_accounts: StaffAccounts, db: Database
) -> None:
    client.get("/staff/login")
    response = client.post("/staff/login", data={"login_id": "clerk", "password": TEST_PASSWORD})
    assert response.status_code == 403
    assert "セキュリティ確認に失敗しました" in response.text
    bad = client.post(
        "/staff/login", data={"login_id": "clerk", "password": TEST_PASSWORD, "csrf_token": "0" * 64}
    )
    assert bad.status_code == 403
    with db.session() as session:
        assert session.exec(select(StaffSession)).first() is None  # nothing happened


def test_csrf_token_in_htmx_header_is_accepted(client: TestClient, staff_accounts: StaffAccounts) -> None:
    sign_in(client, "admin")
    token = csrf_of(client, "/admin/users")
    response = client.post(
        "/admin/users",
        headers={"X-CSRF-Token": token},
        data={
            "login_id": "newclerk",
            "display_name": "新人",
            "password": "long-enough-pass",
            "groups": "clerk",
        },
    )
    assert response.status_code == 303


def test_open_redirect_is_not_followed(client: TestClient, staff_accounts: StaffAccounts) -> None:
    token = csrf_of(client)
    response = client.post(
        "/staff/login",
        data={"login_id": "clerk", "password": TEST_PASSWORD, "csrf_token": token, "next": "//evil.example/"},
    )
    assert response.headers["location"] == "/staff/"


def test_sign_ins_are_in_a_valid_chain(
    client: TestClient, staff_accounts: StaffAccounts, db: Database
) -> None:
    sign_in(client, "clerk")
    _login(client, "clerk", "bad-password")
    with db.session() as session:
        assert verify(session).ok
