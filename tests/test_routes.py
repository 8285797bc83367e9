"""The URL map is pinned: a route added, renamed or opened to the public shows up here."""

from __future__ import annotations

from app.web.guards import AppRoute
from app.web.routes import routes

EXPECTED = {
    # name: (path, methods, permission or None for public)
    "home": ("/", {"GET"}, None),
    "health": ("/health", {"GET"}, None),
    "verify": ("/verify/{slug:str}", {"GET"}, None),
    "kiosk:terminals": ("/kiosk/", {"GET"}, None),
    "kiosk:start": ("/kiosk/{code:str}/", {"GET"}, None),
    "kiosk:begin": ("/kiosk/{code:str}/begin", {"POST"}, None),
    "kiosk:card": ("/kiosk/{code:str}/card", {"GET"}, None),
    "kiosk:card-state": ("/kiosk/{code:str}/card-state", {"GET"}, None),
    "kiosk:pin": ("/kiosk/{code:str}/pin", {"POST"}, None),
    "kiosk:wait": ("/kiosk/{code:str}/wait", {"GET"}, None),
    "kiosk:refused": ("/kiosk/{code:str}/refused", {"GET"}, None),
    "kiosk:options": ("/kiosk/{code:str}/options", {"GET"}, None),
    "kiosk:options-submit": ("/kiosk/{code:str}/options", {"POST"}, None),
    "kiosk:confirm": ("/kiosk/{code:str}/confirm", {"GET"}, None),
    "kiosk:confirm-submit": ("/kiosk/{code:str}/confirm", {"POST"}, None),
    "kiosk:done": ("/kiosk/{code:str}/done", {"GET"}, None),
    "kiosk:cancel": ("/kiosk/{code:str}/cancel", {"POST"}, None),
    "kiosk-life:events": ("/kiosk/{code:str}/life", {"GET"}, None),
    "kiosk-life:begin": ("/kiosk/{code:str}/life/begin", {"POST"}, None),
    "kiosk-life:card": ("/kiosk/{code:str}/life/card", {"GET"}, None),
    "kiosk-life:pin": ("/kiosk/{code:str}/life/pin", {"POST"}, None),
    "kiosk-life:wait": ("/kiosk/{code:str}/life/wait", {"GET"}, None),
    "kiosk-life:people": ("/kiosk/{code:str}/life/people", {"GET"}, None),
    "kiosk-life:people-save": ("/kiosk/{code:str}/life/people", {"POST"}, None),
    "kiosk-life:questions": ("/kiosk/{code:str}/life/questions", {"GET"}, None),
    "kiosk-life:questions-save": ("/kiosk/{code:str}/life/questions", {"POST"}, None),
    "kiosk-life:result": ("/kiosk/{code:str}/life/result", {"GET"}, None),
    "kiosk-life:sign": ("/kiosk/{code:str}/life/sign", {"GET"}, None),
    "kiosk-life:sign-submit": ("/kiosk/{code:str}/life/sign", {"POST"}, None),
    "kiosk-life:done": ("/kiosk/{code:str}/life/done", {"GET"}, None),
    "staff:queue": ("/staff/queue", {"GET"}, "certificate.issue"),
    "staff:stats": ("/staff/stats", {"GET"}, "stats.view"),
    "staff:stats-csv": ("/staff/stats.csv", {"GET"}, "stats.view"),
    "staff:stats-report": ("/staff/stats/report", {"GET"}, "stats.view"),
    "staff:locations": ("/staff/locations", {"GET"}, "location.settings"),
    "staff:location": ("/staff/locations/{location_id:int}", {"GET"}, "location.settings"),
    "staff:location-update": ("/staff/locations/{location_id:int}", {"POST"}, "location.settings"),
    "staff:case-forms-pdf": ("/staff/cases/{token:str}/forms.pdf", {"GET"}, "life_event.handle"),
    "staff:case-forms-print": ("/staff/cases/{token:str}/forms/print", {"POST"}, "life_event.handle"),
    "cases:idou-csv": ("/staff/cases/idou.csv", {"GET"}, "life_event.handle"),
    "interview:start": ("/staff/interview", {"GET"}, "life_event.handle"),
    "interview:start-submit": ("/staff/interview", {"POST"}, "life_event.handle"),
    "interview:case": ("/staff/interview/{token:str}", {"GET"}, "life_event.handle"),
    "interview:save": ("/staff/interview/{token:str}", {"POST"}, "life_event.handle"),
    "interview:people": ("/staff/interview/{token:str}/people", {"POST"}, "life_event.handle"),
    "interview:submit": ("/staff/interview/{token:str}/submit", {"POST"}, "life_event.handle"),
    "staff:history": ("/staff/history", {"GET"}, "certificate.issue"),
    "staff:history-csv": ("/staff/history.csv", {"GET"}, "certificate.issue"),
    "staff:history-detail": ("/staff/history/{request_id:int}", {"GET"}, "certificate.issue"),
    "staff:history-reprint": ("/staff/history/{request_id:int}/reprint", {"POST"}, "certificate.issue"),
    "staff:queue-action": ("/staff/queue/{request_id:int}/{action:str}", {"POST"}, "certificate.issue"),
    "devices:command-result": ("/devices/api/commands/{command_id:str}", {"POST"}, None),
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
    "staff:cases": ("/staff/cases", {"GET"}, "life_event.handle"),
    "staff:cases-floor": ("/staff/cases/floor", {"GET"}, "life_event.handle"),
    "staff:cases-scan": ("/staff/cases/scan", {"GET"}, "life_event.handle"),
    "staff:case": ("/staff/cases/{token:str}", {"GET"}, "life_event.handle"),
    "staff:case-procedure": (
        "/staff/cases/{token:str}/procedures/{position:int}",
        {"POST"},
        "life_event.handle",
    ),
    "staff:case-cancel": ("/staff/cases/{token:str}/cancel", {"POST"}, "life_event.handle"),
    "cases:scan": ("/cases/scan/{token:str}", {"GET"}, "life_event.handle"),
    "admin:home": ("/admin/", {"GET"}, "users.manage"),
    "admin:users": ("/admin/users", {"GET"}, "users.manage"),
    "admin:user-create": ("/admin/users", {"POST"}, "users.manage"),
    "admin:user-update": ("/admin/users/{user_id:int}", {"POST"}, "users.manage"),
    "admin:audit": ("/admin/audit", {"GET"}, "audit.read"),
    "admin:rules": ("/admin/rules", {"GET"}, "rules.manage"),
    "admin:rules-document": ("/admin/rules/documents/{name:str}", {"GET"}, "rules.manage"),
    "admin:rules-document-post": ("/admin/rules/documents/{name:str}", {"POST"}, "rules.manage"),
    "admin:rules-history": ("/admin/rules/history", {"GET"}, "rules.manage"),
    "admin:rules-version": ("/admin/rules/versions/{version:int}", {"GET"}, "rules.manage"),
    "admin:rules-rollback": ("/admin/rules/versions/{version:int}/rollback", {"POST"}, "rules.manage"),
    "staff:procedures": ("/staff/procedures", {"GET"}, "life_event.handle"),
    "staff:devices": ("/staff/devices", {"GET"}, "staff"),
    "staff:print-job-action": ("/staff/print-jobs/{job_id:int}/{action:str}", {"POST"}, "print.manage"),
    "admin:devices": ("/admin/devices", {"GET"}, "devices.manage"),
    "admin:device-register": ("/admin/devices", {"POST"}, "devices.manage"),
    "admin:device-action": ("/admin/devices/{device_id:int}/{action:str}", {"POST"}, "devices.manage"),
    # The device API authenticates with bearer tokens itself (tests/test_device_api.py).
    "devices:stream": ("/devices/api/stream", {"GET"}, None),
    "devices:heartbeat": ("/devices/api/heartbeat", {"POST"}, None),
    "devices:events": ("/devices/api/events", {"POST"}, None),
    "devices:job": ("/devices/api/jobs/{job_id:int}", {"POST"}, None),
    "devices:job-document": ("/devices/api/jobs/{job_id:int}/document", {"GET"}, None),
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
            # Only the device API may skip it: bearer tokens, never cookies, so no cross-site forgery.
            assert route.csrf or route.path.startswith("/devices/api/"), f"{route.name} skips the CSRF check"
