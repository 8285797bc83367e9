"""Every staff and admin route refuses anonymous and wrong-role users — derived from the route table."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from app.domain.permissions import DEFAULT_GROUPS, Permission
from app.web.guards import AppRoute
from app.web.routes import routes
from tests.conftest import StaffAccounts, sign_in

PROTECTED = [route for route in routes() if isinstance(route, AppRoute) and route.permission is not None]
# Streams never end; their positive case is covered in tests/test_events_sse.py.
STREAMING = {"events:stream"}


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def _cases() -> list[tuple[str, str, str, Permission]]:
    cases = []
    for route in PROTECTED:
        assert route.permission is not None
        for method in sorted(route.methods or []):
            if method == "HEAD":
                continue
            cases.append((route.name, method, _concrete(route.path), route.permission))
    return cases


CASES = _cases()
IDS = [f"{name}-{method}" for name, method, _, _ in CASES]


def test_the_table_has_protected_routes() -> None:
    names = {name for name, *_ in CASES}
    assert {"staff:home", "staff:residents", "admin:users", "admin:audit", "admin:user-create"} <= names


@pytest.mark.parametrize(("name", "method", "path", "permission"), CASES, ids=IDS)
def test_anonymous_is_sent_to_sign_in(
    client: TestClient, name: str, method: str, path: str, permission: Permission
) -> None:
    response = client.request(method, path)
    assert response.status_code == 303, f"{method} {path} answered {response.status_code}"
    assert response.headers["location"].startswith("/staff/login?next=")


@pytest.mark.parametrize(("name", "method", "path", "permission"), CASES, ids=IDS)
def test_anonymous_htmx_gets_401_with_redirect(
    client: TestClient, name: str, method: str, path: str, permission: Permission
) -> None:
    response = client.request(
        method, path, headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/staff/"}
    )
    assert response.status_code == 401
    assert response.headers["hx-redirect"].startswith("/staff/login?next=")


@pytest.mark.parametrize(("name", "method", "path", "permission"), CASES, ids=IDS)
def test_wrong_role_is_refused(
    client: TestClient,
    staff_accounts: StaffAccounts,
    name: str,
    method: str,
    path: str,
    permission: Permission,
) -> None:
    lacking = [group for group, (_, _, perms) in DEFAULT_GROUPS.items() if permission not in perms] + [
        "nogroup"
    ]
    for login_id in lacking:
        client.cookies.clear()
        sign_in(client, login_id)
        headers = {"X-CSRF-Token": _token(client)}
        response = client.request(method, path, headers=headers)
        assert response.status_code == 403, f"{login_id}: {method} {path} answered {response.status_code}"


@pytest.mark.parametrize(("name", "method", "path", "permission"), CASES, ids=IDS)
def test_right_role_gets_in(
    client: TestClient,
    staff_accounts: StaffAccounts,
    name: str,
    method: str,
    path: str,
    permission: Permission,
) -> None:
    if name in STREAMING or method != "GET":
        pytest.skip("streams and form posts are exercised by their own tests")
    holder = next(group for group, (_, _, perms) in DEFAULT_GROUPS.items() if permission in perms)
    sign_in(client, holder)
    response = client.request(method, path)
    assert response.status_code in (200, 404), f"{holder}: {method} {path} answered {response.status_code}"


def _token(client: TestClient) -> str:
    from tests.conftest import csrf_of

    return csrf_of(client, "/kiosk/")
