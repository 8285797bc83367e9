"""Staff accounts and groups."""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, col, delete, select

from app.domain.permissions import DEFAULT_GROUPS, Permission
from app.models import GroupPermission, StaffGroup, StaffSession, StaffUser, UserGroup
from app.services import audit
from app.services.audit import Actor
from app.services.lifeevent_rules import current_rules
from app.services.passwords import MIN_PASSWORD_LENGTH, hash_password


class StaffError(ValueError):
    """A request about staff accounts that cannot be carried out; the message is Japanese."""


def check_department(session: Session, department: str) -> str:
    """A staff user's department is one of the life-event rules' departments (by id), or none.
    It is where the case screens open by default."""
    department = department.strip()
    if not department:
        return ""
    if department not in {d.id for d in current_rules(session)[1].catalog.departments}:
        raise StaffError(f"部署「{department}」はありません。一覧から選んでください。")
    return department


def ensure_default_groups(session: Session) -> dict[str, StaffGroup]:
    """Create the built-in groups (clerk, manager, auditor, admin) if missing; returns them by name."""
    groups = {group.name: group for group in session.exec(select(StaffGroup)).all()}
    for name, (label_ja, label_en, permissions) in DEFAULT_GROUPS.items():
        if name in groups:
            # A release may give a built-in group a new permission; add it, never take any away.
            group_id = groups[name].id
            held = set(
                session.exec(
                    select(GroupPermission.permission).where(GroupPermission.group_id == group_id)
                ).all()
            )
            for permission in sorted(permissions):
                if permission.value not in held:
                    assert group_id is not None
                    session.add(GroupPermission(group_id=group_id, permission=permission.value))
            continue
        group = StaffGroup(name=name, label_ja=label_ja, label_en=label_en)
        session.add(group)
        session.flush()
        assert group.id is not None
        for permission in sorted(permissions):
            session.add(GroupPermission(group_id=group.id, permission=permission.value))
        groups[name] = group
    session.flush()
    return groups


def create_user(
    session: Session,
    *,
    login_id: str,
    display_name: str,
    password: str,
    groups: Iterable[str],
    department: str = "",
    actor: Actor | None = None,
) -> StaffUser:
    login_id = login_id.strip()
    if not login_id:
        raise StaffError("職員IDを入力してください。")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"パスワードは{MIN_PASSWORD_LENGTH}文字以上にしてください。")
    if session.exec(select(StaffUser).where(StaffUser.login_id == login_id)).first() is not None:
        raise StaffError(f"職員ID「{login_id}」はすでに使われています。")
    department = check_department(session, department)
    known = ensure_default_groups(session)
    wanted = list(groups)
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise StaffError(f"グループ「{'、'.join(unknown)}」はありません。")
    user = StaffUser(
        login_id=login_id,
        display_name=display_name.strip() or login_id,
        department=department,
        password_hash=hash_password(password),
    )
    session.add(user)
    session.flush()
    assert user.id is not None
    for name in wanted:
        group_id = known[name].id
        assert group_id is not None
        session.add(UserGroup(user_id=user.id, group_id=group_id))
    session.flush()
    audit.record(
        session,
        actor or Actor.system(),
        "staff_user.create",
        target_type="staff_user",
        target_id=user.id,
        detail={"login_id": login_id, "groups": sorted(wanted), "department": department},
    )
    return user


def permissions_of(session: Session, user_id: int) -> frozenset[Permission]:
    rows = session.exec(
        select(GroupPermission.permission)
        .join(UserGroup, UserGroup.group_id == GroupPermission.group_id)  # type: ignore[arg-type]
        .where(UserGroup.user_id == user_id)
    ).all()
    known = {p.value for p in Permission}
    return frozenset(Permission(p) for p in rows if p in known)


def group_names_of(session: Session, user_id: int) -> list[str]:
    rows = session.exec(
        select(StaffGroup.name)
        .join(UserGroup, UserGroup.group_id == StaffGroup.id)  # type: ignore[arg-type]
        .where(UserGroup.user_id == user_id)
    ).all()
    return sorted(rows)


def list_users(session: Session) -> list[tuple[StaffUser, list[str]]]:
    users = session.exec(select(StaffUser).order_by(col(StaffUser.login_id))).all()
    memberships: dict[int, list[str]] = {}
    rows = session.exec(
        select(UserGroup.user_id, StaffGroup.name).join(StaffGroup, UserGroup.group_id == StaffGroup.id)  # type: ignore[arg-type]
    ).all()
    for user_id, name in rows:
        memberships.setdefault(user_id, []).append(name)
    return [(user, sorted(memberships.get(user.id or 0, []))) for user in users]


def update_user(
    session: Session,
    actor: Actor,
    user_id: int,
    *,
    groups: Iterable[str],
    active: bool,
    unlock: bool = False,
    new_password: str = "",
    department: str | None = None,
) -> StaffUser:
    """Change a user's groups and state; every change is audit-logged with before and after."""
    user = session.get(StaffUser, user_id)
    if user is None:
        raise StaffError("職員が見つかりません。")
    known = ensure_default_groups(session)
    wanted = sorted(set(groups))
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise StaffError(f"グループ「{'、'.join(unknown)}」はありません。")
    if actor.type == "staff" and actor.id == str(user_id) and "admin" not in wanted:
        raise StaffError("自分自身をシステム管理者グループから外すことはできません。")
    if new_password and len(new_password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"パスワードは{MIN_PASSWORD_LENGTH}文字以上にしてください。")
    if department is not None and department.strip() != user.department:
        department = check_department(session, department)  # an old free-text value may stay
    before = {
        "groups": group_names_of(session, user_id),
        "active": user.active,
        "locked": user.locked_until is not None,
        "department": user.department,
    }
    session.exec(delete(UserGroup).where(col(UserGroup.user_id) == user_id))
    for name in wanted:
        group_id = known[name].id
        assert group_id is not None
        session.add(UserGroup(user_id=user_id, group_id=group_id))
    user.active = active
    if department is not None:
        user.department = department.strip()
    if unlock:
        user.locked_until = None
        user.failed_logins = 0
    if new_password:
        user.password_hash = hash_password(new_password)
    session.add(user)
    if not active:
        session.exec(delete(StaffSession).where(col(StaffSession.user_id) == user_id))
    session.flush()
    after = {
        "groups": wanted,
        "active": active,
        "locked": user.locked_until is not None,
        "department": user.department,
    }
    detail: dict[str, object] = {"before": before, "after": after}
    if new_password:
        detail["password_reset"] = True
    audit.record(
        session, actor, "staff_user.update", target_type="staff_user", target_id=user_id, detail=detail
    )
    return user
