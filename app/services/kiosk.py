"""The kiosk's walk: choose → card + PIN → verified and matched → options → confirm → receipt.

The kiosk browser holds an opaque cookie; its KioskSession row holds the step, the nonce and
the outcome of the card check — never the PIN. The PIN goes from the kiosk page to the server
and on to the terminal's bridge as a transient command (app.events.send_transient): it is not
written to the database, the event log, the replay buffer or any log line.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, delete, select

from app.domain.certificates import CertificateType, JuminhyoOptions, kiosk_tax_fiscal_year
from app.domain.eligibility import Refusal, for_display, kiosk_refusals
from app.events import send_transient
from app.integrations.jpki import CardAuthError, RevocationChecker, TrustStore, verify_card_authentication
from app.models import Device, KioskSession, Resident, SealRegistration
from app.models._types import utcnow
from app.services import devices as device_service
from app.services.certificates import NewRequest, create_request, today_jst
from app.services.identity import match_resident, record_card_authentication

# A kiosk left alone returns to its start screen after 60 s (the page's timer); the server forgets
# a session a little later in case the page never came back.
SESSION_LIFETIME = timedelta(minutes=3)
COMMAND_TIMEOUT = timedelta(seconds=20)


class KioskError(ValueError):
    """Something the resident must be told; `code` picks the message on the page."""

    def __init__(self, code: str, tries_left: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.tries_left = tries_left


def session_id(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def begin(session: Session, device: Device, certificate_type: CertificateType, language: str) -> str:
    """A new walk on this kiosk; returns the cookie value. Any earlier walk on it is wiped."""
    return _new_walk(session, device, language, certificate_type=certificate_type.value, step="card")


def begin_life(session: Session, device: Device, language: str) -> str:
    """A new life-event walk on this kiosk (the case itself is a LifeCase); returns the cookie."""
    return _new_walk(session, device, language, step="life")


def _new_walk(
    session: Session, device: Device, language: str, *, step: str, certificate_type: str = ""
) -> str:
    """Wipe the kiosk's earlier walk and start one under a new cookie; returns the cookie."""
    assert device.id is not None
    session.exec(delete(KioskSession).where(col(KioskSession.device_id) == device.id))
    cookie = secrets.token_urlsafe(32)
    session.add(
        KioskSession(
            id=session_id(cookie),
            device_id=device.id,
            language=language,
            certificate_type=certificate_type,
            step=step,
        )
    )
    session.flush()
    return cookie


def load(
    session: Session, device: Device, cookie: str | None, *, now: datetime | None = None
) -> KioskSession | None:
    if not cookie:
        return None
    row = session.get(KioskSession, session_id(cookie))
    now = now or utcnow()
    if row is None or row.device_id != device.id:
        return None
    if now - row.updated_at > SESSION_LIFETIME:
        session.delete(row)
        return None
    return row


def wipe(session: Session, row: KioskSession) -> None:
    session.delete(row)


def command_step(session: Session, device: Device, command_id: str) -> str | None:
    """The step of the walk on this device that sent `command_id` (None: no such command), so
    the bridge's answer goes to the right receiver."""
    if not command_id:
        return None
    row = session.exec(
        select(KioskSession).where(KioskSession.command_id == command_id, KioskSession.device_id == device.id)
    ).first()
    return row.step if row is not None else None


def command_timed_out(row: KioskSession, *, now: datetime | None = None) -> bool:
    return row.step == "authenticating" and (now or utcnow()) - row.updated_at > COMMAND_TIMEOUT


def send_pin(session: Session, row: KioskSession, device: Device, pin: str) -> None:
    """Ask the bridge to verify the PIN and sign a fresh nonce. The PIN is not kept anywhere here."""
    if len(pin) != 4 or not pin.isascii() or not pin.isdigit():
        raise KioskError("pin_format")
    assert device.id is not None
    nonce = secrets.token_bytes(32)
    row.command_id = secrets.token_hex(16)
    row.nonce = nonce.hex()
    row.result = {}
    row.step = "authenticating"
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    send_transient(
        device_service.device_topic(device.id),
        "device.command",
        {"command": "card.authenticate", "command_id": row.command_id, "nonce": nonce.hex(), "pin": pin},
    )


@dataclass(frozen=True)
class CardResult:
    ok: bool
    error: str = ""
    tries_left: int | None = None
    signature: bytes = b""
    certificate: bytes = b""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CardResult:
        if data.get("ok"):
            return cls(
                ok=True,
                signature=base64.b64decode(str(data.get("signature", ""))),
                certificate=base64.b64decode(str(data.get("certificate", ""))),
            )
        tries = data.get("tries_left")
        return cls(
            ok=False,
            error=str(data.get("error", "reader"))[:32],
            tries_left=tries if isinstance(tries, int) else None,
        )


def receive_card_result(
    session: Session,
    device: Device,
    command_id: str,
    result: CardResult,
    *,
    checks: tuple[TrustStore, RevocationChecker] | None,
    ip: str = "",
    now: datetime | None = None,
) -> bool:
    """The bridge's answer to a card command: verify, match, check eligibility. False: unknown command."""
    row = session.exec(
        select(KioskSession).where(KioskSession.command_id == command_id, KioskSession.device_id == device.id)
    ).first()
    if row is None or row.step != "authenticating":
        return False
    now = now or utcnow()
    row.command_id = ""  # one answer per command
    row.updated_at = now
    if result.ok and checks is None:
        result = CardResult(ok=False, error="not_configured")
    if not result.ok or checks is None:
        row.step = "card"
        row.result = {"error": result.error, "tries_left": result.tries_left}
        session.add(row)
        return True
    nonce = bytes.fromhex(row.nonce)
    row.nonce = ""
    trust, revocation = checks
    try:
        verified = verify_card_authentication(
            nonce, result.signature, result.certificate, trust=trust, revocation=revocation, now=now
        )
    except CardAuthError as error:
        record_card_authentication(
            session, error=error, certificate_der=result.certificate, device_id=device.code, ip=ip
        )
        row.step = "refused"
        row.result = {
            "error": error.code,
            "message_ja": error.message_ja,
            "message_easy": error.message_easy_ja,
            "message_en": error.message_en,
        }
        session.add(row)
        return True
    resident = match_resident(session, verified)
    record_card_authentication(
        session,
        verified=verified,
        resident=resident,
        certificate_der=result.certificate,
        device_id=device.code,
        ip=ip,
    )
    if resident is None:
        row.step = "refused"
        row.result = {"error": "no_match"}
        session.add(row)
        return True
    row.resident_id = resident.id
    row.auth_cert_serial = verified.serial_hex
    refusals = _refusals(session, row, resident, now=now)
    if refusals:
        row.step = "refused"
        row.result = {
            "error": "refused",
            "refusals": [
                {
                    "code": r.code.value if hasattr(r.code, "value") else str(r.code),
                    "ja": r.message_ja,
                    "easy": r.message_easy_ja,
                    "en": r.message_en,
                }
                for r in for_display(refusals)
            ],
        }
    else:
        row.step = "options"
        row.result = {}
    session.add(row)
    return True


def household_of(session: Session, resident: Resident) -> list[Resident]:
    return list(
        session.exec(
            select(Resident).where(Resident.household_id == resident.household_id).order_by(col(Resident.id))
        ).all()
    )


def household_ids(session: Session, resident: Resident) -> list[int]:
    """The ids of `resident`'s household, as `household_of` orders them (no rows loaded)."""
    return [
        i
        for i in session.exec(
            select(Resident.id)
            .where(Resident.household_id == resident.household_id)
            .order_by(col(Resident.id))
        ).all()
        if i is not None
    ]


def _has_seal(session: Session, resident: Resident) -> bool:
    return (
        session.exec(
            select(SealRegistration).where(
                SealRegistration.resident_id == resident.id, col(SealRegistration.active).is_(True)
            )
        ).first()
        is not None
    )


def _refusals(
    session: Session,
    row: KioskSession,
    applicant: Resident,
    *,
    now: datetime,
    member_ids: list[int] | None = None,
) -> list[Refusal]:
    household = household_of(session, applicant)
    kind = CertificateType(row.certificate_type)
    if kind == CertificateType.JUMINHYO:
        targets = [m for m in household if member_ids is None or m.id in member_ids]
    else:
        targets = [applicant]
    today = today_jst(now)
    return kiosk_refusals(
        kind,
        applicant,
        targets,
        household=household,
        today=today,
        has_active_seal=_has_seal(session, applicant),
        fiscal_year=kiosk_tax_fiscal_year(today) if kind == CertificateType.TAX else None,
    )


@dataclass(frozen=True)
class Choice:
    member_ids: list[int] | None
    show_head_relationship: bool = False
    show_honseki: bool = False
    show_my_number: bool = False
    show_resident_code: bool = False
    copies: int = 1


def choose(
    session: Session, row: KioskSession, choice: Choice, *, now: datetime | None = None
) -> list[Refusal]:
    """Keep the resident's options; refusals if the chosen members cannot be issued here."""
    if row.step not in ("options", "confirm") or row.resident_id is None:
        raise KioskError("expired")
    if not 1 <= choice.copies <= 10:
        raise KioskError("copies")
    applicant = session.get(Resident, row.resident_id)
    assert applicant is not None
    household_ids = {m.id for m in household_of(session, applicant)}
    members = None
    if row.certificate_type == CertificateType.JUMINHYO.value:
        if choice.member_ids is not None:
            members = [i for i in choice.member_ids if i in household_ids]
            if not members:
                raise KioskError("no_members")
        JuminhyoOptions(
            member_ids=tuple(members) if members is not None else None,
            show_head_relationship=choice.show_head_relationship,
            show_honseki=choice.show_honseki,
            show_my_number=choice.show_my_number,
            show_resident_code=choice.show_resident_code,
        )  # validates
    refusals = _refusals(session, row, applicant, now=now or utcnow(), member_ids=members)
    if refusals:
        return for_display(refusals)
    row.options = {
        "member_ids": members,
        "show_head_relationship": choice.show_head_relationship,
        "show_honseki": choice.show_honseki,
        "show_my_number": choice.show_my_number,
        "show_resident_code": choice.show_resident_code,
        "copies": choice.copies,
    }
    if row.certificate_type == CertificateType.TAX.value:
        row.options["fiscal_year"] = kiosk_tax_fiscal_year(today_jst(now))
    row.step = "confirm"
    row.updated_at = utcnow()
    session.add(row)
    return []


def confirm(session: Session, row: KioskSession, device: Device, idempotency_key: str) -> int:
    """Turn the walk into a request (a double tap makes one request); returns its id."""
    if row.request_id is not None:
        return row.request_id
    if row.step != "confirm" or row.resident_id is None:
        raise KioskError("expired")
    applicant = session.get(Resident, row.resident_id)
    assert applicant is not None and applicant.id is not None
    kind = CertificateType(row.certificate_type)
    members = row.options.get("member_ids")
    if kind == CertificateType.JUMINHYO:
        subjects = members if members is not None else household_ids(session, applicant)
    else:
        subjects = [applicant.id]
    options = {k: v for k, v in row.options.items() if k != "copies"}
    request, _ = create_request(
        session,
        NewRequest(
            device=device,
            applicant=applicant,
            certificate_type=kind,
            options=options,
            subject_ids=[int(s) for s in subjects],
            copies=int(row.options.get("copies", 1)),
            idempotency_key=f"kiosk:{idempotency_key}"[:64],
            auth_cert_serial=row.auth_cert_serial,
        ),
    )
    assert request.id is not None
    row.request_id = request.id
    row.step = "done"
    row.updated_at = utcnow()
    session.add(row)
    return request.id
