from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response


def index(request: Request) -> Response:
    response: Response = request.app.state.templates.TemplateResponse(request, "index.html", {})
    return response


def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def staff_root(request: Request) -> Response:
    return RedirectResponse(request.url_for("staff:home"), status_code=307)
