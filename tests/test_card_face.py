"""Reading the card face (券面事項入力補助AP) at a kiosk: the server side and the bridge's read.

The bridge's part is the real bridge code (`read_face_with`) on the simulated card, straight
through DirectTransport; the server's part is the real app with the demo JPKI CA. The pcscd
version of the bridge's read is in tests/test_mynumber_pcsc.py.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select
from starlette.testclient import TestClient

from app.db import Database
from app.demo.generator import generate_demo
from app.domain.certificates import CertificateType
from app.domain.registry import DeviceKind
from app.integrations.jpki import CrlRevocationChecker, TrustStore
from app.models import AuditEntry, Device, EventRecord, KioskSession, Resident
from app.services import card_face, devices as device_service, kiosk as kiosk_service
from app.services.audit import Actor
from app.services.card_face import FaceResult, clean_face, face_address, face_to_person
from app.services.kiosk import KioskError
from device_bridge.drivers.apdu import CardRemovedError
from device_bridge.drivers.mynumber import EF_AUTH_CERT, JPKI_AID, KENHOJO_AID, MyNumberCard
from device_bridge.kiosk_card import read_face_with
from device_bridge.simulators.card_store import CardHolder, CardStore
from device_bridge.simulators.jpki_ca import Holder, JpkiDemoCa
from device_bridge.simulators.mynumber_card import (
    CardProfile,
    DirectTransport,
    OtherCard,
    SimulatedMyNumberCard,
)
from tests.conftest import make_settings

PIN = "5820"  # not the demo PIN: easy to look for in logs and rows
EF_KENHOJO_PIN = 0x0011


# -- the bridge's read -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> JpkiDemoCa:
    return JpkiDemoCa.load_or_create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def profile(ca: JpkiDemoCa) -> CardProfile:
    holder = Holder("渡邉　花子", "山形県酒田市本町二丁目２－１　酒田ハイツ１０１号", date(1988, 4, 30), "2")
    return CardProfile.issued(ca, "FACE1", holder, "5A6B7C8D9E", "5A6B7C8D9F", kenhojo_pin=PIN)


@pytest.fixture
def card(profile: CardProfile, tmp_path: Path) -> SimulatedMyNumberCard:
    simulated = SimulatedMyNumberCard(profile, tmp_path / "state.json")
    simulated.power_on()
    return simulated


class Recorder:
    """DirectTransport that records commands and can pull the card out after `remove_after`."""

    def __init__(self, card: SimulatedMyNumberCard | OtherCard, remove_after: int | None = None) -> None:
        self.card = card
        self.sent: list[bytes] = []
        self.remove_after = remove_after

    def transmit(self, apdu: bytes | bytearray) -> bytes:
        if self.remove_after is not None and len(self.sent) >= self.remove_after:
            raise CardRemovedError(detail="taken out (test)")
        self.sent.append(bytes(apdu))
        return self.card.execute(bytes(apdu))

    def verifies(self) -> int:
        """VERIFY commands that carried a PIN (the empty ones only ask for the tries left)."""
        return sum(1 for a in self.sent if a[:2] == b"\x00\x20" and len(a) > 5)


def test_right_pin_reads_the_face_and_the_certificate(
    card: SimulatedMyNumberCard, profile: CardProfile
) -> None:
    recorder = Recorder(card)
    answer = read_face_with(MyNumberCard(recorder), PIN)
    assert answer == {
        "ok": True,
        "face": {
            "name": "渡邉　花子",
            "address": "山形県酒田市本町二丁目２－１　酒田ハイツ１０１号",
            "birth_date": "1988-04-30",
            "birth_text": "19880430",
            "sex": "2",
        },
        "auth_certificate": base64.b64encode(profile.auth_cert).decode(),
    }
    assert recorder.verifies() == 1
    assert card.tries_left(KENHOJO_AID, EF_KENHOJO_PIN) == 3


def test_wrong_pin_reports_the_tries_left(card: SimulatedMyNumberCard) -> None:
    recorder = Recorder(card)
    assert read_face_with(MyNumberCard(recorder), "0000") == {
        "ok": False,
        "error": "wrong_pin",
        "tries_left": 2,
    }
    assert recorder.verifies() == 1  # one try, never retried
    assert card.tries_left(KENHOJO_AID, EF_KENHOJO_PIN) == 2
    assert card.tries_left(JPKI_AID, 0x0018) == 3  # the other PIN is untouched


def test_last_wrong_pin_and_a_blocked_card_spend_no_more(card: SimulatedMyNumberCard) -> None:
    for expected in (
        {"ok": False, "error": "wrong_pin", "tries_left": 2},
        {"ok": False, "error": "wrong_pin", "tries_left": 1},
    ):
        assert read_face_with(MyNumberCard(DirectTransport(card)), "0000") == expected
    assert read_face_with(MyNumberCard(DirectTransport(card)), "0000") == {
        "ok": False,
        "error": "blocked",
        "tries_left": 0,
    }
    recorder = Recorder(card)
    # Blocked: reported from the tries-left query; the right PIN is not even sent.
    assert read_face_with(MyNumberCard(recorder), PIN) == {"ok": False, "error": "blocked", "tries_left": 0}
    assert recorder.verifies() == 0


def test_malformed_pin_is_not_sent(card: SimulatedMyNumberCard) -> None:
    recorder = Recorder(card)
    assert read_face_with(MyNumberCard(recorder), "12a4") == {"ok": False, "error": "invalid_pin"}
    assert recorder.verifies() == 0
    assert card.tries_left(KENHOJO_AID, EF_KENHOJO_PIN) == 3


def test_card_removed_during_the_read(card: SimulatedMyNumberCard) -> None:
    probe = Recorder(card)
    read_face_with(MyNumberCard(probe), PIN)
    verify_at = next(i for i, a in enumerate(probe.sent) if a[:2] == b"\x00\x20" and len(a) > 5)
    # Taken out right after the PIN was verified, while 基本4情報 was being read.
    answer = read_face_with(MyNumberCard(Recorder(card, remove_after=verify_at + 1)), PIN)
    assert answer == {"ok": False, "error": "removed"}


def test_certificate_left_out_when_the_card_goes_after_the_face(card: SimulatedMyNumberCard) -> None:
    probe = Recorder(card)
    read_face_with(MyNumberCard(probe), PIN)
    select_cert = bytes.fromhex("00A4020C02") + EF_AUTH_CERT.to_bytes(2, "big")
    cert_at = probe.sent.index(select_cert)
    answer = read_face_with(MyNumberCard(Recorder(card, remove_after=cert_at)), PIN)
    assert answer["ok"] is True and answer["face"]["name"] == "渡邉　花子"
    assert "auth_certificate" not in answer


def test_other_cards_and_a_missing_card() -> None:
    assert read_face_with(MyNumberCard(Recorder(OtherCard())), PIN) == {"ok": False, "error": "unsupported"}
    assert read_face_with(MyNumberCard(Recorder(OtherCard(), remove_after=0)), PIN) == {
        "ok": False,
        "error": "removed",
    }


def test_the_bridge_read_logs_no_pin_and_no_face(
    card: SimulatedMyNumberCard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert read_face_with(MyNumberCard(DirectTransport(card)), PIN)["ok"]
    assert read_face_with(MyNumberCard(DirectTransport(card)), "0000")["error"] == "wrong_pin"
    assert PIN not in caplog.text and "0000" not in caplog.text
    assert "渡邉" not in caplog.text and "酒田" not in caplog.text


# -- pure helpers for forms ------------------------------------------------------------------------


def test_face_to_person_splits_at_the_first_space() -> None:
    face = {
        "name": "渡邉　花子",
        "birth_date": "1988-04-30",
        "birth_text": "19880430",
        "sex": "2",
        "address": "x",
    }
    person = face_to_person(face, "card-1")
    assert (person.key, person.family_name, person.given_name) == ("card-1", "渡邉", "花子")
    assert (person.birth_date, person.sex, person.source) == (date(1988, 4, 30), "2", "card")
    assert person.name == "渡邉　花子"
    half = face_to_person({**face, "name": "SMITH JOHN　PAUL", "sex": "1"}, "k")
    assert (half.family_name, half.given_name, half.sex) == ("SMITH", "JOHN　PAUL", "1")
    # Characters are kept as on the card: no NFKC, no 異体字 folding.
    odd = face_to_person({**face, "name": "髙﨑　ｶﾅ"}, "k")
    assert (odd.family_name, odd.given_name) == ("髙﨑", "ｶﾅ")
    single = face_to_person({**face, "name": "ワン"}, "k")
    assert (single.family_name, single.given_name) == ("ワン", "")


def test_face_to_person_sex_and_birth_date_fallbacks() -> None:
    base = {"name": "山田　一", "address": "", "birth_date": None, "birth_text": "19751103", "sex": "9"}
    person = face_to_person(base, "k")
    assert person.sex == ""  # 適用不能 is not a form's 男/女
    assert person.birth_date == date(1975, 11, 3)  # from the raw digits
    assert face_to_person({**base, "birth_text": "19750230", "sex": "0"}, "k").birth_date is None


def test_face_address_is_one_line() -> None:
    address = face_address({"address": "山形県酒田市本町二丁目２－１　酒田ハイツ１０１号"})
    assert address.address == "山形県酒田市本町二丁目２－１　酒田ハイツ１０１号"
    assert (address.postal_code, address.katagaki) == ("", "")


def test_clean_face_keeps_the_card_text_and_refuses_garbage() -> None:
    face = {
        "name": "渡邉　花子",
        "address": "酒田市",
        "birth_date": "1988-04-30",
        "birth_text": "19880430",
        "sex": "2",
    }
    assert clean_face(face) == face
    assert clean_face({**face, "birth_date": None})["birth_date"] == "1988-04-30"  # type: ignore[index]
    assert clean_face({**face, "birth_date": None, "birth_text": "19880231"})["birth_date"] is None  # type: ignore[index]
    for bad in (
        None,
        "text",
        {**face, "name": ""},
        {**face, "name": 5},
        {**face, "name": "あ" * 201},
        {**face, "sex": "3"},
        {**face, "birth_text": "1988-4-30"},
        {k: v for k, v in face.items() if k != "address"},
    ):
        assert clean_face(bad) is None, bad
    assert FaceResult.from_json({"ok": True, "face": {**face, "sex": "x"}}) == FaceResult(
        ok=False, error="reader"
    )
    assert FaceResult.from_json({"ok": True, "face": face, "auth_certificate": "%%%"}).certificate == b""
    assert FaceResult.from_json({"ok": False, "error": "wrong_pin", "tries_left": True}).tries_left is None


# -- the server ------------------------------------------------------------------------------------


@dataclass
class Env:
    client: TestClient
    db: Database
    store: CardStore
    token: str
    other_token: str
    sent: list[dict[str, Any]]

    def device(self, session: Any, code: str = "0101") -> Device:
        return session.exec(select(Device).where(Device.code == code)).one()

    def start(self, pin: str = PIN) -> str:
        """A kiosk walk on 0101 that sends the face PIN; returns the row id."""
        with self.db.write_session() as session:
            device = self.device(session)
            cookie = kiosk_service.begin(session, device, CertificateType.JUMINHYO, "ja")
            row = session.get(KioskSession, kiosk_service.session_id(cookie))
            assert row is not None
            card_face.send_face_pin(session, row, device, pin)
            session.commit()
            return row.id

    def row(self, row_id: str) -> KioskSession:
        with self.db.session() as session:
            row = session.get(KioskSession, row_id)
            assert row is not None
            return row

    def answer(self, answer: dict[str, Any], command_id: str | None = None, token: str | None = None) -> int:
        command_id = command_id or self.sent[-1]["command_id"]
        response = self.client.post(
            f"/devices/api/commands/{command_id}",
            json=answer,
            headers={"Authorization": f"Bearer {token or self.token}"},
        )
        return response.status_code

    def bridge_reads(self, card: SimulatedMyNumberCard) -> int:
        """What the bridge does with the command: the real bridge code on the card."""
        command = self.sent[-1]
        assert command["command"] == "card.read_face"
        card.power_on()
        return self.answer(
            read_face_with(MyNumberCard(DirectTransport(card)), command["pin"]), command["command_id"]
        )


@pytest.fixture
def env(sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    from app.web.app import create_app

    generate_demo(sqlite_db, residents=60, today=date.today())
    store = CardStore(tmp_path / "cards")
    settings = make_settings(
        tmp_path,
        sqlite_db,
        jpki_trust_roots=str(store.ca.root_pem_path()),
        jpki_crls=str(store.ca.crl_pem_path()),
    )
    sent: list[dict[str, Any]] = []
    real_send = card_face.send_transient

    def capture(topic: str, type_: str, data: dict[str, Any]) -> None:
        sent.append(dict(data))
        real_send(topic, type_, data)  # the real path too: it must not write or log the PIN

    monkeypatch.setattr("app.services.card_face.send_transient", capture)
    with sqlite_db.write_session() as session:
        kiosks = session.exec(
            select(Device).where(Device.kind == DeviceKind.KIOSK).order_by(col(Device.code))
        ).all()
        assert kiosks[0].code == "0101" and len(kiosks) > 1
        tokens = [device_service.rotate_token(session, Actor.system("test"), d.id or 0) for d in kiosks[:2]]
        session.commit()
    app = create_app(settings, db=sqlite_db)
    with TestClient(app, follow_redirects=False) as client:
        yield Env(client, sqlite_db, store, tokens[0], tokens[1], sent)


def _resident_with_card(db: Database) -> Resident:
    with db.session() as session:
        return session.exec(
            select(Resident)
            .where(Resident.auth_cert_serial != "", col(Resident.birth_date).is_not(None))
            .order_by(col(Resident.id))
        ).first()  # type: ignore[return-value]


def _card(env: Env, holder: CardHolder) -> SimulatedMyNumberCard:
    profile = replace(env.store.profile(holder), kenhojo_pin=PIN)
    return SimulatedMyNumberCard(profile, env.store.state_path(holder.serial))


def _face_audits(db: Database) -> list[AuditEntry]:
    with db.session() as session:
        return list(
            session.exec(select(AuditEntry).where(AuditEntry.action == card_face.CARD_FACE_ACTION)).all()
        )


def test_face_read_matches_the_resident_and_is_audited(env: Env) -> None:
    resident = _resident_with_card(env.db)
    holder = CardHolder.from_resident(resident)
    row_id = env.start()
    assert env.sent[-1] == {"command": "card.read_face", "command_id": env.sent[-1]["command_id"], "pin": PIN}
    assert env.row(row_id).step == "reading_face"
    assert env.bridge_reads(_card(env, holder)) == 200
    row = env.row(row_id)
    assert row.step == "face_read"
    assert row.result == {
        "face": {
            "name": holder.name,
            "address": holder.address,
            "birth_date": holder.birth.isoformat(),
            "birth_text": holder.birth.strftime("%Y%m%d"),
            "sex": holder.sex,
        },
        "match": "matched",
    }
    assert row.resident_id == resident.id
    assert row.auth_cert_serial and int(row.auth_cert_serial, 16) == int(resident.auth_cert_serial, 16)
    assert row.command_id == ""
    person = face_to_person(row.result["face"], resident.atena_number)
    assert person.name == resident.full_name and person.birth_date == resident.birth_date
    [entry] = _face_audits(env.db)
    assert (entry.actor_type, entry.actor_id, entry.target_type, entry.target_id) == (
        "resident",
        str(resident.id),
        "resident",
        str(resident.id),
    )
    assert entry.detail["device"] == "0101" and entry.detail["outcome"] == "matched"
    assert entry.detail["items"] == ["name", "address", "birth_date", "sex"]
    assert entry.detail["serial_verified"] is True
    assert holder.name not in json.dumps(entry.detail, ensure_ascii=False)  # the read, not the data


def test_a_card_nobody_carries_is_read_but_not_matched(env: Env) -> None:
    holder = replace(
        CardHolder.from_resident(_resident_with_card(env.db)),
        atena_number="999999999999",
        auth_cert_serial="7EEDFACE01",
    )
    row_id = env.start()
    assert env.bridge_reads(_card(env, holder)) == 200
    row = env.row(row_id)
    assert (row.step, row.result["match"], row.resident_id, row.auth_cert_serial) == (
        "face_read",
        "no_match",
        None,
        "",
    )
    assert row.result["face"]["name"] == holder.name
    [entry] = _face_audits(env.db)
    assert (entry.actor_id, entry.target_id, entry.detail["outcome"], entry.detail["serial"]) == (
        "",
        "",
        "no_match",
        "7EEDFACE01",
    )


def test_a_revoked_certificate_is_not_matched(env: Env) -> None:
    resident = _resident_with_card(env.db)
    env.store.ca.revoke(resident.auth_cert_serial)
    row_id = env.start()
    assert env.bridge_reads(_card(env, CardHolder.from_resident(resident))) == 200
    row = env.row(row_id)
    assert row.step == "face_read" and row.resident_id is None
    assert (row.result["match"], row.result["certificate_error"]) == ("unverified", "revoked")
    [entry] = _face_audits(env.db)
    assert (entry.detail["outcome"], entry.detail["code"]) == ("unverified", "revoked")


def test_wrong_pin_goes_back_to_the_pin_with_the_tries_left(env: Env) -> None:
    card = _card(env, CardHolder.from_resident(_resident_with_card(env.db)))
    row_id = env.start("0000")
    assert env.bridge_reads(card) == 200
    row = env.row(row_id)
    assert (row.step, row.result, row.resident_id) == (
        "face_pin",
        {"error": "wrong_pin", "tries_left": 2},
        None,
    )
    assert _face_audits(env.db) == []
    # The right PIN next time works, and a blocked card is reported as such.
    env.start()
    assert env.bridge_reads(card) == 200
    for _ in range(3):
        env.start("0000")
        env.bridge_reads(card)
    row_id = env.start()
    assert env.bridge_reads(card) == 200
    assert env.row(row_id).result == {"error": "blocked", "tries_left": 0}


def test_no_certificate_or_no_card_checks(env: Env) -> None:
    face = {
        "name": "山田　太郎",
        "address": "酒田市",
        "birth_date": "1980-02-17",
        "birth_text": "19800217",
        "sex": "1",
    }
    row_id = env.start()
    assert env.answer({"ok": True, "face": face}) == 200
    assert env.row(row_id).result == {"face": face, "match": "no_certificate"}
    # Card checks not configured: the face is kept, nobody is matched.
    holder = CardHolder.from_resident(_resident_with_card(env.db))
    env.start()
    command_id = env.sent[-1]["command_id"]
    answer = read_face_with(MyNumberCard(DirectTransport(_card(env, holder))), PIN)
    result = FaceResult.from_json(answer)
    with env.db.write_session() as session:
        device = env.device(session)
        assert card_face.receive_face_result(session, device, command_id, result, trust=None, revocation=None)
        session.commit()
    with env.db.session() as session:
        row = session.exec(select(KioskSession)).one()
    assert (row.result["match"], row.result["certificate_error"], row.resident_id) == (
        "unverified",
        "not_configured",
        None,
    )


def test_stale_repeated_and_superseded_answers_are_refused(env: Env) -> None:
    error = {"ok": False, "error": "no_card"}
    row_id = env.start()
    first = env.sent[-1]["command_id"]
    env.start()  # a new walk (and command) on the same kiosk
    second = env.sent[-1]["command_id"]
    assert env.answer(error, first) == 404
    assert env.answer(error, "nope") == 404
    assert env.answer(error, second) == 200
    assert env.answer(error, second) == 404  # one answer per command
    with env.db.session() as session:
        assert session.get(KioskSession, row_id) is None  # begin() wiped the first walk
        [row] = session.exec(select(KioskSession)).all()
    assert (row.step, row.result) == ("face_pin", {"error": "no_card", "tries_left": None})


def test_an_answer_from_another_kiosk_is_refused(env: Env) -> None:
    row_id = env.start()
    command_id = env.sent[-1]["command_id"]
    ok = {"ok": True, "face": {"name": "偽　名", "address": "", "birth_text": "", "sex": "1"}}
    assert env.answer(ok, command_id, token=env.other_token) == 404
    assert env.row(row_id).step == "reading_face"
    with env.db.write_session() as session:
        other = session.exec(
            select(Device).where(Device.code != "0101", Device.kind == DeviceKind.KIOSK)
        ).first()
        assert other is not None
        assert not card_face.receive_face_result(
            session, other, command_id, FaceResult.from_json(ok), trust=None, revocation=None
        )
    assert env.answer({"ok": False, "error": "removed"}, command_id) == 200
    assert env.row(row_id).result == {"error": "removed", "tries_left": None}


def test_a_bridge_that_never_answers_times_out(env: Env) -> None:
    row_id = env.start()
    command_id = env.sent[-1]["command_id"]
    row = env.row(row_id)
    assert not card_face.face_command_timed_out(row)
    assert not card_face.expire_face_command(row)
    later = row.updated_at + timedelta(seconds=25)
    assert card_face.face_command_timed_out(row, now=later)
    assert not kiosk_service.command_timed_out(row, now=later)  # not the certificate walk's step
    with env.db.write_session() as session:
        fresh = session.get(KioskSession, row_id)
        assert fresh is not None and card_face.expire_face_command(fresh, now=later)
        session.add(fresh)
        session.commit()
    assert (env.row(row_id).step, env.row(row_id).result["error"]) == ("face_pin", "no_answer")
    assert env.answer({"ok": False, "error": "no_card"}, command_id) == 404  # too late


def test_pin_format_is_checked_before_anything_is_sent(env: Env) -> None:
    for bad in ("123", "12345", "12a4", "１２３４", ""):
        with pytest.raises(KioskError) as error:
            env.start(bad)
        assert error.value.code == "pin_format"
    assert env.sent == []


def test_the_pin_is_nowhere_in_logs_or_rows(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    resident = _resident_with_card(env.db)
    card = _card(env, CardHolder.from_resident(resident))
    row_id = env.start()
    with env.db.session() as session:  # while the command is out
        waiting = session.get(KioskSession, row_id)
        assert waiting is not None
        assert PIN not in json.dumps([waiting.result, waiting.options, waiting.nonce, waiting.command_id])
    assert env.bridge_reads(card) == 200
    env.start("0000")
    assert env.bridge_reads(card) == 200
    assert PIN not in caplog.text and "0000" not in caplog.text
    with env.db.session() as session:
        written = [
            *(json.dumps(e.data) for e in session.exec(select(EventRecord)).all()),
            *(json.dumps(a.detail) for a in session.exec(select(AuditEntry)).all()),
            *(
                json.dumps([k.result, k.options, k.nonce, k.command_id, k.step])
                for k in session.exec(select(KioskSession)).all()
            ),
        ]
    assert written
    for text in written:
        assert '"pin"' not in text and PIN not in text and "0000" not in text


def test_certificate_walk_answers_still_reach_the_certificate_receiver(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same endpoint, a ``card.authenticate`` command: dispatched by the row's step."""
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr("app.services.kiosk.send_transient", lambda t, ty, d: sent.append(dict(d)))
    with env.db.write_session() as session:
        device = env.device(session)
        cookie = kiosk_service.begin(session, device, CertificateType.JUMINHYO, "ja")
        row = session.get(KioskSession, kiosk_service.session_id(cookie))
        assert row is not None
        kiosk_service.send_pin(session, row, device, "1234")
        session.commit()
        row_id = row.id
    assert env.answer({"ok": False, "error": "wrong_pin", "tries_left": 2}, sent[-1]["command_id"]) == 200
    assert (env.row(row_id).step, env.row(row_id).result) == ("card", {"error": "wrong_pin", "tries_left": 2})
    assert env.answer({"ok": True, "signature": "a"}, "unknown") == 400  # bad base64
    assert _face_audits(env.db) == []


def test_checks_use_the_configured_trust_store(env: Env, tmp_path: Path) -> None:
    """A certificate from another CA (same names, other key) is not matched even if a resident
    carries its serial."""
    resident = _resident_with_card(env.db)
    stranger = JpkiDemoCa.load_or_create(tmp_path / "other-ca")
    holder = CardHolder.from_resident(resident)
    credentials = stranger.card_credentials(
        "X1",
        holder.auth_cert_serial,
        "1234ABCD",
        Holder(holder.name, holder.address, holder.birth, holder.sex),
    )
    profile = replace(
        env.store.profile(holder),
        auth_cert=credentials.auth_cert,
        auth_key=credentials.auth_key,
        kenhojo_pin=PIN,
    )
    env.start()
    assert env.bridge_reads(SimulatedMyNumberCard(profile)) == 200
    with env.db.session() as session:
        row = session.exec(select(KioskSession)).one()
    assert (row.result["match"], row.result["certificate_error"], row.resident_id) == (
        "unverified",
        "untrusted_issuer",
        None,
    )
    # The real store's checks accept the genuine card.
    trust = TrustStore.from_pem_files([env.store.ca.root_pem_path()])
    checker = CrlRevocationChecker([env.store.ca.crl_pem_path()], trust)
    genuine = read_face_with(MyNumberCard(DirectTransport(_card(env, holder))), PIN)
    env.start()
    with env.db.write_session() as session:
        assert card_face.receive_face_result(
            session,
            env.device(session),
            env.sent[-1]["command_id"],
            FaceResult.from_json(genuine),
            trust=trust,
            revocation=checker,
        )
        session.commit()
        row = session.exec(select(KioskSession)).one()
        assert row.resident_id == resident.id


def test_kiosk_life_walk_fills_the_applicant_and_household_from_the_card(env: Env) -> None:
    """The life-event kiosk: card + 券面事項入力補助 PIN → the applicant and, once matched by the
    certificate serial, the household from the registry; a wrong PIN shows the tries left."""
    import re

    resident = _resident_with_card(env.db)
    holder = CardHolder.from_resident(resident)
    card = _card(env, holder)
    page = env.client.get("/kiosk/0101/life")
    csrf = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page.text)
    assert csrf
    begun = env.client.post("/kiosk/0101/life/begin", data={"csrf_token": csrf.group(1), "event": "tenkyo"})
    assert begun.headers["location"] == "/kiosk/0101/life/card"
    wrong = env.client.post("/kiosk/0101/life/pin", data={"csrf_token": csrf.group(1), "pin": "0000"})
    assert wrong.headers["location"] == "/kiosk/0101/life/wait"
    assert env.bridge_reads(card) == 200
    assert env.client.get("/kiosk/0101/life/wait").headers["location"] == "/kiosk/0101/life/card"
    assert "暗証番号が違います。 残り" in env.client.get("/kiosk/0101/life/card").text
    env.client.post("/kiosk/0101/life/pin", data={"csrf_token": csrf.group(1), "pin": PIN})
    page = env.client.get("/kiosk/0101/life/wait")
    assert page.status_code == 200  # still reading: the page polls itself
    assert env.bridge_reads(card) == 200
    assert env.client.get("/kiosk/0101/life/wait").headers["location"] == "/kiosk/0101/life/people"
    people = env.client.get("/kiosk/0101/life/people")
    assert resident.family_name in people.text
    with env.db.session() as session:
        from app.models import LifeCase

        case = session.exec(select(LifeCase)).one()
        assert case.applicant_resident_id == resident.id
        household = session.exec(select(Resident).where(Resident.household_id == resident.household_id)).all()
        assert len(case.data["members"]) == len([r for r in household if r.status.value == "resident"])
        assert PIN not in json.dumps(case.data)
