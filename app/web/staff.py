"""Staff screens: home and resident look-up."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.services import residents
from app.web.guards import client_ip, user_of
from app.web.htmx import is_htmx


def home(request: Request) -> Response:
    templates = request.app.state.templates
    response: Response = templates.TemplateResponse(request, "staff/home.html", {})
    return response


def resident_search(request: Request) -> Response:
    query = request.query_params.get("q", "").strip()[:100]
    found = None
    if query:
        with request.app.state.db.write_session() as session:
            found = residents.search(session, user_of(request).actor(client_ip(request)), query)
            session.commit()
    templates = request.app.state.templates
    block = "results" if is_htmx(request) else None
    response: Response = templates.TemplateResponse(
        request, "staff/residents.html", {"q": query, "found": found}, block_name=block
    )
    return response


def resident_detail(request: Request) -> Response:
    resident_id = int(request.path_params["resident_id"])
    with request.app.state.db.write_session() as session:
        view = residents.view(session, user_of(request).actor(client_ip(request)), resident_id)
        session.commit()
    templates = request.app.state.templates
    if view is None:
        missing: Response = templates.TemplateResponse(request, "errors/404.html", {}, status_code=404)
        return missing
    response: Response = templates.TemplateResponse(request, "staff/resident.html", {"view": view})
    return response
