"""The kiosk layout keeps to its touch rules: body text >= 24 px, touch targets >= 60 px."""

from __future__ import annotations

import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.e2e


def test_kiosk_text_and_targets_are_large(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    page.set_viewport_size({"width": 1080, "height": 810})  # a 10-inch tablet, landscape
    page.goto(f"{live_server.url}/kiosk/")
    body_size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    assert body_size >= 24
    small = page.evaluate(
        """() => [...document.querySelectorAll('a, button, input, [role=button]')]
              .filter(e => e.offsetParent !== null)
              .map(e => [e.textContent.trim(), e.getBoundingClientRect()])
              .filter(([, r]) => r.height < 60 || r.width < 60)
              .map(([t, r]) => `${t}: ${Math.round(r.width)}x${Math.round(r.height)}`)"""
    )
    assert small == []


def test_kiosk_switches_language(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/kiosk/")
    assert page.locator("h1").inner_text() == "ようこそ"
    page.click("text=English")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Welcome"
    assert page.locator("html").get_attribute("lang") == "en"
