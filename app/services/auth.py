"""Staff sign-in: password check, lockout, server-side sessions with an idle clock."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlmodel import Session, col, delete, select

from app.domain.permissions import Permission
from app.models import StaffSession, StaffUser
from app.models._types import utcnow
from app.services import audit
from app.services.audit import Actor
from app.services.passwords import DUMMY_HASH, hash_password, needs_rehash, verify_password
from app.services.staff import permissions_of

# Touch a session's idle clock at most this often, so reads don't write on every request.
_TOUCH_INTERVAL = timedelta(seconds=60)


class LoginFailure(StrEnum):
    BAD_CREDENTIALS = "bad_credentials"
    LOCKED = "locked"


@dataclass(frozen=True)
class LoginResult:
    user: StaffUser | None
    session_secret: str = ""
    failure: LoginFailure | None = None
    locked_until: datetime | None = None


@dataclass(frozen=True)
class CurrentUser:
    id: int
    login_id: str
    display_name: str
    department: str
    permissions: frozenset[Permission]
    session_id: str

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def actor(self, ip: str = "") -> Actor:
        return Actor(type="staff", id=str(self.id), name=f"{self.display_name} ({self.login_id})", ip=ip)


def session_id_for(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def login(
    session: Session,
    login_id: str,
    password: str,
    *,
    ip: str = "",
    user_agent: str = "",
    max_failures: int,
    lockout: timedelta,
    now: datetime | None = None,
) -> LoginResult:
    """Check a password; on success open a session. The caller commits (audit entries included)."""
    now = now or utcnow()
    user = session.exec(select(StaffUser).where(StaffUser.login_id == login_id.strip())).first()
    if user is None or not user.active:
        verify_password(DUMMY_HASH, password)  # same time as a real check
        audit.record(
            session,
            Actor(type="anonymous", name=login_id[:64], ip=ip),
            "auth.login_failed",
            detail={"reason": "unknown_user" if user is None else "inactive"},
        )
        return LoginResult(user=None, failure=LoginFailure.BAD_CREDENTIALS)

    actor = Actor(type="staff", id=str(user.id), name=f"{user.display_name} ({user.login_id})", ip=ip)
    if user.locked_until is not None and user.locked_until > now:
        audit.record(
            session, actor, "auth.login_refused_locked", target_type="staff_user", target_id=str(user.id)
        )
        return LoginResult(user=None, failure=LoginFailure.LOCKED, locked_until=user.locked_until)

    if not verify_password(user.password_hash, password):
        user.failed_logins += 1
        detail: dict[str, object] = {"failures": user.failed_logins}
        action = "auth.login_failed"
        if user.failed_logins >= max_failures:
            user.locked_until = now + lockout
            user.failed_logins = 0
            action = "auth.locked"
            detail["locked_until"] = user.locked_until.isoformat()
        session.add(user)
        audit.record(session, actor, action, target_type="staff_user", target_id=str(user.id), detail=detail)
        if action == "auth.locked":
            return LoginResult(user=None, failure=LoginFailure.LOCKED, locked_until=user.locked_until)
        return LoginResult(user=None, failure=LoginFailure.BAD_CREDENTIALS)

    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    session.add(user)
    secret = secrets.token_urlsafe(32)
    assert user.id is not None
    session.add(
        StaffSession(
            id=session_id_for(secret),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            ip=ip[:64],
            user_agent=user_agent[:255],
        )
    )
    audit.record(session, actor, "auth.login", target_type="staff_user", target_id=str(user.id))
    return LoginResult(user=user, session_secret=secret)


def resolve_session(
    session: Session, secret: str, *, idle: timedelta, now: datetime | None = None
) -> tuple[CurrentUser | None, bool]:
    """The signed-in user for a session secret, and whether the session just expired.

    Touches the idle clock (at most once a minute) and deletes an expired session; commits itself.
    """
    now = now or utcnow()
    sid = session_id_for(secret)
    row = session.get(StaffSession, sid)
    if row is None:
        return None, False
    user = session.get(StaffUser, row.user_id)
    if user is None or not user.active or now - row.last_seen_at > idle:
        session.delete(row)
        session.commit()
        return None, True
    if now - row.last_seen_at > _TOUCH_INTERVAL:
        row.last_seen_at = now
        session.add(row)
        session.commit()
    assert user.id is not None
    return (
        CurrentUser(
            id=user.id,
            login_id=user.login_id,
            display_name=user.display_name,
            department=user.department,
            permissions=permissions_of(session, user.id),
            session_id=sid,
        ),
        False,
    )


def logout(session: Session, user: CurrentUser, *, ip: str = "") -> None:
    session.exec(delete(StaffSession).where(col(StaffSession.id) == user.session_id))
    audit.record(session, user.actor(ip), "auth.logout", target_type="staff_user", target_id=str(user.id))


def purge_expired_sessions(session: Session, *, idle: timedelta, now: datetime | None = None) -> int:
    cutoff = (now or utcnow()) - idle
    result = session.exec(delete(StaffSession).where(col(StaffSession.last_seen_at) < cutoff))
    return int(result.rowcount or 0)
