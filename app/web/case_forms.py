"""The forms of a case on the staff screens: preview as PDF, print on the office printer."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from app.db import Database
from app.domain.cases import CaseStatus
from app.domain.permissions import Permission
from app.models import Device
from app.printing.pdf import PdfLayoutError
from app.services import case_forms, cases
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


def preview(request: Request) -> Response:
    token = request.path_params["token"]
    wanted = request.query_params.getlist("form")
    base = request.app.state.settings.base_url
    with _db(request).session() as session:
        case = cases.by_token(session, token)
        if case is None or case.status is CaseStatus.DRAFT:
            return _problem(request, "この届出は見つかりません。", 404)
        try:
            rendered = case_forms.render(
                session,
                case,
                case_forms.chosen_forms(cases.case_data(case), wanted),
                base_url=base,
                processes=request.app.state.settings.form_processes,
            )
        except (FormsError, ValueError, PdfLayoutError) as error:
            return _problem(request, str(error), 422)
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
    base = request.app.state.settings.base_url

    def _print() -> str:
        with _db(request).session() as session:
            case = cases.by_token(session, token)
            if case is None or case.status is CaseStatus.DRAFT:
                return "この届出は見つかりません。"
            try:
                rendered = case_forms.render(
                    session,
                    case,
                    case_forms.chosen_forms(cases.case_data(case), wanted),
                    base_url=base,
                    processes=request.app.state.settings.form_processes,
                )
            except (FormsError, ValueError, PdfLayoutError) as error:
                return str(error)
        with _db(request).write_session() as session:
            device = None
            if device_code:
                from sqlmodel import select

                device = session.exec(select(Device).where(Device.code == device_code)).first()
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
                return str(error)
            session.commit()
        return ""

    error = await run_in_threadpool(_print)
    if error:
        return _problem(request, error, 422)
    return RedirectResponse(f"/staff/cases/{token}?printed=1#case-forms", status_code=303)
