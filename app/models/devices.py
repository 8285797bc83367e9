"""Print jobs (the outbox) and what device bridges report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from app.domain.devices import PrinterKind, PrintJobState
from app.models._types import UTCDateTime, enum_values, utcnow


class PrintJob(SQLModel, table=True):
    """A document to print on one device's printer.

    Written in the same transaction as what caused it (a certificate request, a reprint …), so a
    job exists exactly when its cause does. The bridge acknowledges each state by job id; jobs not
    yet acknowledged as finished are delivered again whenever the bridge (re)connects.
    """

    __tablename__ = "print_job"
    __table_args__ = (Index("ix_print_job_device_state", "device_id", "state"),)

    id: int | None = Field(default=None, primary_key=True)
    device_id: int = Field(foreign_key="device.id", index=True)
    printer: PrinterKind = Field(sa_type=enum_values(PrinterKind))
    title: str = Field(default="", max_length=128, description="Shown to staff, e.g. 受付票 A-012")
    payload: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSON, nullable=False),
        description="Receipt layout, or for office printing {'document_key': …}",
    )
    copies: int = Field(default=1, ge=1, le=99)
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: PrintJobState = Field(default=PrintJobState.QUEUED, sa_type=enum_values(PrintJobState), index=True)
    reason: str = Field(
        default="", max_length=255, description="Why it failed or waits (Japanese, for staff)"
    )
    attempt: int = Field(default=1, description="Raised by a staff retry; the bridge journals (id, attempt)")
    deliveries: int = Field(default=0, description="How many times it was sent to the bridge")
    source_type: str = Field(default="", max_length=32)
    source_id: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
