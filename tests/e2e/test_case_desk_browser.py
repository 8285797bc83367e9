"""The departments' case screens in a real browser: a case submitted through the service arrives
live on the 保険年金課 list with the banner; ticking its 国保 procedure on one screen moves the
floor overview and an open detail on other screens; the QR reader's typing opens the case."""

from __future__ import annotations

import re

import pytest

from app.demo.generator import generate_demo
from app.services.certificates import today_jst
from app.services.staff import create_user
from tests.conftest import TEST_PASSWORD, LiveServer
from tests.e2e.test_accessibility import axe
from tests.e2e.test_staff_browser import _sign_in
from tests.test_cases_web import submitted

pytestmark = pytest.mark.e2e


def test_a_case_travels_live_between_departments(browser, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    generate_demo(live_server.db, residents=60, today=today_jst())
    with live_server.db.write_session() as session:
        create_user(
            session,
            login_id="floor",
            display_name="フロア 担当",
            password=TEST_PASSWORD,
            groups=["clerk"],
            department="shimin",
        )
        session.commit()
    pension_context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
    floor_context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
    problems: list[str] = []  # serious accessibility findings, checked at the end
    try:
        pension = pension_context.new_page()
        floor = floor_context.new_page()
        pension.set_default_timeout(10_000)
        floor.set_default_timeout(10_000)
        _sign_in(pension, live_server, "clerk")
        pension.wait_for_url(re.compile(r".*/staff/$"))
        pension.goto(f"{live_server.url}/staff/cases?d=hoken_nenkin")
        assert pension.locator("#department").input_value() == "hoken_nenkin"
        pension.wait_for_selector(".live-state.connected")
        assert pension.locator("#new-banner").is_hidden()
        _sign_in(floor, live_server, "floor")
        floor.wait_for_url(re.compile(r".*/staff/$"))
        floor.goto(f"{live_server.url}/staff/cases/floor")
        floor.wait_for_selector(".live-state.connected")

        token = submitted(live_server.db)  # at the kiosk, through the service

        # The 保険年金課 list: banner, chime, the new row with the applicant.
        pension.wait_for_selector("#new-banner:not([hidden])")
        assert "L-0001" in pension.locator("#new-banner").inner_text()
        row = pension.locator("#cases-table tr[data-case-id]")
        row.wait_for()
        assert "転入　太郎" in row.inner_text() and "国民健康保険" in row.inner_text()
        assert pension.evaluate("window.madoguchiCaseChimes") == 1
        # The floor overview got it too, waiting at 保険年金課.
        cell = floor.locator('#floor td[data-department="hoken_nenkin"]')
        cell.wait_for()
        assert "floor-cell waiting" in (cell.get_attribute("class") or "")
        before = cell.inner_text()
        problems += axe(pension, "case-list") + axe(floor, "case-floor")

        # Open the case from the list (the selected department's procedures come first) and tick 国保.
        row.locator("a").first.click()
        pension.wait_for_url(re.compile(rf".*/staff/cases/{token}.*"))
        first_group = pension.locator("section.department-group").first
        assert first_group.get_attribute("data-department") == "hoken_nenkin"
        assert "selected" in (first_group.get_attribute("class") or "")
        kokuho = first_group.locator("li.procedure[data-procedure*='kokuho']").first
        position = kokuho.get_attribute("data-position")
        kokuho.locator("button[value=done]").click()
        done = pension.locator(f"#procedure-{position}[data-status=done]")
        done.wait_for()
        assert "テスト clerk" in pension.locator(".case-log").inner_text()
        problems += axe(pension, "case-detail")

        # The floor overview moves without a reload.
        floor.wait_for_function(
            "before => document.querySelector('#floor td[data-department=\"hoken_nenkin\"]').innerText !== before",
            arg=before,
        )
        assert cell.inner_text() != before

        # The QR reader types the guidance sheet's URL and Enter into the focused field.
        floor.goto(f"{live_server.url}/staff/cases/scan")
        problems += axe(floor, "case-scan")
        floor.locator("#scan-code").focus()  # axe's run may have moved the focus
        floor.keyboard.type(f"{live_server.url}/cases/scan/{token}?d=hoken_nenkin")
        floor.keyboard.press("Enter")
        floor.wait_for_url(re.compile(rf".*/staff/cases/{token}\?d=hoken_nenkin$"))
        assert "転入　太郎" in floor.content()
        assert floor.locator(f"#procedure-{position}").get_attribute("data-status") == "done"
        floor.wait_for_selector(".live-state.connected")

        # Undo on the 保険年金課 screen: the detail open on the other screen follows.
        pension.locator(f"#procedure-{position} button[value=pending]").click()
        pension.locator(f"#procedure-{position}[data-status=pending]").wait_for()
        floor.locator(f"#procedure-{position}[data-status=pending]").wait_for()
    finally:
        pension_context.close()
        floor_context.close()
    assert not problems, "\n".join(problems)
