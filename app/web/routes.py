"""The whole URL map, in one table. Every route has a name and states who may call it.

`staff(...)` routes need a signed-in user with the given permission; `public(...)` routes don't.
Unsafe methods (POST, …) are CSRF-checked on both. tests/test_routes.py pins this table and
tests/test_route_access.py proves every staff route refuses anonymous and wrong-role users.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from app.domain.permissions import Permission as P
from app.web import (
    admin,
    auth,
    case_export,
    case_forms,
    cases,
    devices,
    events,
    history,
    home,
    interview,
    kiosk,
    kiosk_life,
    locations,
    queue,
    rules,
    staff as staff_views,
    stats,
    verify,
)
from app.web.guards import public, staff
from app.web.templating import STATIC_DIR


def routes() -> list[BaseRoute]:
    return [
        public("/", home.index, name="home"),
        public("/health", home.health, name="health"),
        public("/verify/{slug:str}", verify.verify, name="verify"),
        # Kiosk (residents; no staff sign-in)
        public("/kiosk/", kiosk.choose_terminal, name="kiosk:terminals"),
        public("/kiosk/{code:str}/", kiosk.start, name="kiosk:start"),
        public("/kiosk/{code:str}/begin", kiosk.begin, name="kiosk:begin", methods=["POST"]),
        public("/kiosk/{code:str}/card", kiosk.card, name="kiosk:card"),
        public("/kiosk/{code:str}/card-state", kiosk.card_state, name="kiosk:card-state"),
        public("/kiosk/{code:str}/pin", kiosk.pin, name="kiosk:pin", methods=["POST"]),
        public("/kiosk/{code:str}/wait", kiosk.wait, name="kiosk:wait"),
        public("/kiosk/{code:str}/refused", kiosk.refused, name="kiosk:refused"),
        public("/kiosk/{code:str}/options", kiosk.options, name="kiosk:options"),
        public(
            "/kiosk/{code:str}/options", kiosk.options_submit, name="kiosk:options-submit", methods=["POST"]
        ),
        public("/kiosk/{code:str}/confirm", kiosk.confirm_page, name="kiosk:confirm"),
        public(
            "/kiosk/{code:str}/confirm", kiosk.confirm_submit, name="kiosk:confirm-submit", methods=["POST"]
        ),
        public("/kiosk/{code:str}/done", kiosk.done, name="kiosk:done"),
        public("/kiosk/{code:str}/cancel", kiosk.cancel, name="kiosk:cancel", methods=["POST"]),
        # Staff sign-in
        public("/staff/login", auth.login_page, name="staff:login"),
        public("/staff/login", auth.login_submit, name="staff:login-submit", methods=["POST"]),
        public("/staff/logout", auth.logout, name="staff:logout", methods=["POST"]),
        # Staff screens
        public("/staff", home.staff_root, name="staff:root"),
        staff("/staff/", staff_views.home, name="staff:home", permission=P.STAFF),
        staff(
            "/staff/residents",
            staff_views.resident_search,
            name="staff:residents",
            permission=P.RESIDENT_READ,
        ),
        staff(
            "/staff/residents/{resident_id:int}",
            staff_views.resident_detail,
            name="staff:resident",
            permission=P.RESIDENT_READ,
        ),
        staff("/staff/events", events.events_page, name="staff:events", permission=P.EVENTS_VIEW),
        staff(
            "/staff/events/test",
            events.send_test_event,
            name="staff:events-test",
            permission=P.EVENTS_VIEW,
            methods=["POST"],
        ),
        staff("/events/stream", events.event_stream, name="events:stream", permission=P.EVENTS_VIEW),
        staff("/staff/queue", queue.queue, name="staff:queue", permission=P.CERTIFICATE_ISSUE),
        staff(
            "/staff/queue/{request_id:int}/{action:str}",
            queue.act,
            name="staff:queue-action",
            permission=P.CERTIFICATE_ISSUE,
            methods=["POST"],
        ),
        staff("/staff/devices", devices.staff_devices, name="staff:devices", permission=P.STAFF),
        staff(
            "/staff/print-jobs/{job_id:int}/{action:str}",
            devices.staff_job_action,
            name="staff:print-job-action",
            permission=P.PRINT_MANAGE,
            methods=["POST"],
        ),
        # Administration
        staff("/admin/", admin.home, name="admin:home", permission=P.USERS_MANAGE),
        staff("/admin/users", admin.users, name="admin:users", permission=P.USERS_MANAGE),
        staff(
            "/admin/users",
            admin.user_create,
            name="admin:user-create",
            permission=P.USERS_MANAGE,
            methods=["POST"],
        ),
        staff(
            "/admin/users/{user_id:int}",
            admin.user_update,
            name="admin:user-update",
            permission=P.USERS_MANAGE,
            methods=["POST"],
        ),
        staff("/admin/audit", admin.audit_log, name="admin:audit", permission=P.AUDIT_READ),
        staff("/admin/devices", devices.admin_devices, name="admin:devices", permission=P.DEVICES_MANAGE),
        staff(
            "/admin/devices",
            devices.admin_device_register,
            name="admin:device-register",
            permission=P.DEVICES_MANAGE,
            methods=["POST"],
        ),
        staff(
            "/admin/devices/{device_id:int}/{action:str}",
            devices.admin_device_action,
            name="admin:device-action",
            permission=P.DEVICES_MANAGE,
            methods=["POST"],
        ),
        # Device bridge API: bearer tokens, no cookies, so no CSRF (see app/web/devices.py)
        public("/devices/api/stream", devices.api_stream, name="devices:stream", csrf=False),
        public(
            "/devices/api/heartbeat",
            devices.api_heartbeat,
            name="devices:heartbeat",
            methods=["POST"],
            csrf=False,
        ),
        public("/devices/api/events", devices.api_event, name="devices:events", methods=["POST"], csrf=False),
        public(
            "/devices/api/jobs/{job_id:int}",
            devices.api_job_report,
            name="devices:job",
            methods=["POST"],
            csrf=False,
        ),
        public(
            "/devices/api/jobs/{job_id:int}/document",
            devices.api_job_document,
            name="devices:job-document",
            csrf=False,
        ),
        public(
            "/devices/api/commands/{command_id:str}",
            kiosk.api_command_result,
            name="devices:command-result",
            methods=["POST"],
            csrf=False,
        ),
        # Areas that keep their own part of the table: history, statistics, location settings, rules
        *history.routes(),
        *interview.routes(),
        *case_export.routes(),
        *case_forms.routes(),
        *kiosk_life.routes(),
        *stats.routes(),
        *locations.routes(),
        *rules.routes(),
        *cases.routes(),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
    ]
