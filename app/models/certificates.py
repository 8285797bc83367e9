"""Certificate requests from kiosks and counters, what was issued for them, and kiosk sessions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from app.domain.certificates import CertificateType
from app.domain.requests import RequestState
from app.models._types import UTCDateTime, enum_values, utcnow


class CertificateRequest(SQLModel, table=True):
    """One resident's request for one certificate type (any number of copies)."""

    __tablename__ = "certificate_request"
    __table_args__ = (
        Index("ux_request_reception", "location_id", "reception_date", "reception_number", unique=True),
        Index("ix_request_day_state", "reception_date", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    location_id: int = Field(foreign_key="location.id", index=True)
    device_id: int | None = Field(default=None, foreign_key="device.id")
    channel: str = Field(default="kiosk", max_length=16, description="kiosk or counter")
    reception_date: date = Field(description="Japan date the number belongs to")
    reception_number: int = Field(description="Per location and day, from 1")
    idempotency_key: str = Field(max_length=64, unique=True)
    applicant_id: int = Field(foreign_key="resident.id", index=True)
    certificate_type: CertificateType = Field(sa_type=enum_values(CertificateType))
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    subject_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    copies: int = Field(default=1, ge=1, le=10)
    fee_total: int = Field(default=0)
    state: RequestState = Field(default=RequestState.RECEIVED, sa_type=enum_values(RequestState), index=True)
    reason: str = Field(default="", max_length=255, description="Cancel reason, or why it waits")
    auth_cert_serial: str = Field(default="", max_length=64, description="The card that authenticated it")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    printed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    handed_over_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    handed_over_by: int | None = Field(default=None, foreign_key="staff_user.id")


class CertificateIssue(SQLModel, table=True):
    """A rendered certificate (all copies of one printing); reprints are new rows that say so."""

    __tablename__ = "certificate_issue"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="certificate_request.id", index=True)
    document_key: str = Field(max_length=255, description="Object-store key of the PDF")
    sha256: str = Field(max_length=64)
    pages: int = Field(default=1)
    copies: int = Field(default=1)
    reprint_of: int | None = Field(default=None, foreign_key="certificate_issue.id")
    print_job_id: int | None = Field(default=None, foreign_key="print_job.id")
    issued_by: int | None = Field(default=None, foreign_key="staff_user.id", description="None: automatic")
    items_shown: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class IssuedCopy(SQLModel, table=True):
    """One copy's 発行番号 — what the public verify page looks up (no personal data)."""

    __tablename__ = "issued_copy"

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="certificate_issue.id", index=True)
    issue_number: str = Field(max_length=80, unique=True)
    certificate_type: CertificateType = Field(sa_type=enum_values(CertificateType))
    issued_on: date
    content_hash: str = Field(max_length=64)


class DailyCounter(SQLModel, table=True):
    """Numbers that restart every day: reception numbers per location, 発行番号 serials."""

    __tablename__ = "daily_counter"

    name: str = Field(primary_key=True, max_length=64)
    day: date = Field(primary_key=True)
    value: int = Field(default=0)


class KioskSession(SQLModel, table=True):
    """One resident's walk through a kiosk, from choosing a certificate to taking the card back.

    Holds no PIN, ever. Wiped (deleted) when the flow ends or after a minute untouched.
    """

    __tablename__ = "kiosk_session"

    id: str = Field(primary_key=True, max_length=64, description="SHA-256 of the kiosk cookie")
    device_id: int = Field(foreign_key="device.id", index=True)
    language: str = Field(default="ja", max_length=8)
    certificate_type: str = Field(default="", max_length=16)
    step: str = Field(default="start", max_length=16)
    command_id: str = Field(default="", max_length=64, index=True)
    nonce: str = Field(default="", max_length=128)
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    resident_id: int | None = Field(default=None, foreign_key="resident.id")
    auth_cert_serial: str = Field(default="", max_length=64)
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    request_id: int | None = Field(default=None, foreign_key="certificate_request.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
