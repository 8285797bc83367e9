"""Japanese driver's licence IC card (運転免許証): common data and 記載事項 (本籍除く).

Facts from the design note mynumber-card.md §5 and TRETJapanNFCReader's reader (which follows the
public 警察庁「運転免許証及び運転経歴証明書仕様書」):

- `00 A4 00 00` selects the MF (unlike on the My Number Card); EFs with `00 A4 02 0C`.
- MF/EF 2F01 共通データ要素, no PIN: tag 45 = spec version (3 ASCII) + issue date and expiry
  (4-byte BCD YYYYMMDD each); tag 46 = manufacturer id, crypto function id.
- MF/EF 000A: 暗証番号設定 (01 = the holder set PINs, 00 = not; then "****" is sent).
- PIN1 = MF IEF 0001, VERIFY `00 20 00 80 04 …`; it stays verified when DF1 is selected.
- DF1 (AID A0 00 00 02 31 01 00…00) EF 0001: 記載事項 as TLVs (tag 11 … 2x), text in JIS X 0208
  (2 bytes per character, + 0x8080 gives EUC-JP), 外字 as FFF1–FFF7, 欠字 FFFA; dates as
  7 ASCII digits: era (1 明治 … 5 令和) + YYMMDD.

PIN rules as for the My Number Card: one VERIFY per call, format checked first, PIN zeroed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from device_bridge.drivers.apdu import (
    SW_FILE_NOT_FOUND,
    SW_OK,
    SW_SECURITY_NOT_SATISFIED,
    ApduTransport,
    CardError,
    PinKind,
    PinRequired,
    UnsupportedCard,
    build_apdu,
    check_pin_format,
    pin_tries_left,
    read_binary_all,
    read_binary_exact,
    select_aid,
    select_ef,
    transceive,
    verify_pin,
)

__all__ = [
    "DF1_AID",
    "DF2_AID",
    "GAIJI_MARK",
    "CommonData",
    "DriversLicenceCard",
    "LicenceMatters",
    "decode_jis_x0208",
    "parse_common_data",
    "parse_licence_date",
    "parse_matters",
    "parse_tlvs",
]

DF1_AID = bytes.fromhex("A0000002310100000000000000000000")
DF2_AID = bytes.fromhex("A0000002310200000000000000000000")
EF_COMMON_DATA = 0x2F01
EF_PIN_SETTING = 0x000A
EF_PIN1 = 0x0001
EF_MATTERS = 0x0001
PIN_MAX_TRIES = 3
PIN_NOT_SET = "****"
MATTERS_MAX_LENGTH = 880  # what TRETJapanNFCReader reads

# Shown where a character is 外字 or 欠字: staff check the licence itself.
GAIJI_MARK = "〓"

_ERAS = {"1": 1868, "2": 1912, "3": 1926, "4": 1989, "5": 2019}  # first (元) year of each era


@dataclass(frozen=True, slots=True)
class CommonData:
    spec_version: str
    issued_on: date | None
    expires_on: date | None
    manufacturer_id: int
    crypto_function_id: int


@dataclass(frozen=True, slots=True)
class LicenceMatters:
    """記載事項 (本籍除く). Text with 外字/欠字 carries GAIJI_MARK and sets `has_gaiji`."""

    name: str  # 氏名
    name_kana: str  # 呼び名 (カナ)
    common_name: str  # 通称名
    unified_name_kana: str  # 統一氏名 (カナ)
    birth_date: date | None
    address: str  # 住所
    issued_on: date | None  # 交付年月日
    reference_number: str  # 照会番号
    colour: str  # 色区分 (優良・新規・その他)
    expires_on: date | None  # 有効期間の末日
    conditions: tuple[str, ...]  # 免許の条件 1–4 (empty ones left out)
    authority: str  # 公安委員会名
    licence_number: str  # 免許証の番号
    has_gaiji: bool = False
    raw_dates: dict[int, str] = field(default_factory=dict)  # tag → the 7 digits as stored


def parse_tlvs(data: bytes) -> list[tuple[int, bytes]]:
    """The licence's flat TLVs: 1-byte tags (2 with 5F), 1-byte or `82 HH LL` lengths, FF = padding."""
    fields: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data) and data[pos] != 0xFF:
        tag = data[pos]
        pos += 1
        if tag == 0x5F:
            tag = (tag << 8) | data[pos]
            pos += 1
        if pos >= len(data):
            break
        length = data[pos]
        pos += 1
        if length == 0x81:
            length = data[pos]
            pos += 1
        elif length == 0x82:
            length = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
        if pos + length > len(data):
            raise CardError(detail=f"licence TLV {tag:X} truncated")
        fields.append((tag, data[pos : pos + length]))
        pos += length
    return fields


def decode_jis_x0208(data: bytes) -> tuple[str, bool]:
    """JIS X 0208 (2 bytes per character, row first) → str; (text, whether 外字/欠字 occurred)."""
    chars: list[str] = []
    gaiji = False
    for i in range(0, len(data) - 1, 2):
        code = (data[i] << 8) | data[i + 1]
        if code >= 0xFFF1:  # FFF1–FFF7 外字 (EF 0003), FFFA 欠字
            chars.append(GAIJI_MARK)
            gaiji = True
            continue
        try:
            chars.append(bytes((data[i] | 0x80, data[i + 1] | 0x80)).decode("euc_jp"))
        except UnicodeDecodeError:
            chars.append(GAIJI_MARK)
            gaiji = True
    return "".join(chars), gaiji


def parse_licence_date(text: str) -> date | None:
    """`4010203` (平成1年2月3日) → date; None if not a date."""
    if len(text) != 7 or not text.isdigit() or text[0] not in _ERAS:
        return None
    try:
        return date(_ERAS[text[0]] + int(text[1:3]) - 1, int(text[3:5]), int(text[5:7]))
    except ValueError:
        return None


def _bcd_date(raw: bytes) -> date | None:
    digits = raw.hex()
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def parse_common_data(data: bytes) -> CommonData:
    values = dict(parse_tlvs(data))
    head, ids = values.get(0x45), values.get(0x46)
    if head is None or len(head) < 11 or ids is None or len(ids) < 2:
        raise UnsupportedCard("EF 2F01 is not a licence's common data")
    return CommonData(
        spec_version=head[:3].decode("ascii", errors="replace"),
        issued_on=_bcd_date(head[3:7]),
        expires_on=_bcd_date(head[7:11]),
        manufacturer_id=ids[0],
        crypto_function_id=ids[1],
    )


_DATE_TAGS = (0x16, 0x18, 0x1B)


def parse_matters(data: bytes) -> LicenceMatters:
    values = dict(parse_tlvs(data))
    gaiji = False

    def text(tag: int) -> str:
        nonlocal gaiji
        decoded, has = decode_jis_x0208(values.get(tag, b""))
        gaiji = gaiji or has
        return decoded

    def ascii_text(tag: int) -> str:
        return values.get(tag, b"").decode("ascii", errors="replace").strip()

    raw_dates = {tag: ascii_text(tag) for tag in _DATE_TAGS if tag in values}
    return LicenceMatters(
        name=text(0x12),
        name_kana=text(0x13),
        common_name=text(0x14),
        unified_name_kana=text(0x15),
        birth_date=parse_licence_date(ascii_text(0x16)),
        address=text(0x17),
        issued_on=parse_licence_date(ascii_text(0x18)),
        reference_number=ascii_text(0x19),
        colour=text(0x1A),
        expires_on=parse_licence_date(ascii_text(0x1B)),
        conditions=tuple(c for c in (text(t) for t in (0x1C, 0x1D, 0x1E, 0x1F)) if c),
        authority=text(0x20),
        licence_number=ascii_text(0x21),
        has_gaiji=gaiji,
        raw_dates=raw_dates,
    )


class DriversLicenceCard:
    """Commands to a driver's licence over any ApduTransport. One instance per card session."""

    def __init__(self, transport: ApduTransport) -> None:
        self.transport = transport

    def _select_mf(self) -> None:
        resp = transceive(self.transport, build_apdu(0x00, 0xA4, 0x00, 0x00))
        if resp.sw != SW_OK:
            raise UnsupportedCard(f"SELECT MF: SW {resp.sw:04X}")

    def _select_ef(self, fid: int) -> None:
        resp = select_ef(self.transport, fid)
        if resp.sw == SW_FILE_NOT_FOUND:
            raise UnsupportedCard(f"EF {fid:04X} not found")
        resp.require_ok(f"SELECT EF {fid:04X}")

    def read_common_data(self) -> CommonData:
        self._select_mf()
        self._select_ef(EF_COMMON_DATA)
        return parse_common_data(read_binary_exact(self.transport, 17))

    def is_drivers_licence(self) -> bool:
        try:
            self.read_common_data()
        except UnsupportedCard:
            return False
        except CardError as error:
            if error.sw:
                return False
            raise
        return True

    def pin_is_set(self) -> bool:
        """Whether the holder set PINs (EF 000A = 01); if not, "****" opens the card."""
        self._select_mf()
        self._select_ef(EF_PIN_SETTING)
        values = parse_tlvs(read_binary_all(self.transport, 3))
        return bool(values and values[0][1][:1] == b"\x01")

    def pin1_tries_left(self) -> int:
        self._select_mf()
        self._select_ef(EF_PIN1)
        return pin_tries_left(self.transport, PIN_MAX_TRIES, PinKind.LICENCE_PIN1)

    def read_matters(self, pin1: str | None) -> LicenceMatters:
        """記載事項 (本籍除く) after one VERIFY of PIN1 (`pin1` None if the holder set no PIN)."""
        if pin1 is not None:
            check_pin_format(pin1)
        pin_set = self.pin_is_set()
        if pin_set and pin1 is None:
            raise PinRequired(detail="licence PIN1 is set")
        self._select_mf()
        self._select_ef(EF_PIN1)
        if pin_set and pin1 is not None:
            verify_pin(self.transport, pin1, PinKind.LICENCE_PIN1)
        else:
            verify_pin(self.transport, PIN_NOT_SET, PinKind.LICENCE_PIN1, raw=True)
        resp = select_aid(self.transport, DF1_AID)
        if resp.sw != SW_OK:
            raise UnsupportedCard(f"SELECT DF1: SW {resp.sw:04X}")
        self._select_ef(EF_MATTERS)
        try:
            data = read_binary_all(self.transport, MATTERS_MAX_LENGTH)
        except CardError as error:
            if error.sw == SW_SECURITY_NOT_SATISFIED:
                raise PinRequired(detail="DF1/EF0001") from None
            raise
        return parse_matters(data)
