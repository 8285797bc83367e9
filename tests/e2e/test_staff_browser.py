"""Staff screens in a real browser: sign-in, live events, resident search, admin."""

from __future__ import annotations

import re

import pytest

from app.services.audit import verify
from tests.conftest import TEST_PASSWORD, LiveServer

pytestmark = pytest.mark.e2e


def _sign_in(page, server: LiveServer, login_id: str, password: str = TEST_PASSWORD) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{server.url}/staff/login")
    page.fill("#login_id", login_id)
    page.fill("#password", password)
    page.click("button[type=submit]")


def test_sign_in_shows_japanese_errors_then_succeeds(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    _sign_in(page, live_server, "clerk", "not-the-password")
    assert page.locator("#login-error").inner_text() == "職員IDまたはパスワードが違います。"
    assert page.input_value("#login_id") == "clerk"
    page.fill("#password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/staff/$"))
    assert "テスト clerk" in page.locator(".who").inner_text()
    page.click("text=ログアウト")
    page.wait_for_url(re.compile(r".*/staff/login$"))


def test_expired_session_returns_to_the_page_after_sign_in(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/staff/residents?q=test")
    page.wait_for_url(re.compile(r".*/staff/login\?next=.*"))
    page.fill("#login_id", "clerk")
    page.fill("#password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/staff/residents\?q=test$"))


def test_live_events_arrive_without_reload(browser, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    watcher_context = browser.new_context(locale="ja-JP")
    sender_context = browser.new_context(locale="ja-JP")
    try:
        watcher = watcher_context.new_page()
        sender = sender_context.new_page()
        _sign_in(watcher, live_server, "admin")
        watcher.goto(f"{live_server.url}/staff/events")
        watcher.wait_for_selector(".live-state.connected")
        before = watcher.locator("[data-event-id]").count()
        _sign_in(sender, live_server, "manager")
        sender.goto(f"{live_server.url}/staff/events")
        sender.click("text=テストイベントを送信")
        watcher.wait_for_function(
            f"document.querySelectorAll('[data-event-id]').length > {before}", timeout=5000
        )
        newest = watcher.locator("[data-event-id]").first
        assert "test" in newest.inner_text()
    finally:
        watcher_context.close()
        sender_context.close()
    with live_server.db.session() as session:
        assert verify(session).ok


def test_wrong_role_sees_a_japanese_403(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    _sign_in(page, live_server, "manager")
    page.wait_for_url(re.compile(r".*/staff/$"))
    response = page.goto(f"{live_server.url}/admin/users")
    assert response is not None and response.status == 403
    assert "このページを利用する権限がありません" in page.content()


def test_admin_adds_a_clerk(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    _sign_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/admin/users")
    form = page.locator("form[action='/admin/users']")
    form.locator("input[name=login_id]").fill("sato")
    form.locator("input[name=display_name]").fill("佐藤 花子")
    form.locator("input[name=password]").fill("another-long-pass")
    form.locator("input[value=clerk]").check()
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/admin/users$"))
    assert "佐藤 花子" in page.content()
