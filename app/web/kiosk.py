"""Resident kiosk screens (touch). The certificate flow builds on this start screen."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response


def start(request: Request) -> Response:
    response: Response = request.app.state.templates.TemplateResponse(request, "kiosk/start.html", {})
    return response
