"""Every certificate type, every refusal, a blocked card and a revoked certificate, in the browser.

The kiosk is walked in Chromium; the bridge's part is played in-process with the simulated card
(see tests/e2e/test_accessibility.py, whose demo-town helpers this module shares). The full
hardware path — pcscd, vpcd, a real bridge, CUPS — is tests/e2e/test_kiosk_browser.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlmodel import col, select

from app.domain.certificates import kiosk_tax_fiscal_year
from app.domain.registry import ResidentStatus, Suppression
from app.models import CertificateRequest, Resident, SealRegistration, TaxRecord
from app.services.certificates import today_jst
from tests.e2e.test_accessibility import KIOSK, Town, bridge_answers, demo_town, set_card_present

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def town(
    sqlite_template: Path, password_hash: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Town]:
    yield from demo_town(sqlite_template, password_hash, tmp_path_factory)


def _people(town: Town) -> tuple[list[Resident], dict[int, list[Resident]]]:
    with town.db.session() as session:
        residents = list(session.exec(select(Resident).order_by(col(Resident.id))).all())
    households: dict[int, list[Resident]] = {}
    for r in residents:
        households.setdefault(r.household_id, []).append(r)
    return residents, households


def _find(town: Town, want: Callable[[Resident, list[Resident]], bool]) -> Resident:
    residents, households = _people(town)
    for r in residents:
        if r.auth_cert_serial and r.birth_date and want(r, households[r.household_id]):
            return r
    pytest.fail("the demo town has nobody for this case")


def _clean(r: Resident, members: list[Resident]) -> bool:
    today = today_jst()
    return (
        (today - r.birth_date).days > 20 * 366  # type: ignore[operator]
        and all(m.status == ResidentStatus.RESIDENT and not m.suppressions for m in members)
        and all(m.became_resident_on != today and m.address_set_on != today for m in members)
    )


def _start(page, town: Town, kind: str) -> None:  # type: ignore[no-untyped-def]
    set_card_present(town, True)
    page.goto(f"{town.url}/kiosk/{KIOSK}/")
    page.click(f"button[data-type={kind}]")
    page.wait_for_url(re.compile(r".*/card$"))


def _pin(page, town: Town, resident: Resident, pin: str) -> None:  # type: ignore[no-untyped-def]
    for digit in pin:
        page.click(f".keypad [data-digit='{digit}']")
    page.click("#pin-submit")
    page.wait_for_url(re.compile(r".*/wait$"))
    bridge_answers(town, resident)


def _requests(town: Town) -> int:
    with town.db.session() as session:
        return len(session.exec(select(CertificateRequest)).all())


def _issue(page, town: Town, kind: str, resident: Resident) -> None:  # type: ignore[no-untyped-def]
    before = _requests(town)
    _start(page, town, kind)
    _pin(page, town, resident, "1234")
    page.wait_for_url(re.compile(r".*/options$"))
    page.click(".kiosk-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/confirm$"))
    page.click("#confirm-form button")
    page.wait_for_url(re.compile(r".*/done$"))
    assert page.locator("#reception-number").inner_text().isdigit()
    assert _requests(town) == before + 1


def test_residence_certificate(page, town: Town) -> None:  # type: ignore[no-untyped-def]
    _issue(page, town, "juminhyo", _find(town, _clean))


def test_seal_certificate(page, town: Town) -> None:  # type: ignore[no-untyped-def]
    with town.db.session() as session:
        sealed = {s.resident_id for s in session.exec(select(SealRegistration)).all() if s.active}
    _issue(page, town, "inkan", _find(town, lambda r, m: _clean(r, m) and r.id in sealed))


def test_tax_certificate(page, town: Town) -> None:  # type: ignore[no-untyped-def]
    year = kiosk_tax_fiscal_year(today_jst())
    with town.db.session() as session:
        taxed = {
            t.resident_id for t in session.exec(select(TaxRecord).where(TaxRecord.fiscal_year == year)).all()
        }
    _issue(page, town, "tax", _find(town, lambda r, m: _clean(r, m) and r.id in taxed))


REFUSALS: dict[str, Callable[[Resident, list[Resident]], bool]] = {
    "moving_out": lambda r, m: r.status == ResidentStatus.MOVING_OUT,
    "household_moving_out": lambda r, m: (
        r.status == ResidentStatus.RESIDENT and any(x.status == ResidentStatus.MOVING_OUT for x in m)
    ),
    "deceased": lambda r, m: r.status == ResidentStatus.DECEASED,
    "support_measure": lambda r, m: Suppression.SUPPORT_MEASURE.value in r.suppressions,
    "gaiji_pending": lambda r, m: Suppression.GAIJI_PENDING.value in r.suppressions,
    "moved_in_today": lambda r, m: r.became_resident_on == today_jst(),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals_send_the_resident_to_the_counter(page, town: Town, case: str) -> None:  # type: ignore[no-untyped-def]
    resident = _find(town, REFUSALS[case])
    before = _requests(town)
    _start(page, town, "juminhyo")
    _pin(page, town, resident, "1234")
    page.wait_for_url(re.compile(r".*/refused$"))
    text = page.locator("main").inner_text()
    assert "窓口へお越しください" in text
    if case == "support_measure":
        assert "支援措置" not in text  # the reason itself is never shown
    assert _requests(town) == before


def test_no_seal_means_no_seal_certificate(page, town: Town) -> None:  # type: ignore[no-untyped-def]
    with town.db.session() as session:
        sealed = {s.resident_id for s in session.exec(select(SealRegistration)).all() if s.active}
    resident = _find(town, lambda r, m: _clean(r, m) and r.id not in sealed)
    _start(page, town, "inkan")
    _pin(page, town, resident, "1234")
    page.wait_for_url(re.compile(r".*/refused$"))
    assert "印鑑" in page.locator("main").inner_text()


def test_blocked_card_is_sent_to_the_counter_without_spending_more(page, town: Town) -> None:  # type: ignore[no-untyped-def]
    residents, households = _people(town)
    resident = _find(town, _clean)
    for expected in ("あと2回", "あと1回"):
        _start(page, town, "juminhyo")
        _pin(page, town, resident, "0000")
        page.wait_for_url(re.compile(r".*/card$"))
        assert expected in page.locator("#kiosk-error").inner_text()
    _pin(page, town, resident, "0000")  # the third wrong PIN locks the card
    page.wait_for_url(re.compile(r".*/card$"))
    alert = page.locator("#kiosk-error").inner_text()
    assert "ロック" in alert and "窓口" in alert
    assert page.locator("#pin-form").count() == 0  # no keypad for a blocked card
    card = town.store.card_for_atena(town.db, resident.atena_number)
    card.reset_pin_counters()  # the counter unlocks it (and the next tests may use this resident)


def test_revoked_certificate_is_refused(page, town: Town) -> None:  # type: ignore[no-untyped-def]
    residents, _ = _people(town)
    resident = _find(town, lambda r, m: _clean(r, m) and r.id != residents[0].id)
    town.store.ca.revoke(resident.auth_cert_serial)
    try:
        _start(page, town, "juminhyo")
        _pin(page, town, resident, "1234")
        page.wait_for_url(re.compile(r".*/refused$"))
        assert "窓口" in page.locator("main").inner_text()
    finally:
        town.store.ca.unrevoke(resident.auth_cert_serial)
