"""Households and residents mirroring the core system (住民記録), seals and tax records.

Names are stored exactly as the core system sends them — never Unicode-normalised, since NFC folds
CJK compatibility ideographs (﨑 → 崎). Only `search_key` is normalised, for finding people.
Dates that may be partial or non-calendar keep the original text beside the date.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from app.domain.registry import ResidentStatus, Sex
from app.models._types import UTCDateTime, enum_values, utcnow


class Household(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    household_number: str = Field(max_length=16, unique=True, description="世帯番号")
    head_name: str = Field(default="", max_length=128, description="世帯主氏名 as recorded")
    postal_code: str = Field(default="", max_length=8)
    address: str = Field(max_length=255, description="住所")
    address_katagaki: str = Field(default="", max_length=255, description="方書")
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Resident(SQLModel, table=True):
    __table_args__ = (Index("ix_resident_search", "search_key"),)

    id: int | None = Field(default=None, primary_key=True)
    atena_number: str = Field(max_length=16, unique=True, description="宛名番号 with its check digit")
    resident_code: str = Field(default="", max_length=11, description="住民票コード")
    household_id: int = Field(foreign_key="household.id", index=True)
    relationship: str = Field(max_length=16, description="続柄 (standard values only)")
    family_name: str = Field(max_length=64)
    given_name: str = Field(default="", max_length=64)
    family_name_kana: str = Field(default="", max_length=128)
    given_name_kana: str = Field(default="", max_length=128)
    former_surname: str = Field(default="", max_length=64, description="旧氏")
    alias: str = Field(default="", max_length=128, description="通称 (foreign residents)")
    search_key: str = Field(default="", max_length=512, description="Normalised names for search only")
    birth_date: date | None = Field(default=None)
    birth_date_text: str = Field(default="", max_length=32, description="Original text, e.g. 「昭和20年頃」")
    sex: Sex = Field(sa_type=enum_values(Sex, 1))
    nationality: str = Field(default="", max_length=64, description="Empty for Japanese nationals")
    postal_code: str = Field(default="", max_length=8)
    address: str = Field(max_length=255)
    address_katagaki: str = Field(default="", max_length=255)
    honseki: str = Field(default="", max_length=255, description="本籍")
    hittousha: str = Field(default="", max_length=64, description="筆頭者")
    became_resident_on: date | None = Field(default=None, description="住民となった年月日")
    became_resident_text: str = Field(default="", max_length=32)
    address_set_on: date | None = Field(default=None, description="住所を定めた年月日")
    address_set_text: str = Field(default="", max_length=32)
    previous_address: str = Field(default="", max_length=255, description="転入前住所")
    status: ResidentStatus = Field(
        default=ResidentStatus.RESIDENT, sa_type=enum_values(ResidentStatus), index=True
    )
    status_changed_on: date | None = Field(default=None, description="転出(予定)日, 死亡日 …")
    suppressions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    auth_cert_serial: str = Field(
        default="", max_length=64, index=True, description="利用者証明用電子証明書 serial"
    )
    sign_cert_serial: str = Field(default="", max_length=64, description="署名用電子証明書 serial")
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))

    @property
    def is_foreign(self) -> bool:
        return bool(self.nationality)

    @property
    def full_name(self) -> str:
        if self.is_foreign:
            return f"{self.family_name} {self.given_name}".strip()
        return f"{self.family_name}　{self.given_name}".strip("　")

    @property
    def full_name_kana(self) -> str:
        return f"{self.family_name_kana}　{self.given_name_kana}".strip("　")


class SealRegistration(SQLModel, table=True):
    """印鑑登録: one active seal per resident aged 15 or over."""

    __tablename__ = "seal_registration"

    id: int | None = Field(default=None, primary_key=True)
    resident_id: int = Field(foreign_key="resident.id", index=True)
    registration_number: str = Field(max_length=16, unique=True, description="登録番号")
    registered_on: date
    seal_image_key: str = Field(default="", max_length=255, description="Object-store key of the 印影")
    active: bool = Field(default=True)


class TaxRecord(SQLModel, table=True):
    """Per-fiscal-year assessment backing 課税・非課税証明書 (amounts in yen)."""

    __tablename__ = "tax_record"
    __table_args__ = (Index("ux_tax_resident_year", "resident_id", "fiscal_year", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    resident_id: int = Field(foreign_key="resident.id", index=True)
    fiscal_year: int = Field(description="年度, Gregorian")
    total_income: int = Field(default=0)
    taxable_income: int = Field(default=0)
    municipal_tax: int = Field(default=0)
    prefectural_tax: int = Field(default=0)
    dependants: int = Field(default=0)

    @property
    def is_taxable(self) -> bool:
        return (self.municipal_tax + self.prefectural_tax) > 0
