"""Reading the card face (券面事項入力補助AP) at a kiosk, to pre-fill life-event forms.

The same pattern as the certificate kiosk's card check (app/services/kiosk.py): the resident
types the 4-digit 券面事項入力補助用暗証番号, the server hands it to the terminal's bridge in a
transient command ``card.read_face`` (never stored, replayed or logged), the bridge verifies it
on the card once and answers POST /devices/api/commands/{command_id} with 基本4情報 and the
利用者証明用 certificate (read without a PIN).

KioskSession steps and `row.result` shapes:
- "reading_face": the command is out; `result == {}`;
- "face_read": `result == {"face": {...}, "match": M}` (and `"certificate_error": code` when the
  certificate was refused), `resident_id` set when M == "matched";
- "face_pin": the read failed; `result == {"error": code, "tries_left": n | None}`, code one of
  "wrong_pin", "blocked", "invalid_pin", "no_card", "removed", "unsupported", "reader",
  "no_answer" (the bridge did not answer in time, see `expire_face_command`).

M is "matched" (a resident carries the certificate's serial), "no_match" (trusted certificate,
nobody carries it), "unverified" (the certificate was refused: untrusted, expired, revoked …, or
the card checks are not configured) or "no_certificate" (the card gave none).

Matching by the serial alone, without a signed nonce, is enough here: the card itself verified
the 券面事項入力補助用暗証番号 just before handing out the certificate in the same session, and
the certificate is checked like the kiosk's (pinned root, validity, revocation). See
docs/decisions.md.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, select

from app.domain.cases import Address, Person
from app.events import send_transient
from app.integrations.jpki import CardAuthError, RevocationChecker, TrustStore, check_certificate
from app.models import AuditEntry, Device, KioskSession, Resident
from app.models._types import utcnow
from app.services import audit, devices as device_service
from app.services.audit import Actor
from app.services.identity import match_serial
from app.services.kiosk import COMMAND_TIMEOUT, KioskError

__all__ = [
    "CARD_FACE_ACTION",
    "FACE_ITEMS",
    "STEP_FACE_PIN",
    "STEP_FACE_READ",
    "STEP_READING_FACE",
    "FaceResult",
    "clean_face",
    "expire_face_command",
    "face_address",
    "face_command_timed_out",
    "face_to_person",
    "receive_face_result",
    "record_card_face_read",
    "send_face_pin",
]

STEP_FACE_PIN = "face_pin"
STEP_READING_FACE = "reading_face"
STEP_FACE_READ = "face_read"
CARD_FACE_ACTION = "kiosk.card_face_read"
FACE_ITEMS = ("name", "address", "birth_date", "sex")

# Far above anything a card holds (氏名 and 住所 are short UTF-8 strings in one EF); a longer
# value is not a card's answer.
_MAX_NAME = 200
_MAX_ADDRESS = 400
_SEXES = frozenset({"0", "1", "2", "9"})  # ISO 5218, as the card stores it
_BIRTH_TEXT = re.compile(r"^[0-9]{8}$")
_NAME_SEPARATOR = re.compile("[ \u3000]")


def send_face_pin(session: Session, row: KioskSession, device: Device, pin: str) -> None:
    """Ask the bridge to read the card face with this 券面事項入力補助用暗証番号.

    The PIN is checked for shape (4 ASCII digits, else KioskError("pin_format") and nothing is
    sent) and then only passed on in a transient command: it is not kept anywhere here.
    """
    if len(pin) != 4 or not pin.isascii() or not pin.isdigit():
        raise KioskError("pin_format")
    assert device.id is not None
    row.command_id = secrets.token_hex(16)
    row.nonce = ""
    row.result = {}
    row.step = STEP_READING_FACE
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    send_transient(
        device_service.device_topic(device.id),
        "device.command",
        {"command": "card.read_face", "command_id": row.command_id, "pin": pin},
    )


def _text(value: Any, limit: int) -> str | None:
    if not isinstance(value, str) or len(value) > limit:
        return None
    return value


def clean_face(data: Any) -> dict[str, Any] | None:
    """The bridge's face as stored on the row, or None when it is not a card's answer.

    Text is kept exactly as the card holds it (no normalisation); the birth date is the ISO
    date when the card's YYYYMMDD is a calendar date, else None, with the raw digits beside it.
    """
    if not isinstance(data, dict):
        return None
    name = _text(data.get("name"), _MAX_NAME)
    address = _text(data.get("address"), _MAX_ADDRESS)
    birth_text = _text(data.get("birth_text", ""), 8)
    sex = _text(data.get("sex"), 1)
    if not name or not name.strip() or address is None or birth_text is None or sex is None:
        return None
    if sex not in _SEXES or (birth_text and not _BIRTH_TEXT.match(birth_text)):
        return None
    birth = _birth(data.get("birth_date"), birth_text)
    return {
        "name": name,
        "address": address,
        "birth_date": birth.isoformat() if birth else None,
        "birth_text": birth_text,
        "sex": sex,
    }


def _birth(iso: Any, text: str) -> date | None:
    if isinstance(iso, str) and iso:
        try:
            return date.fromisoformat(iso)
        except ValueError:
            pass
    if _BIRTH_TEXT.match(text):
        try:
            return date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class FaceResult:
    """The bridge's answer to ``card.read_face``."""

    ok: bool
    error: str = ""
    tries_left: int | None = None
    face: dict[str, Any] = field(default_factory=dict)
    certificate: bytes = b""  # DER of the 利用者証明用 certificate; empty when the card gave none

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaceResult:
        """Lenient: an answer that says ok but carries no readable face is a reader error (the
        resident is told to try again) rather than a request the bridge gets refused."""
        if data.get("ok"):
            face = clean_face(data.get("face"))
            if face is None:
                return cls(ok=False, error="reader")
            certificate = b""
            raw = data.get("auth_certificate")
            if isinstance(raw, str) and raw:
                try:
                    certificate = base64.b64decode(raw, validate=True)
                except (binascii.Error, ValueError):
                    certificate = b""
            return cls(ok=True, face=face, certificate=certificate)
        tries = data.get("tries_left")
        return cls(
            ok=False,
            error=str(data.get("error", "reader"))[:32],
            tries_left=tries if isinstance(tries, int) and not isinstance(tries, bool) else None,
        )


def face_command_timed_out(row: KioskSession, *, now: datetime | None = None) -> bool:
    return row.step == STEP_READING_FACE and (now or utcnow()) - row.updated_at > COMMAND_TIMEOUT


def expire_face_command(row: KioskSession, *, now: datetime | None = None) -> bool:
    """Give up on a bridge that did not answer in time: back to "face_pin" with "no_answer".
    True if the row changed (the caller adds and commits it). A late answer is then refused."""
    if not face_command_timed_out(row, now=now):
        return False
    row.step = STEP_FACE_PIN
    row.command_id = ""
    row.result = {"error": "no_answer", "tries_left": None}
    row.updated_at = now or utcnow()
    return True


def receive_face_result(
    session: Session,
    device: Device,
    command_id: str,
    result: FaceResult,
    *,
    trust: TrustStore | None,
    revocation: RevocationChecker | None,
    ip: str = "",
    now: datetime | None = None,
) -> bool:
    """The bridge's answer to a ``card.read_face`` command; False: no such command waiting on
    this device (unknown, stale, already answered, or another terminal's).

    Success: the face goes to `row.result`, the certificate is checked (when `trust` and
    `revocation` are given) and matched to a resident by its serial, and the read is audited.
    Failure: back to "face_pin" with the error and the tries left.
    """
    row = session.exec(
        select(KioskSession).where(KioskSession.command_id == command_id, KioskSession.device_id == device.id)
    ).first()
    if row is None or not command_id or row.step != STEP_READING_FACE:
        return False
    now = now or utcnow()
    row.command_id = ""  # one answer per command
    row.updated_at = now
    if not result.ok:
        row.step = STEP_FACE_PIN
        row.result = {"error": result.error, "tries_left": result.tries_left}
        session.add(row)
        return True

    resident: Resident | None = None
    serial = ""
    serial_verified = False
    certificate_error = ""
    if not result.certificate:
        match = "no_certificate"
    elif trust is None or revocation is None:
        match = "unverified"
        certificate_error = "not_configured"
    else:
        try:
            trusted = check_certificate(result.certificate, trust=trust, revocation=revocation, now=now)
        except CardAuthError as error:
            match = "unverified"
            certificate_error = error.code.value
        else:
            serial = trusted.serial_hex
            serial_verified = True
            resident = match_serial(session, trusted.serial_hex)
            match = "matched" if resident is not None else "no_match"

    row.step = STEP_FACE_READ
    row.result = {"face": result.face, "match": match}
    if certificate_error:
        row.result["certificate_error"] = certificate_error
    row.resident_id = resident.id if resident is not None else None
    row.auth_cert_serial = serial if resident is not None else ""
    session.add(row)
    record_card_face_read(
        session,
        resident=resident,
        match=match,
        serial=serial,
        serial_verified=serial_verified,
        certificate_error=certificate_error,
        device_id=device.code,
        ip=ip,
    )
    return True


def record_card_face_read(
    session: Session,
    *,
    resident: Resident | None,
    match: str,
    serial: str = "",
    serial_verified: bool = False,
    certificate_error: str = "",
    device_id: str = "",
    ip: str = "",
) -> AuditEntry:
    """Audit one card-face read (a personal-data read) in the caller's transaction.

    Logged: the device, which items were read, the match outcome, the certificate serial when
    it was verified, the refusal code otherwise. Never logged: the PIN or what the card holds.
    """
    detail: dict[str, object] = {"device": device_id, "items": list(FACE_ITEMS), "outcome": match}
    if serial:
        detail["serial"] = serial
        detail["serial_verified"] = serial_verified
    if certificate_error:
        detail["code"] = certificate_error
    resident_id = "" if resident is None or resident.id is None else str(resident.id)
    return audit.record(
        session,
        Actor(type="resident", id=resident_id, name="", ip=ip),
        CARD_FACE_ACTION,
        target_type="resident" if resident_id else "",
        target_id=resident_id,
        detail=detail,
    )


# -- for forms -------------------------------------------------------------------------------------
def face_to_person(face: dict[str, Any], key: str) -> Person:
    """The person on the card as a case Person (source "card").

    氏名 is split into family and given name at the first full- or half-width space; without
    one, all of it is the family name. Characters are kept as the card holds them. Sex is kept
    when it is "1" or "2" (the card's "0"/"9" become unknown ""); the birth date is the face's
    ISO date, or its YYYYMMDD digits, or None.
    """
    name = str(face.get("name", ""))
    parts = _NAME_SEPARATOR.split(name, maxsplit=1)
    family = parts[0]
    given = parts[1] if len(parts) > 1 else ""
    sex = str(face.get("sex", ""))
    return Person(
        key=key,
        family_name=family,
        given_name=given,
        birth_date=_birth(face.get("birth_date"), str(face.get("birth_text", ""))),
        sex=sex if sex in ("1", "2") else "",
        source="card",
    )


def face_address(face: dict[str, Any]) -> Address:
    """The card's 住所 as one line (the card has no postal code and no separate 方書)."""
    return Address(address=str(face.get("address", "")))
