"""The whole certificate flow in browsers, with the demo's real bridges and simulated devices.

A resident walks the kiosk with a simulated My Number Card on a PC/SC reader (pcscd + vpcd); the
staff queue hears of the request at once and chimes; the receipt comes out of the kiosk's
ESC/POS simulator and the certificate out of the back office's CUPS queue, where pdftotext reads
it and an independent QR reader decodes its verification code.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image
from sqlmodel import col, select

from app.demo.generator import generate_demo
from app.domain.registry import ResidentStatus
from app.models import CertificateRequest, Resident
from device_bridge.simulators.demo import DemoDevices
from tests.conftest import TEST_PASSWORD, LiveServer

pytestmark = [pytest.mark.e2e, pytest.mark.pcsc, pytest.mark.slow]


def _adult_with_card(server: LiveServer) -> Resident:
    from datetime import date

    with server.db.session() as session:
        residents = session.exec(select(Resident).order_by(col(Resident.id))).all()
        households: dict[int, list[Resident]] = {}
        for r in residents:
            households.setdefault(r.household_id, []).append(r)
        for r in residents:
            members = households[r.household_id]
            if (
                r.auth_cert_serial
                and r.birth_date
                and (date.today() - r.birth_date).days > 25 * 366
                and len(members) <= 4
                and all(m.status == ResidentStatus.RESIDENT and not m.suppressions for m in members)
                and all(m.became_resident_on != date.today() for m in members)
            ):
                return r
    raise AssertionError("no suitable demo resident")


@pytest.fixture
def demo(live_server: LiveServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    generate_demo(live_server.db, residents=150)
    devices = DemoDevices(live_server.url, live_server.db, tmp_path / "demo")
    devices.start()
    if devices.console is None:
        devices.stop()
        pytest.skip("pcscd with the vpcd reader is not available here: " + "; ".join(devices.notes))
    # The web app must trust the demo CA that issued the simulated cards.
    ca = devices.console.store.ca
    checks = live_server.app.state.card_checks
    checks.roots = [ca.root_pem_path()]
    checks.crls = [ca.crl_pem_path()]
    try:
        yield devices
    finally:
        devices.stop()


def test_kiosk_to_back_office(browser, live_server: LiveServer, demo: DemoDevices) -> None:  # type: ignore[no-untyped-def]
    resident = _adult_with_card(live_server)
    kiosk_terminal = next(t for t in demo.terminals if t.has_card_reader)
    staff = browser.new_context(locale="ja-JP")
    kiosk_context = browser.new_context(locale="ja-JP", viewport={"width": 1080, "height": 810})
    try:
        # Staff watch the queue.
        queue = staff.new_page()
        queue.goto(f"{live_server.url}/staff/login")
        queue.fill("#login_id", "clerk")
        queue.fill("#password", TEST_PASSWORD)  # the live server made its own staff first
        queue.click("button[type=submit]")
        queue.goto(f"{live_server.url}/staff/queue")
        queue.wait_for_selector(".live-state.connected")

        # The resident: choose, place the card, a wrong PIN first, then the right one.
        kiosk = kiosk_context.new_page()
        kiosk.goto(f"{live_server.url}/kiosk/{kiosk_terminal.code}/")
        kiosk.click("button[data-type=juminhyo]")
        demo.console.insert(resident.atena_number)
        kiosk.wait_for_selector(".card-place.present", timeout=10_000)
        for digit in "9999":
            kiosk.click(f".keypad [data-digit='{digit}']")
        kiosk.click("#pin-submit")
        kiosk.wait_for_selector("#kiosk-error", timeout=15_000)
        assert "あと2回入力できます" in kiosk.locator("#kiosk-error").inner_text()
        for digit in "1234":
            kiosk.click(f".keypad [data-digit='{digit}']")
        kiosk.click("#pin-submit")
        kiosk.wait_for_url(re.compile(r".*/options$"), timeout=15_000)
        kiosk.click("button[type=submit]")  # whole household, one copy
        kiosk.wait_for_url(re.compile(r".*/confirm$"))
        assert "300円" in kiosk.content()
        kiosk.dblclick("#confirm-form button")  # a double tap makes one request
        kiosk.wait_for_url(re.compile(r".*/done$"))
        number = kiosk.locator("#reception-number").inner_text()
        assert "カードをお取りください" in kiosk.content()

        # Staff saw it arrive: banner, chime, the row.
        queue.wait_for_selector("#new-banner:not([hidden])", timeout=5_000)
        assert number in queue.locator("#new-banner").inner_text()
        assert queue.evaluate("window.madoguchiChimes") == 1
        queue.wait_for_selector(f"tr[data-request-id] >> text={number}")
    finally:
        staff.close()
        kiosk_context.close()

    with live_server.db.session() as session:
        assert len(session.exec(select(CertificateRequest)).all()) == 1

    # The receipt at the kiosk carries the number; the certificate reached the office printer.
    assert kiosk_terminal.printer is not None
    receipt = kiosk_terminal.printer.wait_for_receipts(1, timeout=20)[0]
    assert any("madoguchi:request:" in r.text for r in zxingcpp.read_barcodes(receipt.image))
    if demo.office_folder is None:
        pytest.skip("CUPS is not available here: " + "; ".join(demo.notes))
    deadline = time.monotonic() + 30
    pdfs: list[Path] = []
    while time.monotonic() < deadline and not pdfs:
        pdfs = sorted(demo.office_folder.glob("*.pdf"))
        time.sleep(0.2)
    assert pdfs, "the certificate did not reach the office printer"
    text = subprocess.run(["pdftotext", str(pdfs[0]), "-"], capture_output=True, text=True, check=True).stdout
    assert resident.family_name in text and "住民票" in text
    if shutil.which("pdftoppm"):
        png = pdfs[0].with_suffix(".page")
        subprocess.run(
            ["pdftoppm", "-r", "150", "-png", "-f", "1", "-l", "1", str(pdfs[0]), str(png)], check=True
        )
        page_image = Image.open(next(png.parent.glob(png.name + "*.png")))
        urls = [r.text for r in zxingcpp.read_barcodes(page_image)]
        assert any("/verify/" in url for url in urls)
