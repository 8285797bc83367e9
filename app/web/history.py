"""Certificate issue history (交付履歴): search, one request's record, reprint, CSV export.

Every look is audit-logged, since it shows who asked for which certificate:
`certificate.history_search` (filters and result count), `certificate.history_view` (one
request), `certificate.history_export` (CSV, filters and row count). A reprint is logged by
the print job as `certificate.reprint` and, with the reason typed by staff, as
`certificate.reprint_reason` (app/services/certificates.py run_print_order).
"""

from __future__ import annotations

import csv
import io
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from app.db import Database
from app.domain.certificates import CertificateType
from app.domain.permissions import Permission
from app.domain.requests import RequestState
from app.services import audit, history as history_service
from app.services.certificates import RequestError
from app.services.history import HistoryFilters
from app.web.guards import client_ip, staff, user_of
from app.web.htmx import is_htmx


def routes() -> list[BaseRoute]:
    return [
        staff(
            "/staff/history",
            history_page,
            name="staff:history",
            permission=Permission.CERTIFICATE_ISSUE,
        ),
        staff(
            "/staff/history.csv",
            history_csv,
            name="staff:history-csv",
            permission=Permission.CERTIFICATE_ISSUE,
        ),
        staff(
            "/staff/history/{request_id:int}",
            history_detail,
            name="staff:history-detail",
            permission=Permission.CERTIFICATE_ISSUE,
        ),
        staff(
            "/staff/history/{request_id:int}/reprint",
            history_reprint,
            name="staff:history-reprint",
            permission=Permission.CERTIFICATE_ISSUE,
            methods=["POST"],
        ),
    ]


def _filters(request: Request) -> HistoryFilters:
    return history_service.parse_filters(dict(request.query_params))


def history_page(request: Request) -> Response:
    filters = _filters(request)
    actor = user_of(request).actor(client_ip(request))
    with request.app.state.db.write_session() as session:
        page = history_service.search(session, filters)
        locations = history_service.locations(session)
        audit.record(
            session,
            actor,
            "certificate.history_search",
            target_type="certificate_request",
            detail={
                "filters": filters.describe(),
                "page": filters.page,
                "results": page.total,
                "ids": [row.request.id for row in page.rows],
            },
        )
        session.commit()
    response: Response = request.app.state.templates.TemplateResponse(
        request,
        "staff/history.html",
        {
            "filters": filters,
            "result": page,
            "locations": locations,
            "types": list(CertificateType),
            "states": list(RequestState),
            "query": urlencode(filters.query(page=1)),
            "prev_query": urlencode(filters.query(page=filters.page - 1)),
            "next_query": urlencode(filters.query(page=filters.page + 1)),
        },
        block_name="results" if is_htmx(request) else None,
    )
    return response


def _render_detail(
    request: Request,
    request_id: int,
    *,
    error: str = "",
    reason: str = "",
    back: str | None = None,
    status_code: int = 200,
) -> Response:
    templates = request.app.state.templates
    actor = user_of(request).actor(client_ip(request))
    with request.app.state.db.write_session() as session:
        view = history_service.detail(session, request_id)
        if view is None:
            missing: Response = templates.TemplateResponse(request, "errors/404.html", {}, status_code=404)
            return missing
        audit.record(
            session,
            actor,
            "certificate.history_view",
            target_type="certificate_request",
            target_id=request_id,
            detail={"applicant_id": view.request.applicant_id, "issues": len(view.issues)},
        )
        session.commit()
    reprinted = request.query_params.get("reprinted", "")
    response: Response = templates.TemplateResponse(
        request,
        "staff/history_detail.html",
        {
            "view": view,
            "error": error,
            "reason": reason,
            "reprinted": reprinted.isdigit() and not error,
            # The reprint is made by a print job just after the redirect: made yet, or on its way?
            "reprint_made": reprinted.isdigit()
            and any(v.issue.reprint_of == int(reprinted) for v in view.issues),
            "back": request.query_params.get("back", "") if back is None else back,
        },
        status_code=status_code,
    )
    return response


def history_detail(request: Request) -> Response:
    return _render_detail(request, int(request.path_params["request_id"]))


async def history_reprint(request: Request) -> Response:
    request_id = int(request.path_params["request_id"])
    form = await request.form()
    reason = str(form.get("reason", ""))
    expected_raw = str(form.get("latest_issue", ""))
    expected = int(expected_raw) if expected_raw.isdigit() else None
    back = str(form.get("back", ""))[:1000]  # the search to return to, as a query string
    user = user_of(request)
    actor = user.actor(client_ip(request))
    db: Database = request.app.state.db

    def _reprint() -> tuple[int | None, str]:
        with db.write_session() as session:
            try:
                reprint_of = history_service.reprint(
                    session,
                    actor,
                    request_id,
                    reason=reason,
                    staff_id=user.id,
                    expected_latest_issue=expected,
                )
            except RequestError as error:
                session.rollback()
                return None, str(error)
            session.commit()  # the reprint is made after this, by a print job
            return reprint_of, ""

    reprint_of, error = await run_in_threadpool(_reprint)
    if error:
        return await run_in_threadpool(
            lambda: _render_detail(
                request, request_id, error=error, reason=reason[:255], back=back, status_code=422
            )
        )
    url = request.url_for("staff:history-detail", request_id=request_id)
    query = urlencode({"reprinted": reprint_of, **({"back": back} if back else {})})
    return RedirectResponse(f"{url.path}?{query}", status_code=303)


def history_csv(request: Request) -> Response:
    filters = _filters(request)
    actor = user_of(request).actor(client_ip(request))
    buffer = io.StringIO()
    buffer.write("\ufeff")  # a BOM, so that Excel reads the file as UTF-8
    writer = csv.writer(buffer, lineterminator="\r\n")
    db: Database = request.app.state.db
    rows = -1  # the header is not a row
    # Read without the write lock (a long export must not hold up the kiosks), then log it.
    with db.session() as session:
        for row in history_service.csv_rows(session, filters):
            writer.writerow(row)
            rows += 1
    with db.write_session() as session:
        audit.record(
            session,
            actor,
            "certificate.history_export",
            target_type="certificate_request",
            detail={"filters": filters.describe(), "rows": rows},
        )
        session.commit()
    first = filters.date_from.strftime("%Y%m%d") if filters.date_from else "all"
    last = filters.date_to.strftime("%Y%m%d") if filters.date_to else "all"
    headers = {
        "Content-Disposition": f'attachment; filename="certificate-history-{first}-{last}.csv"',
        "Cache-Control": "no-store",
    }
    return Response(buffer.getvalue().encode("utf-8"), media_type="text/csv; charset=utf-8", headers=headers)
