"""Life-event cases: drafts saved at every step, evaluation by the rules in force, submission with
signatures, and the departments' check-offs seen live everywhere.

A case is kept as `LifeCase.data` (`CaseData.to_dict()` without procedures) plus, once submitted,
one `LifeCaseProcedure` row per procedure (what departments query and tick). Every change is
written at once, so nothing is lost on back/forward or reload; a stale page (an older
`revision`) is refused rather than allowed to overwrite newer answers.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from app.domain.cases import (
    Address,
    CaseData,
    CaseMode,
    CaseProcedure,
    CaseStatus,
    Person,
    ProcedureStatus,
    Signature,
    SignatureRole,
)
from app.domain.lifeevents import (
    Insurance,
    LifeEvent,
    Member,
    Problem,
    Result,
    coerce_answer,
    evaluate,
    visible_questions,
)
from app.domain.lifeevents.conditions import HouseholdFacts, person_facts
from app.domain.lifeevents.model import Question
from app.events import publish_on_commit
from app.models import Device, LifeCase, LifeCaseProcedure, Location, Municipality, Resident, StaffUser
from app.models._types import utcnow
from app.services import audit
from app.services.audit import Actor
from app.services.certificates import next_number, today_jst
from app.services.lifeevent_rules import current_rules

TOPIC = "staff"


class CaseError(ValueError):
    """Something the person must be told; the message is Japanese (English in `message_en`)."""

    def __init__(self, code: str, message_ja: str, message_en: str = "") -> None:
        super().__init__(message_ja)
        self.code = code
        self.message_ja = message_ja
        self.message_en = message_en or message_ja


STALE = CaseError(
    "stale",
    "この画面は古くなっています。最新の内容を表示しました。もう一度お確かめください。",
    "This page was out of date; the latest answers are shown. Please check again.",
)


def new_token() -> str:
    """Opaque and unguessable: it is all a department needs to open the case from the QR."""
    return secrets.token_urlsafe(24)


def reception_label(case: LifeCase) -> str:
    return f"L-{case.reception_number:04d}" if case.reception_number else ""


# -- reading -------------------------------------------------------------------------------------
def by_token(session: Session, token: str) -> LifeCase | None:
    if not token or len(token) > 64:
        return None
    return session.exec(select(LifeCase).where(LifeCase.token == token)).first()


def procedures_of(session: Session, case: LifeCase) -> list[LifeCaseProcedure]:
    return list(
        session.exec(
            select(LifeCaseProcedure)
            .where(LifeCaseProcedure.case_id == case.id)
            .order_by(col(LifeCaseProcedure.position))
        ).all()
    )


def case_data(case: LifeCase, rows: Sequence[LifeCaseProcedure] | None = None) -> CaseData:
    data = dict(case.data)
    if rows is not None:
        data["procedures"] = [row.detail | {"status": row.status.value} for row in rows]
    return CaseData.from_dict(data)


def person_from_resident(resident: Resident, *, subject: bool = True) -> Person:
    return Person(
        key=resident.atena_number,
        family_name=resident.family_name,
        given_name=resident.given_name,
        family_kana=resident.family_name_kana,
        given_kana=resident.given_name_kana,
        birth_date=resident.birth_date,
        sex=str(resident.sex.value if hasattr(resident.sex, "value") else resident.sex),
        relationship=resident.relationship,
        nationality=resident.nationality,
        resident_code=resident.resident_code,
        atena_number=resident.atena_number,
        resident_id=resident.id,
        subject=subject,
        source="registry",
    )


def household_people(session: Session, resident: Resident) -> list[Person]:
    rows = session.exec(
        select(Resident).where(Resident.household_id == resident.household_id).order_by(col(Resident.id))
    ).all()
    return [person_from_resident(r) for r in rows if r.status.value == "resident" or r.id == resident.id]


def resident_address(resident: Resident) -> Address:
    return Address(
        postal_code=resident.postal_code, address=resident.address, katagaki=resident.address_katagaki
    )


# -- rules ---------------------------------------------------------------------------------------
INSURANCE_FACT = "insurance"
CARD_FACT = "has_my_number_card"


def members_for_rules(data: CaseData, facts: Mapping[str, Mapping[str, Any]]) -> list[Member]:
    out: list[Member] = []
    for p in data.members:
        f = facts.get(p.key, {})
        try:
            insurance = Insurance(str(f.get(INSURANCE_FACT, "unknown")))
        except ValueError:
            insurance = Insurance.UNKNOWN
        sex = {"1": "male", "2": "female"}.get(p.sex, "unknown")
        out.append(
            Member.from_dict(
                {
                    "id": p.key,
                    "name": p.name,
                    "birth_date": p.birth_date.isoformat() if p.birth_date else None,
                    "relationship": p.relationship,
                    "sex": sex,
                    "insurance": insurance.value,
                    "is_foreign": p.is_foreign,
                    "has_my_number_card": bool(f.get(CARD_FACT, False)),
                }
            )
        )
    return out


def _facts(case: LifeCase) -> dict[str, dict[str, Any]]:
    facts = case.data.get("facts", {})
    return facts if isinstance(facts, dict) else {}


def stored_answers(case: LifeCase, event: LifeEvent) -> dict[str, Any]:
    """Stored answers (JSON) back to the rules' types: dates are ISO strings in storage."""
    out: dict[str, Any] = {}
    for key, value in dict(case.data.get("answers", {})).items():
        question = event.question(key)
        if question is not None and question.kind.value == "date" and isinstance(value, str):
            try:
                out[key] = date.fromisoformat(value)
                continue
            except ValueError:
                pass
        out[key] = value
    return out


def with_default_subjects(
    event: LifeEvent | None, applicant_key: str, members: Sequence[Person]
) -> list[Person]:
    """The event's default subjects (SubjectRule.default): everyone (moves), only the applicant
    (marriage …), or nobody yet (the deceased is chosen)."""
    default = event.subjects.default.value if event else "all"
    return [
        replace(m, subject=default == "all" or (default == "applicant" and m.key == applicant_key))
        for m in members
    ]


@dataclass(frozen=True)
class Evaluation:
    rules_version: int | None  # the version of the rules evaluated (None: the seed data)
    event: LifeEvent
    questions: tuple[Question, ...]  # visible now
    result: Result
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return self.result.ok and self.result.event_date is not None


def evaluate_case(session: Session, case: LifeCase, *, today: date | None = None) -> Evaluation:
    version, rules = current_rules(session)
    compiled = rules.event(case.event_id)
    data = case_data(case)
    today = today or today_jst()
    members = members_for_rules(data, _facts(case))
    answers = stored_answers(case, compiled.event)
    subject_ids = [p.key for p in data.members if p.subject]
    result = evaluate(
        compiled,
        answers,
        members,
        data.applicant.key if data.member(data.applicant.key) else None,
        data.event_date,
        today,
        subject_ids=subject_ids,
    )
    reference = data.event_date or today
    persons = [
        person_facts(
            m,
            event_date=reference,
            today=today,
            applicant_id=data.applicant.key,
            subject_ids=frozenset(subject_ids),
        )
        for m in members
    ]
    questions = visible_questions(compiled, answers, HouseholdFacts(persons))
    return Evaluation(version, compiled.event, questions, result, tuple(result.problems))


def snapshot_procedures(result: Result) -> tuple[CaseProcedure, ...]:
    out: list[CaseProcedure] = []
    for a in result.all():
        out.append(
            CaseProcedure(
                procedure_id=a.procedure.id,
                name=a.procedure.title.ja,
                department_id=a.department.id,
                department_name=a.department.name.ja,
                service_id=a.service.id,
                member_keys=a.member_ids,
                forms=a.procedure.forms,
                why=tuple(t.ja for t in a.why),
                bring=tuple(t.ja for t in a.procedure.bring),
                deadline=a.deadline,
                certain=a.certain,
            )
        )
    return tuple(out)


# -- writing -------------------------------------------------------------------------------------
def _actor(staff: StaffUser | None, device: Device | None, ip: str = "") -> Actor:
    if staff is not None:
        return Actor("staff", str(staff.id), staff.display_name, ip)
    if device is not None:
        return Actor("device", str(device.id), device.code, ip)
    return Actor.system()


def start(
    session: Session,
    *,
    event_id: str,
    mode: CaseMode,
    location: Location,
    applicant: Person,
    members: Sequence[Person],
    device: Device | None = None,
    staff: StaffUser | None = None,
    applicant_resident: Resident | None = None,
    old_address: Address | None = None,
    facts: Mapping[str, Mapping[str, Any]] | None = None,
    ip: str = "",
) -> LifeCase:
    """A new draft. The applicant and household come from the card, the registry or the clerk."""
    rules = current_rules(session)[1]
    event = rules.catalog.event(event_id)
    if event is None:
        raise CaseError("event", "その届出は選べません。", "That life event is not available.")
    assert location.id is not None
    members = with_default_subjects(event, applicant.key, members)
    if event.subjects.default.value == "applicant" and not any(m.key == applicant.key for m in members):
        applicant = replace(applicant, subject=True)
    municipality = session.get(Municipality, 1)
    today = today_jst()
    token = new_token()
    data = CaseData(
        token=token,
        number="",
        event_id=event_id,
        event_name=event.name.ja,
        event_date=None,
        filed_on=today,
        mode=mode,
        applicant=applicant,
        members=tuple(members),
        old_address=old_address or Address(),
        applicant_relation="本人" if any(m.key == applicant.key for m in members) else "",
        municipality=municipality.name if municipality is not None else "",
        location=location.name,
        clerk=staff.display_name if staff is not None else "",
    ).to_dict()
    data.pop("procedures")
    data["facts"] = {k: dict(v) for k, v in (facts or {}).items()}
    case = LifeCase(
        token=token,
        event_id=event_id,
        mode=mode,
        step="questions",
        location_id=location.id,
        device_id=device.id if device else None,
        staff_id=staff.id if staff else None,
        applicant_resident_id=applicant_resident.id if applicant_resident else None,
        reception_date=today,
        data=data,
    )
    session.add(case)
    session.flush()
    if applicant_resident is not None:
        audit.record(
            session,
            _actor(staff, device, ip),
            "case.start",
            target_type="resident",
            target_id=applicant_resident.id or "",
            detail={"case": case.id, "event": event_id, "mode": mode.value},
        )
    return case


def set_household(
    session: Session,
    case: LifeCase,
    *,
    applicant: Person,
    members: Sequence[Person],
    applicant_resident: Resident | None = None,
    old_address: Address | None = None,
) -> None:
    """Replace the people of a draft (the card was read after the walk began), with the event's
    default subjects."""
    _check_draft(case, None)
    event = current_rules(session)[1].catalog.event(case.event_id)
    people = with_default_subjects(event, applicant.key, members)
    data = dict(case.data)
    data["applicant"] = applicant.to_dict()
    data["members"] = [m.to_dict() for m in people]
    data["applicant_relation"] = "本人" if any(m.key == applicant.key for m in people) else ""
    if old_address is not None:
        data["old_address"] = old_address.to_dict()
    _store(case, data)
    case.applicant_resident_id = applicant_resident.id if applicant_resident else None
    session.add(case)


def _check_draft(case: LifeCase, revision: int | None) -> None:
    if case.status is not CaseStatus.DRAFT:
        raise CaseError(
            "submitted", "この届出はすでに受け付けました。", "This case has already been submitted."
        )
    if revision is not None and revision != case.revision:
        raise STALE


def _store(case: LifeCase, data: Mapping[str, Any], step: str | None = None) -> None:
    case.data = dict(data)  # a new object: SQLAlchemy sees the JSON change
    case.revision += 1
    case.updated_at = utcnow()
    if step is not None:
        case.step = step


def update_people(
    session: Session,
    case: LifeCase,
    *,
    revision: int | None,
    members: Sequence[Person] | None = None,
    applicant: Person | None = None,
    facts: Mapping[str, Mapping[str, Any]] | None = None,
    new_address: Address | None = None,
    old_address: Address | None = None,
    phone: str | None = None,
    applicant_relation: str | None = None,
    new_head: str | None = None,
    old_head: str | None = None,
    step: str | None = None,
) -> None:
    _check_draft(case, revision)
    data = dict(case.data)
    if members is not None:
        data["members"] = [m.to_dict() for m in members]
    if applicant is not None:
        data["applicant"] = applicant.to_dict()
    if facts is not None:
        merged = dict(data.get("facts", {}))
        for key, person_facts_ in facts.items():
            merged[key] = dict(merged.get(key, {})) | dict(person_facts_)
        data["facts"] = merged
    if new_address is not None:
        data["new_address"] = new_address.to_dict()
    if old_address is not None:
        data["old_address"] = old_address.to_dict()
    texts = {
        "phone": phone,
        "applicant_relation": applicant_relation,
        "new_head": new_head,
        "old_head": old_head,
    }
    data.update({name: text for name, text in texts.items() if text is not None})
    _store(case, data, step)
    session.add(case)


def save_answers(
    session: Session,
    case: LifeCase,
    raw: Mapping[str, str],
    *,
    revision: int | None,
    event_date: str | None = None,
    step: str | None = None,
    today: date | None = None,
) -> list[Problem]:
    """Keep what was answered (even with problems: nothing typed is lost); return the problems of
    the fields given. Answers to questions not in the event are ignored."""
    _check_draft(case, revision)
    event = current_rules(session)[1].event(case.event_id).event
    data = dict(case.data)
    answers = dict(data.get("answers", {}))
    problems: list[Problem] = []
    for question in event.questions:
        if question.id not in raw:
            continue
        value, found = coerce_answer(question, raw[question.id])
        problems += found
        if value is None:
            answers.pop(question.id, None)
            if found:
                data.setdefault("raw_answers", {})[question.id] = raw[question.id]
        else:
            answers[question.id] = value.isoformat() if isinstance(value, date) else value
            data.get("raw_answers", {}).pop(question.id, None)
    data["answers"] = answers
    if event_date is not None:
        from app.domain.wareki import parse_wareki

        text = event_date.strip()
        parsed: date | None = None
        if text:
            try:
                parsed = date.fromisoformat(text)
            except ValueError:
                parsed = parse_wareki(text)
            if parsed is None:
                from app.domain.lifeevents import Text
                from app.domain.lifeevents.model import Severity

                problems.append(
                    Problem(
                        "event_date",
                        Severity.ERROR,
                        Text("日付を読み取れませんでした。", en="Could not read the date."),
                    )
                )
        data["event_date"] = parsed.isoformat() if parsed else None
    _store(case, data, step)
    session.add(case)
    return problems


def submit(
    session: Session,
    case: LifeCase,
    *,
    revision: int | None,
    signatures: Iterable[Signature],
    staff: StaffUser | None = None,
    device: Device | None = None,
    ip: str = "",
    today: date | None = None,
) -> LifeCase:
    """Confirm the case: evaluate once more, snapshot the procedures, give the reception number,
    tell the departments. A resident signature is required."""
    _check_draft(case, revision)
    signs = list(signatures)
    if not any(s.role is SignatureRole.RESIDENT and s.strokes for s in signs):
        raise CaseError("signature", "署名をしてください。", "Please sign.")
    evaluation = evaluate_case(session, case, today=today)
    if not evaluation.ok:
        raise CaseError(
            "problems",
            "まだ答えていない質問か、確認が必要な答えがあります。",
            "Some answers are missing or need checking.",
        )
    version = evaluation.rules_version
    procedures = snapshot_procedures(evaluation.result)
    day = today or today_jst()
    case.reception_number = next_number(session, f"case:{case.location_id}", day)
    case.reception_date = day
    data = dict(case.data)
    data["number"] = f"L-{case.reception_number:04d}"
    data["event_date"] = evaluation.result.event_date.isoformat() if evaluation.result.event_date else None
    data["signatures"] = [s.to_dict() for s in signs]
    if staff is not None:
        data["clerk"] = staff.display_name
    _store(case, data, "submitted")
    case.status = CaseStatus.SUBMITTED
    case.submitted_at = utcnow()
    case.rules_version = version
    if staff is not None:
        case.staff_id = staff.id
    session.add(case)
    session.flush()
    assert case.id is not None
    for position, p in enumerate(procedures):
        detail = p.to_dict()
        detail.pop("status")
        session.add(
            LifeCaseProcedure(
                case_id=case.id,
                position=position,
                procedure_id=p.procedure_id,
                department_id=p.department_id,
                detail=detail,
            )
        )
    audit.record(
        session,
        _actor(staff, device, ip),
        "case.submit",
        target_type="life_case",
        target_id=case.id,
        detail={
            "event": case.event_id,
            "number": data["number"],
            "procedures": len(procedures),
            "rules_version": version,
            "members": len(data.get("members", [])),
        },
    )
    publish_on_commit(
        session, TOPIC, "case.submitted", case_event(case, [p.department_id for p in procedures])
    )
    return case


def case_event(case: LifeCase, department_ids: Iterable[str] = ()) -> dict[str, Any]:
    """No personal data: staff screens fetch what they show (and the read is audit-logged)."""
    departments = sorted(set(department_ids))
    return {
        "case": case.id,
        "token_hint": case.token[:6],
        "event": case.event_id,
        "number": reception_label(case),
        "location": case.location_id,
        "status": case.status.value,
        "departments": departments,
    }


def set_procedure_status(
    session: Session,
    case: LifeCase,
    position: int,
    status: ProcedureStatus,
    *,
    staff: StaffUser,
    note: str = "",
    ip: str = "",
) -> LifeCaseProcedure:
    if case.status not in (CaseStatus.SUBMITTED, CaseStatus.DONE):
        raise CaseError("state", "この届出はまだ受け付けていません。", "This case is not submitted.")
    row = session.exec(
        select(LifeCaseProcedure)
        .where(LifeCaseProcedure.case_id == case.id, LifeCaseProcedure.position == position)
        .with_for_update()
    ).first()
    if row is None:
        raise CaseError("procedure", "その手続きは見つかりません。", "No such procedure.")
    before = row.status
    row.status = status
    row.note = note.strip()[:255]
    row.done_by = staff.id if status is not ProcedureStatus.PENDING else None
    row.done_at = utcnow() if status is not ProcedureStatus.PENDING else None
    session.add(row)
    rows = procedures_of(session, case)  # the identity map: `row` is among them, as changed
    if all(r.status is not ProcedureStatus.PENDING for r in rows):
        case.status = CaseStatus.DONE
        case.closed_at = utcnow()
    elif case.status is CaseStatus.DONE:
        case.status = CaseStatus.SUBMITTED
        case.closed_at = None
    case.updated_at = utcnow()
    session.add(case)
    audit.record(
        session,
        _actor(staff, None, ip),
        "case.procedure",
        target_type="life_case",
        target_id=case.id or "",
        detail={
            "procedure": row.procedure_id,
            "department": row.department_id,
            "from": before.value,
            "to": status.value,
            "note": row.note,
        },
    )
    publish_on_commit(
        session,
        TOPIC,
        "case.progress",
        case_event(case, [r.department_id for r in rows])
        | {
            "position": position,
            "procedure_status": status.value,
            "done": sum(1 for r in rows if r.status is not ProcedureStatus.PENDING),
            "total": len(rows),
        },
    )
    return row


def cancel(session: Session, case: LifeCase, *, staff: StaffUser | None, reason: str, ip: str = "") -> None:
    if case.status is CaseStatus.CANCELLED:
        return
    case.status = CaseStatus.CANCELLED
    case.closed_at = utcnow()
    case.updated_at = utcnow()
    session.add(case)
    audit.record(
        session,
        _actor(staff, None, ip),
        "case.cancel",
        target_type="life_case",
        target_id=case.id or "",
        detail={"reason": reason[:255]},
    )
    publish_on_commit(session, TOPIC, "case.progress", case_event(case))


# -- lists ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseSummary:
    case: LifeCase
    data: CaseData
    rows: tuple[LifeCaseProcedure, ...]

    @property
    def done(self) -> int:
        return sum(1 for r in self.rows if r.status is not ProcedureStatus.PENDING)

    def for_department(self, department_id: str) -> tuple[LifeCaseProcedure, ...]:
        return tuple(r for r in self.rows if r.department_id == department_id)


def list_cases(
    session: Session,
    *,
    department_id: str = "",
    day: date | None = None,
    statuses: Sequence[CaseStatus] = (CaseStatus.SUBMITTED, CaseStatus.DONE),
    location_id: int | None = None,
    limit: int = 200,
) -> list[CaseSummary]:
    query = select(LifeCase).where(col(LifeCase.status).in_(list(statuses)))
    if day is not None:
        query = query.where(LifeCase.reception_date == day)
    if location_id is not None:
        query = query.where(LifeCase.location_id == location_id)
    if department_id:
        query = query.where(
            col(LifeCase.id).in_(
                select(LifeCaseProcedure.case_id).where(LifeCaseProcedure.department_id == department_id)
            )
        )
    cases = list(session.exec(query.order_by(col(LifeCase.submitted_at).desc()).limit(limit)).all())
    ids = [c.id for c in cases]
    rows: dict[int, list[LifeCaseProcedure]] = {}
    if ids:
        for row in session.exec(
            select(LifeCaseProcedure)
            .where(col(LifeCaseProcedure.case_id).in_(ids))
            .order_by(col(LifeCaseProcedure.position))
        ).all():
            rows.setdefault(row.case_id, []).append(row)
    out = []
    for c in cases:
        assert c.id is not None
        r = rows.get(c.id, [])
        out.append(CaseSummary(c, case_data(c, r), tuple(r)))
    return out


def next_new_key(members: Sequence[Person]) -> str:
    n = 1
    keys = {m.key for m in members}
    while f"new-{n}" in keys:
        n += 1
    return f"new-{n}"


__all__ = [
    "STALE",
    "CaseError",
    "CaseSummary",
    "Evaluation",
    "by_token",
    "cancel",
    "case_data",
    "evaluate_case",
    "household_people",
    "list_cases",
    "members_for_rules",
    "next_new_key",
    "person_from_resident",
    "procedures_of",
    "resident_address",
    "save_answers",
    "set_procedure_status",
    "snapshot_procedures",
    "start",
    "stored_answers",
    "submit",
    "update_people",
]
