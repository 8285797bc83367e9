"""The forms of a case on the staff screens: preview as PDF, print on the office printer."""

from __future__ import annotations

from sqlmodel import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from app.db import Database
from app.domain.permissions import Permission
from app.models import Device, LifeCase
from app.printing.forms import RenderedForms
from app.printing.pdf import PdfLayoutError
from app.services import case_forms
from app.services.case_forms import FormsError
from app.web.guards import client_ip, staff, user_of

NEED = Permission.LIFE_EVENT_HANDLE


def routes() -> list[BaseRoute]:
    return [
        staff("/staff/cases/{token:str}/forms.pdf", preview, name="staff:case-forms-pdf", permission=NEED),
        staff(
            "/staff/cases/{token:str}/forms/print",
            print_forms,
            name="staff:case-forms-print",
            permission=NEED,
            methods=["POST"],
        ),
    ]


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _problem(request: Request, message: str, status: int) -> Response:
    response: Response = request.app.state.templates.TemplateResponse(
        request, "staff/export_problem.html", {"messages": [message]}, status_code=status
    )
    return response


def _render(request: Request, token: str, wanted: list[str]) -> tuple[LifeCase, RenderedForms] | Response:
    """Load the case in a short read, then render with no database session held."""
    with _db(request).session() as session:
        found = case_forms.load(session, token)
    if found is None:
        return _problem(request, "この届出は見つかりません。", 404)
    try:
        rendered = case_forms.render(
            found,
            case_forms.chosen_forms(wanted),
            base_url=request.app.state.settings.base_url,
            processes=request.app.state.settings.form_processes,
        )
    except (ValueError, PdfLayoutError) as error:  # FormsError is a ValueError
        return _problem(request, str(error), 422)
    return found.case, rendered


def preview(request: Request) -> Response:
    outcome = _render(request, request.path_params["token"], request.query_params.getlist("form"))
    if isinstance(outcome, Response):
        return outcome
    case, rendered = outcome
    with _db(request).write_session() as session:
        case_forms.record_preview(session, user_of(request).actor(client_ip(request)), case, rendered)
        session.commit()
    return Response(
        rendered.pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="forms-{case.id}.pdf"',
            "Cache-Control": "no-store",
        },
    )


async def print_forms(request: Request) -> Response:
    form = await request.form()
    token = request.path_params["token"]
    wanted = [str(v)[:64] for v in form.getlist("form")][:40]
    device_code = str(form.get("device", ""))[:16]

    def _print() -> Response | None:
        outcome = _render(request, token, wanted)
        if isinstance(outcome, Response):
            return outcome
        case, rendered = outcome
        with _db(request).write_session() as session:
            device = (
                session.exec(select(Device).where(Device.code == device_code)).first()
                if device_code
                else None
            )
            try:
                case_forms.queue_print(
                    session,
                    user_of(request).actor(client_ip(request)),
                    case,
                    rendered,
                    store=request.app.state.objects,
                    device=device,
                )
            except FormsError as error:
                session.rollback()
                return _problem(request, str(error), 422)
            session.commit()
        return None

    problem = await run_in_threadpool(_print)
    if problem is not None:
        return problem
    return RedirectResponse(f"/staff/cases/{token}?printed=1#case-forms", status_code=303)
