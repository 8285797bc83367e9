"""The URL map is pinned: a route added, renamed or opened to the public shows up here."""

from __future__ import annotations

from app.web.guards import AppRoute
from app.web.routes import routes

EXPECTED = {
    # name: (path, methods, permission or None for public)
    "home": ("/", {"GET"}, None),
    "health": ("/health", {"GET"}, None),
    "kiosk:start": ("/kiosk/", {"GET"}, None),
    "staff:login": ("/staff/login", {"GET"}, None),
    "staff:login-submit": ("/staff/login", {"POST"}, None),
    "staff:logout": ("/staff/logout", {"POST"}, None),
    "staff:root": ("/staff", {"GET"}, None),
    "staff:home": ("/staff/", {"GET"}, "staff"),
    "staff:residents": ("/staff/residents", {"GET"}, "resident.read"),
    "staff:resident": ("/staff/residents/{resident_id:int}", {"GET"}, "resident.read"),
    "staff:events": ("/staff/events", {"GET"}, "events.view"),
    "staff:events-test": ("/staff/events/test", {"POST"}, "events.view"),
    "events:stream": ("/events/stream", {"GET"}, "events.view"),
    "admin:home": ("/admin/", {"GET"}, "users.manage"),
    "admin:users": ("/admin/users", {"GET"}, "users.manage"),
    "admin:user-create": ("/admin/users", {"POST"}, "users.manage"),
    "admin:user-update": ("/admin/users/{user_id:int}", {"POST"}, "users.manage"),
    "admin:audit": ("/admin/audit", {"GET"}, "audit.read"),
}


def test_route_table_is_pinned() -> None:
    actual = {}
    for route in routes():
        if isinstance(route, AppRoute):
            methods = set(route.methods or []) - {"HEAD"}
            actual[route.name] = (route.path, methods, route.permission.value if route.permission else None)
    assert actual == EXPECTED


def test_every_route_is_named_and_unique() -> None:
    names = [getattr(route, "name", None) for route in routes()]
    assert all(names), names
    assert len(names) == len(set(names))


def test_every_unsafe_route_checks_csrf() -> None:
    for route in routes():
        if isinstance(route, AppRoute) and set(route.methods or []) & {"POST", "PUT", "PATCH", "DELETE"}:
            assert route.csrf, f"{route.name} takes unsafe requests without a CSRF check"
