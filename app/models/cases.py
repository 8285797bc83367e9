"""Life-event cases, their procedures per department, and the versions of the editable rules."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from app.domain.cases import CaseMode, CaseStatus, ProcedureStatus
from app.models._types import UTCDateTime, enum_values, utcnow


class LifeCase(SQLModel, table=True):
    """One life event told at the kiosk or the counter. `data` is `CaseData.to_dict()` without
    the procedures (those are rows in `life_case_procedure`, so departments can query them)."""

    __tablename__ = "life_case"
    __table_args__ = (
        Index("ux_case_reception", "location_id", "reception_date", "reception_number", unique=True),
        Index("ix_case_status_day", "status", "reception_date"),
    )

    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(max_length=43, unique=True, description="Opaque; the guidance sheet's QR")
    event_id: str = Field(max_length=64, index=True)
    status: CaseStatus = Field(default=CaseStatus.DRAFT, sa_type=enum_values(CaseStatus))
    mode: CaseMode = Field(default=CaseMode.KIOSK, sa_type=enum_values(CaseMode))
    step: str = Field(default="", max_length=32, description="Where the draft was left")
    location_id: int = Field(foreign_key="location.id", index=True)
    device_id: int | None = Field(default=None, foreign_key="device.id")
    staff_id: int | None = Field(default=None, foreign_key="staff_user.id", description="Interviewing clerk")
    applicant_resident_id: int | None = Field(default=None, foreign_key="resident.id", index=True)
    reception_date: date
    reception_number: int | None = Field(default=None, description="Given on submit, per location and day")
    rules_version: int | None = Field(default=None, description="life_event_rules.version evaluated")
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    revision: int = Field(default=0, description="Bumped on every draft save (stale tabs are refused)")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class LifeCaseProcedure(SQLModel, table=True):
    """One procedure of a case, ticked off by its department."""

    __tablename__ = "life_case_procedure"
    __table_args__ = (
        Index("ix_case_procedure_dept", "department_id", "status"),
        Index("ux_case_procedure", "case_id", "position", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="life_case.id", index=True, ondelete="CASCADE")
    position: int
    procedure_id: str = Field(max_length=64)
    department_id: str = Field(max_length=64)
    detail: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False), description="CaseProcedure.to_dict()"
    )
    status: ProcedureStatus = Field(default=ProcedureStatus.PENDING, sa_type=enum_values(ProcedureStatus))
    note: str = Field(default="", max_length=255)
    done_by: int | None = Field(default=None, foreign_key="staff_user.id")
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class LifeEventRules(SQLModel, table=True):
    """A saved version of the editable rules (the YAML documents of `app/domain/lifeevents/data`).
    The highest version is in force; older ones stay for history and roll-back."""

    __tablename__ = "life_event_rules"

    id: int | None = Field(default=None, primary_key=True)
    version: int = Field(unique=True)
    documents: dict[str, str] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False), description="file name → YAML text"
    )
    comment: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_by: int | None = Field(default=None, foreign_key="staff_user.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
