"""Administration: staff accounts and the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlmodel import Session, col, func, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.models import AuditEntry, StaffGroup
from app.services import audit, staff as staff_service
from app.services.case_desk import departments
from app.services.lifeevent_rules import current_rules
from app.services.staff import StaffError
from app.web.guards import client_ip, user_of
from app.web.htmx import is_htmx
from app.web.templating import JST

AUDIT_PAGE_SIZE = 100


def home(request: Request) -> Response:
    response: Response = request.app.state.templates.TemplateResponse(request, "admin/home.html", {})
    return response


def _groups(session: Session) -> list[StaffGroup]:
    staff_service.ensure_default_groups(session)
    return list(session.exec(select(StaffGroup).order_by(col(StaffGroup.id))).all())


def _departments(session: Session) -> list[tuple[str, str]]:
    """(id, name) of the departments staff can belong to (the life-event rules' departments)."""
    return [(d.id, d.name.ja) for d in departments(current_rules(session)[1])]


def users(request: Request) -> Response:
    with request.app.state.db.session() as session:
        rows = staff_service.list_users(session)
        groups = _groups(session)
        choices = _departments(session)
    response: Response = request.app.state.templates.TemplateResponse(
        request,
        "admin/users.html",
        {"rows": rows, "groups": groups, "error": "", "form": {}, "departments": choices},
    )
    return response


def _form_groups(form: FormData) -> list[str]:
    return [str(value) for value in form.getlist("groups")]


async def user_create(request: Request) -> Response:
    form = await request.form()
    actor = user_of(request).actor(client_ip(request))

    def _create() -> str:
        with request.app.state.db.write_session() as session:
            try:
                staff_service.create_user(
                    session,
                    login_id=str(form.get("login_id", ""))[:64],
                    display_name=str(form.get("display_name", ""))[:64],
                    department=str(form.get("department", ""))[:64],
                    password=str(form.get("password", "")),
                    groups=_form_groups(form),
                    actor=actor,
                )
            except StaffError as error:
                session.rollback()
                return str(error)
            session.commit()
            return ""

    error = await run_in_threadpool(_create)
    if not error:
        return RedirectResponse(request.url_for("admin:users"), status_code=303)

    def _page() -> Response:
        with request.app.state.db.session() as session:
            rows = staff_service.list_users(session)
            groups = _groups(session)
            choices = _departments(session)
        kept = {key: str(form.get(key, "")) for key in ("login_id", "display_name", "department")}
        kept_groups = _form_groups(form)
        response: Response = request.app.state.templates.TemplateResponse(
            request,
            "admin/users.html",
            {
                "rows": rows,
                "groups": groups,
                "error": error,
                "form": kept,
                "form_groups": kept_groups,
                "departments": choices,
            },
            status_code=422,
        )
        return response

    return await run_in_threadpool(_page)


async def user_update(request: Request) -> Response:
    user_id = int(request.path_params["user_id"])
    form = await request.form()
    actor = user_of(request).actor(client_ip(request))

    def _update() -> str:
        with request.app.state.db.write_session() as session:
            try:
                staff_service.update_user(
                    session,
                    actor,
                    user_id,
                    groups=_form_groups(form),
                    active=form.get("active") == "on",
                    unlock=form.get("unlock") == "on",
                    new_password=str(form.get("new_password", "")),
                    department=str(form["department"])[:64] if "department" in form else None,
                )
            except StaffError as error:
                session.rollback()
                return str(error)
            session.commit()
            return ""

    error = await run_in_threadpool(_update)
    if error:
        response: Response = request.app.state.templates.TemplateResponse(
            request, "errors/400.html", {"message": error}, status_code=422
        )
        return response
    return RedirectResponse(request.url_for("admin:users"), status_code=303)


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""
    action: str = ""
    target: str = ""
    date_from: date | None = None
    date_to: date | None = None
    page: int = 1


def _parse_date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def audit_log(request: Request) -> Response:
    params = request.query_params
    try:
        page = max(1, int(params.get("page", "1")))
    except ValueError:
        page = 1
    filters = AuditFilters(
        actor=params.get("actor", "").strip()[:64],
        action=params.get("action", "").strip()[:64],
        target=params.get("target", "").strip()[:64],
        date_from=_parse_date(params.get("from")),
        date_to=_parse_date(params.get("to")),
        page=page,
    )
    statement = select(AuditEntry)
    if filters.actor:
        statement = statement.where(
            col(AuditEntry.actor_name).contains(filters.actor, autoescape=True)
            | (AuditEntry.actor_id == filters.actor)
        )
    if filters.action:
        statement = statement.where(col(AuditEntry.action).startswith(filters.action, autoescape=True))
    if filters.target:
        statement = statement.where(AuditEntry.target_id == filters.target)
    if filters.date_from:
        start = datetime.combine(filters.date_from, time.min, tzinfo=JST)
        statement = statement.where(col(AuditEntry.at) >= start)
    if filters.date_to:
        end = datetime.combine(filters.date_to + timedelta(days=1), time.min, tzinfo=JST)
        statement = statement.where(col(AuditEntry.at) < end)
    with request.app.state.db.write_session() as session:
        total = session.exec(select(func.count()).select_from(statement.subquery())).one()
        entries = session.exec(
            statement.order_by(col(AuditEntry.seq).desc())
            .offset((filters.page - 1) * AUDIT_PAGE_SIZE)
            .limit(AUDIT_PAGE_SIZE)
        ).all()
        # Reading the audit log is itself audited: it shows who looked at whom.
        audit.record(
            session,
            user_of(request).actor(client_ip(request)),
            "audit.search",
            detail={k: str(v) for k, v in filters.__dict__.items() if v},
        )
        session.commit()
    pages = max(1, (total + AUDIT_PAGE_SIZE - 1) // AUDIT_PAGE_SIZE)
    response: Response = request.app.state.templates.TemplateResponse(
        request,
        "admin/audit.html",
        {"entries": entries, "filters": filters, "total": total, "pages": pages},
        block_name="results" if is_htmx(request) else None,
    )
    return response
