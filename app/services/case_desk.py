"""The departments' side of life-event cases: each department's list, the floor overview, one
case's detail with its check-off log, and the reading of the hand-over QR.

Reads only; the check-offs themselves are `app.services.cases.set_procedure_status` and
`cancel`. Every read that shows residents' personal data (names on the list, the detail) is
audit-logged by the caller through `record_list_view` / `record_case_view`; the floor overview
shows no names and is not.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.domain.age import age_on
from app.domain.cases import CaseData, CaseProcedure, CaseStatus, Person, ProcedureStatus
from app.domain.lifeevents import RuleSet
from app.domain.lifeevents.model import Department, LifeEvent, QuestionKind, Text
from app.domain.wareki import format_date_for_resident, format_wareki
from app.models import AuditEntry, EventRecord, LifeCase, LifeCaseProcedure, Location
from app.services import audit, cases
from app.services.audit import Actor
from app.services.cases import CaseSummary
from app.services.lifeevent_rules import current_rules

LIST_LIMIT = 300
# Audit actions that make up a case's history (views are audited too but are not history).
LOG_ACTIONS = ("case.submit", "case.procedure", "case.cancel")


def text_of(text: Text | None, lang: str) -> str:
    if text is None:
        return ""
    return text.en or text.ja if lang == "en" else text.ja


# -- departments ---------------------------------------------------------------------------------
def departments(rules: RuleSet) -> tuple[Department, ...]:
    """The catalogue's departments in their display order."""
    return tuple(sorted(rules.catalog.departments, key=lambda d: (d.order or 999, d.id)))


def resolve_department(choices: Sequence[Department], *wanted: str | None) -> Department | None:
    """The first of `wanted` that names a department (by id, or by its Japanese name for accounts
    made before departments were ids); else the first department."""
    for value in wanted:
        if not value:
            continue
        value = value.strip()
        for department in choices:
            if value == department.id or value == department.name.ja:
                return department
    return choices[0] if choices else None


# -- lists ---------------------------------------------------------------------------------------
class CaseTab(StrEnum):
    OPEN = "open"  # 未完了: this department still has something to do (any day)
    DONE = "done"  # 完了: today's cases where this department has finished
    TODAY = "today"  # 今日すべて: today's cases for this department, cancelled ones included


def _summaries(session: Session, found: Sequence[LifeCase]) -> list[CaseSummary]:
    ids = [c.id for c in found if c.id is not None]
    rows: dict[int, list[LifeCaseProcedure]] = {}
    if ids:
        for row in session.exec(
            select(LifeCaseProcedure)
            .where(col(LifeCaseProcedure.case_id).in_(ids))
            .order_by(col(LifeCaseProcedure.position))
        ).all():
            rows.setdefault(row.case_id, []).append(row)
    out: list[CaseSummary] = []
    for c in found:
        assert c.id is not None
        mine = rows.get(c.id, [])
        out.append(CaseSummary(c, cases.case_data(c, mine), tuple(mine)))
    return out


def department_cases(session: Session, department_id: str, tab: CaseTab, *, today: date) -> list[CaseSummary]:
    ours = select(LifeCaseProcedure.case_id).where(LifeCaseProcedure.department_id == department_id)
    pending = ours.where(LifeCaseProcedure.status == ProcedureStatus.PENDING)
    query = select(LifeCase).where(col(LifeCase.id).in_(ours))
    if tab is CaseTab.OPEN:
        query = query.where(LifeCase.status == CaseStatus.SUBMITTED, col(LifeCase.id).in_(pending))
        order = col(LifeCase.submitted_at).asc()  # waiting longest first
    elif tab is CaseTab.DONE:
        query = query.where(
            LifeCase.reception_date == today,
            col(LifeCase.status).in_([CaseStatus.SUBMITTED, CaseStatus.DONE]),
            col(LifeCase.id).not_in(pending),
        )
        order = col(LifeCase.submitted_at).desc()
    else:
        query = query.where(
            LifeCase.reception_date == today,
            col(LifeCase.status).in_([CaseStatus.SUBMITTED, CaseStatus.DONE, CaseStatus.CANCELLED]),
        )
        order = col(LifeCase.submitted_at).desc()
    found = list(session.exec(query.order_by(order, col(LifeCase.id)).limit(LIST_LIMIT)).all())
    return _summaries(session, found)


def record_list_view(
    session: Session, actor: Actor, department_id: str, tab: CaseTab, shown: Sequence[CaseSummary]
) -> None:
    """One entry per view of a list that shows names (an empty list shows nobody)."""
    if not shown:
        return
    audit.record(
        session,
        actor,
        "case.list",
        target_type="life_case",
        detail={
            "department": department_id,
            "tab": tab.value,
            "results": len(shown),
            "cases": [s.case.id for s in shown][:100],
        },
    )


def last_event_id(session: Session) -> int:
    """Streams opened by a page resume after this, so nothing between render and connect is lost."""
    return int(session.exec(select(func.max(EventRecord.id))).one() or 0)


def location_names(session: Session) -> dict[int, str]:
    return {loc.id: loc.name for loc in session.exec(select(Location)).all() if loc.id is not None}


# -- floor overview ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DepartmentProgress:
    done: int
    total: int

    @property
    def finished(self) -> bool:
        return self.done >= self.total


@dataclass(frozen=True)
class FloorRow:
    summary: CaseSummary
    cells: tuple[DepartmentProgress | None, ...]  # one per column; None: nothing for that department


@dataclass(frozen=True)
class FloorView:
    columns: tuple[Department, ...]  # departments with work on today's open cases, in order
    rows: tuple[FloorRow, ...]
    waiting: tuple[int, ...]  # per column: open cases still waiting for that department
    finished_today: int


def floor_view(session: Session, rules: RuleSet, *, today: date) -> FloorView:
    """Every case received today that is still open, and where each department stands on it.
    No names: this screen may hang on a wall."""
    found = list(
        session.exec(
            select(LifeCase)
            .where(LifeCase.reception_date == today, LifeCase.status == CaseStatus.SUBMITTED)
            .order_by(col(LifeCase.submitted_at).asc(), col(LifeCase.id))
            .limit(LIST_LIMIT)
        ).all()
    )
    summaries = _summaries(session, found)
    finished = session.exec(
        select(func.count())
        .select_from(LifeCase)
        .where(LifeCase.reception_date == today, LifeCase.status == CaseStatus.DONE)
    ).one()
    used = {r.department_id for s in summaries for r in s.rows}
    ordered = [d for d in departments(rules) if d.id in used]
    # A department no longer in the rules still has work on the case: show it by its id.
    ordered += [Department(id=d, name=Text(d)) for d in sorted(used - {d.id for d in ordered})]
    rows: list[FloorRow] = []
    waiting = [0] * len(ordered)
    for s in summaries:
        cells: list[DepartmentProgress | None] = []
        for i, department in enumerate(ordered):
            mine = s.for_department(department.id)
            if not mine:
                cells.append(None)
                continue
            progress = DepartmentProgress(
                sum(1 for r in mine if r.status is not ProcedureStatus.PENDING), len(mine)
            )
            if not progress.finished:
                waiting[i] += 1
            cells.append(progress)
        rows.append(FloorRow(s, tuple(cells)))
    return FloorView(tuple(ordered), tuple(rows), tuple(waiting), int(finished))


# -- one case ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProcedureItem:
    row: LifeCaseProcedure
    procedure: CaseProcedure
    for_whom: tuple[str, ...]  # names; empty: the whole household
    forms: tuple[str, ...]  # form names
    days_left: int | None  # to the deadline (negative: past it)


@dataclass(frozen=True)
class DepartmentGroup:
    id: str
    name: str
    place: str
    selected: bool
    items: tuple[ProcedureItem, ...]

    @property
    def done(self) -> int:
        return sum(1 for i in self.items if i.row.status is not ProcedureStatus.PENDING)


@dataclass(frozen=True)
class MemberItem:
    person: Person
    birth: str  # 和暦 (西暦 for foreign residents)
    age: int | None


@dataclass(frozen=True)
class AnswerItem:
    question: str
    answer: str


@dataclass(frozen=True)
class LogItem:
    at: datetime
    who: str
    action: str  # submit | procedure | cancel
    procedure: str = ""
    department: str = ""
    before: str = ""
    after: str = ""
    note: str = ""


@dataclass(frozen=True)
class CaseDetail:
    case: LifeCase
    data: CaseData
    event_name: str
    date_label: str
    groups: tuple[DepartmentGroup, ...]  # the selected department first
    members: tuple[MemberItem, ...]
    applicant: MemberItem
    answers: tuple[AnswerItem, ...]
    log: tuple[LogItem, ...]
    forms: tuple[tuple[str, str], ...]  # (form id, name) of every form the case needs
    location: str
    done: int
    total: int


def _answer_text(event: LifeEvent, question_id: str, value: Any, lang: str) -> AnswerItem | None:
    question = event.question(question_id)
    if question is None:
        return None
    yes, no = ("Yes", "No") if lang == "en" else ("はい", "いいえ")
    if question.kind is QuestionKind.YES_NO:
        shown = yes if value is True else no if value is False else str(value)
    elif question.kind is QuestionKind.DATE and isinstance(value, str):
        try:
            shown = format_wareki(date.fromisoformat(value))
        except ValueError:
            shown = value
    elif question.kind is QuestionKind.CHOICE:
        choice = question.option(str(value))
        shown = text_of(choice.label, lang) if choice else str(value)
    else:
        shown = str(value)
    return AnswerItem(text_of(question.text, lang), shown)


def _member_item(person: Person, today: date) -> MemberItem:
    birth = person.birth_date
    return MemberItem(
        person,
        format_date_for_resident(birth, person.is_foreign) if birth else "",
        age_on(birth, today) if birth and birth <= today else None,
    )


def case_log(session: Session, case: LifeCase, names: dict[str, str]) -> tuple[LogItem, ...]:
    """Who did what to the case, when (from its audit entries, which cannot be edited)."""
    entries = session.exec(
        select(AuditEntry)
        .where(
            AuditEntry.target_type == "life_case",
            AuditEntry.target_id == str(case.id),
            col(AuditEntry.action).in_(LOG_ACTIONS),
        )
        .order_by(col(AuditEntry.seq))
    ).all()
    out: list[LogItem] = []
    for e in entries:
        d = e.detail or {}
        assert e.at is not None
        out.append(
            LogItem(
                at=e.at,
                who=e.actor_name,
                action=e.action.removeprefix("case."),
                procedure=names.get(str(d.get("procedure", "")), str(d.get("procedure", ""))),
                department=str(d.get("department", "")),
                before=str(d.get("from", "")),
                after=str(d.get("to", "")),
                note=str(d.get("note", "") or d.get("reason", "")),
            )
        )
    return tuple(out)


def case_detail(
    session: Session, case: LifeCase, *, department_id: str, today: date, lang: str = "ja"
) -> CaseDetail:
    rules = current_rules(session)[1]
    catalog = rules.catalog
    rows = cases.procedures_of(session, case)
    data = cases.case_data(case, rows)
    event = catalog.event(case.event_id)
    order = {d.id: i for i, d in enumerate(departments(rules))}

    def form_name(form_id: str) -> str:
        form = catalog.form(form_id)
        return text_of(form.name, lang) if form else form_id

    by_department: dict[str, list[ProcedureItem]] = {}
    for row, procedure in zip(rows, data.procedures, strict=True):
        people = tuple(
            person.name for key in procedure.member_keys if (person := data.member(key)) is not None
        )
        by_department.setdefault(row.department_id, []).append(
            ProcedureItem(
                row,
                procedure,
                people,
                tuple(form_name(f) for f in procedure.forms),
                (procedure.deadline - today).days if procedure.deadline else None,
            )
        )
    groups: list[DepartmentGroup] = []
    for department_id_, items in by_department.items():
        department = catalog.department(department_id_)
        groups.append(
            DepartmentGroup(
                department_id_,
                text_of(department.name, lang) if department else items[0].procedure.department_name,
                text_of(department.place, lang) if department else "",
                department_id_ == department_id,
                tuple(items),
            )
        )
    groups.sort(key=lambda g: (not g.selected, order.get(g.id, len(order)), g.id))
    answers: list[AnswerItem] = []
    if event is not None:
        for question in event.questions:
            if question.id in data.answers:
                item = _answer_text(event, question.id, data.answers[question.id], lang)
                if item is not None:
                    answers.append(item)
    location = session.get(Location, case.location_id)
    names = {r.procedure_id: str(r.detail.get("name", r.procedure_id)) for r in rows}
    return CaseDetail(
        case=case,
        data=data,
        event_name=text_of(event.name, lang) if event else data.event_name,
        date_label=text_of(event.date_label, lang) if event else "",
        groups=tuple(groups),
        members=tuple(_member_item(p, today) for p in data.members),
        applicant=_member_item(data.applicant, today),
        answers=tuple(answers),
        log=case_log(session, case, names),
        forms=tuple((f, form_name(f)) for f in data.forms()),
        location=location.name if location else "",
        done=sum(1 for r in rows if r.status is not ProcedureStatus.PENDING),
        total=len(rows),
    )


def record_case_view(session: Session, actor: Actor, case: LifeCase, *, part: str = "page") -> None:
    audit.record(
        session,
        actor,
        "case.view",
        target_type="life_case",
        target_id=case.id or "",
        detail={"number": cases.reception_label(case), "event": case.event_id, "part": part},
    )


# -- the hand-over QR ----------------------------------------------------------------------------
_TOKEN = re.compile(r"[A-Za-z0-9_\-]{16,64}")
_AFTER_SCAN = re.compile(r"cases/scan/([^?&#\s/]+)")
_DEPARTMENT = re.compile(r"[?&]d[=^]([A-Za-z0-9_\-]{1,64})")


def scan_url(base_url: str, token: str, department_id: str = "") -> str:
    """What the guidance sheet's QR code holds: `<public URL>/cases/scan/<token>`, with `?d=` to
    open the case at the department the resident is sent to next (optional)."""
    url = f"{base_url.rstrip('/')}/cases/scan/{token}"
    return f"{url}?d={department_id}" if department_id else url


@dataclass(frozen=True)
class ScannedCode:
    tokens: tuple[str, ...]  # candidates, most likely first
    department: str = ""


def read_scanned(text: str) -> ScannedCode | None:
    """What a QR reader typed: the guidance sheet's URL (…/cases/scan/<token>?d=<department>) or a
    bare token. Readers that type through a Japanese IME or a JIS keyboard layout send full-width
    characters or '=' for '_' (and '^' for '='); both are undone here."""
    folded = unicodedata.normalize("NFKC", text).strip()
    if not folded:
        return None
    department = ""
    match = _AFTER_SCAN.search(folded)
    if match:
        raw = match.group(1)
        found = _DEPARTMENT.search(folded[match.end() :])
        department = found.group(1) if found else ""
    else:
        raw = folded
    candidates: list[str] = []
    for token in (raw, raw.replace("=", "_")):
        if _TOKEN.fullmatch(token) and token not in candidates:
            candidates.append(token)
    if not candidates:
        return None
    return ScannedCode(tuple(candidates), department)


def find_scanned(session: Session, code: ScannedCode) -> LifeCase | None:
    for token in code.tokens:
        case = cases.by_token(session, token)
        if case is not None and case.status is not CaseStatus.DRAFT:
            return case
    return None
