"""Permissions carried by staff groups, and the groups a new installation starts with."""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    STAFF = "staff"  # use the staff screens at all
    RESIDENT_READ = "resident.read"  # see residents' personal data (each view is audit-logged)
    EVENTS_VIEW = "events.view"  # watch the live event stream
    CERTIFICATE_ISSUE = "certificate.issue"
    LIFE_EVENT_HANDLE = "life_event.handle"
    STATS_VIEW = "stats.view"
    AUDIT_READ = "audit.read"
    USERS_MANAGE = "users.manage"
    SETTINGS_MANAGE = "settings.manage"
    DEVICES_MANAGE = "devices.manage"  # register, rotate and revoke device tokens
    PRINT_MANAGE = "print.manage"  # cancel and retry print jobs
    LOCATION_SETTINGS = "location.settings"  # a counter's own settings: printing, fees, hours, kiosk
    RULES_MANAGE = "rules.manage"  # edit, save and roll back the life-event rules (手続きルール)


# label_ja, label_en, permissions
DEFAULT_GROUPS: dict[str, tuple[str, str, frozenset[Permission]]] = {
    "clerk": (
        "窓口職員",
        "Counter clerk",
        frozenset(
            {
                Permission.STAFF,
                Permission.RESIDENT_READ,
                Permission.EVENTS_VIEW,
                Permission.CERTIFICATE_ISSUE,
                Permission.LIFE_EVENT_HANDLE,
                Permission.PRINT_MANAGE,
                Permission.LOCATION_SETTINGS,
            }
        ),
    ),
    "manager": (
        "管理職",
        "Manager",
        frozenset({Permission.STAFF, Permission.EVENTS_VIEW, Permission.STATS_VIEW}),
    ),
    "auditor": (
        "監査担当",
        "Auditor",
        frozenset({Permission.STAFF, Permission.AUDIT_READ}),
    ),
    "admin": (
        "システム管理者",
        "Administrator",
        frozenset(
            {
                Permission.STAFF,
                Permission.EVENTS_VIEW,
                Permission.STATS_VIEW,
                Permission.AUDIT_READ,
                Permission.USERS_MANAGE,
                Permission.SETTINGS_MANAGE,
                Permission.DEVICES_MANAGE,
                Permission.PRINT_MANAGE,
                Permission.LOCATION_SETTINGS,
                Permission.RULES_MANAGE,
            }
        ),
    ),
}
