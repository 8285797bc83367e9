"""axe-core finds no serious or critical violation on the kiosk and staff screens.

axe runs its WCAG 2.0/2.1/2.2 A and AA rules and its best practices; a serious or critical finding
fails the test, the others are printed (see them with `pytest -s`).

One demo town per module: a live server on a migrated SQLite copy with the demo data. The kiosk
is walked in a real browser; the bridge's part (card presence, PIN → card → signature) is played
in-process with the simulated card, as in tests/test_kiosk_flow.py — the live server runs in a
thread of this process, so the transient PIN command is caught by monkeypatching
`app.services.kiosk.send_transient`, and the test answers it over the device API as the bridge
would. No pcscd needed.

The helpers here are shared with tests/e2e/test_manual_screenshots.py.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlmodel import col, select

from app.db import Database
from app.demo.generator import generate_demo
from app.domain.registry import ResidentStatus
from app.models import Device, IssuedCopy, Resident
from app.services import devices as device_service
from app.services.audit import Actor
from app.services.certificates import today_jst
from tests.conftest import TEST_PASSWORD, LiveServer, _free_port, make_settings, make_staff

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
AXE_PATHS = [ROOT / "static" / "vendor" / "axe.min.js", ROOT / "node_modules" / "axe-core" / "axe.min.js"]
KIOSK = "0101"
KIOSK_VIEWPORT = {"width": 1080, "height": 810}
STAFF_VIEWPORT = {"width": 1280, "height": 800}
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
BLOCKING = ("serious", "critical")


# The demo town ---------------------------------------------------------------------------------


@dataclass
class Town:
    """A live server with the demo data, and the kiosk's bridge played by the test."""

    server: LiveServer
    store: Any  # device_bridge.simulators.card_store.CardStore
    token: str  # the kiosk's device API token
    sent: list[dict[str, Any]] = field(default_factory=list)  # transient commands to the bridge

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def db(self) -> Database:
        return self.server.db


@pytest.fixture(scope="module")
def town(
    sqlite_template: Path, password_hash: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Town]:
    yield from demo_town(sqlite_template, password_hash, tmp_path_factory)


def demo_town(
    sqlite_template: Path, password_hash: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Town]:
    """The body of a module-scoped `town` fixture (each browser test module makes its own town)."""
    from app.web.app import create_app
    from device_bridge.simulators.card_store import CardStore

    tmp = tmp_path_factory.mktemp("town")
    shutil.copyfile(sqlite_template, tmp / "madoguchi.db")
    db = Database(f"sqlite:///{tmp / 'madoguchi.db'}")
    staff = make_staff(db, password_hash)  # before the demo: these keep TEST_PASSWORD
    generate_demo(db, residents=100, today=today_jst())
    store = CardStore(tmp / "cards")
    with db.write_session() as session:
        device = session.exec(select(Device).where(Device.code == KIOSK)).one()
        assert device.id is not None
        token = device_service.rotate_token(session, Actor.system("test"), device.id)
        session.commit()
    port = _free_port()
    settings = make_settings(
        tmp,
        db,
        port=port,
        jpki_trust_roots=str(store.ca.root_pem_path()),
        jpki_crls=str(store.ca.crl_pem_path()),
    )
    app = create_app(settings, db=db)
    town = Town(LiveServer(url=f"http://127.0.0.1:{port}", db=db, staff=staff, app=app), store, token)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    with pytest.MonkeyPatch.context() as patch:
        # The PIN leaves the server only as this transient command: catch it where the bridge would.
        patch.setattr(
            "app.services.kiosk.send_transient", lambda topic, type_, data: town.sent.append(dict(data))
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        try:
            yield town
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            db.dispose()


def card_holder(db: Database) -> Resident:
    """An adult with a card in a small household with nothing that sends them to the counter."""
    with db.session() as session:
        residents = session.exec(select(Resident).order_by(col(Resident.id))).all()
    households: dict[int, list[Resident]] = {}
    for r in residents:
        households.setdefault(r.household_id, []).append(r)
    today = today_jst()
    for r in residents:
        members = households[r.household_id]
        if (
            r.auth_cert_serial
            and r.birth_date
            and (today - r.birth_date).days > 25 * 366
            and 2 <= len(members) <= 4
            and all(m.status == ResidentStatus.RESIDENT and not m.suppressions for m in members)
            and all(m.became_resident_on != today and m.address_set_on != today for m in members)
        ):
            return r
    raise AssertionError("no suitable demo resident")


def set_card_present(town: Town, present: bool) -> None:
    """The bridge's card event: the kiosk's card screen shows whether a card is on the reader."""
    response = httpx.post(
        f"{town.url}/devices/api/events",
        json={"type": "card_inserted" if present else "card_removed", "data": {}},
        headers={"Authorization": f"Bearer {town.token}"},
    )
    assert response.status_code == 202, response.text


def bridge_answers(town: Town, resident: Resident) -> None:
    """What the bridge does with the transient command: the real card driver on the simulated card."""
    from device_bridge.drivers.mynumber import MyNumberCard
    from device_bridge.kiosk_card import authenticate_with
    from device_bridge.simulators.mynumber_card import DirectTransport

    command = town.sent.pop()
    assert command["command"] == "card.authenticate"
    card = MyNumberCard(DirectTransport(town.store.card_for_atena(town.db, resident.atena_number)))
    answer = authenticate_with(card, bytes.fromhex(command["nonce"]), command["pin"])  # the bridge's own code
    response = httpx.post(
        f"{town.url}/devices/api/commands/{command['command_id']}",
        json=answer,
        headers={"Authorization": f"Bearer {town.token}"},
    )
    assert response.status_code == 200, response.text


def type_pin(page, town: Town, resident: Resident, pin: str) -> None:  # type: ignore[no-untyped-def]
    """Tap the PIN on the keypad and OK; the bridge answers while the 確認中 page waits."""
    for digit in pin:
        page.click(f".keypad [data-digit='{digit}']")
    page.click("#pin-submit")
    page.wait_for_url(re.compile(r".*/wait$"))
    bridge_answers(town, resident)


def kiosk_walk(page, town: Town, resident: Resident, at) -> str:  # type: ignore[no-untyped-def]
    """Walk the kiosk: start → card (a wrong PIN first) → options → confirm → done.

    `at(name)` is called on each screen once it is ready. Returns the reception number.
    """
    set_card_present(town, False)
    page.goto(f"{town.url}/kiosk/{KIOSK}/")
    page.wait_for_selector("button[data-type=juminhyo]")
    at("kiosk-start")
    set_card_present(town, True)  # the resident has the card on the reader already
    page.click("button[data-type=juminhyo]")
    page.wait_for_url(re.compile(r".*/card$"))
    page.wait_for_selector(".card-place.present")
    type_pin(page, town, resident, "9999")
    page.wait_for_selector("#kiosk-error .tries")
    page.wait_for_selector(".card-place.present")
    at("kiosk-card")
    type_pin(page, town, resident, "1234")
    page.wait_for_url(re.compile(r".*/options$"))
    at("kiosk-options")
    page.click(".kiosk-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/confirm$"))
    at("kiosk-confirm")
    page.click("#confirm-form button")
    page.wait_for_url(re.compile(r".*/done$"))
    page.wait_for_selector("#reception-number")
    at("kiosk-done")
    number: str = page.locator("#reception-number").inner_text()
    set_card_present(town, False)
    return number


def sign_in(page, town: Town, login_id: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{town.url}/staff/login")
    page.fill("#login_id", login_id)
    page.fill("#password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/staff/$"))


def verify_path(db: Database) -> str | None:
    """The verify URL of an issued certificate, if one was printed (the demo prints at once)."""
    from app.printing.verify import HASH_PREFIX_LENGTH, issue_number_slug

    with db.session() as session:
        issued = session.exec(select(IssuedCopy).order_by(col(IssuedCopy.id))).first()
    if issued is None:
        return None
    return f"/verify/{issue_number_slug(issued.issue_number)}?h={issued.content_hash[:HASH_PREFIX_LENGTH]}"


# axe -------------------------------------------------------------------------------------------


def axe_script() -> Path:
    for path in AXE_PATHS:
        if path.exists():
            return path
    pytest.skip("axe-core is missing: run ./scripts/build-assets")


def axe(page, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Run axe on the page; print every violation, return the serious and critical ones."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(axe_script()))
    results = page.evaluate(
        """tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})
            .then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ') + ' — ' + (n.failureSummary || '')
                    .replace(/\\s+/g, ' ').slice(0, 300))})))""",
        AXE_TAGS,
    )
    blocking: list[str] = []
    print(f"[{name}] axe: {len(results)} violation(s)")
    for violation in results:
        line = f"[{name}] {violation['impact']}: {violation['id']} ({violation['help']})"
        print(line)
        for node in violation["nodes"][:5]:
            print("    " + node)
        if violation["impact"] in BLOCKING:
            blocking.append(line + "\n    " + "\n    ".join(violation["nodes"][:5]))
    return blocking


# Tests -----------------------------------------------------------------------------------------


def test_kiosk_screens(browser, town: Town) -> None:  # type: ignore[no-untyped-def]
    resident = card_holder(town.db)
    context = browser.new_context(locale="ja-JP", viewport=KIOSK_VIEWPORT)
    found: list[str] = []
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        kiosk_walk(page, town, resident, lambda name: found.extend(axe(page, name)))
        # And in English and やさしいにほんご, whose pages are their own text.
        for lang in ("en", "easy"):
            page.goto(f"{town.url}/kiosk/{KIOSK}/?lang={lang}")
            page.wait_for_selector("button[data-type=juminhyo]")
            found.extend(axe(page, f"kiosk-start-{lang}"))
        # The demo prints at once (just after the confirm commits, on the web's print threads):
        # the certificate's QR code leads to the public verify page.
        path = verify_path(town.db)
        for _ in range(100):
            if path is not None:
                break
            time.sleep(0.1)
            path = verify_path(town.db)
        assert path is not None, "the kiosk's request printed no certificate"
        phone = browser.new_context(locale="ja-JP", viewport={"width": 390, "height": 844})
        try:
            page = phone.new_page()
            response = page.goto(f"{town.url}{path}")
            assert response is not None and response.status == 200
            found.extend(axe(page, "verify"))
            page.goto(f"{town.url}{path.replace('?h=', '?h=0')}")  # a hash that does not match
            page.wait_for_selector("p.error")
            found.extend(axe(page, "verify-altered"))
            response = page.goto(f"{town.url}/verify/not-an-issue-number")
            assert response is not None and response.status == 404
            found.extend(axe(page, "verify-unknown"))
        finally:
            phone.close()
    finally:
        context.close()
    assert not found, "\n".join(found)


def _staff_pages(town: Town) -> list[tuple[str, str, str]]:
    """(name, user, path) for every staff screen checked."""
    with town.db.session() as session:
        resident = session.exec(
            select(Resident).where(Resident.status == ResidentStatus.RESIDENT).order_by(col(Resident.id))
        ).first()
    assert resident is not None
    return [
        ("staff-home", "clerk", "/staff/"),
        ("residents-search", "clerk", f"/staff/residents?q={resident.family_name}"),
        ("resident-detail", "clerk", f"/staff/residents/{resident.id}"),
        ("queue", "clerk", "/staff/queue"),
        ("devices", "clerk", "/staff/devices"),
        ("events", "clerk", "/staff/events"),
        ("admin-home", "admin", "/admin/"),
        ("admin-users", "admin", "/admin/users"),
        ("admin-devices", "admin", "/admin/devices"),
        ("audit-log", "admin", "/admin/audit"),
        ("audit-search", "admin", "/admin/audit?action=resident."),
    ]


def test_staff_screens(browser, town: Town) -> None:  # type: ignore[no-untyped-def]
    found: list[str] = []
    contexts = {}
    try:
        # Sign-in, with and without its error message.
        anonymous = browser.new_context(locale="ja-JP", viewport=STAFF_VIEWPORT)
        contexts["anonymous"] = anonymous
        page = anonymous.new_page()
        page.goto(f"{town.url}/staff/login")
        found += axe(page, "staff-login")
        page.fill("#login_id", "clerk")
        page.fill("#password", "not-the-password")
        page.click("button[type=submit]")
        page.wait_for_selector("#login-error")
        found += axe(page, "staff-login-error")
        pages = {}
        for name, user, path in _staff_pages(town):
            if user not in pages:
                contexts[user] = browser.new_context(locale="ja-JP", viewport=STAFF_VIEWPORT)
                pages[user] = contexts[user].new_page()
                sign_in(pages[user], town, user)
            page = pages[user]
            response = page.goto(f"{town.url}{path}")
            assert response is not None and response.status == 200, (name, path)
            if name in ("queue", "events"):
                page.wait_for_selector(".live-state.connected")
            found += axe(page, name)
    finally:
        for context in contexts.values():
            context.close()
    assert not found, "\n".join(found)
