"""The simulated My Number Card and the reader driver, without pcscd.

APDU sequences are the ones real clients send (design note mynumber-card.md: tex2e's logs,
myna-browser-extension's SFI forms, OpenSC's signature command); the card's answers are checked
byte for byte.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from app.db import Database
from app.domain.registry import Sex
from app.models import Household, Resident
from device_bridge.drivers.apdu import (
    CardError,
    Response,
    build_apdu,
    der_total_length,
    read_binary_exact,
    read_der_object,
    transceive,
)
from device_bridge.drivers.drivers_licence import (
    GAIJI_MARK,
    CommonData,
    DriversLicenceCard,
    decode_jis_x0208,
    parse_licence_date,
)
from device_bridge.drivers.mynumber import (
    DIGEST_INFO_SHA256_PREFIX,
    JPKI_AID,
    KENHOJO_AID,
    CardBlocked,
    CardFace,
    InvalidPinFormat,
    MyNumberCard,
    PinKind,
    PinRequired,
    UnsupportedCard,
    WrongPin,
    is_valid_my_number,
    my_number_check_digit,
    parse_basic_four,
)
from device_bridge.simulators.card_console import CardConsole
from device_bridge.simulators.card_store import (
    DEMO_AUTH_PIN,
    DEMO_KENHOJO_PIN,
    CardStore,
    NoCardIssued,
    demo_my_number,
)
from device_bridge.simulators.jpki_ca import CaKind, Holder, JpkiDemoCa
from device_bridge.simulators.mynumber_card import (
    ATR,
    CardProfile,
    OtherCard,
    SimulatedMyNumberCard,
    basic_four_ef,
    my_number_ef,
    verification_code_b,
)
from device_bridge.simulators.vpcd import VpcdLink

H = bytes.fromhex

SELECT_JPKI = H("00A4040C0AD392F000260100000001")
SELECT_KENHOJO = H("00A4040C0AD3921000310001010408")
AIDS = [
    "D392F000260100000001",
    "D3921000310001010408",
    "D3921000310001010402",
    "D3921000310001010401",
    "D3921000310001010100",
]
DIGEST_INFO_NONCE = DIGEST_INFO_SHA256_PREFIX + bytes(range(32))


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> JpkiDemoCa:
    return JpkiDemoCa.load_or_create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def profile(ca: JpkiDemoCa) -> CardProfile:
    holder = Holder("山田　太郎", "東京都千代田区霞が関１－２－３", date(1980, 2, 17), "1")
    return CardProfile.issued(
        ca,
        "TEST1",
        holder,
        "0A1B2C3D4E5F",
        "0A1B2C3D4E60",
        card_expiry=date(2035, 2, 17),
        security_code="2285",
    )


@pytest.fixture
def card(profile: CardProfile, tmp_path: Path) -> SimulatedMyNumberCard:
    simulated = SimulatedMyNumberCard(profile, tmp_path / "state.json")
    simulated.power_on()
    return simulated


def run(card: SimulatedMyNumberCard, *apdus: str | bytes) -> bytes:
    """Send each APDU; return the last response (earlier ones must answer 9000)."""
    response = b""
    for index, apdu in enumerate(apdus):
        response = card.execute(H(apdu) if isinstance(apdu, str) else apdu)
        if index < len(apdus) - 1:
            assert response[-2:] == H("9000"), f"{apdu!r} → {response.hex()}"
    return response


def sw(response: bytes) -> str:
    return response[-2:].hex().upper()


class Recorder:
    """An ApduTransport over the simulator that records every command."""

    def __init__(self, card: SimulatedMyNumberCard | OtherCard) -> None:
        self.card = card
        self.sent: list[bytes] = []
        self.buffers: list[bytes | bytearray] = []

    def transmit(self, apdu: bytes | bytearray) -> bytes:
        self.buffers.append(apdu)  # kept on purpose: the test checks the PIN buffer is zeroed
        self.sent.append(bytes(apdu))
        return self.card.execute(bytes(apdu))


# -- card basics -------------------------------------------------------------------------------------


def test_atr_is_the_contact_atr_with_a_valid_tck() -> None:
    assert H("3BE000FF8131FE4514") == ATR
    tck = 0
    for byte in ATR[1:-1]:
        tck ^= byte
    assert tck == ATR[-1]


@pytest.mark.parametrize("aid", AIDS)
def test_select_each_application(card: SimulatedMyNumberCard, aid: str) -> None:
    assert sw(run(card, f"00A4040C0A{aid}")) == "9000"


def test_select_unknown_or_truncated_aid_is_6a82(card: SimulatedMyNumberCard) -> None:
    assert sw(run(card, "00A4040C0AD392F000260100000002")) == "6A82"
    assert sw(run(card, "00A4040C09D392F0002601000000")) == "6A82"
    assert sw(run(card, "00A4040C07A0000001510000")) == "9000"  # GlobalPlatform ISD


def test_select_mf_quirk(card: SimulatedMyNumberCard) -> None:
    assert sw(run(card, "00A40000")) == "6A86"  # right after reset (ISD current)
    assert sw(run(card, SELECT_JPKI, "00A40000")) == "9000"  # inside an AP: no change
    assert sw(run(card, "00A4020C02000A")) == "9000"  # still in the JPKI AP
    assert sw(run(card, "00A4000C023F00")) == "6A82"


def test_select_ef_errors(card: SimulatedMyNumberCard) -> None:
    assert sw(run(card, "00A4020C02000A")) == "6A82"  # no EFs in the ISD
    assert sw(run(card, SELECT_JPKI, "00A4020C020099")) == "6A82"
    assert sw(run(card, SELECT_JPKI, "00A4020C03000A")) == "6700"  # Lc says 3, 2 bytes follow
    assert sw(run(card, SELECT_JPKI, "00A4020C0300000A")) == "6700"  # a 3-byte FID


# -- READ BINARY -------------------------------------------------------------------------------------


def test_token_ef(card: SimulatedMyNumberCard) -> None:
    response = run(card, SELECT_JPKI, "00A4020C020006", "00B0000000")
    assert sw(response) == "9000"
    assert response[:-2] == b"JPKIAPICCTOKEN2".ljust(160, b" ")  # 160 bytes < 256: short read at EOF
    assert sw(run(card, "00B000A001")) == "6B00"  # offset 160 = EOF


def test_certificate_availability_ef(card: SimulatedMyNumberCard) -> None:
    assert run(card, SELECT_JPKI, "00A4020C020008", "00B0000000") == H("8F8F00 9000")
    assert run(card, "00B0000201") == H("00 9000")
    assert sw(run(card, "00B0000301")) == "6B00"
    assert sw(run(card, "00B0100001")) == "6B00"


def test_tex2e_auth_certificate_sequence(card: SimulatedMyNumberCard, profile: CardProfile) -> None:
    cert = profile.auth_cert
    head = run(card, SELECT_JPKI, "00A4020C02000A", "00B0000004")
    assert head == cert[:4] + H("9000")
    assert head[:2] == H("3082")
    total = int.from_bytes(head[2:4], "big") + 4
    assert total == len(cert)
    # tex2e read the rest with one extended-Le APDU.
    rest = run(card, "00B00004" + "00" + (total - 4).to_bytes(2, "big").hex())
    assert rest == cert[4:] + H("9000")


def test_read_binary_le_00_is_256_and_chunks_match(card: SimulatedMyNumberCard, profile: CardProfile) -> None:
    run(card, SELECT_JPKI, "00A4020C02000A")
    assert card.execute(H("00B0000000")) == profile.auth_cert[:256] + H("9000")
    assert card.execute(H("00B0010000")) == profile.auth_cert[256:512] + H("9000")


def test_read_binary_by_sfi(card: SimulatedMyNumberCard, profile: CardProfile) -> None:
    # myna-browser-extension: `00 B0 8A 00 04` reads the auth certificate header without SELECT EF.
    assert run(card, SELECT_JPKI, "00B08A0004") == profile.auth_cert[:4] + H("9000")
    # ... and the EF is then current, so the offset form continues.
    assert run(card, "00B0000404") == profile.auth_cert[4:8] + H("9000")
    assert run(card, "00B0860005") == b"JPKIA" + H("9000")
    assert sw(run(card, "00B0830000")) == "6A82"  # no EF 0003 in the JPKI AP
    assert sw(run(card, "00B0A60000")) == "6A86"  # bits 6-5 of P1 must be 0


def test_read_binary_errors(card: SimulatedMyNumberCard) -> None:
    assert sw(run(card, SELECT_JPKI, "00B0000004")) == "6986"  # no current EF
    assert sw(run(card, "00A4020C020018", "00B0000004")) == "6981"  # a PIN is not readable
    assert sw(run(card, "00A4020C02000A", "00B00000")) == "6700"  # no Le
    assert sw(run(card, "00B0000001AA")) == "6700"  # data in a READ BINARY


def test_certificate_ef_is_padded_after_the_der(card: SimulatedMyNumberCard, profile: CardProfile) -> None:
    cert = profile.auth_cert
    offset = len(cert)
    tail = run(card, SELECT_JPKI, "00A4020C02000A", build_apdu(0, 0xB0, offset >> 8, offset & 0xFF, le=16))
    assert tail == b"\xff" * 16 + H("9000")


def test_sign_certificate_needs_the_sign_password(card: SimulatedMyNumberCard, profile: CardProfile) -> None:
    assert sw(run(card, SELECT_JPKI, "00A4020C020001", "00B0000004")) == "6982"
    assert sw(run(card, "00A4020C02001B", "00200080" + "06" + b"ABC123".hex())) == "9000"
    assert run(card, "00A4020C020001", "00B0000004") == profile.sign_cert[:4] + H("9000")
    # The sign CA certificate and the auth CA certificate are free.
    assert run(card, SELECT_JPKI, "00A4020C020002", "00B0000004")[:2] == H("3082")
    assert run(card, "00A4020C02000B", "00B0000004")[:2] == H("3082")


# -- VERIFY and counters -----------------------------------------------------------------------------


def test_empty_verify_reports_tries_without_spending(card: SimulatedMyNumberCard) -> None:
    run(card, SELECT_JPKI, "00A4020C020018")
    for _ in range(5):
        assert sw(run(card, "00200080")) == "63C3"
    assert sw(run(card, "00200098")) == "63C3"  # by SFI


def test_verify_wrong_then_right_resets_the_counter(card: SimulatedMyNumberCard) -> None:
    run(card, SELECT_JPKI, "00A4020C020018")
    assert sw(run(card, "002000800439393939")) == "63C2"
    assert sw(run(card, "00200080")) == "63C2"
    assert sw(run(card, "002000800431323334")) == "9000"  # tex2e: 00 20 00 80 04 31 32 33 34
    assert sw(run(card, "00200080")) == "9000"  # already verified
    assert card.tries_left(JPKI_AID, 0x0018) == 3


def test_blocking_sequence(card: SimulatedMyNumberCard) -> None:
    run(card, SELECT_JPKI, "00A4020C020018")
    answers = [sw(run(card, "002000800439393939")) for _ in range(3)]
    assert answers == ["63C2", "63C1", "63C0"]
    assert sw(run(card, "002000800431323334")) == "6984"  # even the right PIN
    assert sw(run(card, "002000800439393939")) == "6984"
    assert sw(run(card, "00200080")) == "63C0"


def test_counters_persist_across_power_cycles_and_instances(
    card: SimulatedMyNumberCard, profile: CardProfile, tmp_path: Path
) -> None:
    run(card, SELECT_JPKI, "00A4020C020018", "002000800431323334")
    assert sw(run(card, "002000800439393939")) == "63C2"
    card.power_off()
    card.power_on()
    assert sw(run(card, SELECT_JPKI, "00A4020C020018", "00200080")) == "63C2"
    again = SimulatedMyNumberCard(profile, tmp_path / "state.json")
    again.power_on()
    assert sw(run(again, SELECT_JPKI, "00A4020C020018", "00200080")) == "63C2"
    assert sw(run(again, "002000800439393939")) == "63C1"
    assert (tmp_path / "state.json").exists()
    assert "1234" not in (tmp_path / "state.json").read_text()
    again.reset_pin_counters()
    assert sw(run(card, "00A4020C020018", "00200080")) == "63C2"  # the other instance's memory
    third = SimulatedMyNumberCard(profile, tmp_path / "state.json")
    assert third.tries_left(JPKI_AID, 0x0018) == 3


def test_security_state_cleared_by_df_select_and_reset(card: SimulatedMyNumberCard) -> None:
    run(card, SELECT_JPKI, "00A4020C020018", "002000800431323334")
    assert sw(run(card, "00200080")) == "9000"
    assert sw(run(card, SELECT_JPKI, "00A4020C020018", "00200080")) == "63C3"
    run(card, "002000800431323334")
    card.reset()
    assert sw(run(card, SELECT_JPKI, "00A4020C020018", "00200080")) == "63C3"


def test_verify_malformed_is_refused_without_spending(card: SimulatedMyNumberCard) -> None:
    run(card, SELECT_JPKI, "00A4020C020018")
    assert sw(run(card, "0020008003313233")) == "6700"
    assert sw(run(card, "00200080043132333A")) == "6700"
    assert sw(run(card, "00200080")) == "63C3"
    assert sw(run(card, "00200180043132333A")) == "6A86"
    assert sw(run(card, "00A4020C02000A", "002000800431323334")) == "6A88"  # current EF is no PIN
    assert sw(run(card, "002000830431323334")) == "6A88"  # no SFI 3


def test_sign_password_is_case_sensitive_with_five_tries(card: SimulatedMyNumberCard) -> None:
    run(card, SELECT_JPKI, "00A4020C02001B")
    assert sw(run(card, "00200080")) == "63C5"
    assert sw(run(card, "00200080" + "06" + b"abc123".hex())) == "6700"  # not in the alphabet
    assert sw(run(card, "00200080" + "06" + b"ABC124".hex())) == "63C4"


def test_blocked_key_reference_0012(card: SimulatedMyNumberCard) -> None:
    run(card, SELECT_KENHOJO, "00A4020C020012")
    assert sw(run(card, "00200080")) == "63C0"
    assert sw(run(card, "002000800431323334")) == "6984"


# -- COMPUTE SIGNATURE -------------------------------------------------------------------------------


def rsa_public_key(cert_der: bytes) -> rsa.RSAPublicKey:
    key = x509.load_der_x509_certificate(cert_der).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def _verify_signature(cert_der: bytes, signature: bytes, message_digest_info: bytes) -> None:
    digest = message_digest_info[len(DIGEST_INFO_SHA256_PREFIX) :]
    rsa_public_key(cert_der).verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))


def test_tex2e_signature_sequence(card: SimulatedMyNumberCard, profile: CardProfile) -> None:
    response = run(
        card,
        SELECT_JPKI,
        "00A4020C020018",
        "002000800431323334",
        "00A4020C020017",
        "802A008033" + DIGEST_INFO_NONCE.hex() + "00",
    )
    assert sw(response) == "9000"
    assert len(response) == 258
    _verify_signature(profile.auth_cert, response[:-2], DIGEST_INFO_NONCE)


def test_signature_needs_the_pin(card: SimulatedMyNumberCard) -> None:
    command = "802A008033" + DIGEST_INFO_NONCE.hex() + "00"
    assert run(card, SELECT_JPKI, "00A4020C020017", command) == H("6982")
    # Verifying the sign password does not open the auth key.
    run(card, "00A4020C02001B", "00200080" + "06" + b"ABC123".hex())
    assert run(card, "00A4020C020017", command) == H("6982")


def test_signature_by_sfi_and_schemes(card: SimulatedMyNumberCard, profile: CardProfile) -> None:
    run(card, SELECT_JPKI, "002000980431323334")  # VERIFY by SFI, no SELECT EF
    by_sfi = run(card, "802A009733" + DIGEST_INFO_NONCE.hex() + "00")  # mbe: 80 2A 00 97
    assert sw(by_sfi) == "9000"
    _verify_signature(profile.auth_cert, by_sfi[:-2], DIGEST_INFO_NONCE)
    bare_hash = run(card, "802A029720" + bytes(range(32)).hex() + "00")  # P1=02: card adds DigestInfo
    assert bare_hash == by_sfi
    assert run(card, "802A079733" + DIGEST_INFO_NONCE.hex() + "00") == H("6A86")
    assert run(card, "802A0097F6" + "00" * 246 + "00") == H("6985")  # > 245 bytes
    assert run(card, "802A009A33" + DIGEST_INFO_NONCE.hex() + "00") == H("6982")  # sign key needs 001B
    assert run(card, "802A008A33" + DIGEST_INFO_NONCE.hex() + "00") == H("6A88")  # 000A is no key


def test_generic_data_is_signed_with_pkcs1_type1(card: SimulatedMyNumberCard, profile: CardProfile) -> None:
    data = b"not a DigestInfo"
    response = run(card, SELECT_JPKI, "002000980431323334", build_apdu(0x80, 0x2A, 0, 0x97, data, le=256))
    public_numbers = profile.auth_key.public_key().public_numbers()
    recovered = pow(int.from_bytes(response[:-2], "big"), public_numbers.e, public_numbers.n).to_bytes(
        256, "big"
    )
    assert recovered == b"\x00\x01" + b"\xff" * (256 - 3 - len(data)) + b"\x00" + data


# -- other commands ----------------------------------------------------------------------------------


def test_change_reference_data(card: SimulatedMyNumberCard, profile: CardProfile, tmp_path: Path) -> None:
    run(card, SELECT_JPKI, "00A4020C020018")
    assert sw(run(card, "002401800435363738")) == "6982"
    run(card, "002000800431323334")
    assert sw(run(card, "00240180043132333A")) == "6A80"
    assert sw(run(card, "002401800435363738")) == "9000"
    assert sw(run(card, SELECT_JPKI, "00A4020C020018", "002000800431323334")) == "63C2"
    assert sw(run(card, "002000800435363738")) == "9000"
    assert "5678" not in (tmp_path / "state.json").read_text()
    reloaded = SimulatedMyNumberCard(profile, tmp_path / "state.json")
    assert sw(run(reloaded, SELECT_JPKI, "00A4020C020018", "002000800435363738")) == "9000"
    reloaded.reset_pin_counters(restore_default_pins=True)
    assert sw(run(reloaded, SELECT_JPKI, "00A4020C020018", "002000800431323334")) == "9000"


@pytest.mark.parametrize(
    ("apdu", "expected"),
    [
        ("00FF0000", "6D00"),  # unknown INS
        ("00C0000000", "6D00"),  # no GET RESPONSE: the card never answers 61xx
        ("0CA4040C0AD392F000260100000001", "6882"),  # secure messaging
        ("B0A4040C0AD392F000260100000001", "6E00"),
        ("00A4", "6700"),
        ("00A4040C0AD392F0", "6700"),  # Lc longer than the data
        ("00A4050C00", "6A86"),
    ],
)
def test_error_status_words(card: SimulatedMyNumberCard, apdu: str, expected: str) -> None:
    assert sw(run(card, apdu)) == expected


def test_get_challenge_and_internal_authenticate(card: SimulatedMyNumberCard) -> None:
    response = run(card, "0084000008")
    assert len(response) == 10 and sw(response) == "9000"
    assert sw(run(card, SELECT_JPKI, "0088009708" + "00" * 8 + "00")) == "6982"


# -- 券面事項入力補助AP ------------------------------------------------------------------------------


def test_tex2e_kenhojo_sequence(card: SimulatedMyNumberCard, profile: CardProfile) -> None:
    response = run(
        card, SELECT_KENHOJO, "00A4020C020011", "002000800431323334", "00A4020C020001", "00B0000000"
    )
    assert response == H("FF100C") + b"123456789018" + H("FFFF 9000")
    length = run(card, "00A4020C020002", "00B0000201")
    assert sw(length) == "9000"
    body = run(card, bytes((0x00, 0xB0, 0x00, 0x00, 3 + length[0])))
    assert body[:5] == H("FF20") + length[:1] + H("DF21")
    face = parse_basic_four(body[:-2])
    assert face == CardFace(profile.name, profile.address, profile.birth, "19800217", "1")


def test_mbe_sfi_reads_of_the_kenhojo_efs(card: SimulatedMyNumberCard) -> None:
    run(card, SELECT_KENHOJO, "002000910431323334")
    assert run(card, "00B081030C") == b"123456789018" + H("9000")
    assert sw(run(card, "00B0820201")) == "9000"


def test_kenhojo_efs_need_a_credential(card: SimulatedMyNumberCard) -> None:
    assert sw(run(card, SELECT_KENHOJO, "00A4020C020001", "00B0000000")) == "6982"
    assert sw(run(card, "00A4020C020002", "00B0000000")) == "6982"
    assert sw(run(card, "00A4020C020008", "00B0000000")) == "9000"


def test_verification_numbers_open_one_ef_each(card: SimulatedMyNumberCard) -> None:
    code_a = b"123456789018".hex()
    run(card, SELECT_KENHOJO, "00A4020C020014", "002000800C" + code_a)
    assert sw(run(card, "00A4020C020001", "00B0000000")) == "9000"
    assert sw(run(card, "00A4020C020002", "00B0000000")) == "6982"
    code_b = b"55021720352285".hex()  # the design note's example
    run(card, SELECT_KENHOJO, "002000950E" + code_b)
    assert sw(run(card, "00A4020C020002", "00B0000000")) == "9000"
    assert sw(run(card, "00A4020C020001", "00B0000000")) == "6982"
    assert sw(run(card, "00200095")) == "9000"
    assert sw(run(card, SELECT_KENHOJO, "00200094")) == "63CA"


def test_verification_code_b_uses_the_era_year() -> None:
    assert verification_code_b(date(1980, 2, 17), date(2035, 2, 17), "2285") == "55021720352285"
    assert verification_code_b(date(2020, 2, 24), date(2030, 2, 24), "0001") == "02022420300001"


def test_basic_four_layout_offsets_and_long_address() -> None:
    ef = basic_four_ef("山田　太郎", "東京都", date(1980, 2, 17), "1")
    assert ef[:3] == H("FF20") + bytes((len(ef.rstrip(b"\xff")) - 3,))
    assert ef[3:6] == H("DF2108")
    offsets = [int.from_bytes(ef[6 + i : 8 + i], "big") for i in range(0, 8, 2)]
    assert offsets[0] == 0x000E
    assert [ef[o : o + 2] for o in offsets] == [H("DF22"), H("DF23"), H("DF24"), H("DF25")]
    assert ef[offsets[2] + 3 : offsets[2] + 11] == b"19800217"
    long_address = "北海道" + "１２３－４５６" * 10
    long_ef = basic_four_ef("鈴木　花子", long_address, date(2001, 12, 31), "2")
    assert long_ef[:3] == H("FF2082")
    assert parse_basic_four(long_ef).address == long_address
    assert my_number_ef("123456789018") == H("FF100C") + b"123456789018" + H("FFFF")


def test_parse_basic_four_falls_back_when_offsets_are_wrong() -> None:
    ef = bytearray(basic_four_ef("山田　太郎", "東京都", date(1980, 2, 17), "1"))
    ef[6:14] = bytes(8)
    assert parse_basic_four(bytes(ef)).name == "山田　太郎"
    with pytest.raises(CardError):
        parse_basic_four(H("FF1003313233"))


# -- My Number check digit ---------------------------------------------------------------------------


def test_my_number_check_digit() -> None:
    assert my_number_check_digit("12345678901") == 8
    assert is_valid_my_number("123456789018")
    assert not is_valid_my_number("123456789010")
    assert not is_valid_my_number("12345678901")
    assert not is_valid_my_number("１２３４５６７８９０１８")
    # A remainder of 0 or 1 gives 0: 00000000000 sums to 0.
    assert my_number_check_digit("00000000000") == 0
    with pytest.raises(ValueError):
        my_number_check_digit("1234")


def test_profile_validation(profile: CardProfile) -> None:
    with pytest.raises(ValueError, match="check digit"):
        replace(profile, my_number="123456789010")
    with pytest.raises(ValueError, match="auth_pin"):
        replace(profile, auth_pin="12345")
    with pytest.raises(ValueError, match="sign_password"):
        replace(profile, sign_password="ABCDEF")


# -- APDU helpers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "total"),
    [
        ("3082061F", 0x061F + 4),
        ("308180", 0x80 + 3),
        ("30830100 00", 0x010000 + 5),
        ("3005", 7),
        ("FF2065", 0x65 + 3),
        ("FF208180", 0x80 + 4),
        ("DF2108", 11),
    ],
)
def test_der_total_length(header: str, total: int) -> None:
    assert der_total_length(H(header)) == total


def test_der_total_length_rejects_garbage() -> None:
    for header in ("", "30", "3085", "FF", "3082 06"):
        with pytest.raises(ValueError):
            der_total_length(H(header))


def test_build_apdu() -> None:
    assert build_apdu(0, 0xB0, 0, 0, le=256) == H("00B0000000")
    assert build_apdu(0, 0x20, 0, 0x80) == H("00200080")
    assert build_apdu(0x80, 0x2A, 0, 0x80, b"\x01", le=256) == H("802A0080010100")
    with pytest.raises(ValueError):
        build_apdu(0, 0xB0, 0, 0, le=257)
    with pytest.raises(ValueError):
        build_apdu(0, 0xD6, 0, 0, b"\x00" * 256)


class Scripted:
    def __init__(self, answers: list[str]) -> None:
        self.answers = [H(a) for a in answers]
        self.sent: list[bytes] = []

    def transmit(self, apdu: bytes | bytearray) -> bytes:
        self.sent.append(bytes(apdu))
        return self.answers.pop(0)


def test_transceive_follows_61xx_and_6cxx() -> None:
    chained = Scripted(["AABB6102", "CCDD9000"])
    assert transceive(chained, H("00B0000000")) == Response(H("AABBCCDD"), 0x9000)
    assert chained.sent[1] == H("00C0000002")
    wrong_le = Scripted(["6C05", "0102030405 9000"])
    assert transceive(wrong_le, H("00B0000010")).data == H("0102030405")
    assert wrong_le.sent[1] == H("00B0000005")
    once = Scripted(["6C05"])
    assert transceive(once, H("0020008004 31323334"), fix_le=False).sw == 0x6C05
    assert len(once.sent) == 1


def test_read_der_object_reads_exactly_the_certificate(
    card: SimulatedMyNumberCard, profile: CardProfile
) -> None:
    recorder = Recorder(card)
    run(card, SELECT_JPKI, "00A4020C02000A")
    assert read_der_object(recorder) == profile.auth_cert
    assert recorder.sent[0] == H("00B0000007")
    assert all(apdu[4] in range(0, 256) and len(apdu) == 5 for apdu in recorder.sent)
    with pytest.raises(CardError):
        read_binary_exact(recorder, 10, offset=len(profile.auth_cert) + 2048)


# -- the driver over the simulator -------------------------------------------------------------------


@pytest.fixture
def recorder(card: SimulatedMyNumberCard) -> Recorder:
    return Recorder(card)


def test_driver_reads_and_signs(recorder: Recorder, profile: CardProfile) -> None:
    reader = MyNumberCard(recorder)
    assert reader.is_my_number_card()
    assert reader.read_auth_certificate() == profile.auth_cert
    assert reader.read_auth_ca_certificate() == profile.auth_ca_cert
    assert reader.auth_pin_tries_left() == 3
    reader.verify_auth_pin("1234")
    assert reader.auth_pin_tries_left() == 3  # 9000: verified
    signature = reader.sign_with_auth_key(b"server nonce")
    rsa_public_key(profile.auth_cert).verify(signature, b"server nonce", padding.PKCS1v15(), hashes.SHA256())
    # Between VERIFY and COMPUTE SIGNATURE the AP is not selected again.
    verify_at = max(i for i, a in enumerate(recorder.sent) if a[:2] == H("0020") and len(a) > 5)
    assert SELECT_JPKI not in recorder.sent[verify_at:]


def test_driver_card_face_and_my_number(recorder: Recorder, profile: CardProfile) -> None:
    reader = MyNumberCard(recorder)
    face = reader.read_card_face("1234")
    assert (face.name, face.address, face.birth_date, face.sex) == (
        profile.name,
        profile.address,
        profile.birth,
        "1",
    )
    assert reader.read_my_number("1234") == "123456789018"
    assert reader.kenhojo_pin_tries_left() == 3


@pytest.mark.parametrize("pin", ["123", "12345", "12a4", "１２３４", "", " 1234"])
def test_malformed_pin_is_never_sent(recorder: Recorder, card: SimulatedMyNumberCard, pin: str) -> None:
    reader = MyNumberCard(recorder)
    with pytest.raises(InvalidPinFormat) as error:
        reader.verify_auth_pin(pin)
    assert isinstance(error.value, ValueError)
    with pytest.raises(InvalidPinFormat):
        reader.read_card_face(pin)
    assert recorder.sent == []
    assert card.tries_left(JPKI_AID, 0x0018) == 3


def test_wrong_pin_then_blocked(recorder: Recorder, card: SimulatedMyNumberCard) -> None:
    reader = MyNumberCard(recorder)
    with pytest.raises(WrongPin) as first:
        reader.verify_auth_pin("0000")
    assert first.value.tries_left == 2
    assert first.value.message == "暗証番号が違います。あと2回間違えるとロックされます。"
    assert "0000" not in str(first.value)
    assert reader.auth_pin_tries_left() == 2
    with pytest.raises(WrongPin):
        reader.verify_auth_pin("0000")
    with pytest.raises(CardBlocked) as exhausted:
        reader.verify_auth_pin("0000")
    assert exhausted.value.sw == 0x63C0
    with pytest.raises(CardBlocked) as blocked:
        reader.verify_auth_pin("1234")
    assert blocked.value.sw == 0x6984
    assert blocked.value.message == "暗証番号がロックされています。窓口へお越しください。"
    assert reader.auth_pin_tries_left() == 0
    verifies = [a for a in recorder.sent if a[:4] == H("00200080") and len(a) > 4]
    assert len(verifies) == 4  # one per call: never retried


def test_kenhojo_wrong_pin_names_the_pin(recorder: Recorder) -> None:
    with pytest.raises(WrongPin) as error:
        MyNumberCard(recorder).read_my_number("9999")
    assert error.value.pin_kind is PinKind.KENHOJO


def test_pin_buffer_is_zeroed_after_verify(recorder: Recorder) -> None:
    MyNumberCard(recorder).verify_auth_pin("1234")
    pin_commands = [b for b in recorder.buffers if isinstance(b, bytearray)]
    assert len(pin_commands) == 1
    assert pin_commands[0] == bytearray(len(pin_commands[0]))
    assert recorder.sent[-1] == H("002000800431323334")


def test_sign_without_pin_is_pin_required(recorder: Recorder) -> None:
    reader = MyNumberCard(recorder)
    with pytest.raises(PinRequired) as error:
        reader.sign_with_auth_key(b"nonce")
    assert error.value.message == "暗証番号の入力が必要です。"


def test_other_cards_are_unsupported(profile: CardProfile) -> None:
    reader = MyNumberCard(Recorder(OtherCard()))
    assert not reader.is_my_number_card()
    with pytest.raises(UnsupportedCard) as error:
        reader.require_my_number_card()
    assert error.value.message == "このカードは読み取れません"
    juki = SimulatedMyNumberCard(replace(profile, token="JPKIAPICCTOKEN"))
    juki.power_on()
    juki_reader = MyNumberCard(Recorder(juki))
    assert juki_reader.token() == "JPKIAPICCTOKEN"
    assert not juki_reader.is_my_number_card()


def test_kenhojo_aid_constant() -> None:
    assert H("D3921000310001010408") == KENHOJO_AID


# -- the vpcd link against a fake vpcd -----------------------------------------------------------------


class FakeVpcd:
    """Plays vpcd's side on a loopback port: accepts the card, sends control bytes and APDUs."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(5)
        self.port: int = self.server.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self) -> socket.socket:
        if self.conn is not None:
            self.conn.close()
        conn, _ = self.server.accept()
        conn.settimeout(5)
        self.conn = conn
        return conn

    def send(self, payload: bytes, *, split: bool = False) -> None:
        assert self.conn is not None
        frame = len(payload).to_bytes(2, "big") + payload
        if split:  # a frame arriving in pieces must still be read whole
            for piece in (frame[:1], frame[1:3], frame[3:]):
                self.conn.sendall(piece)
                time.sleep(0.01)
        else:
            self.conn.sendall(frame)

    def receive(self) -> bytes:
        assert self.conn is not None
        header = b""
        while len(header) < 2:
            chunk = self.conn.recv(2 - len(header))
            if not chunk:
                return b""
            header += chunk
        size = int.from_bytes(header, "big")
        body = b""
        while len(body) < size:
            body += self.conn.recv(size - len(body))
        return body

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


@pytest.fixture
def fake_vpcd() -> Iterator[FakeVpcd]:
    server = FakeVpcd()
    yield server
    server.close()


def test_vpcd_link_protocol(fake_vpcd: FakeVpcd, card: SimulatedMyNumberCard) -> None:
    with VpcdLink(port=fake_vpcd.port) as link:
        link.insert(card)
        fake_vpcd.accept()
        fake_vpcd.send(b"\x04")
        assert fake_vpcd.receive() == ATR
        assert link.wait_connected(2)
        fake_vpcd.send(b"\x01")  # power on: no reply
        fake_vpcd.send(SELECT_JPKI, split=True)
        assert fake_vpcd.receive() == H("9000")
        fake_vpcd.send(H("00A4020C020006"))
        assert fake_vpcd.receive() == H("9000")
        fake_vpcd.send(H("00B0000000"))
        assert fake_vpcd.receive() == b"JPKIAPICCTOKEN2".ljust(160, b" ") + H("9000")
        fake_vpcd.send(b"\x02")  # reset: security state and selection are gone
        fake_vpcd.send(H("00B0000001"))
        assert fake_vpcd.receive() == H("6986")
        # Removal closes the connection: vpcd then reports no card.
        link.remove()
        assert fake_vpcd.receive() == b""
        assert not link.connected
        # Insert again: the link connects again.
        link.insert(OtherCard())
        fake_vpcd.accept()
        fake_vpcd.send(b"\x04")
        assert fake_vpcd.receive() == OtherCard.atr
    # This link's thread ends on close (other tests' links are not this test's business).
    deadline = time.monotonic() + 10
    while link._thread.is_alive():
        assert time.monotonic() < deadline, "the vpcd link thread did not end"
        time.sleep(0.02)


def test_vpcd_link_reconnects_when_vpcd_restarts(fake_vpcd: FakeVpcd, card: SimulatedMyNumberCard) -> None:
    with VpcdLink(port=fake_vpcd.port) as link:
        link.insert(card)
        fake_vpcd.accept()
        fake_vpcd.send(b"\x04")
        assert fake_vpcd.receive() == ATR
        assert fake_vpcd.conn is not None
        fake_vpcd.conn.close()  # pcscd went away
        fake_vpcd.conn = None
        fake_vpcd.accept()  # ... and the link came back by itself
        fake_vpcd.send(b"\x04")
        assert fake_vpcd.receive() == ATR


def test_vpcd_link_refuses_remote_hosts() -> None:
    with pytest.raises(ValueError):
        VpcdLink(host="192.0.2.1")


# -- driver's licence (a minimal in-test card: no simulator module yet) -----------------------------


def _jis(text: str) -> bytes:
    return bytes(b & 0x7F for b in text.encode("euc_jp"))


class FakeLicence:
    """Just enough of a 運転免許証 for the driver: MF EFs 2F01/000A/0001 (PIN1), DF1/EF0001."""

    def __init__(self, *, pin_set: bool = True, pin: str = "1234") -> None:
        self.pin = (pin if pin_set else "****").encode()
        self.pin_set = pin_set
        self.tries = 3
        self.verified = False
        self.df = "mf"
        self.ef: int | None = None
        self.sent: list[bytes] = []
        matters = [
            (0x11, H("01")),
            (0x12, _jis("運転　花子")),
            (0x13, _jis("ウンテン　ハナコ")),
            (0x16, b"4010203"),
            (0x17, _jis("東京都千代田区霞が関２丁目１番２号") + H("FFF1")),
            (0x18, b"5060708"),
            (0x19, b"12345"),
            (0x1A, _jis("優良")),
            (0x1B, b"5110203"),
            (0x1C, _jis("眼鏡等")),
            (0x20, _jis("東京都公安委員会")),
            (0x21, b"301234567890"),
        ]
        body = b"".join(bytes((tag, len(value))) + value for tag, value in matters)
        self.files = {
            ("mf", 0x2F01): H("450B") + b"008" + H("20240115 20290220") + H("46020102"),
            ("mf", 0x000A): H("C10101") if pin_set else H("C10100"),
            ("df1", 0x0001): body + b"\xff" * 40,
        }

    def transmit(self, apdu: bytes | bytearray) -> bytes:
        a = bytes(apdu)
        self.sent.append(a)
        if a == H("00A40000"):
            self.df, self.ef = "mf", None
            return H("9000")
        if a[:4] == H("00A4040C") and a[5:] == H("A0000002310100000000000000000000"):
            self.df, self.ef = "df1", None
            return H("9000")
        if a[:4] == H("00A4020C"):
            fid = int.from_bytes(a[5:7], "big")
            if (self.df, fid) in self.files or (self.df, fid) == ("mf", 0x0001):
                self.ef = fid
                return H("9000")
            return H("6A82")
        if a[:4] == H("00200080"):
            if len(a) == 4:
                return bytes((0x63, 0xC0 | self.tries))
            if self.tries == 0:
                return H("6984")
            if a[5:] == self.pin:
                self.tries, self.verified = 3, True
                return H("9000")
            self.tries -= 1
            return bytes((0x63, 0xC0 | self.tries))
        if a[:2] == H("00B0") and self.ef is not None:
            if (self.df, self.ef) == ("df1", 0x0001) and not self.verified:
                return H("6982")
            data = self.files[(self.df, self.ef)]
            offset = (a[2] << 8) | a[3]
            if offset >= len(data):
                return H("6B00")
            return data[offset : offset + (a[4] or 256)] + H("9000")
        return H("6D00")


def test_licence_text_and_dates() -> None:
    assert decode_jis_x0208(_jis("山田")) == ("山田", False)
    assert decode_jis_x0208(_jis("山") + H("FFF1") + H("FFFA")) == ("山" + GAIJI_MARK * 2, True)
    assert parse_licence_date("4010203") == date(1989, 2, 3)
    assert parse_licence_date("5010501") == date(2019, 5, 1)
    assert parse_licence_date("3640107") == date(1989, 1, 7)
    assert parse_licence_date("6010101") is None
    assert parse_licence_date("4021330") is None


def test_licence_common_data_and_matters() -> None:
    card = FakeLicence()
    licence = DriversLicenceCard(card)
    assert licence.is_drivers_licence()
    common = licence.read_common_data()
    assert common == CommonData("008", date(2024, 1, 15), date(2029, 2, 20), 1, 2)
    assert licence.pin1_tries_left() == 3
    matters = licence.read_matters("1234")
    assert matters.name == "運転　花子"
    assert matters.name_kana == "ウンテン　ハナコ"
    assert matters.birth_date == date(1989, 2, 3)
    assert matters.address == "東京都千代田区霞が関２丁目１番２号" + GAIJI_MARK
    assert matters.has_gaiji
    assert matters.issued_on == date(2024, 7, 8)
    assert matters.expires_on == date(2029, 2, 3)
    assert matters.colour == "優良"
    assert matters.conditions == ("眼鏡等",)
    assert matters.authority == "東京都公安委員会"
    assert matters.licence_number == "301234567890"


def test_licence_pin_errors() -> None:
    card = FakeLicence()
    licence = DriversLicenceCard(card)
    with pytest.raises(InvalidPinFormat):
        licence.read_matters("12")
    assert card.sent == []
    with pytest.raises(PinRequired):
        licence.read_matters(None)
    with pytest.raises(WrongPin) as wrong:
        licence.read_matters("0000")
    assert wrong.value.pin_kind is PinKind.LICENCE_PIN1 and wrong.value.tries_left == 2
    for _ in range(2):
        with pytest.raises((WrongPin, CardBlocked)):
            licence.read_matters("0000")
    with pytest.raises(CardBlocked) as blocked:
        licence.read_matters("1234")
    assert (
        blocked.value.message
        == "暗証番号がロックされています。運転免許センターまたは警察署へお越しください。"
    )


def test_licence_without_pins_sends_asterisks() -> None:
    card = FakeLicence(pin_set=False)
    assert DriversLicenceCard(card).read_matters(None).name == "運転　花子"
    assert H("00200080042A2A2A2A") in card.sent


def test_my_number_card_is_not_a_licence(card: SimulatedMyNumberCard) -> None:
    assert not DriversLicenceCard(Recorder(card)).is_drivers_licence()


# -- card store and console (registry → card) --------------------------------------------------------


def _add_resident(db: Database, atena: str, *, serial: str = "00EE74FA27E255214F") -> None:
    with db.write_session() as session:
        household = Household(household_number=f"H{atena}", address="東京都千代田区霞が関１－２－３")
        session.add(household)
        session.flush()
        assert household.id is not None
        session.add(
            Resident(
                atena_number=atena,
                household_id=household.id,
                relationship="世帯主",
                family_name="山田",
                given_name="花子",
                birth_date=date(1990, 4, 1),
                sex=Sex.FEMALE,
                address="東京都千代田区霞が関１－２－３",
                address_katagaki="霞が関ハイツ１０１号",
                auth_cert_serial=serial,
                sign_cert_serial="",
            )
        )
        session.commit()


def test_card_store_builds_a_card_from_the_registry(sqlite_db: Database, tmp_path: Path) -> None:
    _add_resident(sqlite_db, "0010000017")
    _add_resident(sqlite_db, "0010000025", serial="")
    store = CardStore(tmp_path / "cards")
    card = store.card_for_atena(sqlite_db, "0010000017")
    card.power_on()
    reader = MyNumberCard(Recorder(card))
    cert = x509.load_der_x509_certificate(reader.read_auth_certificate())
    assert cert.serial_number == 0xEE74FA27E255214F
    cert.verify_directly_issued_by(store.ca.root_certificate(CaKind.AUTH))
    face = reader.read_card_face(DEMO_KENHOJO_PIN)
    assert face.name == "山田　花子"
    assert face.address == "東京都千代田区霞が関１－２－３　霞が関ハイツ１０１号"
    assert (face.birth_date, face.sex) == (date(1990, 4, 1), "2")
    my_number = reader.read_my_number(DEMO_KENHOJO_PIN)
    assert my_number == demo_my_number("0010000017") and is_valid_my_number(my_number)
    assert demo_my_number("0010000025") != my_number
    reader.verify_auth_pin(DEMO_AUTH_PIN)
    # The same resident gets the same card again (cached keys, same issue date and security code).
    again = store.card_for_atena(sqlite_db, "0010000017")
    assert again.profile.auth_cert == card.profile.auth_cert
    assert again.profile.security_code == card.profile.security_code
    assert again.profile.card_expiry == card.profile.card_expiry
    with pytest.raises(NoCardIssued):
        store.card_for_atena(sqlite_db, "0010000025")
    with pytest.raises(NoCardIssued):
        store.card_for_atena(sqlite_db, "9999999999")
    assert [h.atena_number for h in store.holders(sqlite_db)] == ["0010000017"]


def test_card_console_resets_pin_counters_without_vpcd(sqlite_db: Database, tmp_path: Path) -> None:
    _add_resident(sqlite_db, "0010000017")
    store = CardStore(tmp_path / "cards")
    card = store.card_for_atena(sqlite_db, "0010000017")
    card.power_on()
    with pytest.raises(WrongPin):
        MyNumberCard(Recorder(card)).verify_auth_pin("0000")
    with CardConsole(store, sqlite_db) as console:
        assert console.status().inserted is False
        console.reset_pins("0010000017")
        assert console._link is None  # no vpcd connection was needed
    fresh = store.card_for_atena(sqlite_db, "0010000017")
    assert fresh.tries_left(JPKI_AID, 0x0018) == 3
