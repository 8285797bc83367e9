"""Matching a verified card to a resident by certificate serial, and auditing card logins."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlmodel import Session, col, select

from app.db import Database
from app.domain.eligibility import kiosk_refusals
from app.domain.registry import ResidentStatus, Sex
from app.integrations.jpki import CardAuthError, CardAuthErrorCode, VerifiedCard
from app.models import AuditEntry, Household, Resident
from app.services.audit import verify
from app.services.identity import (
    CARD_AUTH_ACTION,
    find_residents_by_serial,
    match_resident,
    record_card_authentication,
    serial_spellings,
)

NOT_AFTER = datetime(2030, 1, 1, tzinfo=UTC)


def card(serial_hex: str) -> VerifiedCard:
    return VerifiedCard(
        serial_hex=serial_hex, subject="CN=OPAQUE,C=JP", not_after=NOT_AFTER, issuer="O=JPKI-DEMO"
    )


def add_resident(session: Session, atena: str, serial: str, **fields: object) -> Resident:
    household = session.exec(select(Household)).first()
    if household is None:
        household = Household(household_number="H0001", address="北海道札幌市中央区北１条西２丁目")
        session.add(household)
        session.flush()
    assert household.id is not None
    resident = Resident(
        atena_number=atena,
        household_id=household.id,
        relationship="世帯主",
        family_name="山田",
        given_name="太郎",
        sex=Sex.MALE,
        address=household.address,
        birth_date=date(1980, 1, 1),
        auth_cert_serial=serial,
        **fields,
    )
    session.add(resident)
    session.flush()
    return resident


@pytest.fixture
def town(sqlite_db: Database) -> Database:
    with sqlite_db.write_session() as session:
        add_resident(session, "100001", "00000000000000A1")  # the demo's 16 upper-case digits
        add_resident(session, "100002", "b2c3")  # lower case, no padding
        add_resident(session, "100003", "00:00:0D:E4")  # colons and zeros, from some core system
        add_resident(session, "100004", "")  # no card
        session.commit()
    return sqlite_db


@pytest.mark.parametrize(
    ("serial", "atena"),
    [
        ("A1", "100001"),
        ("a1", "100001"),
        ("00A1", "100001"),
        ("B2C3", "100002"),
        ("0000B2C3", "100002"),
        ("DE4", "100003"),
    ],
)
def test_match_by_serial_whatever_the_spelling(town: Database, serial: str, atena: str) -> None:
    with town.session() as session:
        resident = match_resident(session, card(serial))
        assert resident is not None
        assert resident.atena_number == atena


def test_demo_ca_serials_match_the_demo_registry(town: Database) -> None:
    # The demo CA issues certificates with the registry's serial (parse_serial), and the verifier
    # reports it canonical (format_serial): both meet here.
    from app.integrations.jpki import format_serial
    from device_bridge.simulators.jpki_ca import parse_serial

    with town.session() as session:
        resident = match_resident(session, card(format_serial(parse_serial("00000000000000A1"))))
    assert resident is not None and resident.atena_number == "100001"


def test_no_match(town: Database) -> None:
    with town.session() as session:
        assert match_resident(session, card("FFFF")) is None
        assert find_residents_by_serial(session, "A2") == []


def test_empty_serials_never_match(town: Database) -> None:
    with town.session() as session, pytest.raises(ValueError):
        match_resident(session, card(""))


def test_duplicate_serial_prefers_the_current_resident(town: Database) -> None:
    with town.write_session() as session:
        add_resident(session, "100005", "A1", status=ResidentStatus.MOVED_OUT)
        session.commit()
    with town.session() as session:
        assert len(find_residents_by_serial(session, "A1")) == 2
        resident = match_resident(session, card("A1"))
        assert resident is not None and resident.atena_number == "100001"


def test_ambiguous_serial_matches_nobody(town: Database) -> None:
    with town.write_session() as session:
        add_resident(session, "100006", "a1")
        session.commit()
    with town.session() as session:
        assert match_resident(session, card("A1")) is None


def test_serial_spellings() -> None:
    forms = serial_spellings("000a1b")
    assert {"A1B", "a1b", "0A1B", "0a1b", "0000000000000A1B", "0000000000000a1b"} <= set(forms)
    assert all(len(f) <= 40 for f in forms)


def test_matched_resident_feeds_eligibility(town: Database) -> None:
    with town.session() as session:
        resident = match_resident(session, card("A1"))
        assert resident is not None
        household = list(
            session.exec(select(Resident).where(Resident.household_id == resident.household_id)).all()
        )
        assert (
            kiosk_refusals("juminhyo", resident, [resident], household=household, today=date(2025, 6, 1))
            == []
        )


# -- audit -----------------------------------------------------------------------------------------
def _entries(db: Database) -> list[AuditEntry]:
    with db.session() as session:
        return list(session.exec(select(AuditEntry).order_by(col(AuditEntry.seq))).all())


def test_successful_authentication_is_logged(town: Database) -> None:
    with town.write_session() as session:
        verified = card("A1")
        resident = match_resident(session, verified)
        assert resident is not None
        record_card_authentication(
            session, verified=verified, resident=resident, device_id="kiosk-1", ip="192.0.2.9"
        )
        session.commit()
    (entry,) = _entries(town)
    assert entry.action == CARD_AUTH_ACTION
    assert entry.actor_type == "resident"
    assert entry.actor_id == str(resident.id)
    assert entry.ip == "192.0.2.9"
    assert entry.target_type == "resident" and entry.target_id == str(resident.id)
    assert entry.detail == {
        "device": "kiosk-1",
        "outcome": "matched",
        "serial": "A1",
        "serial_verified": True,
        "not_after": NOT_AFTER.isoformat(),
    }
    with town.session() as session:
        assert verify(session).ok


def test_unknown_card_is_logged_without_a_resident(town: Database) -> None:
    with town.write_session() as session:
        record_card_authentication(session, verified=card("FFFF"), resident=None, device_id="kiosk-1")
        session.commit()
    (entry,) = _entries(town)
    assert entry.actor_type == "resident" and entry.actor_id == ""
    assert entry.target_id == ""
    assert entry.detail["outcome"] == "no_match"
    assert entry.detail["serial"] == "FFFF"


def _certificate(serial: int) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SECRET-SUBJECT")])
    start = datetime.now(UTC) - timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_failure_is_logged_with_code_and_unverified_serial_only(town: Database) -> None:
    der = _certificate(0x0BEEF)
    error = CardAuthError(CardAuthErrorCode.REVOKED, "serial BEEF is revoked")
    with town.write_session() as session:
        record_card_authentication(session, error=error, certificate_der=der, device_id="kiosk-2")
        record_card_authentication(
            session,
            error=CardAuthError(CardAuthErrorCode.MALFORMED_CERTIFICATE),
            certificate_der=b"junk",
            device_id="kiosk-2",
        )
        session.commit()
    first, second = _entries(town)
    assert first.detail == {
        "device": "kiosk-2",
        "code": "revoked",
        "reason": "serial BEEF is revoked",
        "serial": "BEEF",
        "serial_verified": False,
        "outcome": "failed",
    }
    assert second.detail == {"device": "kiosk-2", "code": "malformed_certificate", "outcome": "failed"}
    # Neither the certificate nor its subject reach the log.
    logged = json.dumps([first.detail, second.detail], ensure_ascii=False)
    assert "SECRET-SUBJECT" not in logged and der.hex() not in logged


def test_record_needs_an_outcome(town: Database) -> None:
    with town.write_session() as session, pytest.raises(ValueError):
        record_card_authentication(session)
