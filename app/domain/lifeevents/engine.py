"""The rules engine: from a life event, its touch answers and the household to the procedures
each member needs, with deadlines as dates and a "why this applies" for every one.

    rules = compile_rules(catalog)            # once, when the catalogue is loaded or edited
    result = evaluate(rules.event("tennyu"), answers, members, applicant_id, event_date, today)

`compile_rules` checks the whole catalogue (references, conditions, placeholders) and reports
every problem at once (`CatalogError`). `evaluate` is pure and fast (no I/O, conditions compiled
to closures, explanations built only for procedures that apply):

- household-level procedures (住民異動届, 児童手当 認定請求 …) are evaluated once per household;
  with a `members:` filter they apply when at least one member matches, and list those members;
- person-level procedures (国保 加入, 転入学 …) are evaluated for every member among `for_whom`;
- a procedure whose conditions are unknown for lack of a fact (no birth date, an unanswered
  optional question) is listed with `certain=False` and says which fact is missing;
- deadlines: `Deadline` rules computed from the event date, moved past days the office is
  closed when the caller passes `is_closed_day`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from app.domain.lifeevents.conditions import (
    HOUSEHOLD_VARS,
    PERSON_VARS,
    AnswerSpec,
    CompiledCondition,
    ConditionError,
    Env,
    HouseholdFacts,
    Scope,
    Template,
    Value,
    VType,
    compile_condition,
    person_facts,
    placeholders,
)
from app.domain.lifeevents.model import (
    Catalog,
    Condition,
    Deadline,
    DeadlineAnchor,
    DeadlineKind,
    Department,
    EventCheck,
    ForWhom,
    Level,
    LifeEvent,
    Member,
    Procedure,
    QuestionKind,
    SchemaError,
    Service,
    SubjectDefault,
    SubjectRule,
    Text,
)
from app.domain.lifeevents.validate import Problem, has_errors, validate

__all__ = [
    "Applicable",
    "CatalogError",
    "CompiledEvent",
    "CompiledProcedure",
    "MemberProcedures",
    "Result",
    "RuleSet",
    "compile_rules",
    "deadline_date",
    "evaluate",
]

_KIND_TYPE = {
    QuestionKind.YES_NO: VType.BOOL,
    QuestionKind.CHOICE: VType.STR,
    QuestionKind.DATE: VType.DATE,
    QuestionKind.COUNT: VType.INT,
}


class CatalogError(ValueError):
    """Every problem found in a catalogue, each naming the item and the field."""

    def __init__(self, errors: Sequence[SchemaError]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


# -- compiled rules -------------------------------------------------------------------------------
def _all_of(tests: Sequence[Callable[[Env], bool | None]]) -> Callable[[Env], bool | None]:
    """Kleene conjunction of a procedure's conditions, as one closure."""
    if not tests:
        return lambda env: True
    if len(tests) == 1:
        return tests[0]
    fns = tuple(tests)

    def test(env: Env) -> bool | None:
        unknown = False
        for fn in fns:
            v = fn(env)
            if v is False:
                return False
            if v is None:
                unknown = True
        return None if unknown else True

    return test


@dataclass(frozen=True, slots=True)
class CompiledProcedure:
    procedure: Procedure
    service: Service
    department: Department
    conditions: tuple[tuple[Condition, CompiledCondition], ...]
    members: CompiledCondition | None
    index: int  # position in the catalogue: results keep the catalogue's order
    test: Callable[[Env], bool | None] = lambda env: True
    why: tuple[Template | None, ...] = ()  # staff-written explanations, per condition
    members_why: Template | None = None

    @staticmethod
    def build(
        procedure: Procedure,
        service: Service,
        department: Department,
        conditions: Sequence[tuple[Condition, CompiledCondition]],
        members: CompiledCondition | None,
        index: int,
    ) -> CompiledProcedure:
        return CompiledProcedure(
            procedure,
            service,
            department,
            tuple(conditions),
            members,
            index,
            test=_all_of([c.evaluate for _, c in conditions]),
            why=tuple(Template(cond.why) if cond.why is not None else None for cond, _ in conditions),
            members_why=Template(procedure.members_why) if procedure.members_why is not None else None,
        )


@dataclass(frozen=True, slots=True)
class CompiledEvent:
    event: LifeEvent
    household: tuple[CompiledProcedure, ...]
    person: tuple[CompiledProcedure, ...]
    question_when: Mapping[str, CompiledCondition]
    checks: tuple[tuple[EventCheck, CompiledCondition], ...]
    person_for_subjects: tuple[CompiledProcedure, ...] = ()
    person_for_others: tuple[CompiledProcedure, ...] = ()

    @property
    def procedures(self) -> tuple[CompiledProcedure, ...]:
        return tuple(sorted(self.household + self.person, key=lambda p: p.index))


@dataclass(frozen=True, slots=True)
class RuleSet:
    catalog: Catalog
    events: Mapping[str, CompiledEvent]
    everything: CompiledEvent  # every procedure of every event: for staff previews and benchmarks

    def event(self, event_id: str) -> CompiledEvent:
        try:
            return self.events[event_id]
        except KeyError:
            known = ", ".join(self.events)
            raise KeyError(f"unknown life event '{event_id}' (known: {known})") from None


def _answer_specs(events: Sequence[LifeEvent]) -> tuple[dict[str, AnswerSpec], list[str]]:
    specs: dict[str, AnswerSpec] = {}
    clashes: list[str] = []
    for ev in events:
        for q in ev.questions:
            spec = AnswerSpec(q.id, _KIND_TYPE[q.kind], q.text, tuple((c.value, c.label) for c in q.options))
            old = specs.get(q.id)
            if old is not None and (
                old.type is not spec.type or {v for v, _ in old.values} != {v for v, _ in spec.values}
            ):
                clashes.append(q.id)
            specs.setdefault(q.id, spec)
    return specs, clashes


def _check_placeholders(text: Text, scope: Scope) -> list[str]:
    bad: list[str] = []
    for name in sorted(placeholders(text)):
        if name in ("event", "name") and (name == "event" or scope.person):
            continue
        if name.startswith("answer.") and name.removeprefix("answer.") in scope.answers:
            continue
        if name.startswith("household.") and name.removeprefix("household.") in HOUSEHOLD_VARS:
            continue
        if scope.person and name in PERSON_VARS:
            continue
        bad.append(name)
    return bad


def compile_rules(catalog: Catalog) -> RuleSet:
    """Check and compile a catalogue. Raises CatalogError listing every problem found."""
    errors: list[SchemaError] = []

    def dup(kind: str, ids: Sequence[str]) -> None:
        seen: set[str] = set()
        for item_id in ids:
            if item_id in seen:
                errors.append(SchemaError(kind, item_id, "id", "id が重複しています", "duplicate id"))
            seen.add(item_id)

    dup("department", [d.id for d in catalog.departments])
    dup("service", [s.id for s in catalog.services])
    dup("form", [f.id for f in catalog.forms])
    dup("event", [e.id for e in catalog.events])
    dup("procedure", [p.id for p in catalog.procedures])
    for s in catalog.services:
        if catalog.department(s.department) is None:
            errors.append(
                SchemaError(
                    "service",
                    s.id,
                    "department",
                    f"担当課「{s.department}」がありません",
                    f"no department '{s.department}'",
                )
            )

    question_when: dict[str, dict[str, CompiledCondition]] = {}
    event_checks: dict[str, list[tuple[EventCheck, CompiledCondition]]] = {}
    for ev in catalog.events:
        specs, _ = _answer_specs([ev])
        earlier: dict[str, AnswerSpec] = {}
        whens: dict[str, CompiledCondition] = {}
        for q in ev.questions:
            if q.when:
                try:
                    whens[q.id] = compile_condition(q.when, Scope(person=False, answers=dict(earlier)))
                except ConditionError as e:
                    errors.append(SchemaError("event", ev.id, f"questions.{q.id}.when", _ja(e), _en(e)))
            earlier[q.id] = specs[q.id]
        question_when[ev.id] = whens
        checks: list[tuple[EventCheck, CompiledCondition]] = []
        for i, check in enumerate(ev.checks):
            scope = Scope(person=False, answers=specs)
            try:
                checks.append((check, compile_condition(check.when, scope)))
            except ConditionError as e:
                errors.append(SchemaError("event", ev.id, f"checks[{i}].when", _ja(e), _en(e)))
            for name in _check_placeholders(check.message, scope):
                errors.append(_placeholder_error("event", ev.id, f"checks[{i}].message", name))
        event_checks[ev.id] = checks

    compiled: list[CompiledProcedure] = []
    for index, proc in enumerate(catalog.procedures):
        problems_before = len(errors)
        service = catalog.service(proc.service)
        if service is None:
            errors.append(
                SchemaError(
                    "procedure",
                    proc.id,
                    "service",
                    f"業務「{proc.service}」がありません",
                    f"no service '{proc.service}'",
                )
            )
        if proc.department and catalog.department(proc.department) is None:
            errors.append(
                SchemaError(
                    "procedure",
                    proc.id,
                    "department",
                    f"担当課「{proc.department}」がありません",
                    f"no department '{proc.department}'",
                )
            )
        events: list[LifeEvent] = []
        for event_id in proc.events:
            found_event = catalog.event(event_id)
            if found_event is None:
                errors.append(
                    SchemaError(
                        "procedure",
                        proc.id,
                        "events",
                        f"ライフイベント「{event_id}」がありません",
                        f"no life event '{event_id}'",
                    )
                )
            else:
                events.append(found_event)
        for form_id in proc.forms:
            if catalog.form(form_id) is None:
                errors.append(
                    SchemaError(
                        "procedure",
                        proc.id,
                        "forms",
                        f"様式「{form_id}」がありません",
                        f"no form '{form_id}'",
                    )
                )
        specs, clashes = _answer_specs(events)
        for qid in clashes:
            errors.append(
                SchemaError(
                    "procedure",
                    proc.id,
                    "events",
                    f"質問「{qid}」の種類や選択肢がイベントによって違うため、条件で使えません",
                    f"question '{qid}' differs between this procedure's events",
                )
            )
        person_scope = Scope(person=proc.level is Level.PERSON, answers=specs)
        conditions: list[tuple[Condition, CompiledCondition]] = []
        for i, cond in enumerate(proc.conditions):
            try:
                conditions.append((cond, compile_condition(cond.when, person_scope)))
            except ConditionError as e:
                errors.append(SchemaError("procedure", proc.id, f"conditions[{i}]", _ja(e), _en(e)))
            if cond.why is not None:
                for name in _check_placeholders(cond.why, person_scope):
                    errors.append(_placeholder_error("procedure", proc.id, f"conditions[{i}].why", name))
        members: CompiledCondition | None = None
        member_scope = Scope(person=True, answers=specs)
        if proc.members:
            try:
                members = compile_condition(proc.members, member_scope)
            except ConditionError as e:
                errors.append(SchemaError("procedure", proc.id, "members", _ja(e), _en(e)))
        if proc.members_why is not None:
            for name in _check_placeholders(proc.members_why, member_scope):
                errors.append(_placeholder_error("procedure", proc.id, "members_why", name))
        if len(errors) == problems_before and service is not None:
            department = catalog.department_of(proc)
            if department is None:  # the service's department is missing: reported above
                continue
            compiled.append(CompiledProcedure.build(proc, service, department, conditions, members, index))

    if errors:
        raise CatalogError(errors)

    def build(ev: LifeEvent, procs: Sequence[CompiledProcedure]) -> CompiledEvent:
        person = tuple(p for p in procs if p.procedure.level is Level.PERSON)
        return CompiledEvent(
            event=ev,
            household=tuple(p for p in procs if p.procedure.level is Level.HOUSEHOLD),
            person=person,
            question_when=question_when.get(ev.id, {}),
            checks=tuple(event_checks.get(ev.id, ())),
            person_for_subjects=tuple(p for p in person if p.procedure.for_whom is not ForWhom.OTHERS),
            person_for_others=tuple(p for p in person if p.procedure.for_whom is not ForWhom.SUBJECTS),
        )

    events_out = {
        ev.id: build(ev, [p for p in compiled if ev.id in p.procedure.events]) for ev in catalog.events
    }
    everything = build(
        LifeEvent(
            id="_all",
            name=Text("すべての手続き", "すべての 手続き", "All procedures"),
            description=Text(
                "すべての手続きの条件を確かめます（職員用の確認）",
                en="Checks every procedure (staff preview)",
            ),
            date_label=Text("基準日", "きじゅんの 日", "Reference date"),
            subjects=SubjectRule(
                Text("対象の方", "対象の 人", "People concerned"), min=0, default=SubjectDefault.ALL
            ),
        ),
        compiled,
    )
    return RuleSet(catalog=catalog, events=events_out, everything=everything)


def _ja(e: ConditionError) -> str:
    return f"{e.column}文字目: {e.message_ja}（{e.source}）"


def _en(e: ConditionError) -> str:
    return f"column {e.column}: {e.message_en} ({e.source})"


def _placeholder_error(kind: str, item_id: str, field_name: str, name: str) -> SchemaError:
    return SchemaError(
        kind,
        item_id,
        field_name,
        f"差し込み「{{{name}}}」は使えません（使える例: {{event}}, {{name}}, {{age_at_event}}, {{answer.質問id}}）",
        f"unknown placeholder {{{name}}} (e.g. {{event}}, {{name}}, {{age_at_event}}, {{answer.<question id>}})",
    )


# -- results --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Applicable:
    """One procedure that applies: to the household (member_ids: the members it is for, if it has
    a members filter) or to one member (member_ids: that member)."""

    procedure: Procedure
    service: Service
    department: Department
    member_ids: tuple[str, ...]
    why: tuple[Text, ...]
    certain: bool  # False: a fact was unknown; staff should confirm
    deadline: date | None
    days_left: int | None

    @property
    def overdue(self) -> bool:
        return self.days_left is not None and self.days_left < 0

    @property
    def deadline_label(self) -> Text | None:
        return self.procedure.deadline.label if self.procedure.deadline else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "procedure": self.procedure.id,
            "service": self.service.id,
            "department": self.department.id,
            "level": self.procedure.level.value,
            "member_ids": list(self.member_ids),
            "why": [_text_dict(t) for t in self.why],
            "certain": self.certain,
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "days_left": self.days_left,
            "forms": list(self.procedure.forms),
        }


def _text_dict(t: Text) -> dict[str, str]:
    return {"ja": t.ja, "easy": t.get("easy"), "en": t.get("en")}


@dataclass(frozen=True, slots=True)
class MemberProcedures:
    member: Member
    procedures: tuple[Applicable, ...]


@dataclass(frozen=True, slots=True)
class Result:
    event: LifeEvent
    event_date: date | None
    today: date
    problems: tuple[Problem, ...]
    household: tuple[Applicable, ...] = ()
    members: tuple[MemberProcedures, ...] = ()
    answers: Mapping[str, Value] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No errors (warnings may remain and are shown beside the procedures)."""
        return not has_errors(self.problems)

    def all(self) -> Iterator[Applicable]:
        yield from self.household
        for m in self.members:
            yield from m.procedures

    def for_member(self, member_id: str) -> tuple[Applicable, ...]:
        return next((m.procedures for m in self.members if m.member.id == member_id), ())

    def procedure_ids(self) -> set[str]:
        return {a.procedure.id for a in self.all()}

    def forms(self) -> tuple[str, ...]:
        """Every form needed, each once, in the order procedures list them."""
        seen: dict[str, None] = {}
        for a in self.all():
            for form_id in a.procedure.forms:
                seen.setdefault(form_id, None)
        return tuple(seen)

    def by_department(self) -> tuple[tuple[Department, tuple[Applicable, ...]], ...]:
        """Procedures grouped by the counter that handles them (the 手続き案内票's route)."""
        groups: dict[str, list[Applicable]] = {}
        departments: dict[str, Department] = {}
        for a in self.all():
            groups.setdefault(a.department.id, []).append(a)
            departments[a.department.id] = a.department
        ordered = sorted(groups, key=lambda d: (departments[d].order, d))
        return tuple((departments[d], tuple(groups[d])) for d in ordered)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event.id,
            "event_date": self.event_date.isoformat() if self.event_date else None,
            "today": self.today.isoformat(),
            "ok": self.ok,
            "problems": [p.to_dict() for p in self.problems],
            "household": [a.to_dict() for a in self.household],
            "members": [
                {"member": m.member.id, "procedures": [a.to_dict() for a in m.procedures]}
                for m in self.members
            ],
            "forms": list(self.forms()),
        }


# -- deadlines ------------------------------------------------------------------------------------
_ONE_DAY = timedelta(days=1)


def deadline_date(
    rule: Deadline, event_date: date, is_closed_day: Callable[[date], bool] | None = None
) -> date | None:
    """The last day for a procedure, or None (速やかに / no deadline).

    「転入した日から14日以内」: 初日不算入, so moving on 4/1 gives 4/15. 「転出予定日の翌日から
    15日以内」 (児童手当の15日特例): the day after counts as day 1, so 転出予定日 4/1 gives 4/16.
    A last day on which the office is closed moves to the next open day (地方自治法4条の2④).
    """
    if rule.kind is not DeadlineKind.WITHIN_DAYS:
        return None
    start = event_date + _ONE_DAY if rule.anchor is DeadlineAnchor.DAY_AFTER_EVENT_DATE else event_date
    last = start + timedelta(days=rule.days - (1 if rule.first_day_counts else 0))
    if rule.roll_over_closed_days and is_closed_day is not None:
        for _ in range(31):  # bounded: New Year closures are the longest run
            if not is_closed_day(last):
                break
            last += _ONE_DAY
    return last


# -- evaluation -----------------------------------------------------------------------------------
def _display_name(member: Member) -> str:
    return member.name or member.relationship or member.id


def _for_whom(procedure: Procedure, is_subject: bool) -> bool:
    if procedure.for_whom is ForWhom.SUBJECTS:
        return is_subject
    if procedure.for_whom is ForWhom.OTHERS:
        return not is_subject
    return True


def _default_why(event: LifeEvent) -> Text:
    n = event.name
    return Text(
        f"「{n.ja}」の届出に伴う手続きです",
        f"「{n.get('easy')}」の ときに する 手続きです",
        f"Goes with the notification: {n.get('en')}",
    )


def _unknown_why(facts: Sequence[Text]) -> Text:
    ja = "・".join(dict.fromkeys(t.ja for t in facts))
    easy = "・".join(dict.fromkeys(t.get("easy") for t in facts))
    en = ", ".join(dict.fromkeys(t.get("en") for t in facts))
    return Text(
        f"{ja}が分からないため、該当するかどうか窓口で確認します",
        f"{easy}が わからないので、まどぐちで たしかめます",
        f"Not known: {en}. Staff will check whether this applies",
    )


def _why(cp: CompiledProcedure, env: Env, event: LifeEvent, name: str) -> tuple[list[Text], list[Text]]:
    """(reasons from the conditions that hold, facts that were unknown)."""
    reasons: list[Text] = []
    unknown: list[Text] = []
    for (_, compiled), template in zip(cp.conditions, cp.why, strict=True):
        v = compiled.evaluate(env)
        if v is True:
            if template is not None:
                reasons.append(template.render(env, event.name, name))
            else:
                reasons += compiled.explain(env, event.name)
        elif v is None:
            unknown += compiled.unknowns(env, event.name)
    return reasons, unknown


def _join(texts: Sequence[Text]) -> Text:
    return Text(
        "、".join(t.ja for t in texts),
        "、".join(t.get("easy") for t in texts),
        "; ".join(t.get("en") for t in texts),
    )


def evaluate(
    event: CompiledEvent,
    answers: Mapping[str, object],
    household_members: Sequence[Member],
    applicant_id: str | None,
    event_date: date | None,
    today: date,
    *,
    subject_ids: Sequence[str] | None = None,
    is_closed_day: Callable[[date], bool] | None = None,
    check: bool = True,
) -> Result:
    """The procedures `event` calls for, per household and per member, each with why it applies.

    `subject_ids`: the members the event is about (who moves, who died, the newborn …); None
    means everyone for events whose subjects default to all (moves). `check=False` skips input
    validation (for previews over `RuleSet.everything`); otherwise any error in the input returns
    a Result with the problems and no procedures.
    """
    ev = event.event
    members = tuple(household_members)
    if subject_ids is None:
        default = ev.subjects.default
        if default is SubjectDefault.ALL:
            subjects = frozenset(m.id for m in members)
        elif default is SubjectDefault.APPLICANT and applicant_id is not None:
            subjects = frozenset({applicant_id})
        else:
            subjects = frozenset()
    else:
        subjects = frozenset(subject_ids)
    reference = event_date or today
    persons = [
        person_facts(m, event_date=reference, today=today, applicant_id=applicant_id, subject_ids=subjects)
        for m in members
    ]
    household = HouseholdFacts(persons)

    problems: tuple[Problem, ...] = ()
    used: Mapping[str, Value]
    if check:
        problems, cleaned = validate(event, answers, members, event_date, today, subjects, household)
        used = cleaned
        if has_errors(problems) or event_date is None:
            return Result(ev, event_date, today, problems, answers=used)
    else:
        used = {k: v for k, v in answers.items() if isinstance(v, bool | int | str | date)}

    deadlines: dict[int, tuple[date | None, int | None]] = {}

    def due(cp: CompiledProcedure) -> tuple[date | None, int | None]:
        found = deadlines.get(cp.index)
        if found is None:
            rule = cp.procedure.deadline
            last = deadline_date(rule, reference, is_closed_day) if rule else None
            found = (last, (last - today).days if last else None)
            deadlines[cp.index] = found
        return found

    # household-level procedures, once each
    household_env = Env({}, used, household)
    household_out: list[Applicable] = []
    for cp in event.household:
        outcome = cp.test(household_env)
        if outcome is False:
            continue
        member_ids: list[str] = []
        member_lines: list[Text] = []
        member_unknown = False
        if cp.members is not None:
            for m, facts in zip(members, persons, strict=True):
                if not _for_whom(cp.procedure, bool(facts["is_subject"])):
                    continue
                env = Env(facts, used, household)
                v = cp.members.evaluate(env)
                if v is False:
                    continue
                member_ids.append(m.id)
                name = _display_name(m)
                if v is None:
                    member_unknown = True
                    line = _unknown_why(cp.members.unknowns(env, ev.name))
                elif cp.members_why is not None:
                    line = cp.members_why.render(env, ev.name, name)
                else:
                    line = _join(cp.members.explain(env, ev.name))
                member_lines.append(
                    Text(
                        f"{name}さん: {line.ja}",
                        f"{name}さん: {line.get('easy')}",
                        f"{name}: {line.get('en')}",
                    )
                )
            if not member_ids:
                continue
        reasons, unknown = _why(cp, household_env, ev, "")
        if unknown:
            reasons.append(_unknown_why(unknown))
        if not reasons and not member_lines:
            reasons.append(_default_why(ev))
        deadline, days_left = due(cp)
        household_out.append(
            Applicable(
                cp.procedure,
                cp.service,
                cp.department,
                tuple(member_ids),
                tuple(reasons + member_lines),
                certain=outcome is True and not member_unknown,
                deadline=deadline,
                days_left=days_left,
            )
        )

    # person-level procedures, for every member
    member_out: list[MemberProcedures] = []
    for m, facts in zip(members, persons, strict=True):
        env = Env(facts, used, household)
        found: list[Applicable] = []
        for cp in event.person_for_subjects if facts["is_subject"] else event.person_for_others:
            outcome = cp.test(env)
            if outcome is False:
                continue
            reasons, unknown = _why(cp, env, ev, _display_name(m))
            if unknown:
                reasons.append(_unknown_why(unknown))
            if not reasons:
                reasons.append(_default_why(ev))
            deadline, days_left = due(cp)
            found.append(
                Applicable(
                    cp.procedure,
                    cp.service,
                    cp.department,
                    (m.id,),
                    tuple(reasons),
                    certain=outcome is True,
                    deadline=deadline,
                    days_left=days_left,
                )
            )
        member_out.append(MemberProcedures(m, tuple(found)))

    return Result(ev, event_date, today, problems, tuple(household_out), tuple(member_out), used)
