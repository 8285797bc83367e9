"""The staff's live certificate queue: new requests chime and flash; staff print, hand over, cancel."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.db import Database
from app.domain.requests import RequestState
from app.models import CertificateRequest, Location, Resident
from app.services import certificates as certificate_service
from app.services.certificates import RequestError, reception_label, today_jst
from app.web.guards import client_ip, user_of
from app.web.htmx import is_htmx

ACTIONS = {
    "print": RequestState.PRINTED,
    "handover": RequestState.HANDED_OVER,
    "cancel": RequestState.CANCELLED,
}


def _rows(db: Database) -> list[dict[str, Any]]:
    with db.session() as session:
        requests = session.exec(
            select(CertificateRequest)
            .where(CertificateRequest.reception_date == today_jst())
            .order_by(col(CertificateRequest.id).desc())
            .limit(300)
        ).all()
        applicant_ids = {r.applicant_id for r in requests}
        residents = {
            r.id: r for r in session.exec(select(Resident).where(col(Resident.id).in_(applicant_ids))).all()
        }
        locations = {loc.id: loc.name for loc in session.exec(select(Location)).all()}
    return [
        {
            "request": r,
            "number": reception_label(r.reception_number),
            "applicant": residents.get(r.applicant_id),
            "location": locations.get(r.location_id, ""),
        }
        for r in requests
    ]


def queue(request: Request) -> Response:
    rows = _rows(request.app.state.db)
    waiting = sum(
        1
        for row in rows
        if row["request"].state in (RequestState.RECEIVED, RequestState.AWAITING_CONFIRMATION)
    )
    response: Response = request.app.state.templates.TemplateResponse(
        request,
        "staff/queue.html",
        {"rows": rows, "waiting": waiting, "error": ""},
        block_name="table" if is_htmx(request) else None,
    )
    return response


async def act(request: Request) -> Response:
    action = request.path_params["action"]
    if action not in ACTIONS:
        raise HTTPException(status_code=404)
    request_id = int(request.path_params["request_id"])
    form = await request.form()
    reason = str(form.get("reason", ""))[:255]
    user = user_of(request)
    actor = user.actor(client_ip(request))
    db: Database = request.app.state.db

    def _act() -> str:
        with db.write_session() as session:
            try:
                if action == "print":  # checked now, printed after the commit (screens hear of it)
                    certificate_service.request_print(session, actor, request_id, staff_id=user.id)
                else:
                    certificate_service.move(
                        session, actor, request_id, ACTIONS[action], reason=reason, staff_id=user.id
                    )
            except RequestError as error:
                session.rollback()
                return str(error)
            session.commit()
            return ""

    error = await run_in_threadpool(_act)
    if error:
        response: Response = request.app.state.templates.TemplateResponse(
            request,
            "staff/queue.html",
            {"rows": _rows(db), "waiting": 0, "error": error},
            status_code=422,
            block_name="table" if is_htmx(request) else None,
        )
        return response
    if is_htmx(request):
        return await run_in_threadpool(queue, request)
    return RedirectResponse(request.url_for("staff:queue"), status_code=303)
