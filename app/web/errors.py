"""Error pages (Japanese first) for the whole app."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

log = logging.getLogger("madoguchi.web")


def _render(request: Request, status: int) -> Response:
    templates = getattr(request.app.state, "templates", None)
    name = f"errors/{status}.html" if status in (400, 403, 404, 405) else "errors/500.html"
    if templates is None:
        return PlainTextResponse(str(status), status_code=status)
    response: Response = templates.TemplateResponse(request, name, {"message": None}, status_code=status)
    return response


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _render(request, exc.status_code)


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _render(request, 500)
