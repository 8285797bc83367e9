"""The life-event rules as data staff edit (管理 → 手続きルール), and the read-only catalogue.

- `/admin/rules`: the version in force, its documents with counts, and the procedures as a
  table (filter by event and department);
- `/admin/rules/documents/<name>`: one YAML document in a textarea. One form, three buttons:
  「検査」 checks without saving, 「試算」 evaluates a made-up household with the text as typed
  (unsaved), 「保存」 saves a new version. Whatever goes wrong, the page comes back with the text
  as typed. The form carries the version it was based on, so a colleague's save in between
  is not silently overwritten;
- `/admin/rules/history` and `/admin/rules/versions/<n>`: versions, the differences a version
  made, and 「この版に戻す」 (a new version copying an old one);
- `/staff/procedures`: the procedure table for every clerk who handles life events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from app import i18n
from app.db import Database
from app.domain.hours import JST
from app.domain.lifeevents import RuleSet, Text, coerce_answer, evaluate
from app.domain.lifeevents.engine import Result
from app.domain.lifeevents.loader import SECTIONS, parse_yaml
from app.domain.lifeevents.model import Question, SubjectDefault
from app.domain.lifeevents.samples import SampleHousehold, sample_households
from app.domain.permissions import Permission
from app.services import lifeevent_rules as rules_service
from app.services.lifeevent_rules import RuleProblem, RulesConflict, RulesError
from app.web.guards import client_ip, staff, user_of


def routes() -> list[BaseRoute]:
    manage = Permission.RULES_MANAGE
    return [
        staff("/admin/rules", overview, name="admin:rules", permission=manage),
        staff("/admin/rules/documents/{name:str}", document, name="admin:rules-document", permission=manage),
        staff(
            "/admin/rules/documents/{name:str}",
            document_post,
            name="admin:rules-document-post",
            permission=manage,
            methods=["POST"],
        ),
        staff("/admin/rules/history", history, name="admin:rules-history", permission=manage),
        staff("/admin/rules/versions/{version:int}", version, name="admin:rules-version", permission=manage),
        staff(
            "/admin/rules/versions/{version:int}/rollback",
            rollback,
            name="admin:rules-rollback",
            permission=manage,
            methods=["POST"],
        ),
        staff(
            "/staff/procedures",
            procedures,
            name="staff:procedures",
            permission=Permission.LIFE_EVENT_HANDLE,
        ),
    ]


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _render(request: Request, template: str, context: Mapping[str, Any], status_code: int = 200) -> Response:
    response: Response = request.app.state.templates.TemplateResponse(
        request, template, dict(context), status_code=status_code
    )
    return response


def _t(text: Text | None) -> str:
    """A catalogue text in the page's language (やさしい日本語 pages read the ja text)."""
    if text is None:
        return ""
    return text.get("en") if i18n.current_language() == "en" else text.ja


def _today() -> date:
    return datetime.now(JST).date()


# -- the procedure table --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcedureRow:
    id: str
    title: str
    department_id: str
    department: str
    service: str
    core_system: bool
    level: str
    events: tuple[str, ...]
    forms: tuple[str, ...]
    deadline: str
    conditions: tuple[str, ...]
    why: tuple[str, ...]
    optional: bool
    verify: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TableContext:
    rows: tuple[ProcedureRow, ...]
    total: int
    events: tuple[tuple[str, str], ...]  # (id, name)
    departments: tuple[tuple[str, str], ...]
    event: str  # the filter's values, "" for all
    department: str


def procedure_table(rules: RuleSet, event: str = "", department: str = "") -> TableContext:
    catalog = rules.catalog
    event_names = {e.id: _t(e.name) for e in sorted(catalog.events, key=lambda e: (e.order, e.id))}
    departments = sorted(catalog.departments, key=lambda d: (d.order, d.id))
    order = {d.id: i for i, d in enumerate(departments)}
    rows: list[tuple[int, int, ProcedureRow]] = []
    for index, procedure in enumerate(catalog.procedures):
        dept = catalog.department_of(procedure)
        service = catalog.service(procedure.service)
        if dept is None or service is None:
            continue
        conditions = [c.when for c in procedure.conditions]
        if procedure.members:
            conditions.append(f"members: {procedure.members}")
        why = [_t(c.why) for c in procedure.conditions if c.why is not None]
        if procedure.members_why is not None:
            why.append(_t(procedure.members_why))
        forms = [_t(f.name) if (f := catalog.form(form_id)) else form_id for form_id in procedure.forms]
        rows.append(
            (
                order.get(dept.id, len(order)),
                index,
                ProcedureRow(
                    id=procedure.id,
                    title=_t(procedure.title),
                    department_id=dept.id,
                    department=_t(dept.name),
                    service=_t(service.name),
                    core_system=service.core_system,
                    level=procedure.level.value,
                    events=tuple(event_names.get(e, e) for e in procedure.events),
                    forms=tuple(forms),
                    deadline=_t(procedure.deadline.label) if procedure.deadline else "",
                    conditions=tuple(conditions),
                    why=tuple(why),
                    optional=procedure.optional,
                    verify=procedure.verify,
                ),
            )
        )
    event_ids = {p.id: p.events for p in catalog.procedures}
    chosen = [
        row
        for _, _, row in sorted(rows, key=lambda r: (r[0], r[1]))
        if (not event or event in event_ids.get(row.id, ()))
        and (not department or row.department_id == department)
    ]
    return TableContext(
        rows=tuple(chosen),
        total=len(rows),
        events=tuple(event_names.items()),
        departments=tuple((d.id, _t(d.name)) for d in departments),
        event=event if event in event_names else "",
        department=department if department in order else "",
    )


def _filters(request: Request) -> tuple[str, str]:
    return request.query_params.get("event", "")[:64], request.query_params.get("department", "")[:64]


def procedures(request: Request) -> Response:
    """The read-only catalogue for clerks (LIFE_EVENT_HANDLE)."""
    with _db(request).session() as session:
        version_number, rules = rules_service.current_rules(session)
    return _render(
        request,
        "staff/procedures.html",
        {"version": version_number, "table": procedure_table(rules, *_filters(request))},
    )


# -- overview -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DocumentSummary:
    name: str
    lines: int
    counts: dict[str, int]  # section → items (departments, services, forms, events, procedures)


def _summaries(documents: Mapping[str, str]) -> list[DocumentSummary]:
    out: list[DocumentSummary] = []
    for name, text in sorted(documents.items()):
        counts: dict[str, int] = {}
        try:
            data = parse_yaml(text, name)
        except ValueError:
            data = None
        if isinstance(data, Mapping):
            for section in SECTIONS:
                items = data.get(section)
                if isinstance(items, list) and items:
                    counts[section] = len(items)
        out.append(DocumentSummary(name, text.count("\n") + 1, counts))
    return out


def section_labels() -> dict[str, str]:
    return {
        "departments": i18n.gettext("departments"),
        "services": i18n.gettext("services"),
        "forms": i18n.gettext("forms"),
        "events": i18n.gettext("life events"),
        "procedures": i18n.gettext("procedures"),
    }


def overview(request: Request) -> Response:
    with _db(request).session() as session:
        version_number, rules = rules_service.current_rules(session)
        _, documents = rules_service.current_documents(session)
        info = rules_service.version_info(session, version_number) if version_number else None
    return _render(
        request,
        "admin/rules.html",
        {
            "version": version_number,
            "info": info,
            "documents": _summaries(documents),
            "sections": section_labels(),
            "table": procedure_table(rules, *_filters(request)),
        },
    )


# -- editing one document -------------------------------------------------------------------------


@dataclass
class DryRun:
    """The 試算 panel: choices, and the result when it was run."""

    events: tuple[tuple[str, str], ...] = ()
    households: tuple[SampleHousehold, ...] = ()
    event: str = ""
    household: str = "family"
    event_date: str = ""
    subjects: tuple[str, ...] = ()
    questions: tuple[Question, ...] = ()
    answers: dict[str, str] = field(default_factory=dict)
    members: dict[str, str] = field(default_factory=dict)  # member id → display name
    result: Result | None = None
    problem: str = ""  # why the dry run could not run


@dataclass
class EditorForm:
    text: str
    comment: str = ""
    base_version: int | None = None
    dry: DryRun = field(default_factory=DryRun)


def _posted_text(form: FormData, name: str, limit: int) -> str:
    value = form.get(name, "")
    return value[:limit] if isinstance(value, str) else ""


def _base_version(raw: str) -> int | None:
    return int(raw) if raw.strip().isdigit() else None


def _dry_run(rules: RuleSet, posted: Mapping[str, str], run: bool, *, broken: bool = False) -> DryRun:
    """The panel's state. `rules`: the edited text compiled, or (`broken`) the rules in force,
    which then only supply the choices."""
    today = _today()
    households = sample_households(today)
    dry = DryRun(households=households)
    if broken:
        dry.problem = i18n.gettext("The text has problems, so the dry run cannot use it. Fix them first.")
        run = False
    catalog = rules.catalog
    events = sorted(catalog.events, key=lambda e: (e.order, e.id))
    dry.events = tuple((e.id, _t(e.name)) for e in events)
    dry.event = posted.get("dry_event", "") if posted.get("dry_event", "") in rules.events else ""
    if not dry.event and events:
        dry.event = events[0].id
    keys = {h.key: h for h in households}
    dry.household = posted.get("dry_household", "") if posted.get("dry_household", "") in keys else "family"
    household = keys[dry.household]
    dry.members = {m.id: f"{m.name}（{m.relationship}）" for m in household.members}
    dry.event_date = posted.get("dry_date", "") or today.isoformat()
    if not dry.event:
        return dry
    compiled = rules.event(dry.event)
    dry.questions = compiled.event.questions
    dry.answers = {q.id: posted.get(f"answer_{q.id}", "") for q in dry.questions}
    chosen = [s for s in posted.get("dry_subjects", "").split(",") if s in dry.members]
    if not run or not chosen:
        default = compiled.event.subjects.default
        if default is SubjectDefault.ALL:
            chosen = list(dry.members)
        elif default is SubjectDefault.APPLICANT:
            chosen = [household.members[0].id]
        elif not chosen:
            chosen = [household.members[-1].id]
    dry.subjects = tuple(chosen)
    if not run:
        return dry
    try:
        event_date = date.fromisoformat(dry.event_date)
    except ValueError:
        dry.problem = i18n.gettext("Enter the date as YYYY-MM-DD.")
        return dry
    answers: dict[str, object] = {}
    for question in dry.questions:
        value, _ = coerce_answer(question, dry.answers[question.id])
        if value is not None:
            answers[question.id] = value
    dry.result = evaluate(
        compiled,
        answers,
        household.members,
        household.members[0].id,
        event_date,
        today,
        subject_ids=dry.subjects,
        check=False,  # unanswered questions stay unknown: those procedures show as 要確認
    )
    return dry


def _editor(
    request: Request,
    name: str,
    form: EditorForm,
    *,
    problems: Sequence[RuleProblem] = (),
    checked: bool = False,
    conflict: bool = False,
    status_code: int = 200,
) -> Response:
    with _db(request).session() as session:
        in_force, _ = rules_service.current_documents(session)
        info = rules_service.version_info(session, in_force) if in_force else None
    saved = request.query_params.get("saved", "")
    return _render(
        request,
        "admin/rules_document.html",
        {
            "name": name,
            "form": form,
            "in_force": in_force,
            "info": info,
            "problems": problems,
            "checked": checked,
            "conflict": conflict,
            "saved": int(saved) if saved.isdigit() else None,
            "max_comment": rules_service.MAX_COMMENT,
        },
        status_code=status_code,
    )


def document(request: Request) -> Response:
    name = str(request.path_params["name"])
    with _db(request).session() as session:
        version_number, documents = rules_service.current_documents(session)
        _, rules = rules_service.current_rules(session)
    if name not in documents:
        raise HTTPException(status_code=404)
    form = EditorForm(documents[name], base_version=version_number, dry=_dry_run(rules, {}, run=False))
    return _editor(request, name, form)


def _changed_by_others(base: Mapping[str, str] | None, now: Mapping[str, str]) -> list[str]:
    if base is None:
        return sorted(now)
    return sorted(n for n in set(base) | set(now) if base.get(n) != now.get(n))


async def document_post(request: Request) -> Response:
    name = str(request.path_params["name"])
    posted = await request.form()
    # Browsers send textarea lines with CRLF; the stored documents use LF.
    text = _posted_text(posted, "text", rules_service.MAX_DOCUMENT_CHARS + 1).replace("\r\n", "\n")
    form = EditorForm(
        text=text,
        comment=_posted_text(posted, "comment", rules_service.MAX_COMMENT + 100),
        base_version=_base_version(_posted_text(posted, "base_version", 16)),
    )
    action = _posted_text(posted, "action", 16)
    fields = {
        key: _posted_text(posted, key, 200)
        for key in posted
        if key.startswith(("dry_", "answer_")) and key != "dry_subjects"
    }
    fields["dry_subjects"] = ",".join(str(v)[:16] for v in posted.getlist("dry_subjects"))
    actor = user_of(request).actor(client_ip(request))
    db = _db(request)

    def _work() -> Response:
        with db.session() as session:
            _, documents = rules_service.current_documents(session)
            _, in_force = rules_service.current_rules(session)
        if name not in documents:
            raise HTTPException(status_code=404)
        edited = {**documents, name: text}
        if action == "save":
            with db.write_session() as session:
                try:
                    saved = rules_service.save_version(
                        session, actor, edited, form.comment, base_version=form.base_version
                    )
                except RulesConflict as error:
                    session.rollback()
                    return _conflict(session, error, in_force)
                except RulesError as error:
                    session.rollback()
                    form.dry = _dry_run(in_force, fields, run=False)
                    return _editor(request, name, form, problems=error.problems, status_code=422)
                session.commit()
            url = request.url_for("admin:rules-document", name=name)
            return RedirectResponse(f"{url}?saved={saved}", status_code=303)
        try:
            rules = rules_service.check_documents(edited)
        except RulesError as error:
            form.dry = _dry_run(in_force, fields, run=False, broken=True)
            return _editor(request, name, form, problems=error.problems, status_code=422)
        form.dry = _dry_run(rules, fields, run=action == "dryrun")
        return _editor(request, name, form, checked=action == "check")

    def _conflict(session: Any, error: RulesConflict, rules: RuleSet) -> Response:
        in_force, now = rules_service.current_documents(session)
        base = (
            rules_service.version_documents(session, form.base_version)
            if form.base_version is not None
            else rules_service.seed_documents()
        )
        others = _changed_by_others(base, now)
        message = i18n.gettext("Files the other save changed: %(files)s.") % {"files": ", ".join(others)}
        if name in others:
            message += " " + i18n.gettext(
                "It changed this file too: pressing Save again replaces their change with your text. "
                "Compare first in the history."
            )
        else:
            message += " " + i18n.gettext(
                "This file was not among them: pressing Save again keeps their change."
            )
        problems = [*error.problems, RuleProblem("", None, "catalog", "", "", message)]
        form.base_version = in_force  # a second 保存 is a knowing decision
        form.dry = _dry_run(rules, fields, run=False)
        return _editor(request, name, form, problems=problems, conflict=True, status_code=409)

    return await run_in_threadpool(_work)


# -- history --------------------------------------------------------------------------------------


def history(request: Request) -> Response:
    with _db(request).session() as session:
        versions = rules_service.history(session)
    in_force = versions[0].version if versions else None
    return _render(request, "admin/rules_history.html", {"versions": versions, "in_force": in_force})


def _version_page(
    request: Request, number: int, *, problems: Sequence[RuleProblem] = (), status_code: int = 200
) -> Response:
    with _db(request).session() as session:
        info = rules_service.version_info(session, number)
        if info is None:
            raise HTTPException(status_code=404)
        diff = rules_service.version_diff(session, number) or []
        in_force = rules_service.current_version(session)
        documents = rules_service.version_documents(session, number) or {}
    return _render(
        request,
        "admin/rules_version.html",
        {
            "info": info,
            "diff": diff,
            "in_force": in_force,
            "files": sorted(documents),
            "problems": problems,
            "max_comment": rules_service.MAX_COMMENT,
        },
        status_code=status_code,
    )


def version(request: Request) -> Response:
    return _version_page(request, int(request.path_params["version"]))


async def rollback(request: Request) -> Response:
    number = int(request.path_params["version"])
    posted = await request.form()
    comment = _posted_text(posted, "comment", rules_service.MAX_COMMENT + 100)
    base_version = _base_version(_posted_text(posted, "base_version", 16))
    actor = user_of(request).actor(client_ip(request))
    db = _db(request)

    def _work() -> Response:
        with db.write_session() as session:
            if rules_service.version_info(session, number) is None:
                raise HTTPException(status_code=404)
            try:
                saved = rules_service.rollback(session, actor, number, comment, base_version=base_version)
            except RulesError as error:
                session.rollback()
                status = 409 if isinstance(error, RulesConflict) else 422
                return _version_page(request, number, problems=error.problems, status_code=status)
            session.commit()
        return RedirectResponse(f"{request.url_for('admin:rules-history')}?restored={saved}", status_code=303)

    return await run_in_threadpool(_work)
