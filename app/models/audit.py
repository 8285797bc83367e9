"""The append-only, hash-chained audit log and the persisted event log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from app.models._types import UTCDateTime, utcnow


class AuditEntry(SQLModel, table=True):
    """One audited action. `entry_hash` = SHA-256 over the entry's fields and `prev_hash`."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(unique=True, description="Position in the chain, 1, 2, 3 … without gaps")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor_type: str = Field(max_length=16, description="staff, device, resident, system")
    actor_id: str = Field(default="", max_length=64, index=True)
    actor_name: str = Field(default="", max_length=128)
    action: str = Field(max_length=64, index=True)
    target_type: str = Field(default="", max_length=32)
    target_id: str = Field(default="", max_length=64, index=True)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    ip: str = Field(default="", max_length=64)
    prev_hash: str = Field(max_length=64)
    entry_hash: str = Field(max_length=64, unique=True)


class AuditHead(SQLModel, table=True):
    """A single row naming the chain's last entry; writers lock it to append in order."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = Field(default=0)
    last_hash: str = Field(default="0" * 64, max_length=64)


class EventRecord(SQLModel, table=True):
    """Every published event, with the id that SSE clients resume from."""

    __tablename__ = "event_record"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    topic: str = Field(max_length=64, index=True)
    type: str = Field(max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
