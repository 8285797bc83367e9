"""My Number Card (マイナンバーカード): JPKI user authentication and 券面事項入力補助AP.

Card facts (AIDs, EFs, APDU sequences, status words) are in the design note
mynumber-card.md; every command here follows a sequence logged from real cards there.

PIN rules (architecture: "PINs pass through memory only"):
- a PIN is sent at most once per call: nothing here retries a VERIFY;
- a PIN of the wrong shape is refused before anything reaches the card, so it never costs a try;
- the PIN is copied into a bytearray only to build the VERIFY, which is zeroed right after;
  nothing keeps, logs or puts the PIN into an exception.

The reader remembers which application is selected and does not re-select it between VERIFY
and the command that needs it: the card clears its security state when a DF is selected.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

from device_bridge.drivers.apdu import (
    SW_FILE_NOT_FOUND,
    SW_OK,
    SW_SECURITY_NOT_SATISFIED,
    ApduTransport,
    CardBlocked,
    CardError,
    InvalidPinFormat,
    PinKind,
    PinRequired,
    Response,
    UnsupportedCard,
    WrongPin,
    build_apdu,
    check_pin_format,
    describe_sw,
    pin_tries_left,
    read_binary_exact,
    read_der_object,
    select_aid,
    select_ef,
    transceive,
    verify_pin,
)

__all__ = [
    "AUTH_PIN_MAX_TRIES",
    "COMMON_AID",
    "DIGEST_INFO_SHA256_PREFIX",
    "JPKI_AID",
    "JUKI_AID",
    "KENHOJO_AID",
    "KENHOJO_PIN_MAX_TRIES",
    "KENKAKU_AID",
    "MY_NUMBER_CARD_TOKEN",
    "CardBlocked",
    "CardFace",
    "InvalidPinFormat",
    "MyNumberCard",
    "PinKind",
    "PinRequired",
    "UnsupportedCard",
    "WrongPin",
    "digest_info_sha256",
    "is_valid_my_number",
    "my_number_check_digit",
    "parse_basic_four",
    "parse_my_number_ef",
]

JPKI_AID = bytes.fromhex("D392F000260100000001")  # 公的個人認証AP
KENHOJO_AID = bytes.fromhex("D3921000310001010408")  # 券面事項入力補助AP
KENKAKU_AID = bytes.fromhex("D3921000310001010402")  # 券面事項確認AP
JUKI_AID = bytes.fromhex("D3921000310001010401")  # 住基AP
COMMON_AID = bytes.fromhex("D3921000310001010100")  # 共通カードAP

# JPKI AP
EF_SIGN_CERT = 0x0001
EF_SIGN_CA_CERT = 0x0002
EF_TOKEN = 0x0006
EF_AUTH_CERT = 0x000A
EF_AUTH_CA_CERT = 0x000B
EF_AUTH_KEY = 0x0017
EF_AUTH_PIN = 0x0018
# 券面事項入力補助AP
EF_MY_NUMBER = 0x0001
EF_BASIC_FOUR = 0x0002
EF_KENHOJO_PIN = 0x0011

MY_NUMBER_CARD_TOKEN = "JPKIAPICCTOKEN2"
TOKEN_LENGTH = 32
AUTH_PIN_MAX_TRIES = 3
KENHOJO_PIN_MAX_TRIES = 3

DIGEST_INFO_SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


@dataclass(frozen=True, slots=True)
class CardFace:
    """基本4情報 as the card holds them (券面事項入力補助AP EF 0002)."""

    name: str  # 氏名, family and given name separated by U+3000
    address: str  # 住所
    birth_date: date | None  # None if the card's YYYYMMDD is not a calendar date
    birth_text: str  # the 8 ASCII digits as stored
    sex: str  # "1" male, "2" female, "9" not applicable, "0" unknown (ISO 5218)


def my_number_check_digit(body: str) -> int:
    """Check digit of a 個人番号 from its first 11 digits (総務省令 第5条).

    Weights from the right-most body digit: 2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6; remainder ≤ 1 gives 0,
    otherwise 11 - remainder.
    """
    if len(body) != 11 or not body.isascii() or not body.isdigit():
        raise ValueError("個人番号 body must be 11 ASCII digits")
    total = 0
    for n, digit in enumerate(reversed(body), start=1):
        weight = n + 1 if n <= 6 else n - 5
        total += int(digit) * weight
    remainder = total % 11
    return 0 if remainder <= 1 else 11 - remainder


def is_valid_my_number(number: str) -> bool:
    if len(number) != 12 or not number.isascii() or not number.isdigit():
        return False
    return my_number_check_digit(number[:11]) == int(number[11])


def digest_info_sha256(message: bytes) -> bytes:
    """DER DigestInfo { sha256, SHA-256(message) }: what the card's PKCS#1 v1.5 signature covers."""
    return DIGEST_INFO_SHA256_PREFIX + hashlib.sha256(message).digest()


def _tlv_at(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, value, next position) of the BER TLV at `pos`; tags up to 2 bytes."""
    if pos + 2 > len(data):
        raise ValueError(f"TLV at {pos} truncated")
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:
        tag = (tag << 8) | data[pos]
        pos += 1
    first = data[pos]
    pos += 1
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 1 <= count <= 3:
            raise ValueError(f"bad BER length {first:02X}")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError(f"TLV {tag:X} value truncated")
    return tag, data[pos : pos + length], pos + length


def parse_my_number_ef(data: bytes) -> str:
    """個人番号 from EF 0001: `FF 10 0C` + 12 ASCII digits (+ FF FF filler)."""
    try:
        tag, value, _ = _tlv_at(data, 0)
    except (ValueError, IndexError) as error:
        raise CardError(detail=f"個人番号 EF unreadable: {error}") from None
    number = value.decode("ascii", errors="replace")
    if tag != 0xFF10 or not is_valid_my_number(number):
        raise CardError(detail="個人番号 EF malformed or check digit wrong")
    return number


_FACE_TAGS = (0xDF22, 0xDF23, 0xDF24, 0xDF25)


def parse_basic_four(data: bytes) -> CardFace:
    """基本4情報 from EF 0002: `FF 20 { DF21 offsets, DF22 氏名, DF23 住所, DF24 生年月日, DF25 性別 }`.

    The DF21 table gives each item's tag offset from the start of the EF; if it does not point
    at the expected tags, the items are found by walking the TLVs instead.
    """
    try:
        outer_tag, outer, _ = _tlv_at(data, 0)
        if outer_tag != 0xFF20:
            raise ValueError(f"outer tag {outer_tag:X}, expected FF20")
        values: dict[int, bytes] = {}
        header = _header_length(data)
        table_tag, table, _ = _tlv_at(data, header)
        if table_tag == 0xDF21 and len(table) == 8:
            offsets = [int.from_bytes(table[i : i + 2], "big") for i in range(0, 8, 2)]
            try:
                for expected, offset in zip(_FACE_TAGS, offsets, strict=True):
                    tag, value, _ = _tlv_at(data, offset)
                    if tag != expected:
                        raise ValueError("offset table does not match")
                    values[tag] = value
            except ValueError:
                values.clear()
        if not values:
            pos = header
            end = header + len(outer)
            while pos < end:
                tag, value, pos = _tlv_at(data, pos)
                values[tag] = value
        name = values[0xDF22].decode("utf-8")
        address = values[0xDF23].decode("utf-8")
        birth_text = values[0xDF24].decode("ascii")
        sex = values[0xDF25].decode("ascii")
    except (ValueError, KeyError, IndexError, UnicodeDecodeError) as error:
        raise CardError(detail=f"基本4情報 EF malformed: {error!r}") from None
    birth: date | None
    try:
        birth = date(int(birth_text[0:4]), int(birth_text[4:6]), int(birth_text[6:8]))
    except ValueError:
        birth = None
    return CardFace(name=name, address=address, birth_date=birth, birth_text=birth_text, sex=sex)


def _header_length(data: bytes) -> int:
    """Length of the tag + length fields of the TLV at the start of `data`."""
    _, value, end = _tlv_at(data, 0)
    return end - len(value)


class MyNumberCard:
    """Commands to a My Number Card over any ApduTransport (PC/SC reader or the simulator).

    One instance per card session; not thread-safe. After an error the next command re-selects
    the application (the card's state is unknown then).
    """

    def __init__(self, transport: ApduTransport) -> None:
        self.transport = transport
        self._selected: bytes | None = None

    # -- selection -------------------------------------------------------------------------
    def _select_ap(self, aid: bytes) -> None:
        if self._selected == aid:
            return
        self._selected = None
        resp = select_aid(self.transport, aid)
        if resp.sw == SW_FILE_NOT_FOUND:
            raise UnsupportedCard(detail=f"application {aid.hex().upper()} not found")
        if resp.sw != SW_OK:
            raise UnsupportedCard(detail=f"SELECT {aid.hex().upper()}: SW {resp.sw:04X}")
        self._selected = aid

    def _select_ef(self, fid: int) -> None:
        resp = select_ef(self.transport, fid)
        if resp.sw != SW_OK:
            self._selected = None
            if resp.sw == SW_FILE_NOT_FOUND:
                raise UnsupportedCard(detail=f"EF {fid:04X} not found")
            raise CardError(
                sw=resp.sw, detail=f"SELECT EF {fid:04X}: SW {resp.sw:04X} ({describe_sw(resp.sw)})"
            )

    def _run(self, command: bytes) -> Response:
        try:
            return transceive(self.transport, command)
        except CardError:
            self._selected = None
            raise

    def forget_selection(self) -> None:
        """Make the next command re-select its application (e.g. after the card was reset)."""
        self._selected = None

    # -- identification ----------------------------------------------------------------------
    def token(self) -> str | None:
        """The JPKI token name (EF 0006, first 32 bytes, space-padded), or None without a JPKI AP."""
        try:
            self._select_ap(JPKI_AID)
            self._select_ef(EF_TOKEN)
            raw = read_binary_exact(self.transport, TOKEN_LENGTH)
        except UnsupportedCard:
            return None
        return raw.rstrip(b" \x00").decode("ascii", errors="replace")

    def is_my_number_card(self) -> bool:
        """True if the JPKI AP is there and its token is JPKIAPICCTOKEN2 (not a 住基カード or phone)."""
        try:
            return self.token() == MY_NUMBER_CARD_TOKEN
        except CardError as error:
            if isinstance(error, UnsupportedCard) or error.sw:
                return False
            raise

    def require_my_number_card(self) -> None:
        if not self.is_my_number_card():
            raise UnsupportedCard(detail="JPKI token is not JPKIAPICCTOKEN2")

    # -- JPKI user authentication ------------------------------------------------------------
    def _read_jpki_certificate(self, fid: int) -> bytes:
        self._select_ap(JPKI_AID)
        self._select_ef(fid)
        try:
            return read_der_object(self.transport, validate=lambda head: head[:1] == b"\x30")
        except CardError as error:
            self._selected = None
            if error.sw == SW_SECURITY_NOT_SATISFIED:
                raise PinRequired(detail=f"EF {fid:04X}") from None
            raise

    def read_auth_certificate(self) -> bytes:
        """利用者証明用電子証明書 (EF 000A), DER, exactly the certificate's length."""
        return self._read_jpki_certificate(EF_AUTH_CERT)

    def read_auth_ca_certificate(self) -> bytes:
        """利用者証明用CA証明書 (EF 000B), DER. Internal consistency only: pin the real roots."""
        return self._read_jpki_certificate(EF_AUTH_CA_CERT)

    def read_sign_ca_certificate(self) -> bytes:
        """署名用CA証明書 (EF 0002), DER."""
        return self._read_jpki_certificate(EF_SIGN_CA_CERT)

    def _pin_status(self, aid: bytes, pin_ef: int, max_tries: int, kind: PinKind) -> int:
        self._select_ap(aid)
        self._select_ef(pin_ef)
        try:
            return pin_tries_left(self.transport, max_tries, kind)
        except CardError:
            self._selected = None
            raise

    def auth_pin_tries_left(self) -> int:
        """Tries left on the 利用者証明用暗証番号 (3 when fresh, 0 when blocked); spends no try."""
        return self._pin_status(JPKI_AID, EF_AUTH_PIN, AUTH_PIN_MAX_TRIES, PinKind.AUTH)

    def kenhojo_pin_tries_left(self) -> int:
        """Tries left on the 券面事項入力補助用暗証番号; spends no try."""
        return self._pin_status(KENHOJO_AID, EF_KENHOJO_PIN, KENHOJO_PIN_MAX_TRIES, PinKind.KENHOJO)

    def _verify(self, aid: bytes, pin_ef: int, pin: str, kind: PinKind) -> None:
        check_pin_format(pin)  # before any APDU: a malformed PIN costs nothing
        self._select_ap(aid)
        self._select_ef(pin_ef)
        try:
            verify_pin(self.transport, pin, kind)
        except (WrongPin, CardBlocked):
            raise
        except CardError:
            self._selected = None
            raise

    def verify_auth_pin(self, pin: str) -> None:
        """VERIFY the 利用者証明用暗証番号 once. Raises InvalidPinFormat, WrongPin, CardBlocked, CardError."""
        self._verify(JPKI_AID, EF_AUTH_PIN, pin, PinKind.AUTH)

    def sign_digest_info(self, digest_info: bytes) -> bytes:
        """PKCS#1 v1.5 RSA-2048 signature of a DigestInfo with the user-authentication key.

        Needs verify_auth_pin() earlier in this session with the JPKI AP still selected.
        """
        if not 1 <= len(digest_info) <= 245:
            raise ValueError("DigestInfo must be 1..245 bytes")
        self._select_ap(JPKI_AID)
        self._select_ef(EF_AUTH_KEY)
        resp = self._run(build_apdu(0x80, 0x2A, 0x00, 0x80, digest_info, le=256))
        if resp.sw == SW_SECURITY_NOT_SATISFIED:
            raise PinRequired(detail="COMPUTE SIGNATURE without a verified auth PIN")
        if resp.sw != SW_OK:
            self._selected = None
            raise CardError(
                sw=resp.sw, detail=f"COMPUTE SIGNATURE: SW {resp.sw:04X} ({describe_sw(resp.sw)})"
            )
        if len(resp.data) != 256:
            raise CardError(detail=f"signature of {len(resp.data)} bytes, expected 256")
        return resp.data

    def sign_with_auth_key(self, message: bytes) -> bytes:
        """sha256WithRSAEncryption signature of `message` (e.g. the server's nonce), 256 bytes."""
        return self.sign_digest_info(digest_info_sha256(message))

    # -- 券面事項入力補助AP -------------------------------------------------------------------
    def _read_kenhojo_ef(self, pin: str, fid: int) -> bytes:
        self._verify(KENHOJO_AID, EF_KENHOJO_PIN, pin, PinKind.KENHOJO)
        self._select_ef(fid)
        try:
            return read_der_object(self.transport, max_length=4096)
        except CardError as error:
            self._selected = None
            if error.sw == SW_SECURITY_NOT_SATISFIED:
                raise PinRequired(detail=f"券面事項入力補助AP EF {fid:04X}") from None
            raise

    def read_card_face(self, pin: str) -> CardFace:
        """基本4情報 (name, address, birth date, sex) after one VERIFY of the 券面事項入力補助用暗証番号."""
        return parse_basic_four(self._read_kenhojo_ef(pin, EF_BASIC_FOUR))

    def read_my_number(self, pin: str) -> str:
        """個人番号 (12 digits, check digit verified) after one VERIFY of the 券面事項入力補助用暗証番号."""
        return parse_my_number_ef(self._read_kenhojo_ef(pin, EF_MY_NUMBER))
