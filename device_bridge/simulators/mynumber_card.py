"""A simulated My Number Card that answers APDUs byte for byte as the real card does.

It models what the design note mynumber-card.md §8 lists from real-card logs: the five
applications (GlobalPlatform ISD current at power-on), SELECT by AID and by FID, READ BINARY by
offset and by SFI (short reads at EOF, 6B00 past it), VERIFY on the current PIN EF or by SFI with
retry counters that survive power cycles (kept in a JSON file per card), security state per
application (cleared by any DF SELECT and by reset), the proprietary COMPUTE SIGNATURE `80 2A`,
CHANGE REFERENCE DATA, the JPKI token EF, the 券面事項入力補助AP's 個人番号 and 基本4情報 EFs and
its 照合番号A/B keys. Where the note says UNCERTAIN, the choice made is commented.

Drive it directly (`execute`) in unit tests, or plug it into pcscd through `VpcdLink`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from app.domain.wareki import era_year
from device_bridge.drivers.apdu import (
    SW_CLA_NOT_SUPPORTED,
    SW_COMMAND_INCOMPATIBLE,
    SW_CONDITIONS_NOT_SATISFIED,
    SW_FILE_NOT_FOUND,
    SW_INCORRECT_DATA,
    SW_INCORRECT_P1P2,
    SW_INS_NOT_SUPPORTED,
    SW_NO_CURRENT_EF,
    SW_OK,
    SW_REFERENCE_DATA_NOT_USABLE,
    SW_REFERENCED_DATA_NOT_FOUND,
    SW_SECURITY_NOT_SATISFIED,
    SW_SM_NOT_SUPPORTED,
    SW_WRONG_LENGTH,
    SW_WRONG_P1P2,
)
from device_bridge.drivers.mynumber import (
    COMMON_AID,
    DIGEST_INFO_SHA256_PREFIX,
    JPKI_AID,
    JUKI_AID,
    KENHOJO_AID,
    KENKAKU_AID,
    MY_NUMBER_CARD_TOKEN,
    is_valid_my_number,
)
from device_bridge.simulators.jpki_ca import CaKind, Holder, JpkiDemoCa

__all__ = [
    "ATR",
    "GP_ISD_AID",
    "CardProfile",
    "OtherCard",
    "SimulatedMyNumberCard",
    "basic_four_ef",
    "my_number_ef",
    "verification_code_b",
]

log = logging.getLogger(__name__)

ATR = bytes.fromhex("3BE000FF8131FE4514")
GP_ISD_AID = bytes.fromhex("A0000001510000")  # current application at power-on

TOKEN_EF_SIZE = 160
CERT_EF_SIZE = 2048  # certificate EFs are larger than the DER and padded (size itself UNCERTAIN)
BASIC_FOUR_EF_SIZE = 512
FILLER = 0xFF


def _is_digits(value: str, lengths: range) -> bool:
    return len(value) in lengths and value.isascii() and value.isdigit()


def _is_sign_password(value: str) -> bool:
    """6–16 characters, A–Z and 0–9, at least one of each."""
    return (
        6 <= len(value) <= 16
        and value.isascii()
        and all(c.isupper() or c.isdigit() for c in value)
        and any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
    )


def _is_four_digits(value: str) -> bool:
    return _is_digits(value, range(4, 5))


def _never(value: str) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class CardProfile:
    """Everything that makes one card: holder data, PINs, keys and certificates (DER)."""

    serial: str
    name: str  # 氏名, family and given name separated by U+3000
    address: str
    birth: date
    sex: str  # "1" male, "2" female, "9" not applicable, "0" unknown
    my_number: str  # 12 digits with a valid check digit
    auth_key: rsa.RSAPrivateKey
    auth_cert: bytes
    auth_ca_cert: bytes
    sign_key: rsa.RSAPrivateKey
    sign_cert: bytes
    sign_ca_cert: bytes
    auth_pin: str = "1234"
    kenhojo_pin: str = "1234"
    sign_password: str = "ABC123"
    card_expiry: date | None = None  # printed on the card; with security_code gives 照合番号B
    security_code: str = ""  # 4-digit セキュリティコード printed on the card face
    token: str = MY_NUMBER_CARD_TOKEN  # "JPKIAPICCTOKEN" simulates an old 住基カード

    @classmethod
    def issued(
        cls,
        ca: JpkiDemoCa,
        serial: str,
        holder: Holder,
        auth_serial: int | str,
        sign_serial: int | str,
        *,
        my_number: str = "123456789018",
        not_before: datetime | None = None,
        **extra: Any,
    ) -> CardProfile:
        """A card issued by the demo CA to `holder`: keys and certificates made (or reused) by
        `ca.card_credentials`, the holder's 4 attributes on the face; `extra` sets the PINs,
        expiry and the like."""
        credentials = ca.card_credentials(serial, auth_serial, sign_serial, holder, not_before=not_before)
        return cls(
            serial=serial,
            name=holder.name,
            address=holder.address,
            birth=holder.birth,
            sex=holder.sex,
            my_number=my_number,
            auth_key=credentials.auth_key,
            auth_cert=credentials.auth_cert,
            auth_ca_cert=ca.root_der(CaKind.AUTH),
            sign_key=credentials.sign_key,
            sign_cert=credentials.sign_cert,
            sign_ca_cert=ca.root_der(CaKind.SIGN),
            **extra,
        )

    def __post_init__(self) -> None:
        if not is_valid_my_number(self.my_number):
            raise ValueError("my_number must be 12 digits with a valid check digit")
        if self.sex not in ("0", "1", "2", "9"):
            raise ValueError(f"sex must be 0, 1, 2 or 9, not {self.sex!r}")
        for label, pin in (("auth_pin", self.auth_pin), ("kenhojo_pin", self.kenhojo_pin)):
            if not _is_digits(pin, range(4, 5)):
                raise ValueError(f"{label} must be 4 digits")
        if not _is_sign_password(self.sign_password):
            raise ValueError("sign_password must be 6–16 of A–Z/0–9 with a letter and a digit")
        if self.security_code and not _is_digits(self.security_code, range(4, 5)):
            raise ValueError("security_code must be 4 digits")
        if len(self.token) > 32 or not self.token.isascii():
            raise ValueError("token must be ≤ 32 ASCII characters")


def verification_code_b(birth: date, card_expiry: date, security_code: str) -> str:
    """照合番号B: birth YYMMDD in the Japanese-era year + expiry year (4 digits) + セキュリティコード."""
    _, year = era_year(birth)
    return f"{year % 100:02d}{birth.month:02d}{birth.day:02d}{card_expiry.year:04d}{security_code}"


def _ber_length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    if length <= 0xFF:
        return bytes((0x81, length))
    return bytes((0x82, length >> 8, length & 0xFF))


def _tlv(tag: int, value: bytes) -> bytes:
    tag_bytes = tag.to_bytes(2 if tag > 0xFF else 1, "big")
    return tag_bytes + _ber_length(len(value)) + value


def my_number_ef(my_number: str) -> bytes:
    """EF 0001 of the 券面事項入力補助AP: `FF 10 0C` + 12 ASCII digits + `FF FF` (17 bytes)."""
    return _tlv(0xFF10, my_number.encode("ascii")) + bytes((FILLER, FILLER))


def basic_four_ef(name: str, address: str, birth: date, sex: str) -> bytes:
    """EF 0002: `FF 20 { DF21 offsets, DF22 氏名, DF23 住所, DF24 YYYYMMDD, DF25 性別 }` + FF filler.

    Offsets are those of the DF22..DF25 tags from the start of the EF. Lengths ≥ 128 use the
    81/82 BER forms (how real cards encode them is UNCERTAIN; every sample seen is < 128).
    """
    items = [
        _tlv(0xDF22, name.encode("utf-8")),
        _tlv(0xDF23, address.encode("utf-8")),
        _tlv(0xDF24, f"{birth.year:04d}{birth.month:02d}{birth.day:02d}".encode("ascii")),
        _tlv(0xDF25, sex.encode("ascii")),
    ]
    body_length = 3 + 8 + sum(len(item) for item in items)
    header_length = 2 + len(_ber_length(body_length))
    offsets = bytearray()
    pos = header_length + 3 + 8
    for item in items:
        offsets += pos.to_bytes(2, "big")
        pos += len(item)
    content = _tlv(0xFF20, _tlv(0xDF21, bytes(offsets)) + b"".join(items))
    return content + bytes((FILLER,)) * max(0, BASIC_FOUR_EF_SIZE - len(content))


def _padded(data: bytes, size: int, filler: int = FILLER) -> bytes:
    return data + bytes((filler,)) * max(0, size - len(data))


# -- file system -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Binary:
    data: bytes
    opened_by: frozenset[int] = frozenset()  # PIN FIDs of the same DF, any of which opens it


@dataclass(slots=True)
class _Pin:
    default: str
    max_tries: int
    valid: Callable[[str], bool]


@dataclass(slots=True)
class _Key:
    key: rsa.RSAPrivateKey
    opened_by: frozenset[int]


_Object = _Binary | _Pin | _Key


@dataclass(slots=True)
class _Application:
    aid: bytes
    label: str  # names the DF in the state file
    files: dict[int, _Object] = field(default_factory=dict)


class _Status(Exception):
    def __init__(self, sw: int) -> None:
        super().__init__(f"{sw:04X}")
        self.sw = sw


@dataclass(slots=True)
class _Command:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    le: int | None  # None: no Le field; 256 for short 00, 65536 for extended 0000


def _parse(apdu: bytes) -> _Command:
    n = len(apdu)
    if n < 4:
        raise _Status(SW_WRONG_LENGTH)
    cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
    data = b""
    le: int | None = None
    if n == 5:
        le = apdu[4] or 256
    elif n > 5 and apdu[4] != 0:
        lc = apdu[4]
        if n == 5 + lc:
            data = apdu[5:]
        elif n == 6 + lc:
            data, le = apdu[5:-1], apdu[-1] or 256
        else:
            raise _Status(SW_WRONG_LENGTH)
    elif n > 5:  # extended length (tex2e read the rest of a certificate with one)
        if n == 7:
            le = int.from_bytes(apdu[5:7], "big") or 65536
        else:
            lc = int.from_bytes(apdu[5:7], "big")
            if lc == 0:
                raise _Status(SW_WRONG_LENGTH)
            if n == 7 + lc:
                data = apdu[7:]
            elif n == 9 + lc:
                data, le = apdu[7:-2], int.from_bytes(apdu[-2:], "big") or 65536
            else:
                raise _Status(SW_WRONG_LENGTH)
    return _Command(cla, ins, p1, p2, bytes(data), le)


def _pkcs1_sign(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 "type 1" padding over `data` as given, then the private-key operation."""
    if data.startswith(DIGEST_INFO_SHA256_PREFIX) and len(data) == len(DIGEST_INFO_SHA256_PREFIX) + 32:
        # Same bytes as the generic path below, computed by OpenSSL.
        return key.sign(data[-32:], padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    size = key.key_size // 8
    encoded = b"\x00\x01" + b"\xff" * (size - 3 - len(data)) + b"\x00" + data
    numbers = key.private_numbers()
    m = int.from_bytes(encoded, "big")
    s1 = pow(m, numbers.dmp1, numbers.p)
    s2 = pow(m, numbers.dmq1, numbers.q)
    h = (numbers.iqmp * (s1 - s2)) % numbers.p
    return (s2 + h * numbers.q).to_bytes(size, "big")


class SimulatedMyNumberCard:
    """One My Number Card. Thread-safe; PIN counters persist in `state_path` (JSON) if given."""

    atr = ATR

    def __init__(self, profile: CardProfile, state_path: Path | None = None) -> None:
        self.profile = profile
        self.state_path = state_path
        self._lock = threading.RLock()
        self._apps = self._build(profile)
        self._by_aid = {app.aid: app for app in self._apps}
        self._tries: dict[str, int] = {}
        self._pin_hashes: dict[str, str] = {}  # changed PINs only (CHANGE REFERENCE DATA)
        self._load_state()
        self._current: _Application = self._by_aid[GP_ISD_AID]
        self._current_ef: int | None = None
        self._verified: set[int] = set()
        self.powered = False

    # -- construction --------------------------------------------------------------------------
    @staticmethod
    def _build(p: CardProfile) -> list[_Application]:
        jpki = _Application(
            JPKI_AID,
            "jpki",
            {
                0x0001: _Binary(
                    _padded(p.sign_cert, max(CERT_EF_SIZE, len(p.sign_cert))), frozenset({0x001B})
                ),
                0x0002: _Binary(_padded(p.sign_ca_cert, max(CERT_EF_SIZE, len(p.sign_ca_cert)))),
                0x0006: _Binary(p.token.encode("ascii").ljust(TOKEN_EF_SIZE, b" ")),
                0x0008: _Binary(bytes.fromhex("8F8F00")),
                0x000A: _Binary(_padded(p.auth_cert, max(CERT_EF_SIZE, len(p.auth_cert)))),
                0x000B: _Binary(_padded(p.auth_ca_cert, max(CERT_EF_SIZE, len(p.auth_ca_cert)))),
                0x0017: _Key(p.auth_key, frozenset({0x0018})),
                0x0018: _Pin(p.auth_pin, 3, _is_four_digits),
                0x001A: _Key(p.sign_key, frozenset({0x001B})),
                0x001B: _Pin(p.sign_password, 5, _is_sign_password),
            },
        )
        text_files: dict[int, _Object] = {
            0x0001: _Binary(my_number_ef(p.my_number), frozenset({0x0011, 0x0014})),
            0x0002: _Binary(basic_four_ef(p.name, p.address, p.birth, p.sex), frozenset({0x0011, 0x0015})),
            0x0008: _Binary(b"\xff" * 16),
            0x0011: _Pin(p.kenhojo_pin, 3, _is_four_digits),
            # A key reference that is blocked on every card examined (soltia).
            0x0012: _Pin("", 0, _never),
            # 照合番号A = 個人番号. The limit of 10 is UNCERTAIN (a secondary source).
            0x0014: _Pin(p.my_number, 10, lambda v: _is_digits(v, range(12, 13))),
        }
        if p.card_expiry is not None and p.security_code:
            code_b = verification_code_b(p.birth, p.card_expiry, p.security_code)
            text_files[0x0015] = _Pin(code_b, 10, lambda v: _is_digits(v, range(14, 15)))
        return [
            _Application(GP_ISD_AID, "isd"),
            jpki,
            _Application(KENHOJO_AID, "kenhojo", text_files),
            _Application(KENKAKU_AID, "kenkaku"),
            _Application(JUKI_AID, "juki"),
            _Application(COMMON_AID, "common"),
        ]

    # -- persistent PIN state ------------------------------------------------------------------
    @staticmethod
    def _state_key(app: _Application, fid: int) -> str:
        return f"{app.label}/{fid:04X}"

    def _load_state(self) -> None:
        raw: dict[str, Any] = {}
        if self.state_path is not None and self.state_path.exists():
            try:
                raw = json.loads(self.state_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                log.warning("card state %s unreadable; starting from defaults", self.state_path)
        pins = raw.get("pins", {}) if isinstance(raw, dict) else {}
        for app in self._apps:
            for fid, obj in app.files.items():
                if not isinstance(obj, _Pin):
                    continue
                key = self._state_key(app, fid)
                entry = pins.get(key, {})
                tries = entry.get("tries", obj.max_tries) if isinstance(entry, dict) else obj.max_tries
                self._tries[key] = max(0, min(int(tries), obj.max_tries))
                if isinstance(entry, dict) and isinstance(entry.get("sha256"), str):
                    self._pin_hashes[key] = entry["sha256"]

    def _save_state(self) -> None:
        if self.state_path is None:
            return
        pins: dict[str, dict[str, Any]] = {}
        for key, tries in sorted(self._tries.items()):
            pins[key] = {"tries": tries}
            if key in self._pin_hashes:
                # Demo card: the hash only keeps a changed PIN out of the file in plain text.
                pins[key]["sha256"] = self._pin_hashes[key]
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"serial": self.profile.serial, "pins": pins}, indent=1), encoding="utf-8")
        os.replace(tmp, self.state_path)

    def tries_left(self, aid: bytes, fid: int) -> int:
        with self._lock:
            return self._tries[self._state_key(self._by_aid[aid], fid)]

    def reset_pin_counters(self, *, restore_default_pins: bool = False) -> None:
        """What the municipal office's terminal does for a blocked card (demo console)."""
        with self._lock:
            for app in self._apps:
                for fid, obj in app.files.items():
                    if isinstance(obj, _Pin):
                        self._tries[self._state_key(app, fid)] = obj.max_tries
            if restore_default_pins:
                self._pin_hashes.clear()
            self._save_state()

    # -- power ---------------------------------------------------------------------------------
    def power_on(self) -> None:
        with self._lock:
            self.powered = True
            self._reset_volatile()

    def power_off(self) -> None:
        with self._lock:
            self.powered = False
            self._reset_volatile()

    def reset(self) -> None:
        with self._lock:
            self.powered = True
            self._reset_volatile()

    def _reset_volatile(self) -> None:
        self._current = self._by_aid[GP_ISD_AID]
        self._current_ef = None
        self._verified = set()

    # -- APDUs ---------------------------------------------------------------------------------
    def execute(self, apdu: bytes) -> bytes:
        """One command APDU → response data + SW1 SW2."""
        with self._lock:
            try:
                data = self._dispatch(_parse(bytes(apdu)))
            except _Status as status:
                return status.sw.to_bytes(2, "big")
            return data + SW_OK.to_bytes(2, "big")

    def _dispatch(self, c: _Command) -> bytes:
        if c.cla & 0x0C:
            raise _Status(SW_SM_NOT_SUPPORTED)
        if c.cla == 0x00:
            handlers: dict[int, Callable[[_Command], bytes]] = {
                0xA4: self._select,
                0xB0: self._read_binary,
                0x20: self._verify,
                0x24: self._change_reference_data,
                0x84: self._get_challenge,
                0x88: self._internal_authenticate,
                0xB2: self._read_record,
            }
        elif c.cla == 0x80:
            handlers = {0x2A: self._compute_signature}
        else:
            raise _Status(SW_CLA_NOT_SUPPORTED)
        handler = handlers.get(c.ins)
        if handler is None:
            raise _Status(SW_INS_NOT_SUPPORTED)
        return handler(c)

    def _select(self, c: _Command) -> bytes:
        if c.p1 == 0x04:  # DF by name
            if c.p2 != 0x0C:
                raise _Status(SW_INCORRECT_P1P2)
            app = self._by_aid.get(c.data)  # exact match; JICSAP prefix matching is UNCERTAIN
            if app is None:
                raise _Status(SW_FILE_NOT_FOUND)
            self._current = app
            self._current_ef = None
            self._verified = set()  # per-DF security state (UNCERTAIN, see the note §8.10)
            return b""
        if c.p1 == 0x02:  # EF under the current DF
            if c.p2 != 0x0C:
                raise _Status(SW_INCORRECT_P1P2)
            if len(c.data) != 2:
                raise _Status(SW_WRONG_LENGTH)
            fid = int.from_bytes(c.data, "big")
            if fid not in self._current.files:
                raise _Status(SW_FILE_NOT_FOUND)
            self._current_ef = fid
            return b""
        if c.p1 == 0x00:
            if c.data:  # 3F00 by FID is refused
                raise _Status(SW_FILE_NOT_FOUND)
            # SELECT MF: 6A86 right after reset, 9000 without any change inside an application.
            if self._current.aid == GP_ISD_AID:
                raise _Status(SW_INCORRECT_P1P2)
            return b""
        raise _Status(SW_INCORRECT_P1P2)

    def _resolve_sfi(self, sfi: int) -> int:
        for fid in self._current.files:
            if fid & 0x1F == sfi and fid >> 5 == 0:
                return fid
        raise _Status(SW_FILE_NOT_FOUND)

    def _read_binary(self, c: _Command) -> bytes:
        if c.data or c.le is None:
            raise _Status(SW_WRONG_LENGTH)
        if c.p1 & 0x80:
            if c.p1 & 0x60:
                raise _Status(SW_INCORRECT_P1P2)
            fid = self._resolve_sfi(c.p1 & 0x1F)
            offset = c.p2
        else:
            if self._current_ef is None:
                raise _Status(SW_NO_CURRENT_EF)
            fid = self._current_ef
            offset = (c.p1 << 8) | c.p2
        obj = self._current.files[fid]
        if not isinstance(obj, _Binary):
            raise _Status(SW_COMMAND_INCOMPATIBLE)
        if obj.opened_by and not obj.opened_by & self._verified:
            raise _Status(SW_SECURITY_NOT_SATISFIED)
        self._current_ef = fid
        if offset >= len(obj.data):
            raise _Status(SW_WRONG_P1P2)
        return obj.data[offset : offset + c.le]

    def _pin_ref(self, p2: int) -> tuple[int, _Pin]:
        """The PIN named by P2: 80 = the current EF, 80|SFI = by short EF identifier."""
        if p2 == 0x80:
            fid = self._current_ef
            if fid is None:
                raise _Status(SW_REFERENCED_DATA_NOT_FOUND)
        elif p2 & 0xE0 == 0x80:
            try:
                fid = self._resolve_sfi(p2 & 0x1F)
            except _Status:
                raise _Status(SW_REFERENCED_DATA_NOT_FOUND) from None
        else:
            raise _Status(SW_INCORRECT_P1P2)
        obj = self._current.files.get(fid)
        if not isinstance(obj, _Pin):
            raise _Status(SW_REFERENCED_DATA_NOT_FOUND)
        return fid, obj

    def _pin_matches(self, key: str, pin: _Pin, candidate: bytes) -> bool:
        stored = self._pin_hashes.get(key)
        if stored is not None:
            return hmac.compare_digest(stored, hashlib.sha256(candidate).hexdigest())
        return hmac.compare_digest(pin.default.encode("ascii"), candidate)

    def _verify(self, c: _Command) -> bytes:
        if c.p1 != 0x00:
            raise _Status(SW_INCORRECT_P1P2)
        fid, pin = self._pin_ref(c.p2)
        key = self._state_key(self._current, fid)
        tries = self._tries[key]
        if not c.data:  # case 1: report the counter, spend nothing
            if fid in self._verified:
                return b""
            raise _Status(0x63C0 | tries)
        if tries == 0:
            raise _Status(SW_REFERENCE_DATA_NOT_USABLE)
        try:
            candidate = c.data.decode("ascii")
        except UnicodeDecodeError:
            candidate = ""
        if pin.max_tries and not pin.valid(candidate):
            # Wrong length/alphabet: refused without counting (whether real cards count it is UNCERTAIN).
            raise _Status(SW_WRONG_LENGTH)
        if self._pin_matches(key, pin, c.data):
            self._tries[key] = pin.max_tries
            self._verified.add(fid)
            self._save_state()
            return b""
        self._tries[key] = tries - 1
        self._verified.discard(fid)
        self._save_state()
        raise _Status(0x63C0 | (tries - 1))

    def _change_reference_data(self, c: _Command) -> bytes:
        if c.p1 != 0x01:  # only "new value after a VERIFY", as myna and soltia use it
            raise _Status(SW_INCORRECT_P1P2)
        fid, pin = self._pin_ref(c.p2)
        if not c.data:
            raise _Status(SW_WRONG_LENGTH)
        if fid not in self._verified:
            raise _Status(SW_SECURITY_NOT_SATISFIED)
        try:
            candidate = c.data.decode("ascii")
        except UnicodeDecodeError:
            raise _Status(SW_INCORRECT_DATA) from None
        if not pin.valid(candidate):
            raise _Status(SW_INCORRECT_DATA)
        key = self._state_key(self._current, fid)
        self._pin_hashes[key] = hashlib.sha256(c.data).hexdigest()
        self._tries[key] = pin.max_tries
        self._save_state()
        return b""

    def _key_ref(self, p2: int) -> _Key:
        if p2 == 0x80:
            fid = self._current_ef
            if fid is None:
                raise _Status(SW_REFERENCED_DATA_NOT_FOUND)
        elif p2 & 0xE0 == 0x80:
            try:
                fid = self._resolve_sfi(p2 & 0x1F)
            except _Status:
                raise _Status(SW_REFERENCED_DATA_NOT_FOUND) from None
        else:
            raise _Status(SW_INCORRECT_P1P2)
        obj = self._current.files.get(fid)
        if not isinstance(obj, _Key):
            raise _Status(SW_REFERENCED_DATA_NOT_FOUND)
        return obj

    def _compute_signature(self, c: _Command) -> bytes:
        # P1 = scheme: 00 DigestInfo as supplied; 02 bare SHA-256 hash, card adds DigestInfo;
        # 03 card hashes and adds DigestInfo (soltia, 1 source). PSS (04/05) is not simulated.
        if c.p1 not in (0x00, 0x02, 0x03):
            raise _Status(SW_INCORRECT_P1P2)
        key = self._key_ref(c.p2)
        if not c.data:
            raise _Status(SW_WRONG_LENGTH)
        if c.le is not None and c.le < key.key.key_size // 8:
            raise _Status(SW_WRONG_LENGTH)
        if not key.opened_by & self._verified:
            raise _Status(SW_SECURITY_NOT_SATISFIED)
        if c.p1 == 0x00:
            if len(c.data) > key.key.key_size // 8 - 11:
                raise _Status(SW_CONDITIONS_NOT_SATISFIED)
            to_sign = c.data
        elif c.p1 == 0x02:
            if len(c.data) != 32:
                raise _Status(SW_CONDITIONS_NOT_SATISFIED)
            to_sign = DIGEST_INFO_SHA256_PREFIX + c.data
        else:
            to_sign = DIGEST_INFO_SHA256_PREFIX + hashlib.sha256(c.data).digest()
        return _pkcs1_sign(key.key, to_sign)

    def _get_challenge(self, c: _Command) -> bytes:
        if c.p1 or c.p2:
            raise _Status(SW_INCORRECT_P1P2)
        if c.data or c.le is None or c.le > 256:
            raise _Status(SW_WRONG_LENGTH)
        return os.urandom(c.le)

    def _internal_authenticate(self, c: _Command) -> bytes:
        # JPKI keys are not usable this way: PIN-protected keys answer 6982 (soltia).
        key = self._key_ref(c.p2)
        if key.opened_by:
            raise _Status(SW_SECURITY_NOT_SATISFIED)
        raise _Status(SW_CONDITIONS_NOT_SATISFIED)

    def _read_record(self, c: _Command) -> bytes:
        raise _Status(SW_FILE_NOT_FOUND)  # no record EFs are simulated (共通カードAP 製造番号)


class OtherCard:
    """A card that is not a My Number Card (e.g. a transit IC card on a contactless reader)."""

    atr = bytes.fromhex("3B80800101")  # PC/SC part 3 contactless ATR, no historical bytes

    def power_on(self) -> None:
        pass

    def power_off(self) -> None:
        pass

    def reset(self) -> None:
        pass

    def execute(self, apdu: bytes) -> bytes:
        if len(apdu) >= 2 and apdu[1] == 0xA4:
            return SW_FILE_NOT_FOUND.to_bytes(2, "big")
        return SW_INS_NOT_SUPPORTED.to_bytes(2, "big")


class DirectTransport:
    """The simulated card without a reader: APDUs go straight to `execute` (tests, benches)."""

    def __init__(self, card: SimulatedMyNumberCard) -> None:
        self.card = card

    def transmit(self, apdu: bytes | bytearray) -> bytes:
        return self.card.execute(bytes(apdu))
