"""Life-event cases (手続きの受付): what a resident told us, for whom, and what follows.

A case is made at the kiosk or at the counter (interview mode) for one life event. It holds the
applicant (from the card's 券面事項入力補助AP or typed by the clerk), the household members
(from the registry, or typed for a family moving in), the answers to the touch questions, the
procedures the rules worked out, and the handwritten signatures. Everything a form needs is
here: `CaseData` is what `print/forms/` templates and the core-system CSV are made from.

Pure data and checks; no database, no web. The tables in `app.models.cases` store the
`to_dict()` forms of these classes.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from app.domain.registry import RELATIONSHIPS


class CaseStatus(StrEnum):
    DRAFT = "draft"  # being answered; saved after every step
    SUBMITTED = "submitted"  # confirmed and signed; departments work on it
    DONE = "done"  # every procedure done or not needed
    CANCELLED = "cancelled"


class CaseMode(StrEnum):
    KIOSK = "kiosk"  # the resident at a tablet
    INTERVIEW = "interview"  # a clerk asks, the resident answers and signs


class ProcedureStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    NOT_NEEDED = "not_needed"


class SignatureRole(StrEnum):
    RESIDENT = "resident"  # 届出人
    CLERK = "clerk"  # 受付者


# -- checks ---------------------------------------------------------------------------------------
_POSTAL = re.compile(r"^(\d{3})-?(\d{4})$")
_KANA = re.compile(r"^[\u30a0-\u30ff\u3040-\u309f\u30fc\s・ー゛゜]+$")
_PHONE = re.compile(r"^0\d{1,4}-?\d{1,4}-?\d{3,4}$")


def _fold_digits(value: str) -> str:
    """Full-width digits and dashes to ASCII (what a clerk types on a Japanese IME)."""
    return unicodedata.normalize("NFKC", value).replace("ー", "-").replace("‐", "-").replace("－", "-")


def normalize_postal_code(value: str) -> str | None:
    """'9910021' / '９９１－００２１' → '991-0021'; None when it is not a postal code."""
    m = _POSTAL.match(_fold_digits(value.strip()))
    return f"{m.group(1)}-{m.group(2)}" if m else None


def normalize_phone(value: str) -> str | None:
    folded = _fold_digits(value.strip()).replace(" ", "")
    return folded if _PHONE.match(folded) else None


def is_kana(value: str) -> bool:
    """Furigana: hiragana or katakana (spaces and the long-vowel mark allowed)."""
    return bool(_KANA.match(value))


def is_standard_relationship(value: str) -> bool:
    """続柄 as the standard writes them (世帯主, 妻, 子, 子の妻 …)."""
    if value in RELATIONSHIPS:
        return True
    # Compound forms of standard words: 子の妻, 妻の父, 孫の子 …
    parts = value.split("の")
    return len(parts) > 1 and all(p in RELATIONSHIPS for p in parts)


# -- data -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Address:
    postal_code: str = ""
    address: str = ""  # 住所 (都道府県から)
    katagaki: str = ""  # 方書 (building, room)

    def to_dict(self) -> dict[str, str]:
        return {"postal_code": self.postal_code, "address": self.address, "katagaki": self.katagaki}

    @staticmethod
    def from_dict(data: dict[str, Any] | None) -> Address:
        data = data or {}
        return Address(
            postal_code=str(data.get("postal_code", "")),
            address=str(data.get("address", "")),
            katagaki=str(data.get("katagaki", "")),
        )

    @property
    def full(self) -> str:
        return f"{self.address}　{self.katagaki}" if self.katagaki else self.address


@dataclass(frozen=True, slots=True)
class Person:
    """One person on the case. `key` is stable within the case: the 宛名番号 for registered
    residents, "new-1", "new-2" … for people typed at the counter."""

    key: str
    family_name: str = ""
    given_name: str = ""
    family_kana: str = ""
    given_kana: str = ""
    birth_date: date | None = None
    sex: str = ""  # "1" male, "2" female (the standard's codes), "" unknown
    relationship: str = ""  # 続柄
    nationality: str = ""  # empty for Japanese nationals
    resident_code: str = ""  # 住民票コード
    atena_number: str = ""  # 宛名番号 (registered residents)
    resident_id: int | None = None  # app.models.Resident.id when registered
    subject: bool = True  # moves / is the subject of the event (異動者)
    source: str = "registry"  # registry | card | typed

    @property
    def name(self) -> str:
        return f"{self.family_name}　{self.given_name}".strip("　")

    @property
    def kana(self) -> str:
        return f"{self.family_kana}　{self.given_kana}".strip("　")

    @property
    def is_foreign(self) -> bool:
        return bool(self.nationality)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "family_name": self.family_name,
            "given_name": self.given_name,
            "family_kana": self.family_kana,
            "given_kana": self.given_kana,
            "birth_date": self.birth_date.isoformat() if self.birth_date else None,
            "sex": self.sex,
            "relationship": self.relationship,
            "nationality": self.nationality,
            "resident_code": self.resident_code,
            "atena_number": self.atena_number,
            "resident_id": self.resident_id,
            "subject": self.subject,
            "source": self.source,
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Person:
        birth = data.get("birth_date")
        return Person(
            key=str(data["key"]),
            family_name=str(data.get("family_name", "")),
            given_name=str(data.get("given_name", "")),
            family_kana=str(data.get("family_kana", "")),
            given_kana=str(data.get("given_kana", "")),
            birth_date=date.fromisoformat(birth) if birth else None,
            sex=str(data.get("sex", "")),
            relationship=str(data.get("relationship", "")),
            nationality=str(data.get("nationality", "")),
            resident_code=str(data.get("resident_code", "")),
            atena_number=str(data.get("atena_number", "")),
            resident_id=data.get("resident_id"),
            subject=bool(data.get("subject", True)),
            source=str(data.get("source", "registry")),
        )


@dataclass(frozen=True, slots=True)
class StrokePoint:
    x: float  # CSS pixels from the pad's left edge
    y: float
    t: int  # milliseconds since the stroke started
    p: float  # pressure 0..1 (pen: reported; touch/mouse: from speed)


@dataclass(frozen=True, slots=True)
class Signature:
    """A handwritten signature as vectors: strokes of (x, y, t, pressure) on a width×height pad."""

    role: SignatureRole
    width: float
    height: float
    strokes: tuple[tuple[StrokePoint, ...], ...]
    pointer_type: str = ""  # pen | touch | mouse (what drew most of it)
    signed_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role.value,
            "width": self.width,
            "height": self.height,
            "pointer_type": self.pointer_type,
            "signed_at": self.signed_at.isoformat() if self.signed_at else None,
            "strokes": [[[pt.x, pt.y, pt.t, pt.p] for pt in s] for s in self.strokes],
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Signature:
        signed = data.get("signed_at")
        return Signature(
            role=SignatureRole(data["role"]),
            width=float(data["width"]),
            height=float(data["height"]),
            pointer_type=str(data.get("pointer_type", "")),
            signed_at=datetime.fromisoformat(signed) if signed else None,
            strokes=tuple(
                tuple(StrokePoint(float(x), float(y), int(t), float(p)) for x, y, t, p in stroke)
                for stroke in data.get("strokes", [])
            ),
        )


@dataclass(frozen=True, slots=True)
class CaseProcedure:
    """One procedure the rules found, as recorded on the case (a snapshot: later edits of the
    rules do not change what the resident was told)."""

    procedure_id: str
    name: str  # 日本語
    department_id: str
    department_name: str
    service_id: str
    member_keys: tuple[str, ...]  # empty: the whole household
    forms: tuple[str, ...]
    why: tuple[str, ...]
    bring: tuple[str, ...] = ()
    deadline: date | None = None
    certain: bool = True
    status: ProcedureStatus = ProcedureStatus.PENDING

    def to_dict(self) -> dict[str, Any]:
        return {
            "procedure_id": self.procedure_id,
            "name": self.name,
            "department_id": self.department_id,
            "department_name": self.department_name,
            "service_id": self.service_id,
            "member_keys": list(self.member_keys),
            "forms": list(self.forms),
            "why": list(self.why),
            "bring": list(self.bring),
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "certain": self.certain,
            "status": self.status.value,
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> CaseProcedure:
        deadline = data.get("deadline")
        return CaseProcedure(
            procedure_id=str(data["procedure_id"]),
            name=str(data.get("name", "")),
            department_id=str(data.get("department_id", "")),
            department_name=str(data.get("department_name", "")),
            service_id=str(data.get("service_id", "")),
            member_keys=tuple(data.get("member_keys", ())),
            forms=tuple(data.get("forms", ())),
            why=tuple(data.get("why", ())),
            bring=tuple(data.get("bring", ())),
            deadline=date.fromisoformat(deadline) if deadline else None,
            certain=bool(data.get("certain", True)),
            status=ProcedureStatus(data.get("status", "pending")),
        )


@dataclass(frozen=True, slots=True)
class CaseData:
    """Everything about one case that forms, the guidance sheet and the CSV export read."""

    token: str  # opaque, in the guidance sheet's QR
    number: str  # 受付番号 shown to people, e.g. "転入-0003"
    event_id: str
    event_name: str  # 日本語
    event_date: date | None  # 異動日 (moved on, born on, died on …)
    filed_on: date  # 届出日
    mode: CaseMode
    applicant: Person  # 届出人
    members: tuple[Person, ...]  # the household, applicant included when a member
    new_address: Address = Address()
    old_address: Address = Address()
    new_head: str = ""  # 新世帯主 氏名
    old_head: str = ""  # 旧世帯主 氏名
    applicant_relation: str = ""  # 届出人と異動者の関係 (本人, 世帯主, 代理人 …)
    phone: str = ""
    answers: dict[str, Any] = field(default_factory=dict)
    procedures: tuple[CaseProcedure, ...] = ()
    signatures: tuple[Signature, ...] = ()
    municipality: str = ""  # e.g. 寒河江市 (for 「○○市長 殿」)
    location: str = ""
    clerk: str = ""  # 受付者 display name

    def member(self, key: str) -> Person | None:
        return next((m for m in self.members if m.key == key), None)

    def subjects(self) -> tuple[Person, ...]:
        return tuple(m for m in self.members if m.subject)

    def signature(self, role: SignatureRole) -> Signature | None:
        return next((s for s in self.signatures if s.role == role), None)

    def forms(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for p in self.procedures:
            for f in p.forms:
                seen.setdefault(f, None)
        return tuple(seen)

    def with_procedures(self, procedures: tuple[CaseProcedure, ...]) -> CaseData:
        return replace(self, procedures=procedures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "number": self.number,
            "event_id": self.event_id,
            "event_name": self.event_name,
            "event_date": self.event_date.isoformat() if self.event_date else None,
            "filed_on": self.filed_on.isoformat(),
            "mode": self.mode.value,
            "applicant": self.applicant.to_dict(),
            "members": [m.to_dict() for m in self.members],
            "new_address": self.new_address.to_dict(),
            "old_address": self.old_address.to_dict(),
            "new_head": self.new_head,
            "old_head": self.old_head,
            "applicant_relation": self.applicant_relation,
            "phone": self.phone,
            "answers": dict(self.answers),
            "procedures": [p.to_dict() for p in self.procedures],
            "signatures": [s.to_dict() for s in self.signatures],
            "municipality": self.municipality,
            "location": self.location,
            "clerk": self.clerk,
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> CaseData:
        event_date = data.get("event_date")
        return CaseData(
            token=str(data["token"]),
            number=str(data.get("number", "")),
            event_id=str(data["event_id"]),
            event_name=str(data.get("event_name", "")),
            event_date=date.fromisoformat(event_date) if event_date else None,
            filed_on=date.fromisoformat(data["filed_on"]),
            mode=CaseMode(data.get("mode", "kiosk")),
            applicant=Person.from_dict(data["applicant"]),
            members=tuple(Person.from_dict(m) for m in data.get("members", [])),
            new_address=Address.from_dict(data.get("new_address")),
            old_address=Address.from_dict(data.get("old_address")),
            new_head=str(data.get("new_head", "")),
            old_head=str(data.get("old_head", "")),
            applicant_relation=str(data.get("applicant_relation", "")),
            phone=str(data.get("phone", "")),
            answers=dict(data.get("answers", {})),
            procedures=tuple(CaseProcedure.from_dict(p) for p in data.get("procedures", [])),
            signatures=tuple(Signature.from_dict(s) for s in data.get("signatures", [])),
            municipality=str(data.get("municipality", "")),
            location=str(data.get("location", "")),
            clerk=str(data.get("clerk", "")),
        )
