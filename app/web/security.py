"""Cookie signing and CSRF tokens.

Every browser gets a random `madoguchi_csrf` cookie; the token pages embed is an HMAC of it under
the server key. Unsafe requests must bring the token back in the `X-CSRF-Token` header (HTMX) or a
`csrf_token` form field. The staff session cookie carries the session secret, signed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from itsdangerous import BadSignature, Signer

SESSION_COOKIE = "madoguchi_session"
CSRF_COOKIE = "madoguchi_csrf"
LANG_COOKIE = "madoguchi_lang"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


class Keys:
    def __init__(self, secret_key: str) -> None:
        self._secret = secret_key.encode()
        self._session_signer = Signer(secret_key, salt="madoguchi.session")

    def csrf_token(self, cookie_value: str) -> str:
        return hmac.new(self._secret, b"csrf:" + cookie_value.encode(), hashlib.sha256).hexdigest()

    def csrf_valid(self, cookie_value: str | None, token: str | None) -> bool:
        if not cookie_value or not token:
            return False
        return hmac.compare_digest(self.csrf_token(cookie_value), token)

    def sign_session(self, session_secret: str) -> str:
        return self._session_signer.sign(session_secret).decode()

    def unsign_session(self, cookie_value: str) -> str | None:
        try:
            return self._session_signer.unsign(cookie_value).decode()
        except BadSignature:
            return None


def new_csrf_cookie() -> str:
    return secrets.token_urlsafe(24)


def safe_next(target: str | None, default: str = "/staff/") -> str:
    """Only local paths may be redirected to after sign-in."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
