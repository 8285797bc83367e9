"""The reader driver through real pcscd + vpcd, with the simulated card on the other side.

Uses vpcd slot 1 ("Virtual PCD 00 01", port 35964) so a demo console on slot 0 is left alone.
pcscd is reused if it already serves the vpcd readers, otherwise started (and stopped) here;
the tests skip with the reason if pcscd or vsmartcard-vpcd is not installed or cannot start.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from device_bridge.drivers.apdu import CardRemovedError
from device_bridge.drivers.mynumber import (
    CardBlocked,
    InvalidPinFormat,
    MyNumberCard,
    PinRequired,
    UnsupportedCard,
    WrongPin,
)
from device_bridge.drivers.pcsc import CardEvent, CardInserted, CardRemoved, PcscReader
from device_bridge.simulators.jpki_ca import CaKind, Holder, JpkiDemoCa
from device_bridge.simulators.mynumber_card import CardProfile, OtherCard, SimulatedMyNumberCard
from device_bridge.simulators.vpcd import (
    VPCD_PORT,
    PcscdUnavailable,
    VpcdLink,
    running_pcscd,
    vpcd_reader_name,
)

pytestmark = pytest.mark.pcsc

SLOT = 1
READER = vpcd_reader_name(SLOT)


@pytest.fixture(scope="module")
def pcscd() -> Iterator[bool]:
    try:
        with running_pcscd() as started:
            yield started
    except PcscdUnavailable as error:
        pytest.skip(f"pcscd with vpcd not available: {error}")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> JpkiDemoCa:
    return JpkiDemoCa.load_or_create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def profile(ca: JpkiDemoCa) -> CardProfile:
    holder = Holder("髙橋　一郎", "大阪府大阪市北区中之島１－３－２０", date(1975, 11, 3), "1")
    return CardProfile.issued(ca, "PCSC1", holder, "1F2E3D4C", "1F2E3D4D")


@pytest.fixture
def link(pcscd: bool) -> Iterator[VpcdLink]:
    with VpcdLink(port=VPCD_PORT + SLOT) as vpcd_link:
        yield vpcd_link


@pytest.fixture
def reader(pcscd: bool) -> Iterator[PcscReader]:
    with PcscReader(READER) as pcsc_reader:
        yield pcsc_reader


@pytest.fixture
def card(profile: CardProfile, tmp_path: Path) -> SimulatedMyNumberCard:
    return SimulatedMyNumberCard(profile, tmp_path / "state.json")


def insert(link: VpcdLink, reader: PcscReader, card: SimulatedMyNumberCard | OtherCard) -> MyNumberCard:
    reader.wait_for_removal(5)  # a card from the previous test must be gone first
    link.insert(card)
    assert reader.wait_for_card(5), "pcscd did not see the simulated card"
    return MyNumberCard(reader.connect())


def _public_key(der: bytes) -> rsa.RSAPublicKey:
    key = x509.load_der_x509_certificate(der).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def test_reader_is_listed(reader: PcscReader) -> None:
    assert READER in reader.list_readers()
    assert reader.reader_name == READER


def test_read_certificates_and_sign_a_nonce(
    link: VpcdLink, reader: PcscReader, card: SimulatedMyNumberCard, ca: JpkiDemoCa
) -> None:
    mnc = insert(link, reader, card)
    assert mnc.is_my_number_card()
    cert_der = mnc.read_auth_certificate()
    cert = x509.load_der_x509_certificate(cert_der)
    assert cert.serial_number == 0x1F2E3D4C
    assert mnc.read_auth_ca_certificate() == ca.root_der(CaKind.AUTH)
    cert.verify_directly_issued_by(ca.root_certificate(CaKind.AUTH))
    assert mnc.auth_pin_tries_left() == 3
    mnc.verify_auth_pin("1234")
    nonce = b"\x00\x01server-nonce-" + bytes(range(32))
    signature = mnc.sign_with_auth_key(nonce)
    _public_key(cert_der).verify(signature, nonce, padding.PKCS1v15(), hashes.SHA256())


def test_tries_left_query_spends_nothing(
    link: VpcdLink, reader: PcscReader, card: SimulatedMyNumberCard
) -> None:
    mnc = insert(link, reader, card)
    assert [mnc.auth_pin_tries_left() for _ in range(5)] == [3] * 5
    assert mnc.kenhojo_pin_tries_left() == 3


def test_wrong_pin_then_tries_left(link: VpcdLink, reader: PcscReader, card: SimulatedMyNumberCard) -> None:
    mnc = insert(link, reader, card)
    with pytest.raises(WrongPin) as error:
        mnc.verify_auth_pin("4321")
    assert error.value.tries_left == 2
    assert mnc.auth_pin_tries_left() == 2
    mnc.verify_auth_pin("1234")
    assert mnc.auth_pin_tries_left() == 3


def test_malformed_pin_sends_nothing(link: VpcdLink, reader: PcscReader, card: SimulatedMyNumberCard) -> None:
    mnc = insert(link, reader, card)
    before = link.apdu_count
    with pytest.raises(InvalidPinFormat):
        mnc.verify_auth_pin("12345")
    assert link.apdu_count == before


def test_blocked_path_persists(
    link: VpcdLink, reader: PcscReader, card: SimulatedMyNumberCard, profile: CardProfile, tmp_path: Path
) -> None:
    mnc = insert(link, reader, card)
    for tries in (2, 1):
        with pytest.raises(WrongPin) as error:
            mnc.verify_auth_pin("0000")
        assert error.value.tries_left == tries
    with pytest.raises(CardBlocked) as exhausted:
        mnc.verify_auth_pin("0000")
    assert exhausted.value.sw == 0x63C0
    with pytest.raises(CardBlocked) as blocked:
        mnc.verify_auth_pin("1234")
    assert blocked.value.sw == 0x6984
    assert blocked.value.message == "暗証番号がロックされています。窓口へお越しください。"
    # Out of the reader and back in (a new simulator instance on the same state file): still blocked.
    reader.disconnect()
    link.remove()
    assert reader.wait_for_removal(5)
    again = insert(link, reader, SimulatedMyNumberCard(profile, tmp_path / "state.json"))
    assert again.auth_pin_tries_left() == 0
    with pytest.raises(CardBlocked):
        again.verify_auth_pin("1234")


def test_card_face(
    link: VpcdLink, reader: PcscReader, card: SimulatedMyNumberCard, profile: CardProfile
) -> None:
    mnc = insert(link, reader, card)
    face = mnc.read_card_face("1234")
    assert face.name == "髙橋　一郎"
    assert face.address == profile.address
    assert face.birth_date == date(1975, 11, 3)
    assert face.sex == "1"
    assert mnc.read_my_number("1234") == "123456789018"


def test_sign_needs_pin_and_disconnect_resets_the_card(
    link: VpcdLink, reader: PcscReader, card: SimulatedMyNumberCard
) -> None:
    mnc = insert(link, reader, card)
    with pytest.raises(PinRequired):
        mnc.sign_with_auth_key(b"nonce")
    mnc.verify_auth_pin("1234")
    reader.disconnect()  # resets the card: the verified PIN does not outlive the session
    mnc = MyNumberCard(reader.connect())
    with pytest.raises(PinRequired):
        mnc.sign_with_auth_key(b"nonce")


def test_removal_mid_transaction(link: VpcdLink, reader: PcscReader, card: SimulatedMyNumberCard) -> None:
    mnc = insert(link, reader, card)
    mnc.verify_auth_pin("1234")
    link.remove()
    with pytest.raises(CardRemovedError) as error:
        mnc.read_auth_certificate()
    assert error.value.message == "カードが取り外されました。もう一度カードを置いてください。"
    assert reader.wait_for_removal(5)
    with pytest.raises(CardRemovedError):
        mnc.auth_pin_tries_left()


def test_unknown_card(link: VpcdLink, reader: PcscReader, profile: CardProfile) -> None:
    mnc = insert(link, reader, OtherCard())
    assert not mnc.is_my_number_card()
    with pytest.raises(UnsupportedCard) as error:
        mnc.require_my_number_card()
    assert error.value.message == "このカードは読み取れません"
    reader.disconnect()
    link.remove()
    juki = SimulatedMyNumberCard(replace(profile, token="JPKIAPICCTOKEN"))  # an old 住基カード
    with pytest.raises(UnsupportedCard):
        insert(link, reader, juki).require_my_number_card()


def test_wait_for_card_times_out_without_a_card(reader: PcscReader, link: VpcdLink) -> None:
    assert reader.wait_for_removal(5)
    started = time.monotonic()
    assert not reader.wait_for_card(0.3)
    assert time.monotonic() - started >= 0.25
    assert not reader.card_present()


def test_presence_watcher(link: VpcdLink, reader: PcscReader, card: SimulatedMyNumberCard) -> None:
    assert reader.wait_for_removal(5)
    events: list[CardEvent] = []
    changed = threading.Condition()

    def on_event(event: CardEvent) -> None:
        with changed:
            events.append(event)
            changed.notify_all()

    with reader.watch(on_event):
        link.insert(card)
        with changed:
            assert changed.wait_for(lambda: len(events) >= 1, timeout=5)
        link.remove()
        with changed:
            assert changed.wait_for(lambda: len(events) >= 2, timeout=5)
    assert events[0] == CardInserted(READER, card.atr)
    assert events[1] == CardRemoved(READER)
    assert not any(t.name == "pcsc-presence" for t in threading.enumerate())


def test_kiosk_face_read_through_pcscd(
    link: VpcdLink, reader: PcscReader, card: SimulatedMyNumberCard, profile: CardProfile
) -> None:
    """The bridge's ``card.read_face`` as it runs on a terminal: its own reader session, one
    PIN try, the card reset afterwards."""
    from device_bridge.kiosk_card import read_face_card

    reader.wait_for_removal(5)
    link.insert(card)
    assert reader.wait_for_card(5), "pcscd did not see the simulated card"
    answer = read_face_card(READER, "1234")
    assert answer["ok"] is True
    assert answer["face"] == {
        "name": "髙橋　一郎",
        "address": profile.address,
        "birth_date": "1975-11-03",
        "birth_text": "19751103",
        "sex": "1",
    }
    assert base64.b64decode(answer["auth_certificate"]) == profile.auth_cert
    assert read_face_card(READER, "4321") == {"ok": False, "error": "wrong_pin", "tries_left": 2}
    # The reader was closed with a reset: the verified PIN did not outlive the read.
    mnc = MyNumberCard(reader.connect())
    assert mnc.kenhojo_pin_tries_left() == 2
    transport = mnc.transport
    assert transport.transmit(bytes.fromhex("00A4040C0AD3921000310001010408"))[-2:] == b"\x90\x00"
    assert transport.transmit(bytes.fromhex("00A4020C020002"))[-2:] == b"\x90\x00"
    assert transport.transmit(bytes.fromhex("00B0000004"))[-2:] == b"\x69\x82"  # needs the PIN again
    reader.disconnect()
    link.remove()
    assert reader.wait_for_removal(5)
    assert read_face_card(READER, "1234") == {"ok": False, "error": "no_card"}
