"""ISO 7816-4 APDUs: building commands, parsing responses, status words, chunked READ BINARY.

Only short APDUs are built (Lc ≤ 255, Le ≤ 256): extended length through PC/SC readers and
vpcd is not something every reader does (see docs/design: mynumber-card.md §6), and nothing the
My Number Card needs is longer. Response chaining (61xx → GET RESPONSE) and "wrong Le" (6Cxx →
resend with the right Le) are handled in `transceive`.

A transport may be handed a `bytearray` (VERIFY builds the PIN in one so it can be zeroed); it
must not keep a reference to the APDU after `transmit` returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

__all__ = [
    "SW_AUTH_METHOD_BLOCKED",
    "SW_CLA_NOT_SUPPORTED",
    "SW_COMMAND_INCOMPATIBLE",
    "SW_CONDITIONS_NOT_SATISFIED",
    "SW_END_OF_FILE_WARNING",
    "SW_FILE_NOT_FOUND",
    "SW_INCORRECT_DATA",
    "SW_INCORRECT_P1P2",
    "SW_INS_NOT_SUPPORTED",
    "SW_NO_CURRENT_EF",
    "SW_OK",
    "SW_REFERENCE_DATA_NOT_USABLE",
    "SW_REFERENCED_DATA_NOT_FOUND",
    "SW_SECURITY_NOT_SATISFIED",
    "SW_SM_NOT_SUPPORTED",
    "SW_UNKNOWN",
    "SW_WRONG_LENGTH",
    "SW_WRONG_P1P2",
    "ApduError",
    "ApduTransport",
    "CardBlocked",
    "CardError",
    "CardRemovedError",
    "InvalidPinFormat",
    "PinKind",
    "PinRequired",
    "Response",
    "UnsupportedCard",
    "WrongPin",
    "build_apdu",
    "check_pin_format",
    "der_total_length",
    "describe_sw",
    "parse_response",
    "read_binary",
    "read_binary_all",
    "read_binary_exact",
    "read_der_object",
    "pin_tries_left",
    "select_aid",
    "select_ef",
    "transceive",
    "verify_pin",
]

log = logging.getLogger(__name__)

# Status words (SW1SW2) used by the drivers and the simulators.
SW_OK = 0x9000
SW_END_OF_FILE_WARNING = 0x6282  # "end of file reached before reading Le bytes"
SW_WRONG_LENGTH = 0x6700
SW_SM_NOT_SUPPORTED = 0x6882
SW_COMMAND_INCOMPATIBLE = 0x6981  # e.g. READ BINARY on a key or PIN object
SW_SECURITY_NOT_SATISFIED = 0x6982  # PIN not verified
SW_AUTH_METHOD_BLOCKED = 0x6983
SW_REFERENCE_DATA_NOT_USABLE = 0x6984  # what the My Number Card answers for a blocked PIN
SW_CONDITIONS_NOT_SATISFIED = 0x6985
SW_NO_CURRENT_EF = 0x6986
SW_INCORRECT_DATA = 0x6A80
SW_FILE_NOT_FOUND = 0x6A82
SW_INCORRECT_P1P2 = 0x6A86
SW_REFERENCED_DATA_NOT_FOUND = 0x6A88
SW_WRONG_P1P2 = 0x6B00  # READ BINARY: offset beyond the end of the EF
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00
SW_UNKNOWN = 0x6F00

_SW_TEXT: dict[int, str] = {
    SW_OK: "success",
    SW_END_OF_FILE_WARNING: "end of file reached",
    SW_WRONG_LENGTH: "wrong length",
    SW_SM_NOT_SUPPORTED: "secure messaging not supported",
    SW_COMMAND_INCOMPATIBLE: "command incompatible with file structure",
    SW_SECURITY_NOT_SATISFIED: "security status not satisfied",
    SW_AUTH_METHOD_BLOCKED: "authentication method blocked",
    SW_REFERENCE_DATA_NOT_USABLE: "reference data not usable (blocked)",
    SW_CONDITIONS_NOT_SATISFIED: "conditions of use not satisfied",
    SW_NO_CURRENT_EF: "command not allowed (no current EF)",
    SW_INCORRECT_DATA: "incorrect data",
    SW_FILE_NOT_FOUND: "file or application not found",
    SW_INCORRECT_P1P2: "incorrect P1-P2",
    SW_REFERENCED_DATA_NOT_FOUND: "referenced data not found",
    SW_WRONG_P1P2: "wrong P1-P2 (offset beyond end of file)",
    SW_INS_NOT_SUPPORTED: "instruction not supported",
    SW_CLA_NOT_SUPPORTED: "class not supported",
    SW_UNKNOWN: "no precise diagnosis",
}

# Shown to the resident when a command fails for a reason they cannot act on.
MESSAGE_CARD_ERROR = "カードを読み取れませんでした。もう一度カードを置いてください。"
MESSAGE_CARD_REMOVED = "カードが取り外されました。もう一度カードを置いてください。"
MESSAGE_UNSUPPORTED = "このカードは読み取れません"


def describe_sw(sw: int) -> str:
    """A short English description of a status word, for logs."""
    if sw & 0xFFF0 == 0x63C0:
        return f"verification failed, {sw & 0x0F} tries left"
    if sw >> 8 == 0x61:
        return f"{sw & 0xFF or 256} more bytes available"
    if sw >> 8 == 0x6C:
        return f"wrong Le, exact length {sw & 0xFF or 256}"
    return _SW_TEXT.get(sw, "unknown status")


class CardError(Exception):
    """A card command failed. `message` is for the resident (Japanese); `sw` is 0 when not a card answer."""

    def __init__(self, message: str = MESSAGE_CARD_ERROR, *, sw: int = 0, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.sw = sw
        self.detail = detail or (f"SW {sw:04X} ({describe_sw(sw)})" if sw else "")

    def __str__(self) -> str:
        return f"{self.message} [{self.detail}]" if self.detail else self.message


class CardRemovedError(CardError):
    """The card left the reader (or stopped answering) during a command."""

    def __init__(self, message: str = MESSAGE_CARD_REMOVED, *, detail: str = "") -> None:
        super().__init__(message, detail=detail)


class UnsupportedCard(CardError):
    """Not a card this driver reads (wrong application, token or protocol)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(MESSAGE_UNSUPPORTED, detail=detail)


class PinKind(Enum):
    AUTH = "auth"  # マイナンバーカード 利用者証明用暗証番号 (JPKI EF 0018)
    KENHOJO = "kenhojo"  # マイナンバーカード 券面事項入力補助用暗証番号 (EF 0011)
    LICENCE_PIN1 = "licence_pin1"  # 運転免許証 暗証番号1
    LICENCE_PIN2 = "licence_pin2"  # 運転免許証 暗証番号2


MESSAGE_BLOCKED = "暗証番号がロックされています。窓口へお越しください。"
# A driver's licence is unblocked by the police, not at the municipal counter.
MESSAGE_BLOCKED_LICENCE = "暗証番号がロックされています。運転免許センターまたは警察署へお越しください。"
MESSAGE_PIN_REQUIRED = "暗証番号の入力が必要です。"
MESSAGE_PIN_FORMAT = "暗証番号は数字4桁で入力してください。"


class WrongPin(CardError):
    """The card refused the PIN; `tries_left` ≥ 1 more attempts remain."""

    def __init__(self, tries_left: int, pin_kind: PinKind = PinKind.AUTH) -> None:
        super().__init__(
            f"暗証番号が違います。あと{tries_left}回間違えるとロックされます。",
            sw=0x63C0 | tries_left,
            detail=f"{pin_kind.value} PIN wrong, {tries_left} tries left",
        )
        self.tries_left = tries_left
        self.pin_kind = pin_kind


class CardBlocked(CardError):
    """The PIN is blocked (63C0 on the exhausting attempt, 6983/6984 afterwards): only the issuer can reset it."""

    def __init__(self, sw: int, pin_kind: PinKind = PinKind.AUTH) -> None:
        licence = pin_kind in (PinKind.LICENCE_PIN1, PinKind.LICENCE_PIN2)
        super().__init__(
            MESSAGE_BLOCKED_LICENCE if licence else MESSAGE_BLOCKED,
            sw=sw,
            detail=f"{pin_kind.value} PIN blocked (SW {sw:04X})",
        )
        self.pin_kind = pin_kind


class PinRequired(CardError):
    """The command needs a verified PIN in this session (6982)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(MESSAGE_PIN_REQUIRED, sw=SW_SECURITY_NOT_SATISFIED, detail=detail)


class InvalidPinFormat(CardError, ValueError):
    """The PIN is not 4 ASCII digits; nothing was sent to the card."""

    def __init__(self) -> None:
        super().__init__(MESSAGE_PIN_FORMAT, detail="PIN is not 4 ASCII digits; not sent")


class ApduError(CardError):
    """A malformed command or response (a programming error or a broken reader)."""


class ApduTransport(Protocol):
    """Anything that can send one command APDU and return the response: data + SW1 SW2."""

    def transmit(self, apdu: bytes | bytearray) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Response:
    data: bytes
    sw: int

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    @property
    def ok(self) -> bool:
        return self.sw == SW_OK

    def require_ok(self, what: str = "") -> bytes:
        """The data, or CardError carrying the status word."""
        if self.sw != SW_OK:
            raise CardError(
                sw=self.sw, detail=f"{what}: SW {self.sw:04X} ({describe_sw(self.sw)})".lstrip(": ")
            )
        return self.data


def parse_response(raw: bytes) -> Response:
    if len(raw) < 2:
        raise ApduError(detail=f"response too short ({len(raw)} bytes)")
    return Response(bytes(raw[:-2]), (raw[-2] << 8) | raw[-1])


def build_apdu(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> bytes:
    """A short command APDU. `le` 1..256 (256 is encoded as 00); None = no Le field."""
    for name, value in (("CLA", cla), ("INS", ins), ("P1", p1), ("P2", p2)):
        if not 0 <= value <= 0xFF:
            raise ValueError(f"{name} out of range: {value}")
    if len(data) > 255:
        raise ValueError(f"command data too long for a short APDU: {len(data)} bytes")
    apdu = bytearray((cla, ins, p1, p2))
    if data:
        apdu.append(len(data))
        apdu += data
    if le is not None:
        if not 1 <= le <= 256:
            raise ValueError(f"Le out of range: {le}")
        apdu.append(le & 0xFF)
    return bytes(apdu)


def _with_le(apdu: bytes | bytearray, le: int) -> bytes:
    """The same command with Le replaced (or appended); used for 6Cxx."""
    if len(apdu) == 4:
        body = bytes(apdu)
    elif len(apdu) == 5:
        body = bytes(apdu[:4])
    else:
        lc = apdu[4]
        body = bytes(apdu[: 5 + lc])
    return body + bytes((le & 0xFF,))


def transceive(transport: ApduTransport, apdu: bytes | bytearray, *, fix_le: bool = True) -> Response:
    """Send `apdu`, follow 61xx with GET RESPONSE and (if `fix_le`) resend once on 6Cxx.

    Commands that must never be sent twice (VERIFY) pass fix_le=False.
    """
    resp = parse_response(transport.transmit(apdu))
    if fix_le and resp.sw1 == 0x6C:
        resp = parse_response(transport.transmit(_with_le(apdu, resp.sw2 or 256)))
    if resp.sw1 != 0x61:
        return resp
    data = bytearray(resp.data)
    cla = apdu[0] & 0x03  # keep the logical channel, drop proprietary class bits
    for _ in range(256):  # a card chaining forever is broken
        resp = parse_response(transport.transmit(build_apdu(cla, 0xC0, 0x00, 0x00, le=resp.sw2 or 256)))
        data += resp.data
        if resp.sw1 != 0x61:
            return Response(bytes(data), resp.sw)
    raise ApduError(detail="GET RESPONSE chain did not end")


def select_aid(transport: ApduTransport, aid: bytes) -> Response:
    """SELECT a DF by name (AID), no FCI: `00 A4 04 0C Lc AID`."""
    return transceive(transport, build_apdu(0x00, 0xA4, 0x04, 0x0C, aid))


def select_ef(transport: ApduTransport, fid: int) -> Response:
    """SELECT an EF under the current DF, no FCI: `00 A4 02 0C 02 FID`."""
    return transceive(transport, build_apdu(0x00, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big")))


def read_binary(transport: ApduTransport, offset: int, length: int, *, sfi: int | None = None) -> Response:
    """One READ BINARY of up to 256 bytes: offset form (current EF) or short-EF form (P1 = 80|SFI)."""
    if sfi is None:
        if not 0 <= offset <= 0x7FFF:
            raise ValueError(f"READ BINARY offset out of range: {offset}")
        p1, p2 = offset >> 8, offset & 0xFF
    else:
        if not 1 <= sfi <= 30 or not 0 <= offset <= 0xFF:
            raise ValueError(f"READ BINARY with SFI {sfi} at offset {offset} is not encodable")
        p1, p2 = 0x80 | sfi, offset
    return transceive(transport, build_apdu(0x00, 0xB0, p1, p2, le=length))


def read_binary_exact(
    transport: ApduTransport, length: int, offset: int = 0, *, chunk: int = 256, sfi: int | None = None
) -> bytes:
    """Read exactly `length` bytes from `offset` of the current EF (or the EF named by `sfi`).

    Chunks of at most `chunk` (≤ 256) bytes. With `sfi`, only the first chunk can use the short-EF
    form (its offset is 8-bit); the EF is then current, so later chunks use the offset form.
    Raises CardError if the EF ends early.
    """
    if not 1 <= chunk <= 256:
        raise ValueError(f"chunk must be 1..256, not {chunk}")
    out = bytearray()
    while len(out) < length:
        want = min(chunk, length - len(out))
        resp = read_binary(transport, offset + len(out), want, sfi=sfi)
        sfi = None
        if resp.sw not in (SW_OK, SW_END_OF_FILE_WARNING) or not resp.data:
            raise CardError(
                sw=resp.sw or SW_UNKNOWN, detail=f"READ BINARY at {offset + len(out)}: {resp.sw:04X}"
            )
        out += resp.data[:want]
        if resp.sw == SW_END_OF_FILE_WARNING and len(out) < length:
            raise CardError(sw=resp.sw, detail=f"EF ended after {len(out)} of {length} bytes")
    return bytes(out)


def der_total_length(header: bytes) -> int:
    """Total length (tag + length + value) of the BER/DER object starting `header`.

    Handles multi-byte tags (e.g. `FF 20`, `DF 21`) and the short, 81, 82, 83 and 84 length forms.
    Raises ValueError if `header` is too short or not BER.
    """
    if not header:
        raise ValueError("empty BER header")
    pos = 1
    if header[0] & 0x1F == 0x1F:  # multi-byte tag number
        while True:
            if pos >= len(header):
                raise ValueError("BER tag truncated")
            pos += 1
            if not header[pos - 1] & 0x80:
                break
    if pos >= len(header):
        raise ValueError("BER length missing")
    first = header[pos]
    pos += 1
    if first < 0x80:
        return pos + first
    count = first & 0x7F
    if count == 0 or count > 4:
        raise ValueError(f"unsupported BER length form {first:02X}")
    if pos + count > len(header):
        raise ValueError("BER length truncated")
    value_length = int.from_bytes(header[pos : pos + count], "big")
    return pos + count + value_length


# Enough for any tag of ≤ 2 bytes with the 84 length form: the header of every object on the card.
DER_HEADER_PROBE = 7


def read_der_object(
    transport: ApduTransport,
    *,
    sfi: int | None = None,
    max_length: int = 0x7FFF,
    validate: Callable[[bytes], bool] | None = None,
) -> bytes:
    """Read the BER/DER object at the start of the current EF (or the EF named by `sfi`), exactly.

    Certificate EFs are larger than the certificate and padded after it, so the object's own
    length (e.g. `30 82 HH LL` → 0xHHLL + 4) decides how much is read. The header is read with
    a short first READ BINARY (7 bytes, as jpki/myna does), the rest in ≤ 256-byte chunks.
    """
    first = read_binary(transport, 0, DER_HEADER_PROBE, sfi=sfi)
    if first.sw not in (SW_OK, SW_END_OF_FILE_WARNING) or not first.data:
        raise CardError(sw=first.sw or SW_UNKNOWN, detail=f"READ BINARY header: {first.sw:04X}")
    head = first.data
    if validate is not None and not validate(head):
        raise CardError(detail=f"unexpected object header {head.hex(' ')}")
    try:
        total = der_total_length(head)
    except ValueError as error:
        raise CardError(detail=f"EF does not start with a BER object: {error}") from None
    if total > max_length:
        raise CardError(detail=f"object of {total} bytes exceeds {max_length}")
    if total <= len(head):
        return bytes(head[:total])
    return bytes(head) + read_binary_exact(transport, total - len(head), len(head))


# -- PINs ------------------------------------------------------------------------------------------


def check_pin_format(pin: str) -> None:
    """InvalidPinFormat unless `pin` is 4 ASCII digits (the shape of every 4-digit card PIN)."""
    if not isinstance(pin, str) or len(pin) != 4 or not pin.isascii() or not pin.isdigit():
        raise InvalidPinFormat()


def verify_pin(
    transport: ApduTransport, pin: str, kind: PinKind, *, p2: int = 0x80, raw: bool = False
) -> None:
    """One VERIFY (`00 20 00 P2 04 <PIN>`) on the current PIN EF (P2 80) or by SFI (80|SFI).

    The PIN must be 4 ASCII digits (checked before anything is sent, so a typo never costs a
    try) unless `raw` (the licence's "****" for "no PIN set"). It is built in a bytearray that
    is zeroed right after the command, and never logged or put into an exception. Never retried.
    Raises WrongPin, CardBlocked (63C0 / 6983 / 6984) or CardError.
    """
    if not raw:
        check_pin_format(pin)
    pin_bytes = bytearray(pin, "ascii")
    apdu = bytearray((0x00, 0x20, 0x00, p2, len(pin_bytes)))
    try:
        apdu += pin_bytes
        resp = transceive(transport, apdu, fix_le=False)  # fix_le=False: sent exactly once
    finally:
        for buffer in (apdu, pin_bytes):
            buffer[:] = bytes(len(buffer))
    sw = resp.sw
    if sw == SW_OK:
        log.info("%s PIN verified", kind.value)
        return
    if sw == 0x63C0 or sw in (SW_AUTH_METHOD_BLOCKED, SW_REFERENCE_DATA_NOT_USABLE):
        log.warning("%s PIN blocked (SW %04X)", kind.value, sw)
        raise CardBlocked(sw, kind)
    if sw & 0xFFF0 == 0x63C0:
        log.info("%s PIN wrong, %d tries left", kind.value, sw & 0x0F)
        raise WrongPin(sw & 0x0F, kind)
    raise CardError(sw=sw, detail=f"{kind.value} VERIFY: SW {sw:04X} ({describe_sw(sw)})")


def pin_tries_left(transport: ApduTransport, max_tries: int, kind: PinKind, *, p2: int = 0x80) -> int:
    """Tries left from an empty VERIFY (case 1), which spends nothing; 0 when blocked.

    9000 means the PIN is verified in this session, and a success resets the counter.
    """
    resp = transceive(transport, build_apdu(0x00, 0x20, 0x00, p2))
    if resp.sw == SW_OK:
        return max_tries
    if resp.sw & 0xFFF0 == 0x63C0:
        return resp.sw & 0x0F
    if resp.sw in (SW_AUTH_METHOD_BLOCKED, SW_REFERENCE_DATA_NOT_USABLE):
        return 0
    raise CardError(sw=resp.sw, detail=f"{kind.value} PIN status: SW {resp.sw:04X}")


def read_binary_all(transport: ApduTransport, max_length: int, *, chunk: int = 256) -> bytes:
    """Read the current EF from offset 0 until it ends (short read, 6B00 or 6282) or `max_length`."""
    out = bytearray()
    while len(out) < max_length:
        want = min(chunk, max_length - len(out))
        resp = read_binary(transport, len(out), want)
        if resp.sw == SW_WRONG_P1P2 and out:
            break
        if resp.sw not in (SW_OK, SW_END_OF_FILE_WARNING):
            raise CardError(sw=resp.sw, detail=f"READ BINARY at {len(out)}: {resp.sw:04X}")
        out += resp.data[:want]
        if len(resp.data) < want or resp.sw == SW_END_OF_FILE_WARNING:
            break
    return bytes(out)
