"""Turning a posted case form (kiosk or interview) into saved draft changes, field by field.

Whatever was typed is kept — also when it is wrong — and each wrong or missing field gets a
Japanese message of its own (`FieldProblems`: form field name → message), so the page can
highlight the field and nothing is lost.

Field names: `event_date`, `q.<question id>`, `p.<person key>.<field>` (family_name, given_name,
family_kana, given_kana, birth_date, sex, relationship, subject, insurance, card),
`new_address.<part>`, `old_address.<part>` (postal_code, address, katagaki), `phone`,
`new_head`, `old_head`, `applicant_relation`, `applicant` (the key of the member who files).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from sqlmodel import Session

from app.domain.cases import (
    Address,
    CaseData,
    CaseMode,
    Person,
    is_kana,
    is_standard_relationship,
    normalize_phone,
    normalize_postal_code,
)
from app.domain.lifeevents import Insurance
from app.domain.wareki import parse_wareki
from app.models import LifeCase
from app.services import cases

PERSON_FIELDS = (
    "family_name",
    "given_name",
    "family_kana",
    "given_kana",
    "birth_date",
    "sex",
    "relationship",
)
ADDRESS_PARTS = ("postal_code", "address", "katagaki")
TEXT_LIMIT = 255
SIGNATURE_LIMIT = 1_000_000  # the pad's JSON (app.domain.signature refuses more)
# Events whose new address the forms need (住民異動届: 新住所).
NEEDS_NEW_ADDRESS = frozenset({"tennyu", "tenkyo", "tenshutsu"})


@dataclass
class FormOutcome:
    problems: dict[str, str] = field(default_factory=dict)  # field name → Japanese message
    answer_problems: list[Any] = field(default_factory=list)  # lifeevents.Problem


def _one(form: Mapping[str, Any], name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    return str(value)[:TEXT_LIMIT]


def parse_birth(text: str) -> date | None:
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return parse_wareki(text)


def _person_from_form(
    person: Person, form: Mapping[str, Any], raw: dict[str, str], problems: dict[str, str]
) -> Person:
    prefix = f"p.{person.key}."
    changes: dict[str, Any] = {}
    if person.source != "registry":  # registry data is not edited here (the registry is the source)
        for name in PERSON_FIELDS:
            value = _one(form, prefix + name)
            if value is None:
                continue
            value = value.strip()
            key = prefix + name
            if name == "birth_date":
                parsed = parse_birth(value)
                if value and parsed is None:
                    raw[key] = value
                    problems[key] = (
                        "生年月日を読み取れません。2001-04-01 か 平成13年4月1日 の形で入力してください。"
                    )
                    continue
                raw.pop(key, None)
                changes[name] = parsed
            else:
                changes[name] = value
    subject = form.get(prefix + "subject")
    if subject is not None or f"{prefix}subject_shown" in form:
        changes["subject"] = subject in ("on", "1", "true", "yes")
    return replace(person, **changes) if changes else person


def check_people(data: CaseData, raw: Mapping[str, str], mode: CaseMode) -> dict[str, str]:
    """Missing or malformed personal data, per field (the kiosk asks only what a touch can give)."""
    problems: dict[str, str] = {}
    for person in data.members:
        prefix = f"p.{person.key}."
        if prefix + "birth_date" in raw:
            problems[prefix + "birth_date"] = "生年月日を読み取れません。"
        if person.source == "registry":
            continue
        if mode is CaseMode.INTERVIEW and not person.family_name:
            problems[prefix + "family_name"] = "氏を入力してください。"
        for name in ("family_kana", "given_kana"):
            value = getattr(person, name)
            if value and not is_kana(value):
                problems[prefix + name] = "ふりがなは ひらがな か カタカナ で入力してください。"
        if person.birth_date is None and prefix + "birth_date" not in problems:
            problems[prefix + "birth_date"] = "生年月日を入力してください。"
        elif person.birth_date is not None and person.birth_date > data.filed_on:
            problems[prefix + "birth_date"] = "生年月日が今日より後になっています。"
        if not person.relationship:
            problems[prefix + "relationship"] = "続柄を選んでください。"
        elif not is_standard_relationship(person.relationship):
            problems[prefix + "relationship"] = (
                f"続柄「{person.relationship}」は標準の書き方ではありません（例: 世帯主、妻、子、子の妻）。"
            )
    for which in ("new_address", "old_address"):
        address: Address = getattr(data, which)
        if address.postal_code and normalize_postal_code(address.postal_code) is None:
            problems[f"{which}.postal_code"] = "郵便番号は 123-4567 の形（7桁）で入力してください。"
    if mode is CaseMode.INTERVIEW and data.event_id in NEEDS_NEW_ADDRESS and not data.new_address.address:
        problems["new_address.address"] = (
            "転出先の住所を入力してください。"
            if data.event_id == "tenshutsu"
            else "新しい住所を入力してください。"
        )
    if data.phone and normalize_phone(data.phone) is None:
        problems["phone"] = "電話番号は 0238-86-2111 のように数字で入力してください。"
    return problems


def apply_form(
    session: Session, case: LifeCase, form: Mapping[str, Any], *, revision: int | None
) -> FormOutcome:
    """Save everything the form carries; return the problems (also of earlier saves)."""
    outcome = FormOutcome()
    data = cases.case_data(case)
    raw = dict(case.data.get("raw_fields", {}))
    members = [_person_from_form(p, form, raw, outcome.problems) for p in data.members]
    facts: dict[str, dict[str, Any]] = {}
    for p in members:
        insurance = _one(form, f"p.{p.key}.insurance")
        if insurance is not None and insurance in {i.value for i in Insurance}:
            facts.setdefault(p.key, {})[cases.INSURANCE_FACT] = insurance
        if f"p.{p.key}.card_shown" in form:
            facts.setdefault(p.key, {})[cases.CARD_FACT] = form.get(f"p.{p.key}.card") in ("on", "1", "yes")
    applicant = data.applicant
    chosen = _one(form, "applicant")
    if chosen:
        found = next((m for m in members if m.key == chosen), None)
        if found is not None:
            applicant = found
    else:
        applicant = next((m for m in members if m.key == applicant.key), applicant)
    addresses: dict[str, Address] = {}
    for which in ("new_address", "old_address"):
        parts = {part: _one(form, f"{which}.{part}") for part in ADDRESS_PARTS}
        if any(v is not None for v in parts.values()):
            current: Address = getattr(data, which)
            postal = (
                (parts["postal_code"] or "").strip()
                if parts["postal_code"] is not None
                else current.postal_code
            )
            addresses[which] = Address(
                postal_code=normalize_postal_code(postal) or postal,
                address=(parts["address"] if parts["address"] is not None else current.address).strip(),
                katagaki=(parts["katagaki"] if parts["katagaki"] is not None else current.katagaki).strip(),
            )
    phone = _one(form, "phone")
    cases.update_people(
        session,
        case,
        revision=revision,
        members=members,
        applicant=applicant,
        facts=facts,
        new_address=addresses.get("new_address"),
        old_address=addresses.get("old_address"),
        phone=(normalize_phone(phone) or phone.strip()) if phone is not None else None,
        applicant_relation=_one(form, "applicant_relation"),
        new_head=_one(form, "new_head"),
        old_head=_one(form, "old_head"),
    )
    pending = dict(case.data.get("pending_signatures", {}))
    for role in ("resident", "clerk"):
        drawn = form.get(f"signature.{role}")
        if isinstance(drawn, str) and drawn.strip() and len(drawn) <= SIGNATURE_LIMIT:
            pending[role] = drawn  # checked on submit; kept so a page shown again redraws it
    case.data = dict(case.data) | {"raw_fields": raw, "pending_signatures": pending}
    # Every `q.<id>` field; save_answers takes those of the event's questions and ignores the rest.
    answers = {name[2:]: str(value) for name, value in form.items() if name.startswith("q.")}
    event_date = _one(form, "event_date")
    if answers or event_date is not None:
        outcome.answer_problems = cases.save_answers(
            session, case, answers, revision=case.revision, event_date=event_date
        )
    return outcome


def field_problems(case: LifeCase) -> dict[str, str]:
    data = cases.case_data(case)
    return check_people(data, case.data.get("raw_fields", {}), CaseMode(case.mode))


def add_person(
    session: Session,
    case: LifeCase,
    *,
    revision: int | None,
    relationship: str = "",
    birth: date | None = None,
) -> Person:
    data = cases.case_data(case)
    person = Person(
        key=cases.next_new_key(data.members),
        family_name=data.applicant.family_name,  # usually the family's name; editable
        family_kana=data.applicant.family_kana,
        relationship=relationship,
        birth_date=birth,
        source="typed",
    )
    cases.update_people(session, case, revision=revision, members=[*data.members, person])
    return person


def remove_person(session: Session, case: LifeCase, key: str, *, revision: int | None) -> None:
    """Take a typed person (and their facts) off the case; the applicant and registry people stay."""
    data = cases.case_data(case)
    if data.applicant.key == key:
        return
    members = [m for m in data.members if not (m.key == key and m.source != "registry")]
    cases.update_people(session, case, revision=revision, members=members)
    facts = dict(case.data.get("facts", {}))
    facts.pop(key, None)
    case.data = dict(case.data) | {"facts": facts}
