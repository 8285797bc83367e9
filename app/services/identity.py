"""Who is at the kiosk: the resident behind a verified My Number Card, and the audit trail of
every card authentication.

Serials are compared as numbers. The registry stores `auth_cert_serial` as hex text as the core
system sends it (the demo writes 16 upper-case digits with leading zeros, e.g. "00A1…"); the
demo CA and `VerifiedCard.serial_hex` use the canonical form (upper case, no leading zeros).
The look-up first tries the usual spellings through the column's index, then falls back to a
case- and zero-insensitive comparison in SQL, and finally checks every candidate numerically.
"""

from __future__ import annotations

import logging

from cryptography import x509
from sqlalchemy import func
from sqlmodel import Session, col, select

from app.domain.registry import ResidentStatus
from app.integrations.jpki import CardAuthError, VerifiedCard, format_serial, normalize_serial
from app.models import AuditEntry, Resident
from app.services import audit
from app.services.audit import Actor

__all__ = [
    "CARD_AUTH_ACTION",
    "find_residents_by_serial",
    "match_resident",
    "match_serial",
    "record_card_authentication",
    "serial_spellings",
]

log = logging.getLogger(__name__)

CARD_AUTH_ACTION = "kiosk.card_auth"
_ACTIVE = (ResidentStatus.RESIDENT, ResidentStatus.MOVING_OUT)


def serial_spellings(serial_hex: str) -> list[str]:
    """The ways a registry is likely to have written this serial: upper or lower case, without
    leading zeros, padded to whole octets, or to the demo's and common fixed widths."""
    canonical = normalize_serial(serial_hex)
    forms = {canonical}
    for width in (len(canonical) + len(canonical) % 2, 16, 20, 32, 40):
        if width >= len(canonical):
            forms.add(canonical.rjust(width, "0"))
    return sorted(forms | {form.lower() for form in forms})


def _same_serial(stored: str, serial: int) -> bool:
    try:
        return int(normalize_serial(stored), 16) == serial
    except ValueError:
        return False


def find_residents_by_serial(session: Session, serial_hex: str) -> list[Resident]:
    """Every resident record whose 利用者証明用電子証明書 serial is this one."""
    canonical = normalize_serial(serial_hex)
    serial = int(canonical, 16)
    column = col(Resident.auth_cert_serial)
    rows = session.exec(select(Resident).where(column.in_(serial_spellings(canonical)))).all()
    if not rows:
        stripped = func.upper(func.ltrim(func.replace(column, ":", ""), "0"))
        rows = session.exec(select(Resident).where(column != "", stripped == canonical)).all()
    return sorted((r for r in rows if _same_serial(r.auth_cert_serial, serial)), key=lambda r: r.id or 0)


def match_resident(session: Session, verified: VerifiedCard) -> Resident | None:
    """The resident whose record carries this card's authentication-certificate serial.

    When several records carry it (a core-system data error), the one current resident record
    wins; if that is still ambiguous, nobody is matched and the kiosk refers to the counter.
    Eligibility (moved out, deceased …) is not decided here.
    """
    return match_serial(session, verified.serial_hex)


def match_serial(session: Session, serial_hex: str) -> Resident | None:
    """`match_resident` by the serial alone. The caller must have established that the card
    belongs to the person at the kiosk (a signed nonce, or a PIN the card verified) and that
    the certificate is trusted (`app.integrations.jpki.check_certificate`)."""
    rows = find_residents_by_serial(session, serial_hex)
    if len(rows) <= 1:
        return rows[0] if rows else None
    active = [r for r in rows if r.status in _ACTIVE]
    if len(active) == 1:
        return active[0]
    log.warning(
        "card serial %s is on %d resident records (%s); not matching",
        serial_hex,
        len(rows),
        ", ".join(str(r.id) for r in rows),
    )
    return None


def _unverified_serial(certificate_der: bytes | None) -> str:
    """Best effort: the serial of a certificate that failed verification (for investigations)."""
    if not certificate_der:
        return ""
    try:
        return format_serial(x509.load_der_x509_certificate(certificate_der).serial_number)
    except ValueError:
        return ""


def record_card_authentication(
    session: Session,
    *,
    verified: VerifiedCard | None = None,
    resident: Resident | None = None,
    error: CardAuthError | None = None,
    certificate_der: bytes | None = None,
    device_id: str = "",
    ip: str = "",
) -> AuditEntry:
    """Audit one card authentication at a kiosk, in the caller's transaction.

    Outcomes: "matched" (verified and a resident found), "no_match" (verified, no resident),
    "failed" (CardAuthError). Logged: the outcome, the error code and its technical reason, the
    certificate serial (for failures only if the certificate parses — marked unverified), its
    expiry, the device. Never logged: PINs, the nonce, the signature, the certificate itself.
    """
    detail: dict[str, object] = {"device": device_id}
    if error is not None:
        outcome = "failed"
        detail["code"] = error.code.value
        if error.detail:
            detail["reason"] = error.detail[:300]
        serial = _unverified_serial(certificate_der)
        if serial:
            detail["serial"] = serial
            detail["serial_verified"] = False
    elif verified is not None:
        outcome = "matched" if resident is not None else "no_match"
        detail["serial"] = verified.serial_hex
        detail["serial_verified"] = True
        detail["not_after"] = verified.not_after.isoformat()
    else:
        raise ValueError("give either the verified card or the error")
    detail["outcome"] = outcome
    resident_id = "" if resident is None or resident.id is None else str(resident.id)
    actor = Actor(type="resident", id=resident_id, name="", ip=ip)
    return audit.record(
        session,
        actor,
        CARD_AUTH_ACTION,
        target_type="resident" if resident_id else "",
        target_id=resident_id,
        detail=detail,
    )
