"""The departments' screens for life-event cases: each department's list, the floor overview,
one case's detail with its check-offs, and the hand-over QR reader.

The department a screen works for comes from `?d=` (remembered in a cookie), else the cookie,
else the staff account's department, else the first department of the rules. Screens follow the
"staff" event stream (case.submitted, case.progress) and re-render from the database, so several
screens stay in step (static/js/cases.js).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from app import i18n
from app.db import Database
from app.domain.cases import CaseStatus, ProcedureStatus
from app.domain.lifeevents.model import Department
from app.domain.permissions import Permission
from app.domain.wareki import format_wareki
from app.models import Location, StaffUser
from app.printing.forms import PRINTABLE_FORMS
from app.services import case_desk, cases as case_service
from app.services.case_desk import CaseTab
from app.services.cases import CaseError
from app.services.certificates import office_device_for, today_jst
from app.services.lifeevent_rules import current_rules
from app.services.locations import back_office_devices
from app.web.guards import client_ip, staff, user_of
from app.web.htmx import client_redirect, is_htmx

DEPARTMENT_COOKIE: Final = "madoguchi_department"
DEPARTMENT_COOKIE_DAYS: Final = 400
STREAM: Final = "/events/stream"
STATUS_VALUES: Final = {s.value: s for s in ProcedureStatus}


def routes() -> list[BaseRoute]:
    need = Permission.LIFE_EVENT_HANDLE
    return [
        staff("/staff/cases", case_list, name="staff:cases", permission=need),
        staff("/staff/cases/floor", floor, name="staff:cases-floor", permission=need),
        staff("/staff/cases/scan", scan_page, name="staff:cases-scan", permission=need),
        staff("/staff/cases/{token:str}", case_page, name="staff:case", permission=need),
        staff(
            "/staff/cases/{token:str}/procedures/{position:int}",
            case_procedure,
            name="staff:case-procedure",
            permission=need,
            methods=["POST"],
        ),
        staff(
            "/staff/cases/{token:str}/cancel",
            case_cancel,
            name="staff:case-cancel",
            permission=need,
            methods=["POST"],
        ),
        # The URL printed in the guidance sheet's QR code (signed-out users sign in first).
        staff("/cases/scan/{token:str}", scan_redirect, name="cases:scan", permission=need),
    ]


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _render(request: Request, template: str, context: dict[str, Any], **kwargs: Any) -> Response:
    response: Response = request.app.state.templates.TemplateResponse(request, template, context, **kwargs)
    return response


@dataclass(frozen=True)
class Selection:
    department: Department | None
    choices: tuple[Department, ...]
    remember: bool  # `?d=` named a department: keep it in the cookie

    @property
    def id(self) -> str:
        return self.department.id if self.department else ""


def _select(request: Request, choices: tuple[Department, ...], wanted: str | None = None) -> Selection:
    asked = wanted if wanted is not None else request.query_params.get("d")
    chosen = case_desk.resolve_department(
        choices, asked, request.cookies.get(DEPARTMENT_COOKIE), user_of(request).department
    )
    remember = bool(asked) and chosen is not None and asked in (chosen.id, chosen.name.ja)
    return Selection(chosen, choices, remember)


def _remember(request: Request, response: Response, selection: Selection) -> Response:
    if selection.remember and selection.department is not None:
        response.set_cookie(
            DEPARTMENT_COOKIE,
            selection.department.id,
            max_age=DEPARTMENT_COOKIE_DAYS * 86400,
            httponly=True,
            samesite="lax",
            secure=request.app.state.settings.cookie_secure,
            path="/",
        )
    return response


def _labels() -> dict[str, dict[str, str]]:
    return {
        "procedure": {
            "pending": i18n.gettext("Waiting"),
            "done": i18n.gettext("Done"),
            "not_needed": i18n.gettext("Not needed"),
        },
        "case": {
            "draft": i18n.gettext("Being entered"),
            "submitted": i18n.gettext("In progress"),
            "done": i18n.gettext("All done"),
            "cancelled": i18n.gettext("Cancelled"),
        },
        "tab": {
            "open": i18n.gettext("Not finished"),
            "done": i18n.gettext("Finished"),
            "today": i18n.gettext("All of today"),
        },
    }


def _lang() -> str:
    return i18n.current_language()


# -- the department's list -----------------------------------------------------------------------
def case_list(request: Request) -> Response:
    try:
        tab = CaseTab(request.query_params.get("tab", CaseTab.OPEN.value))
    except ValueError:
        tab = CaseTab.OPEN
    today = today_jst()
    user = user_of(request)
    with _db(request).write_session() as session:
        rules = current_rules(session)[1]
        selection = _select(request, case_desk.departments(rules))
        shown = case_desk.department_cases(session, selection.id, tab, today=today) if selection.id else []
        case_desk.record_list_view(session, user.actor(client_ip(request)), selection.id, tab, shown)
        last_id = case_desk.last_event_id(session)
        locations = case_desk.location_names(session)
        session.commit()
    lang = _lang()
    event_names = {e.id: case_desk.text_of(e.name, lang) for e in rules.catalog.events}
    query = urlencode({"d": selection.id, "tab": tab.value})
    response = _render(
        request,
        "staff/cases.html",
        {
            "selection": selection,
            "tab": tab,
            "tabs": list(CaseTab),
            "shown": shown,
            "today": today,
            "labels": _labels(),
            "locations": locations,
            "event_names": event_names,
            "dept_name": lambda d: case_desk.text_of(d.name, lang),
            "refresh_url": f"/staff/cases?{query}",
            "stream_url": f"{STREAM}?last_event_id={last_id}",
        },
        block_name="table" if is_htmx(request) else None,
    )
    return _remember(request, response, selection)


# -- the floor overview --------------------------------------------------------------------------
def floor(request: Request) -> Response:
    today = today_jst()
    with _db(request).session() as session:
        rules = current_rules(session)[1]
        view = case_desk.floor_view(session, rules, today=today)
        last_id = case_desk.last_event_id(session)
    lang = _lang()
    return _render(
        request,
        "staff/cases_floor.html",
        {
            "view": view,
            "today": today,
            "labels": _labels(),
            "event_names": {e.id: case_desk.text_of(e.name, lang) for e in rules.catalog.events},
            "dept_name": lambda d: case_desk.text_of(d.name, lang),
            "stream_url": f"{STREAM}?last_event_id={last_id}",
        },
        block_name="floor" if is_htmx(request) else None,
    )


# -- the hand-over QR ----------------------------------------------------------------------------
def _case_url(token: str, department: str = "") -> str:
    return f"/staff/cases/{quote(token)}" + (f"?{urlencode({'d': department})}" if department else "")


def _scan_result(request: Request, typed: str, status_code: int, message: str) -> Response:
    return _render(
        request,
        "staff/cases_scan.html",
        {"typed": typed, "error": message},
        status_code=status_code,
    )


def _not_found() -> str:
    return i18n.gettext(
        "No case matches this QR code. Check that the sheet is from this office, or find the case "
        "in the list by its reception number."
    )


def _unreadable() -> str:
    return i18n.gettext("What was read is not the QR code of a guidance sheet. Please scan it again.")


def scan_page(request: Request) -> Response:
    """The scan screen; a reader (keyboard wedge) or the camera submits `?code=` here."""
    typed = request.query_params.get("code", "")[:500]
    if not typed.strip():
        return _render(request, "staff/cases_scan.html", {"typed": "", "error": ""})
    code = case_desk.read_scanned(typed)
    if code is None:
        return _scan_result(request, typed, 422, _unreadable())
    with _db(request).session() as session:
        found = case_desk.find_scanned(session, code)
    if found is None:
        return _scan_result(request, typed, 404, _not_found())
    return RedirectResponse(_case_url(found.token, code.department), status_code=303)


def scan_redirect(request: Request) -> Response:
    token = str(request.path_params["token"])
    code = case_desk.read_scanned(token)
    found = None
    if code is not None:
        with _db(request).session() as session:
            found = case_desk.find_scanned(session, code)
    if found is None:
        return _scan_result(request, token, 404, _not_found())
    return RedirectResponse(_case_url(found.token, request.query_params.get("d", "")), status_code=303)


# -- one case ------------------------------------------------------------------------------------
def _detail_context(
    request: Request, token: str, *, audit_part: str | None, error: str = ""
) -> tuple[dict[str, Any], Selection] | None:
    today = today_jst()
    lang = _lang()
    with _db(request).write_session() as session:
        case = case_service.by_token(session, token)
        if case is None or case.status is CaseStatus.DRAFT:
            return None
        rules = current_rules(session)[1]
        selection = _select(request, case_desk.departments(rules))
        detail = case_desk.case_detail(session, case, department_id=selection.id, today=today, lang=lang)
        if audit_part is not None:
            case_desk.record_case_view(
                session, user_of(request).actor(client_ip(request)), case, part=audit_part
            )
        last_id = case_desk.last_event_id(session)
        printers = [(d.code, f"{d.name or d.code}（{place}）") for d, place in back_office_devices(session)]
        location = session.get(Location, case.location_id)
        own = office_device_for(session, location) if location is not None else None
        session.commit()
    context = {
        "detail": detail,
        "selection": selection,
        "labels": _labels(),
        "error": error,
        "today": today,
        "wareki": format_wareki,
        "dept_name": lambda d: case_desk.text_of(d.name, lang),
        "stream_url": f"{STREAM}?last_event_id={last_id}",
        "refresh_url": f"/staff/cases/{quote(token)}?{urlencode({'d': selection.id})}",
        "printable_forms": PRINTABLE_FORMS,
        "printers": printers,
        "default_printer": own.code if own is not None else "",
    }
    return context, selection


def case_page(request: Request) -> Response:
    token = str(request.path_params["token"])
    part = "work" if is_htmx(request) else "page"
    found = _detail_context(request, token, audit_part=part)
    if found is None:
        return _render(request, "errors/404.html", {}, status_code=404)
    context, selection = found
    response = _render(request, "staff/case.html", context, block_name="work" if part == "work" else None)
    return _remember(request, response, selection)


def _after_action(request: Request, token: str, error: str) -> Response:
    if not error and not is_htmx(request):
        return RedirectResponse(_case_url(token), status_code=303)
    found = _detail_context(request, token, audit_part=None, error=error)
    if found is None:
        return _render(request, "errors/404.html", {}, status_code=404)
    context, _ = found
    return _render(
        request,
        "staff/case.html",
        context,
        status_code=422 if error else 200,
        block_name="work" if is_htmx(request) else None,
    )


async def case_procedure(request: Request) -> Response:
    token = str(request.path_params["token"])
    position = int(request.path_params["position"])
    form = await request.form()
    status = STATUS_VALUES.get(str(form.get("status", "")))
    note = str(form.get("note", ""))[:255]
    user = user_of(request)
    ip = client_ip(request)

    def _act() -> Response:
        error = ""
        with _db(request).write_session() as session:
            case = case_service.by_token(session, token)
            if case is None or case.status is CaseStatus.DRAFT:
                return _render(request, "errors/404.html", {}, status_code=404)
            staff_user = session.get(StaffUser, user.id)
            assert staff_user is not None
            if status is None:
                error = i18n.gettext("Choose done, not needed or undo.")
            elif case.status is CaseStatus.CANCELLED:
                error = i18n.gettext("This case was cancelled; its procedures can no longer be ticked.")
            else:
                try:
                    case_service.set_procedure_status(
                        session, case, position, status, staff=staff_user, note=note, ip=ip
                    )
                except CaseError as problem:
                    error = problem.message_en if _lang() == "en" else problem.message_ja
            if error:
                session.rollback()
            else:
                session.commit()
        return _after_action(request, token, error)

    return await run_in_threadpool(_act)


async def case_cancel(request: Request) -> Response:
    token = str(request.path_params["token"])
    form = await request.form()
    reason = str(form.get("reason", "")).strip()[:255]
    user = user_of(request)
    ip = client_ip(request)

    def _act() -> Response:
        with _db(request).write_session() as session:
            case = case_service.by_token(session, token)
            if case is None or case.status is CaseStatus.DRAFT:
                return _render(request, "errors/404.html", {}, status_code=404)
            if reason:
                staff_user = session.get(StaffUser, user.id)
                case_service.cancel(session, case, staff=staff_user, reason=reason, ip=ip)
                session.commit()
        if not reason:
            return _after_action(request, token, i18n.gettext("Enter the reason for cancelling."))
        if is_htmx(request):
            return client_redirect(_case_url(token))
        return RedirectResponse(_case_url(token), status_code=303)

    return await run_in_threadpool(_act)
