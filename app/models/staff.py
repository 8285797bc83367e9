"""Staff users, groups with permissions, and server-side sign-in sessions."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.models._types import UTCDateTime, utcnow


class StaffGroup(SQLModel, table=True):
    __tablename__ = "staff_group"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=32, unique=True)
    label_ja: str = Field(max_length=64)
    label_en: str = Field(default="", max_length=64)


class GroupPermission(SQLModel, table=True):
    __tablename__ = "group_permission"

    group_id: int = Field(foreign_key="staff_group.id", primary_key=True, ondelete="CASCADE")
    permission: str = Field(max_length=64, primary_key=True)


class StaffUser(SQLModel, table=True):
    __tablename__ = "staff_user"

    id: int | None = Field(default=None, primary_key=True)
    login_id: str = Field(max_length=64, unique=True)
    display_name: str = Field(max_length=64)
    department: str = Field(default="", max_length=64)
    password_hash: str = Field(max_length=255)
    active: bool = Field(default=True)
    failed_logins: int = Field(default=0)
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class UserGroup(SQLModel, table=True):
    __tablename__ = "user_group"

    user_id: int = Field(foreign_key="staff_user.id", primary_key=True, ondelete="CASCADE")
    group_id: int = Field(foreign_key="staff_group.id", primary_key=True, ondelete="CASCADE")


class StaffSession(SQLModel, table=True):
    """A signed-in browser. The cookie carries the id signed; the row carries the idle clock."""

    __tablename__ = "staff_session"

    id: str = Field(primary_key=True, max_length=64, description="SHA-256 of the session secret")
    user_id: int = Field(foreign_key="staff_user.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    ip: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=255)
