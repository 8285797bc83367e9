"""Staff sign-in and sign-out."""

from __future__ import annotations

from datetime import timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app import i18n
from app.services import auth as auth_service
from app.web.guards import client_ip, current_user
from app.web.security import SESSION_COOKIE, safe_next


async def login_page(request: Request) -> Response:
    user = await current_user(request)
    next_url = safe_next(request.query_params.get("next"))
    if user is not None and request.method == "GET":
        return RedirectResponse(next_url, status_code=303)
    return _render_login(
        request,
        next_url=next_url,
        expired=request.query_params.get("expired") == "1",
    )


def _render_login(
    request: Request,
    *,
    next_url: str,
    error: str = "",
    login_id: str = "",
    expired: bool = False,
    status: int = 200,
) -> Response:
    templates = request.app.state.templates
    response: Response = templates.TemplateResponse(
        request,
        "staff/login.html",
        {"next_url": next_url, "error": error, "login_id": login_id, "expired": expired},
        status_code=status,
    )
    return response


async def login_submit(request: Request) -> Response:
    form = await request.form()
    login_id = str(form.get("login_id", ""))[:64]
    password = str(form.get("password", ""))
    next_url = safe_next(str(form.get("next", "")))
    settings = request.app.state.settings

    def _login() -> auth_service.LoginResult:
        with request.app.state.db.write_session() as session:
            result = auth_service.login(
                session,
                login_id,
                password,
                ip=client_ip(request),
                user_agent=request.headers.get("user-agent", ""),
                max_failures=settings.login_max_failures,
                lockout=timedelta(minutes=settings.login_lockout_minutes),
            )
            session.commit()
            return result

    result = await run_in_threadpool(_login)
    if result.failure is auth_service.LoginFailure.LOCKED:
        error = i18n.gettext(
            "This account is locked after too many wrong passwords. Try again later or ask an administrator."
        )
        return _render_login(request, next_url=next_url, error=error, login_id=login_id, status=403)
    if result.user is None:
        error = i18n.gettext("The staff ID or password is wrong.")
        return _render_login(request, next_url=next_url, error=error, login_id=login_id, status=401)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        request.app.state.keys.sign_session(result.session_secret),
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )
    return response


async def logout(request: Request) -> Response:
    user = await current_user(request)
    if user is not None:

        def _logout() -> None:
            with request.app.state.db.write_session() as session:
                auth_service.logout(session, user, ip=client_ip(request))
                session.commit()

        await run_in_threadpool(_logout)
    response = RedirectResponse("/staff/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
