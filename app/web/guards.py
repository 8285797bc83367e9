"""Route protection: who may call a route, and CSRF on every unsafe request.

Every route in app/web/routes.py is an `AppRoute` that states its permission (or that it is public)
and whether it takes CSRF-checked requests; tests/test_route_access.py walks the table and proves
each protected route refuses anonymous and wrong-role users.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from app.domain.permissions import Permission
from app.services import audit
from app.services.auth import CurrentUser, resolve_session
from app.web.htmx import client_redirect, is_htmx
from app.web.security import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE

Endpoint = Callable[[Request], Response] | Callable[[Request], Awaitable[Response]]
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOGIN_PATH = "/staff/login"


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


async def current_user(request: Request) -> CurrentUser | None:
    """Resolve the staff session from its signed cookie (once per request)."""
    state = request.scope.setdefault("state", {})
    if "user" in state:
        user: CurrentUser | None = state["user"]
        return user
    user = None
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        secret = request.app.state.keys.unsign_session(cookie)
        if secret:
            db = request.app.state.db
            idle = timedelta(minutes=request.app.state.settings.session_idle_minutes)

            def _resolve() -> tuple[CurrentUser | None, bool]:
                with db.session() as session:
                    return resolve_session(session, secret, idle=idle)

            user, expired = await run_in_threadpool(_resolve)
            state["session_expired"] = expired
    state["user"] = user
    return user


def _login_redirect(request: Request) -> Response:
    if request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        # After signing in again the user returns to the page the form was on.
        target = urlsplit(request.headers.get("referer", "")).path or "/staff/"
    if is_htmx(request):
        current = urlsplit(request.headers.get("hx-current-url", "")).path or target
        target = current
    expired = "&expired=1" if request.scope["state"].get("session_expired") else ""
    url = f"{LOGIN_PATH}?next={quote(target, safe='/')}{expired}"
    if is_htmx(request):
        return client_redirect(url, status_code=401)
    return RedirectResponse(url, status_code=303)


def forbidden(request: Request, message: str | None = None) -> Response:
    templates = request.app.state.templates
    response: Response = templates.TemplateResponse(
        request, "errors/403.html", {"message": message}, status_code=403
    )
    return response


async def _csrf_ok(request: Request) -> bool:
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            token = value if isinstance(value, str) else None
    cookie = request.scope["state"].get("csrf_cookie")
    keys = request.app.state.keys
    return bool(keys.csrf_valid(cookie, token))


def guard(
    endpoint: Endpoint, permission: Permission | None, csrf: bool
) -> Callable[[Request], Awaitable[Response]]:
    is_async = inspect.iscoroutinefunction(endpoint)

    async def guarded(request: Request) -> Response:
        if permission is not None:
            user = await current_user(request)
            if user is None:
                return _login_redirect(request)
            if not user.can(permission):
                await run_in_threadpool(_log_forbidden, request, user, permission)
                return forbidden(request)
        if csrf and request.method in UNSAFE and not await _csrf_ok(request):
            return forbidden(request, "csrf")
        if is_async:
            return await endpoint(request)  # type: ignore[misc, no-any-return]
        return await run_in_threadpool(endpoint, request)  # type: ignore[arg-type]

    guarded.__name__ = getattr(endpoint, "__name__", "endpoint")
    guarded.__doc__ = endpoint.__doc__
    return guarded


def _log_forbidden(request: Request, user: CurrentUser, permission: Permission) -> None:
    with request.app.state.db.write_session() as session:
        audit.record(
            session,
            user.actor(client_ip(request)),
            "auth.forbidden",
            target_type="route",
            target_id=request.url.path[:64],
            detail={"method": request.method, "needs": permission.value},
        )
        session.commit()


class AppRoute(Route):
    """A route that knows who may call it."""

    def __init__(
        self,
        path: str,
        endpoint: Endpoint,
        *,
        name: str,
        permission: Permission | None,
        methods: Sequence[str] = ("GET",),
        csrf: bool = True,
    ) -> None:
        self.permission = permission
        self.csrf = csrf
        self.original_endpoint = endpoint
        super().__init__(path, guard(endpoint, permission, csrf), name=name, methods=list(methods))


def staff(
    path: str, endpoint: Endpoint, *, name: str, permission: Permission, methods: Sequence[str] = ("GET",)
) -> AppRoute:
    return AppRoute(path, endpoint, name=name, permission=permission, methods=methods)


def public(
    path: str, endpoint: Endpoint, *, name: str, methods: Sequence[str] = ("GET",), csrf: bool = True
) -> AppRoute:
    return AppRoute(path, endpoint, name=name, permission=None, methods=methods, csrf=csrf)


def user_of(request: Request) -> CurrentUser:
    """The signed-in user of a route guarded by a permission."""
    user = request.scope["state"].get("user")
    assert isinstance(user, CurrentUser), "user_of() used on a route without a permission"
    return user
