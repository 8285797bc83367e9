"""Per-request context without database work: language and the CSRF cookie."""

from __future__ import annotations

import time
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import i18n
from app.web.security import CSRF_COOKIE, LANG_COOKIE, Keys, new_csrf_cookie


def _cookies(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is ignored, not fatal
                continue
    return {key: morsel.value for key, morsel in jar.items()}


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, keys: Keys, default_language: str, secure: bool) -> None:
        self.app = app
        self.keys = keys
        self.default_language = default_language
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookies = _cookies(scope)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        lang_query = query.get("lang", [None])[0]
        headers = dict(scope.get("headers", []))
        accept = headers.get(b"accept-language", b"").decode("latin-1") or None
        language = i18n.pick_language(lang_query, cookies.get(LANG_COOKIE), accept, self.default_language)
        i18n.set_language(language)

        csrf_cookie = cookies.get(CSRF_COOKIE)
        new_cookie = None
        if not csrf_cookie:
            csrf_cookie = new_cookie = new_csrf_cookie()
        state = scope.setdefault("state", {})
        state["csrf_cookie"] = csrf_cookie
        state["csrf_token"] = self.keys.csrf_token(csrf_cookie)
        state["cookies"] = cookies
        state["language"] = language
        secure = "; Secure" if self.secure else ""

        started = time.perf_counter()

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                # Server time until the response starts; shown in browsers' dev tools, read by bench/.
                out.append("server-timing", f"app;dur={(time.perf_counter() - started) * 1000:.2f}")
                if new_cookie:
                    out.append(
                        "set-cookie", f"{CSRF_COOKIE}={new_cookie}; Path=/; HttpOnly; SameSite=Lax{secure}"
                    )
                if lang_query in i18n.LANGUAGES and lang_query != cookies.get(LANG_COOKIE):
                    out.append(
                        "set-cookie",
                        f"{LANG_COOKIE}={lang_query}; Path=/; Max-Age=31536000; SameSite=Lax{secure}",
                    )
            await send(message)

        await self.app(scope, receive, send_with_cookies)
