"""The kiosk's certificate walk on the server, with the demo JPKI CA and a simulated card.

The bridge's part (PIN → card → signature) is played by the real card driver talking straight
to the simulated card; everything else is the real app. Browser and pcscd versions of this live
in tests/e2e/test_kiosk_browser.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select
from starlette.testclient import TestClient

from app.db import Database
from app.demo.generator import generate_demo
from app.domain.devices import PrinterKind
from app.domain.registry import ResidentStatus
from app.domain.requests import RequestState
from app.models import (
    AuditEntry,
    CertificateIssue,
    CertificateRequest,
    Device,
    EventRecord,
    Location,
    PrintJob,
    Resident,
)
from app.services import devices as device_service
from app.services.audit import Actor
from device_bridge.drivers.mynumber import MyNumberCard
from device_bridge.kiosk_card import authenticate_with
from device_bridge.simulators.card_store import CardStore
from device_bridge.simulators.mynumber_card import DirectTransport
from tests.conftest import make_settings

CSRF = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')


@dataclass
class Kiosk:
    client: TestClient
    db: Database
    store: CardStore
    code: str
    token: str
    sent: list[dict[str, Any]]

    def csrf(self) -> str:
        match = CSRF.search(self.client.get(f"/kiosk/{self.code}/").text)
        assert match
        return match.group(1)

    def post(self, step: str, data: dict[str, Any]) -> Any:
        return self.client.post(f"/kiosk/{self.code}/{step}", data={"csrf_token": self._token, **data})

    def begin(self, kind: str) -> None:
        self._token = self.csrf()
        response = self.post("begin", {"type": kind})
        assert response.headers["location"] == f"/kiosk/{self.code}/card"

    def enter_pin(self, pin: str) -> None:
        response = self.post("pin", {"pin": pin})
        assert response.status_code == 303, response.text

    def bridge_answers(self, atena: str) -> None:
        """What the bridge does with the transient command: the real driver on the card."""
        command = self.sent.pop()
        assert command["command"] == "card.authenticate"
        card = MyNumberCard(DirectTransport(self.store.card_for_atena(self.db, atena)))
        answer = authenticate_with(card, bytes.fromhex(command["nonce"]), command["pin"])  # the bridge's code
        response = self.client.post(
            f"/devices/api/commands/{command['command_id']}",
            json=answer,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert response.status_code == 200, response.text

    def follow(self, step: str) -> Any:
        return self.client.get(f"/kiosk/{self.code}/{step}")

    def drain_prints(self) -> None:
        """Wait for the print orders handed over so far (certificates are made after the commit,
        by the web process's print threads when there is no Redis)."""
        self.client.app.state.print_runner.drain(timeout=60)  # type: ignore[attr-defined]


@pytest.fixture
def kiosk(sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Kiosk]:
    from app.web.app import create_app

    generate_demo(sqlite_db, residents=300, today=date.today())
    store = CardStore(tmp_path / "cards")
    ca = store.ca
    settings = make_settings(
        tmp_path,
        sqlite_db,
        jpki_trust_roots=str(ca.root_pem_path()),
        jpki_crls=str(ca.crl_pem_path()),
    )
    sent: list[dict[str, Any]] = []
    # The PIN leaves the server only as this transient command; capture it where the bridge would.
    monkeypatch.setattr(
        "app.services.kiosk.send_transient", lambda topic, type_, data: sent.append(dict(data))
    )
    with sqlite_db.write_session() as session:
        device = session.exec(select(Device).where(Device.code == "0101")).one()
        assert device.id is not None
        token = device_service.rotate_token(session, Actor.system("test"), device.id)
        session.commit()
    app = create_app(settings, db=sqlite_db)
    with TestClient(app, follow_redirects=False) as client:
        yield Kiosk(client, sqlite_db, store, "0101", token, sent)


def _eligible(db: Database) -> Resident:
    """An adult resident with a card whose household has nothing that sends them to the counter."""
    with db.session() as session:
        residents = session.exec(select(Resident).order_by(col(Resident.id))).all()
        by_household: dict[int, list[Resident]] = {}
        for r in residents:
            by_household.setdefault(r.household_id, []).append(r)
        for r in residents:
            members = by_household[r.household_id]
            if (
                r.auth_cert_serial
                and r.birth_date
                and (date.today() - r.birth_date).days > 20 * 366
                and all(m.status == ResidentStatus.RESIDENT and not m.suppressions for m in members)
                and all(
                    m.became_resident_on != date.today() and m.address_set_on != date.today() for m in members
                )
            ):
                return r
    raise AssertionError("no eligible demo resident")


def test_whole_walk_makes_one_request_and_prints_the_receipt(kiosk: Kiosk) -> None:
    resident = _eligible(kiosk.db)
    kiosk.begin("juminhyo")
    kiosk.enter_pin("1234")
    _assert_no_pin_stored(kiosk.db)
    kiosk.bridge_answers(resident.atena_number)
    assert kiosk.follow("wait").headers["location"] == "/kiosk/0101/options"
    options = kiosk.follow("options")
    assert resident.given_name in options.text
    response = kiosk.post("options", {"scope": "all", "copies": "2"})
    assert response.headers["location"] == "/kiosk/0101/confirm"
    page = kiosk.follow("confirm").text
    assert "600円" in page  # 300 yen × 2
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    assert key
    first = kiosk.post("confirm", {"idempotency_key": key.group(1)})
    again = kiosk.post("confirm", {"idempotency_key": key.group(1)})  # a double tap
    assert first.headers["location"] == again.headers["location"] == "/kiosk/0101/done"
    done = kiosk.follow("done").text
    assert "カードをお取りください" in done and "001" in done
    with kiosk.db.session() as session:
        requests = session.exec(select(CertificateRequest)).all()
        assert len(requests) == 1
        request = requests[0]
        assert request.applicant_id == resident.id and request.copies == 2 and request.fee_total == 600
        assert request.state == RequestState.RECEIVED
        receipt = session.exec(select(PrintJob).where(PrintJob.printer == PrinterKind.RECEIPT)).one()
        assert receipt.payload["receipt"]["number"] == "001"
        actions = [e.action for e in session.exec(select(AuditEntry)).all()]
        assert "kiosk.card_auth" in actions and "certificate.request" in actions
        events = [e.type for e in session.exec(select(EventRecord)).all()]
        assert "certificate.requested" in events


def test_wrong_pin_shows_tries_left_then_right_pin_works(kiosk: Kiosk) -> None:
    resident = _eligible(kiosk.db)
    kiosk.begin("juminhyo")
    kiosk.enter_pin("9999")
    kiosk.bridge_answers(resident.atena_number)
    assert kiosk.follow("wait").headers["location"] == "/kiosk/0101/card"
    page = kiosk.follow("card").text
    assert "暗証番号が違います" in page and "あと2回入力できます" in page
    kiosk.enter_pin("1234")
    kiosk.bridge_answers(resident.atena_number)
    assert kiosk.follow("wait").headers["location"] == "/kiosk/0101/options"


def test_malformed_pin_spends_no_try(kiosk: Kiosk) -> None:
    kiosk.begin("juminhyo")
    kiosk.enter_pin("12a4")
    assert kiosk.sent == []  # nothing went to the card
    assert "4桁の暗証番号を入力してください" in kiosk.follow("card").text


def test_revoked_certificate_is_refused(kiosk: Kiosk) -> None:
    resident = _eligible(kiosk.db)
    kiosk.store.ca.revoke(resident.auth_cert_serial)
    kiosk.begin("juminhyo")
    kiosk.enter_pin("1234")
    kiosk.bridge_answers(resident.atena_number)
    assert kiosk.follow("wait").headers["location"] == "/kiosk/0101/refused"
    page = kiosk.follow("refused").text
    assert "窓口" in page
    with kiosk.db.session() as session:
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "kiosk.card_auth")).one()
        assert entry.detail.get("outcome") == "failed"


def test_moving_out_household_is_sent_to_the_counter(kiosk: Kiosk) -> None:
    with kiosk.db.session() as session:
        mover = session.exec(
            select(Resident).where(
                Resident.status == ResidentStatus.MOVING_OUT, Resident.auth_cert_serial != ""
            )
        ).first()
    if mover is None:
        pytest.skip("the small demo town has no card holder moving out")
    kiosk.begin("juminhyo")
    kiosk.enter_pin("1234")
    kiosk.bridge_answers(mover.atena_number)
    assert kiosk.follow("wait").headers["location"] == "/kiosk/0101/refused"
    assert "窓口へお越しください" in kiosk.follow("refused").text
    with kiosk.db.session() as session:
        assert session.exec(select(CertificateRequest)).first() is None


def test_seal_certificate_needs_a_registered_seal(kiosk: Kiosk) -> None:
    from app.models import SealRegistration

    with kiosk.db.session() as session:
        sealed = {s.resident_id for s in session.exec(select(SealRegistration)).all()}
    resident = _eligible(kiosk.db)
    kiosk.begin("inkan")
    kiosk.enter_pin("1234")
    kiosk.bridge_answers(resident.atena_number)
    expected = "/kiosk/0101/options" if resident.id in sealed else "/kiosk/0101/refused"
    assert kiosk.follow("wait").headers["location"] == expected


def test_unknown_command_and_bad_token_are_refused(kiosk: Kiosk) -> None:
    ok = {"ok": False, "error": "no_card"}
    assert kiosk.client.post("/devices/api/commands/nope", json=ok).status_code == 401
    headers = {"Authorization": f"Bearer {kiosk.token}"}
    assert kiosk.client.post("/devices/api/commands/nope", json=ok, headers=headers).status_code == 404


def _assert_no_pin_stored(db: Database) -> None:
    """Nothing written — events, audit entries, kiosk sessions — carries the PIN."""
    import json

    from app.models import KioskSession

    with db.session() as session:
        written = [
            *(json.dumps(e.data) for e in session.exec(select(EventRecord)).all()),
            *(json.dumps(a.detail) for a in session.exec(select(AuditEntry)).all()),
            *(json.dumps([k.result, k.options, k.nonce]) for k in session.exec(select(KioskSession)).all()),
        ]
    assert written
    for text in written:
        assert '"pin"' not in text and '"1234"' not in text


def _walk_to_request(kiosk: Kiosk, resident: Resident, kind: str = "juminhyo", copies: str = "1") -> None:
    kiosk.begin(kind)
    kiosk.enter_pin("1234")
    kiosk.bridge_answers(resident.atena_number)
    assert kiosk.follow("wait").headers["location"] == "/kiosk/0101/options"
    kiosk.post("options", {"scope": "all", "copies": copies})
    key = re.search(r'name="idempotency_key" value="([^"]+)"', kiosk.follow("confirm").text)
    assert key
    kiosk.post("confirm", {"idempotency_key": key.group(1)})
    kiosk.drain_prints()


def test_automatic_printing_queues_a_signed_certificate_that_verifies(kiosk: Kiosk, tmp_path: Path) -> None:
    from app.models import CertificateIssue, IssuedCopy
    from app.printing.verify import issue_number_slug

    resident = _eligible(kiosk.db)
    _walk_to_request(kiosk, resident, copies="2")
    with kiosk.db.session() as session:
        request = session.exec(select(CertificateRequest)).one()
        assert request.reason == ""
        issue = session.exec(select(CertificateIssue)).one()
        copies = session.exec(select(IssuedCopy)).all()
        office = session.exec(select(PrintJob).where(PrintJob.printer == PrinterKind.OFFICE)).one()
    assert len({c.issue_number.rsplit(" ", 1)[0] for c in copies}) == 2  # each copy its own 発行番号
    assert office.payload["document_key"] == issue.document_key
    pdf = kiosk.client.app.state.objects.get(issue.document_key)  # type: ignore[attr-defined]
    assert pdf.startswith(b"%PDF")
    # The back office's bridge reports the print done: the request is 印刷済.
    with kiosk.db.write_session() as session:
        device = session.get(Device, office.device_id)
        assert device is not None and office.id is not None
        from app.domain.devices import PrintJobState

        device_service.report(session, device, office.id, attempt=1, state=PrintJobState.DONE)
        session.commit()
        assert session.get(CertificateRequest, request.id).state == RequestState.PRINTED  # type: ignore[union-attr]
    # The public verify page knows the paper, and says nothing personal.
    page = kiosk.client.get(f"/verify/{issue_number_slug(copies[0].issue_number)}?h={issue.sha256[:16]}")
    assert page.status_code == 200 and "発行したものです" in page.text
    assert resident.family_name not in page.text
    forged = kiosk.client.get(f"/verify/{issue_number_slug(copies[0].issue_number)}?h={'0' * 16}")
    assert "一致しません" in forged.text


def test_printer_trouble_keeps_the_request_and_tells_staff(kiosk: Kiosk) -> None:
    with kiosk.db.write_session() as session:
        office = session.exec(select(Device).where(Device.code == "0102")).one()
        office.revoked = True  # the back office has no working printer terminal
        session.add(office)
        session.commit()
    _walk_to_request(kiosk, _eligible(kiosk.db))
    with kiosk.db.session() as session:
        request = session.exec(select(CertificateRequest)).one()
    assert request.state == RequestState.RECEIVED
    assert "自動印刷できません" in request.reason


# The staff queue ----------------------------------------------------------------------------


def _staff_sign_in(kiosk: Kiosk) -> str:
    """The demo town's clerk (the kiosk fixture loads the demo town)."""
    token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', kiosk.client.get("/kiosk/").text)
    assert token
    signed_in = kiosk.client.post(
        "/staff/login",
        data={"login_id": "clerk", "password": "demo-clerk-pass", "csrf_token": token.group(1)},
    )
    assert signed_in.status_code == 303
    return token.group(1)


def _manual(kiosk: Kiosk) -> None:
    with kiosk.db.write_session() as session:
        location = session.exec(select(Location).where(Location.code == "01")).one()
        location.settings = {**location.settings, "auto_print": False}
        session.add(location)
        session.commit()


def test_manual_location_waits_for_a_click_then_prints(kiosk: Kiosk) -> None:
    _manual(kiosk)
    _walk_to_request(kiosk, _eligible(kiosk.db))
    with kiosk.db.session() as session:
        request = session.exec(select(CertificateRequest)).one()
        assert request.state == RequestState.AWAITING_CONFIRMATION
        assert session.exec(select(CertificateIssue)).first() is None  # nothing printed yet
    token = _staff_sign_in(kiosk)
    page = kiosk.client.get("/staff/queue")
    assert page.status_code == 200 and "確認待ち" in page.text
    kiosk.client.post(f"/staff/queue/{request.id}/print", data={"csrf_token": token})
    kiosk.drain_prints()
    with kiosk.db.session() as session:
        issue = session.exec(select(CertificateIssue)).one()
        assert issue.issued_by is not None
        actions = [e.action for e in session.exec(select(AuditEntry)).all()]
    assert "certificate.print" in actions


def test_cancel_needs_a_reason_and_hand_over_follows_printing(kiosk: Kiosk) -> None:
    _manual(kiosk)
    _walk_to_request(kiosk, _eligible(kiosk.db))
    token = _staff_sign_in(kiosk)
    with kiosk.db.session() as session:
        request = session.exec(select(CertificateRequest)).one()
    early = kiosk.client.post(f"/staff/queue/{request.id}/handover", data={"csrf_token": token})
    assert early.status_code == 422 and "交付済" in early.text
    no_reason = kiosk.client.post(
        f"/staff/queue/{request.id}/cancel", data={"csrf_token": token, "reason": " "}
    )
    assert no_reason.status_code == 422 and "取消の理由を入力してください。" in no_reason.text
    done = kiosk.client.post(
        f"/staff/queue/{request.id}/cancel", data={"csrf_token": token, "reason": "本人が不要と申し出"}
    )
    assert done.status_code == 303
    with kiosk.db.session() as session:
        cancelled = session.get(CertificateRequest, request.id)
        assert cancelled is not None and cancelled.state == RequestState.CANCELLED
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "certificate.cancelled")).one()
        assert entry.detail["reason"] == "本人が不要と申し出"


def test_a_bridge_that_never_answers_gives_a_clear_message(kiosk: Kiosk) -> None:
    from datetime import timedelta

    from app.models import KioskSession

    kiosk.begin("juminhyo")
    kiosk.enter_pin("1234")
    assert kiosk.follow("wait").status_code == 200  # still checking
    with kiosk.db.write_session() as session:
        row = session.exec(select(KioskSession)).one()
        row.updated_at = row.updated_at - timedelta(seconds=30)
        session.add(row)
        session.commit()
    assert kiosk.follow("wait").headers["location"] == "/kiosk/0101/card"
    assert "読み取り機から応答がありません" in kiosk.follow("card").text
