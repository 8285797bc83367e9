"""Small HTMX helpers (names after django-htmx's)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def client_redirect(url: str, status_code: int = 200) -> Response:
    """Tell HTMX to navigate the whole page (a plain redirect would be swapped into a fragment)."""
    return Response(status_code=status_code, headers={"HX-Redirect": url})
