"""The municipality, its sites (本庁/支所), issuance locations and the devices at them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from app.domain.registry import DeviceKind, SiteKind
from app.models._types import UTCDateTime, enum_values, utcnow


class Municipality(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(
        max_length=6, unique=True, description="全国地方公共団体コード (6 digits with check digit)"
    )
    name: str = Field(max_length=64)
    name_kana: str = Field(default="", max_length=128)
    prefecture: str = Field(default="", max_length=16)
    mayor_title: str = Field(default="町長", max_length=32)
    mayor_name: str = Field(default="", max_length=64)
    seal_image_key: str = Field(default="", max_length=255, description="Object-store key of the 公印 image")
    postal_code: str = Field(default="", max_length=8)
    address: str = Field(default="", max_length=255)
    phone: str = Field(default="", max_length=32)


class Site(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    municipality_id: int = Field(foreign_key="municipality.id", index=True)
    name: str = Field(max_length=64)
    kind: SiteKind = Field(default=SiteKind.MAIN_OFFICE, sa_type=enum_values(SiteKind))
    address: str = Field(default="", max_length=255)


class Location(SQLModel, table=True):
    """A place that issues certificates or takes applications (a floor, a counter, a kiosk corner)."""

    id: int | None = Field(default=None, primary_key=True)
    site_id: int = Field(foreign_key="site.id", index=True)
    code: str = Field(max_length=8, unique=True, description="Short code printed in 発行番号")
    name: str = Field(max_length=64)
    active: bool = Field(default=True)
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Device(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    location_id: int = Field(foreign_key="location.id", index=True)
    code: str = Field(max_length=8, unique=True, description="Terminal code printed in 発行番号")
    name: str = Field(max_length=64)
    kind: DeviceKind = Field(default=DeviceKind.KIOSK, sa_type=enum_values(DeviceKind))
    token_hash: str = Field(
        default="", max_length=128, index=True, description="SHA-256 of the device token; never the token"
    )
    token_set_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked: bool = Field(default=False)
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
