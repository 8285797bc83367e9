"""The kiosk layout keeps to its touch rules: body text >= 24 px, touch targets >= 60 px."""

from __future__ import annotations

import pytest

from app.demo.generator import generate_demo
from tests.conftest import LiveServer

pytestmark = pytest.mark.e2e

TOO_SMALL = """() => [...document.querySelectorAll('a, button, input, [role=button]')]
      .filter(e => e.offsetParent !== null && e.type !== 'hidden')
      .map(e => [e.textContent.trim() || e.name, e.getBoundingClientRect()])
      .filter(([, r]) => r.height < 60 || r.width < 60)
      .map(([t, r]) => `${t}: ${Math.round(r.width)}x${Math.round(r.height)}`)"""


@pytest.fixture
def town(live_server: LiveServer) -> LiveServer:
    generate_demo(live_server.db, residents=100)
    return live_server


def test_kiosk_text_and_targets_are_large(page, town: LiveServer) -> None:  # type: ignore[no-untyped-def]
    page.set_viewport_size({"width": 1080, "height": 810})  # a 10-inch tablet, landscape
    page.goto(f"{town.url}/kiosk/0101/")
    assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= 24
    assert page.evaluate(TOO_SMALL) == []
    page.click("button[data-type=juminhyo]")
    page.wait_for_url("**/kiosk/0101/card")
    assert page.locator(".keypad .key").count() == 12
    assert page.evaluate(TOO_SMALL) == []


def test_kiosk_speaks_three_languages(page, town: LiveServer) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{town.url}/kiosk/0101/")
    assert page.locator("h1").inner_text() == "ようこそ"
    page.click("text=やさしいにほんご")
    page.wait_for_load_state()
    assert "おしてください" in page.locator(".kiosk-lead").inner_text()
    page.click("text=English")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Welcome"
    assert page.locator("html").get_attribute("lang") == "en"
