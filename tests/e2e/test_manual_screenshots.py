"""Screenshots for the operations manual (docs/manual/), taken by walking the real screens.

    MADOGUCHI_SCREENSHOTS=1 uv run pytest tests/e2e/test_manual_screenshots.py

writes docs/manual/screenshots/<name>.png. Without the variable the screenshots go to a temporary
directory and are only checked to be images of the expected size, so ordinary test runs never
change tracked files. The screens show the demo town in Japanese at fixed viewports; clock times
that change from run to run are masked.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import select

from app.demo.generator import DEMO_ACCOUNTS
from app.models import Device, StaffUser
from app.services import devices as device_service
from app.services.audit import Actor
from tests.e2e.test_accessibility import (
    KIOSK,
    KIOSK_VIEWPORT,
    STAFF_VIEWPORT,
    Town,
    card_holder,
    demo_town,
    kiosk_walk,
    sign_in,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MANUAL_SCREENSHOTS = ROOT / "docs" / "manual" / "screenshots"
MASK_COLOR = "#dde1e6"  # a quiet grey where a clock time would be
MAX_BYTES = 250_000
FULL_PAGE = {"kiosk-card", "kiosk-options", "kiosk-confirm", "staff-resident"}

KIOSK_SHOTS = ["kiosk-start", "kiosk-card", "kiosk-options", "kiosk-confirm", "kiosk-done"]
STAFF_SHOTS = [
    "staff-login",
    "staff-home",
    "staff-residents",
    "staff-resident",
    "staff-queue",
    "staff-devices",
    "staff-events",
    "admin-users",
    "admin-audit",
]


@pytest.fixture(scope="module")
def town(
    sqlite_template: Path, password_hash: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Town]:
    yield from demo_town(sqlite_template, password_hash, tmp_path_factory)


PUBLISH = os.environ.get("MADOGUCHI_SCREENSHOTS") == "1"


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if PUBLISH:
        MANUAL_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return MANUAL_SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


def _save(page, folder: Path, name: str, mask: tuple[str, ...] = ()) -> None:  # type: ignore[no-untyped-def]
    """The screen as a PNG; for the manual reduced to a 256-colour palette (screens are flat colours
    and text, and the files stay small in the repository).

    Screens taller than the viewport are taken whole (the kiosk's keypad, options and confirm, a
    resident's record); the others at the viewport's size.
    """
    viewport = page.viewport_size
    if name in FULL_PAGE:  # a taller window, so the kiosk's fixed footer stays at the bottom
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": viewport["width"], "height": max(height, viewport["height"])})
    try:
        png = page.screenshot(
            animations="disabled",  # the queue's banner stops flashing at its final colour
            caret="hide",
            mask=[page.locator(selector) for selector in mask],
            mask_color=MASK_COLOR,
        )
    finally:
        page.set_viewport_size(viewport)
    if not PUBLISH:
        (folder / f"{name}.png").write_bytes(png)
        return
    image = Image.open(io.BytesIO(png)).convert("RGB")
    small = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(folder / f"{name}.png", optimize=True)


def _check(folder: Path, names: list[str], viewport: dict[str, int]) -> None:
    for name in names:
        path = folder / f"{name}.png"
        assert path.exists(), f"{name}.png was not taken"
        assert 0 < path.stat().st_size <= MAX_BYTES, f"{name}.png is {path.stat().st_size} bytes"
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            width, height = image.size
            assert width == viewport["width"], name
            assert height == viewport["height"] or (name in FULL_PAGE and height > viewport["height"]), name
            assert image.convert("L").getextrema()[0] < 128, f"{name}.png shows no text"


def _dress(town: Town) -> None:
    """Make the town look in use: the test's staff get the demo's names, and the main office's
    kiosk and back office are registered and report their printers and reader, as bridges do."""
    with town.db.write_session() as session:
        for account in DEMO_ACCOUNTS:
            user = session.exec(select(StaffUser).where(StaffUser.login_id == account.login_id)).one()
            user.display_name, user.department = account.display_name, account.department
            session.add(user)
        for code, status in {
            KIOSK: {
                "printers": {
                    "receipt": {"online": True, "paper_out": False, "cover_open": False, "reason": ""}
                },
                "card_reader": {"present": True, "card": False, "reason": ""},
                "version": "0.1.0",
            },
            "0102": {
                "printers": {
                    "office": {"online": True, "paper_out": False, "cover_open": False, "reason": ""}
                },
                "version": "0.1.0",
            },
        }.items():
            device = session.exec(select(Device).where(Device.code == code)).one()
            assert device.id is not None
            if not device.token_hash:
                device_service.rotate_token(session, Actor.system("test"), device.id)
            device_service.heartbeat(session, device, status)
        session.commit()


def test_manual_screenshots(browser, town: Town, shots: Path) -> None:  # type: ignore[no-untyped-def]
    resident = card_holder(town.db)
    _dress(town)
    contexts = []

    def context(viewport: dict[str, int]):  # type: ignore[no-untyped-def]
        made = browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo", viewport=viewport)
        contexts.append(made)
        page = made.new_page()
        page.set_default_timeout(10_000)
        return page

    try:
        # Sign-in screen, then the clerk watches the queue while a resident uses the kiosk.
        clerk = context(STAFF_VIEWPORT)
        clerk.goto(f"{town.url}/staff/login")
        _save(clerk, shots, "staff-login")
        sign_in(clerk, town, "clerk")
        _save(clerk, shots, "staff-home")
        clerk.goto(f"{town.url}/staff/queue")
        clerk.wait_for_selector(".live-state.connected")

        kiosk = context(KIOSK_VIEWPORT)
        number = kiosk_walk(kiosk, town, resident, lambda name: _save(kiosk, shots, name))

        clerk.wait_for_selector("#new-banner:not([hidden])")
        clerk.wait_for_selector(f"#queue-table tr[data-request-id] >> text={number}")
        assert number in clerk.locator("#new-banner").inner_text()
        _save(clerk, shots, "staff-queue", mask=("#queue-table tbody td:nth-child(2)",))

        # The resident's household in the search and the record.
        clerk.goto(f"{town.url}/staff/residents?q={resident.family_name}")
        clerk.wait_for_selector("#results table")
        _save(clerk, shots, "staff-residents")
        clerk.goto(f"{town.url}/staff/residents/{resident.id}")
        _save(clerk, shots, "staff-resident")

        clerk.goto(f"{town.url}/staff/devices")
        _save(
            clerk,
            shots,
            "staff-devices",
            mask=("main table:nth-of-type(1) td:nth-child(4)", "main table:nth-of-type(2) td:nth-child(5)"),
        )

        clerk.goto(f"{town.url}/staff/events")
        clerk.wait_for_selector(".live-state.connected")
        clerk.click("text=テストイベントを送信")
        clerk.wait_for_selector("tr[data-event-id][data-type=test]")
        _save(clerk, shots, "staff-events", mask=("table.events td:nth-child(2)",))

        # Administration: staff accounts, and who looked at residents in the audit log.
        admin = context(STAFF_VIEWPORT)
        sign_in(admin, town, "admin")
        admin.goto(f"{town.url}/admin/users")
        _save(admin, shots, "admin-users", mask=("table.grid td:nth-child(6)",))
        admin.goto(f"{town.url}/admin/audit?action=resident.")
        admin.wait_for_selector("table.audit tbody tr")
        _save(admin, shots, "admin-audit", mask=("table.audit td:nth-child(2)",))
    finally:
        for made in contexts:
            made.close()

    _check(shots, KIOSK_SHOTS, KIOSK_VIEWPORT)
    _check(shots, STAFF_SHOTS, STAFF_VIEWPORT)


LIFE_KIOSK_SHOTS = ["kiosk-life-events", "kiosk-life-people", "kiosk-life-questions", "kiosk-life-result"]
LIFE_STAFF_SHOTS = ["staff-interview", "staff-case"]


def test_manual_screenshots_life_events(browser, town: Town, shots: Path) -> None:  # type: ignore[no-untyped-def]
    """The life-event pages of docs/manual/lifeevents.md: a family moving in at the kiosk, and the
    same kind of case in the clerk's interview."""
    from datetime import timedelta

    from app.services.certificates import today_jst
    from tests.e2e.test_life_events_browser import ANSWER_VISIBLE, _sign

    _dress(town)
    yesterday = (today_jst() - timedelta(days=1)).isoformat()
    contexts = []

    def context(viewport: dict[str, int]):  # type: ignore[no-untyped-def]
        made = browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo", viewport=viewport)
        contexts.append(made)
        page = made.new_page()
        page.set_default_timeout(10_000)
        return page

    try:
        kiosk = context(KIOSK_VIEWPORT)
        kiosk.goto(f"{town.url}/kiosk/{KIOSK}/life")
        _save(kiosk, shots, "kiosk-life-events")
        kiosk.click("button[data-event='tennyu']")
        kiosk.click("#without-card")
        kiosk.click("button[value='add:妻']")
        kiosk.fill("input[name='p.new-1.birth_date']", "1986-05-01")
        kiosk.click("input[name='p.new-1.sex'][value='1'] + span")
        kiosk.click("input[name='p.new-1.insurance'][value='kokuho'] + span")
        kiosk.fill("input[name='p.new-2.birth_date']", "1988-07-07")
        kiosk.click("input[name='p.new-2.sex'][value='2'] + span")
        kiosk.click("input[name='p.new-2.insurance'][value='kokuho'] + span")
        _save(kiosk, shots, "kiosk-life-people")
        kiosk.click("button[value='next']")
        kiosk.fill("#event_date", yesterday)
        kiosk.evaluate(ANSWER_VISIBLE, [".life-questions", yesterday])
        _save(kiosk, shots, "kiosk-life-questions")
        for _ in range(4):
            kiosk.click("button[type=submit].primary")
            kiosk.wait_for_load_state()
            if kiosk.url.endswith("/life/result"):
                break
            kiosk.evaluate(ANSWER_VISIBLE, [".life-questions", yesterday])
        _save(kiosk, shots, "kiosk-life-result")

        clerk = context(STAFF_VIEWPORT)
        sign_in(clerk, town, "clerk")
        resident = card_holder(town.db)
        clerk.goto(f"{town.url}/staff/interview?q={resident.atena_number}&event=tenkyo")
        clerk.click("button.primary")
        clerk.fill("input[name='new_address.address']", "山形県寒河江市中央二丁目2番2号")
        clerk.fill("#event_date", yesterday)
        clerk.locator("#event_date").dispatch_event("change")
        clerk.wait_for_timeout(700)
        for _ in range(4):
            if not clerk.evaluate(ANSWER_VISIBLE, ["#questions", yesterday]):
                break
            clerk.wait_for_timeout(800)
        clerk.evaluate("window.scrollTo(0, 0)")
        _save(clerk, shots, "staff-interview")
        _sign(clerk, "signature.resident")
        _sign(clerk, "signature.clerk")
        clerk.check("input[name='confirmed']")
        with clerk.expect_navigation():
            clerk.click("button[formaction$='/submit']")
        clerk.evaluate("window.scrollTo(0, 0)")
        _save(clerk, shots, "staff-case")
    finally:
        for made in contexts:
            made.close()

    _check(shots, LIFE_KIOSK_SHOTS, KIOSK_VIEWPORT)
    _check(shots, LIFE_STAFF_SHOTS, STAFF_VIEWPORT)
