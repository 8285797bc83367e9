"""Export of accepted cases for the core systems: the 住民異動届 CSV (docs/integration/idou-csv.md).

GET /staff/cases/idou.csv?day=2026-11-21&encoding=utf-8|cp932 — every submitted case of that day
whose event is a 住民異動届 (転入, 転出, 転居, 世帯変更 …), one row per person who moves. A case
the layout cannot hold (a required value missing, a character cp932 cannot encode) stops the
export with a Japanese page naming the case and the column; nothing half-written is sent.
"""

from __future__ import annotations

import io
from datetime import date

from sqlmodel import col, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from app.db import Database
from app.domain.cases import CaseStatus
from app.domain.permissions import Permission
from app.integrations.idou_csv import IDOU_EVENTS, IdouCsvError, IdouEncodingError, write_idou_csv
from app.models import LifeCase
from app.services import audit, cases
from app.services.certificates import today_jst
from app.web.guards import client_ip, staff, user_of


def routes() -> list[BaseRoute]:
    return [
        staff(
            "/staff/cases/idou.csv",
            idou_csv,
            name="cases:idou-csv",
            permission=Permission.LIFE_EVENT_HANDLE,
        )
    ]


def _day(raw: str | None) -> date | None:
    if not raw:
        return today_jst()
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def idou_csv(request: Request) -> Response:
    day = _day(request.query_params.get("day"))
    encoding = request.query_params.get("encoding", "utf-8")
    if day is None or encoding not in ("utf-8", "cp932"):
        return _problem(
            request, ["日付は 2026-11-21 の形で、文字コードは utf-8 か cp932 を指定してください。"], 400
        )
    events = sorted({e.event_id for e in IDOU_EVENTS})
    db: Database = request.app.state.db
    with db.session() as session:
        rows = session.exec(
            select(LifeCase)
            .where(
                LifeCase.reception_date == day,
                col(LifeCase.status).in_([CaseStatus.SUBMITTED, CaseStatus.DONE]),
                col(LifeCase.event_id).in_(events),
            )
            .order_by(col(LifeCase.reception_number))
        ).all()
        data = [cases.case_data(c) for c in rows]
    buffer = io.BytesIO()
    try:
        written = write_idou_csv(data, buffer, encoding=encoding)
    except IdouEncodingError as error:
        return _problem(
            request,
            [
                error.message_ja,
                *(f"{p.case_number} {p.person_key} {p.header}: 「{p.characters}」" for p in error.problems),
            ],
            422,
        )
    except IdouCsvError as error:
        return _problem(request, [error.message_ja], 422)
    with db.write_session() as session:
        audit.record(
            session,
            user_of(request).actor(client_ip(request)),
            "case.idou_export",
            target_type="life_case",
            detail={"day": day.isoformat(), "encoding": encoding, "cases": len(data), "rows": written},
        )
        session.commit()
    charset = "shift_jis" if encoding == "cp932" else "utf-8"
    headers = {
        "Content-Disposition": f'attachment; filename="idou-{day.strftime("%Y%m%d")}.csv"',
        "Cache-Control": "no-store",
    }
    return Response(buffer.getvalue(), media_type=f"text/csv; charset={charset}", headers=headers)


def _problem(request: Request, messages: list[str], status: int) -> Response:
    response: Response = request.app.state.templates.TemplateResponse(
        request, "staff/export_problem.html", {"messages": messages}, status_code=status
    )
    return response
