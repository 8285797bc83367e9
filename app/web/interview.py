"""Interview mode (聞き取り): a clerk at the counter walks a resident through a life event.

/staff/interview — choose the event and the applicant (a registered resident, or typed for a
family moving in) → /staff/interview/<token> — one page: people, addresses, date and touch
questions, with the procedures worked out beside them as answers change (each change is saved
at once: a reload or the back button loses nothing) → both sign → submitted; the case then lives
on the departments' screens (/staff/cases/<token>).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from app.db import Database
from app.domain.cases import CaseMode, CaseStatus, Person, SignatureRole
from app.domain.permissions import Permission
from app.models import LifeCase, Location, Resident, StaffUser
from app.services import case_input, cases, residents
from app.services.case_signatures import SignatureError, parse_signature
from app.services.lifeevent_rules import current_rules
from app.web.case_context import case_page_context
from app.web.guards import client_ip, staff, user_of
from app.web.htmx import client_redirect, is_htmx

P = Permission.LIFE_EVENT_HANDLE


def routes() -> list[BaseRoute]:
    return [
        staff("/staff/interview", start_page, name="interview:start", permission=P),
        staff("/staff/interview", start, name="interview:start-submit", permission=P, methods=["POST"]),
        staff("/staff/interview/{token:str}", editor, name="interview:case", permission=P),
        staff("/staff/interview/{token:str}", save, name="interview:save", permission=P, methods=["POST"]),
        staff(
            "/staff/interview/{token:str}/people",
            people,
            name="interview:people",
            permission=P,
            methods=["POST"],
        ),
        staff(
            "/staff/interview/{token:str}/submit",
            submit,
            name="interview:submit",
            permission=P,
            methods=["POST"],
        ),
    ]


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    response: Response = request.app.state.templates.TemplateResponse(
        request, template, context, status_code=status
    )
    return response


def _staff_row(session: Session, request: Request) -> StaffUser:
    row = session.get(StaffUser, user_of(request).id)
    assert row is not None
    return row


def _location(session: Session, request: Request, form: FormData | None = None) -> Location:
    wanted = str(form.get("location", "")) if form is not None else ""
    location = session.get(Location, int(wanted)) if wanted.isdigit() else None
    if location is None:
        location = session.exec(select(Location).order_by(col(Location.id))).first()
    if location is None:
        raise HTTPException(status_code=409, detail="no location")
    return location


# Start -----------------------------------------------------------------------------------------


def start_page(request: Request, *, error: str = "", status: int = 200) -> Response:
    query = request.query_params.get("q", "").strip()[:100]
    with _db(request).write_session() as session:
        rules = current_rules(session)[1]
        found: list[Resident] = []
        if query:
            found = residents.search(session, user_of(request).actor(client_ip(request)), query)
            session.commit()
        drafts = session.exec(
            select(LifeCase)
            .where(LifeCase.status == CaseStatus.DRAFT, LifeCase.mode == CaseMode.INTERVIEW)
            .order_by(col(LifeCase.updated_at).desc())
            .limit(20)
        ).all()
        locations = session.exec(select(Location).order_by(col(Location.id))).all()
    events = sorted(rules.catalog.events, key=lambda e: (e.order, e.id))
    return _render(
        request,
        "staff/interview_start.html",
        {
            "events": events,
            "q": query,
            "found": found if query else None,
            "drafts": [(d, cases.case_data(d)) for d in drafts],
            "locations": locations,
            "chosen_event": request.query_params.get("event", ""),
            "error": error,
        },
        status,
    )


async def start(request: Request) -> Response:
    form = await request.form()
    event_id = str(form.get("event", ""))[:64]
    resident_raw = str(form.get("resident", ""))

    def _start() -> str | None:
        with _db(request).write_session() as session:
            rules = current_rules(session)[1]
            if rules.catalog.event(event_id) is None:
                return None
            staff_row = _staff_row(session, request)
            location = _location(session, request, form)
            resident = session.get(Resident, int(resident_raw)) if resident_raw.isdigit() else None
            if resident is not None:
                household = cases.household_people(session, resident)
                applicant = next(p for p in household if p.resident_id == resident.id)
                case = cases.start(
                    session,
                    event_id=event_id,
                    mode=CaseMode.INTERVIEW,
                    location=location,
                    applicant=applicant,
                    members=household,
                    staff=staff_row,
                    applicant_resident=resident,
                    old_address=cases.resident_address(resident),
                    ip=client_ip(request),
                )
            else:
                applicant = Person(key="new-1", relationship="世帯主", source="typed")
                case = cases.start(
                    session,
                    event_id=event_id,
                    mode=CaseMode.INTERVIEW,
                    location=location,
                    applicant=applicant,
                    members=[applicant],
                    staff=staff_row,
                    ip=client_ip(request),
                )
            session.commit()
            return case.token

    token = await run_in_threadpool(_start)
    if token is None:
        return await run_in_threadpool(start_page, request, error="event", status=422)
    return RedirectResponse(f"/staff/interview/{token}", status_code=303)


# The editor ------------------------------------------------------------------------------------


def _load(session: Session, token: str) -> LifeCase:
    case = cases.by_token(session, token)
    if case is None:
        raise HTTPException(status_code=404)
    return case


def editor(
    request: Request, *, problems: dict[str, str] | None = None, error: str = "", status: int = 200
) -> Response:
    token = request.path_params["token"]
    with _db(request).session() as session:  # a read: no write lock for drawing the page
        case = _load(session, token)
        if case.status is not CaseStatus.DRAFT:
            return RedirectResponse(f"/staff/cases/{token}", status_code=303)
        context = case_page_context(session, case, problems=problems)
    return _render(request, "staff/interview.html", context | {"error": error}, status)


def _revision(form: FormData) -> int | None:
    raw = str(form.get("revision", ""))
    return int(raw) if raw.isdigit() else None


async def save(request: Request) -> Response:
    """Autosave (HTMX, on every change) or the 「保存」 button: keep everything, show what follows."""
    form = await request.form()
    token = request.path_params["token"]

    def _save() -> tuple[str, dict[str, str]]:
        with _db(request).write_session() as session:
            case = _load(session, token)
            try:
                outcome = case_input.apply_form(session, case, form, revision=_revision(form))
            except cases.CaseError as error:
                session.rollback()
                return error.code, {}
            session.commit()
            return "ok", outcome.problems

    code, problems = await run_in_threadpool(_save)
    if code == "submitted":
        return (
            client_redirect(f"/staff/cases/{token}")
            if is_htmx(request)
            else RedirectResponse(f"/staff/cases/{token}", status_code=303)
        )
    if is_htmx(request):
        return await run_in_threadpool(_side, request, token, problems, code)
    return await run_in_threadpool(editor, request, problems=problems, error=code if code != "ok" else "")


def _side(request: Request, token: str, problems: dict[str, str], code: str) -> Response:
    """The autosave's answer: the procedures and problems, the questions (they may appear or
    disappear with an answer) and the new revision, swapped in without touching the typed fields."""
    with _db(request).session() as session:
        case = _load(session, token)
        context = case_page_context(session, case, problems=problems)
    response: Response = request.app.state.templates.TemplateResponse(
        request,
        "staff/interview.html",
        context | {"error": code if code != "ok" else ""},
        block_name="autosave",
    )
    return response


async def people(request: Request) -> Response:
    """Add a person (typed: a family moving in, a newborn) or remove a typed one."""
    form = await request.form()
    token = request.path_params["token"]
    action = str(form.get("action", ""))

    def _change() -> str:
        with _db(request).write_session() as session:
            case = _load(session, token)
            try:
                case_input.apply_form(session, case, form, revision=_revision(form))
                if action == "add":
                    case_input.add_person(session, case, revision=case.revision)
                elif action.startswith("remove:"):
                    case_input.remove_person(
                        session, case, action.removeprefix("remove:"), revision=case.revision
                    )
            except cases.CaseError as error:
                session.rollback()
                return error.code
            session.commit()
            return "ok"

    code = await run_in_threadpool(_change)
    if code != "ok":
        return await run_in_threadpool(editor, request, error=code, status=409)
    return RedirectResponse(f"/staff/interview/{token}#people", status_code=303)


async def submit(request: Request) -> Response:
    form = await request.form()
    token = request.path_params["token"]

    def _submit() -> tuple[str, dict[str, str]]:
        with _db(request).write_session() as session:
            case = _load(session, token)
            staff_row = _staff_row(session, request)
            try:
                outcome = case_input.apply_form(session, case, form, revision=_revision(form))
                problems = case_input.field_problems(case) | outcome.problems
                if problems:
                    session.commit()  # keep what was typed
                    return "fields", problems
                signatures = []
                errors: dict[str, str] = {}
                for role in (SignatureRole.RESIDENT, SignatureRole.CLERK):
                    try:
                        signatures.append(parse_signature(str(form.get(f"signature.{role.value}", "")), role))
                    except SignatureError as error:
                        errors[f"signature.{role.value}"] = error.message_ja
                if errors:
                    session.commit()
                    return "signature", errors
                if form.get("confirmed") != "on":
                    session.commit()
                    return "confirm", {
                        "confirmed": "本人確認と内容の確認をしてから、確認欄にチェックしてください。"
                    }
                cases.submit(
                    session,
                    case,
                    revision=case.revision,
                    signatures=signatures,
                    staff=staff_row,
                    ip=client_ip(request),
                )
            except cases.CaseError as error:
                session.rollback()
                return error.code, {"submit": error.message_ja}
            session.commit()
            return "ok", {}

    code, problems = await run_in_threadpool(_submit)
    if code == "ok":
        return RedirectResponse(f"/staff/cases/{token}?submitted=1", status_code=303)
    return await run_in_threadpool(editor, request, problems=problems, error=code, status=422)
