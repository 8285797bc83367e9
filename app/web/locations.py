"""Location settings (窓口ごとの設定) for clerks: printing, receipt text, fees, hours, kiosk offer.

One form per location. A save that fails comes back with status 422, the messages next to their
fields and everything as typed; a save that works returns to the form with 「保存しました」.
The form carries the settings' fingerprint so that a colleague's save in between is not
silently overwritten (app/services/locations.py).
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from app import i18n
from app.db import Database
from app.domain.certificates import CertificateType, fees_with_overrides
from app.domain.hours import WEEKDAYS, HoursError, format_exception_lines, parse_exceptions_json
from app.domain.permissions import Permission
from app.models import Location, Site
from app.models._types import utcnow
from app.services import locations as location_service
from app.services.locations import SettingsError
from app.web.guards import client_ip, staff, user_of

# Raw inputs are cut at these lengths before validation: long enough that the length checks
# still see (and report) an over-long text, short enough that a runaway paste stays small.
_MAX_INPUT = 1_000
_MAX_EXCEPTIONS_TEXT = 20_000


def routes() -> list[BaseRoute]:
    return [
        staff("/staff/locations", index, name="staff:locations", permission=Permission.LOCATION_SETTINGS),
        staff(
            "/staff/locations/{location_id:int}",
            detail,
            name="staff:location",
            permission=Permission.LOCATION_SETTINGS,
        ),
        staff(
            "/staff/locations/{location_id:int}",
            update,
            name="staff:location-update",
            permission=Permission.LOCATION_SETTINGS,
            methods=["POST"],
        ),
    ]


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def day_labels() -> dict[str, str]:
    return {
        "mon": i18n.gettext("Monday"),
        "tue": i18n.gettext("Tuesday"),
        "wed": i18n.gettext("Wednesday"),
        "thu": i18n.gettext("Thursday"),
        "fri": i18n.gettext("Friday"),
        "sat": i18n.gettext("Saturday"),
        "sun": i18n.gettext("Sunday"),
    }


def short_day_labels() -> dict[str, str]:
    return {
        "mon": i18n.gettext("Mon"),
        "tue": i18n.gettext("Tue"),
        "wed": i18n.gettext("Wed"),
        "thu": i18n.gettext("Thu"),
        "fri": i18n.gettext("Fri"),
        "sat": i18n.gettext("Sat"),
        "sun": i18n.gettext("Sun"),
    }


# The list ----------------------------------------------------------------------------------------


def index(request: Request) -> Response:
    with _db(request).session() as session:
        rows = location_service.list_locations(session, utcnow())
    response: Response = request.app.state.templates.TemplateResponse(
        request,
        "staff/locations.html",
        {"rows": rows, "short_days": short_day_labels()},
    )
    return response


# One location ------------------------------------------------------------------------------------


def _form_from_settings(location: Location) -> dict[str, Any]:
    """The form's values for the stored settings (the same shape as a posted form)."""
    settings = location_service.settings_of(location)
    form: dict[str, Any] = {
        "version": location_service.settings_version(location),
        "print_mode": "auto" if settings.get("auto_print") else "confirm",
        "office_device": str(settings.get("office_device") or ""),
        "receipt_footer": str(settings.get("receipt_footer") or ""),
        "kiosk": [str(v) for v in settings.get("kiosk_certificates") or []],
        "enforce_hours": bool(settings.get("enforce_hours")),
    }
    try:
        fees = fees_with_overrides(settings.get("fees"))
    except ValueError:
        fees = fees_with_overrides()
    for kind in CertificateType:
        form[f"fee_{kind.value}"] = str(fees[kind])
    weekly = settings.get("hours") if isinstance(settings.get("hours"), dict) else {}
    for day in WEEKDAYS:
        span = weekly.get(day) if weekly else None
        open_day = isinstance(span, list) and len(span) == 2
        form[f"open_{day}"] = str(span[0]) if open_day and span else ""
        form[f"close_{day}"] = str(span[1]) if open_day and span else ""
        form[f"closed_{day}"] = not open_day
    try:
        form["hours_exceptions"] = format_exception_lines(
            parse_exceptions_json(settings.get("hours_exceptions"))
        )
    except HoursError:
        # Show what is stored so that nothing disappears; saving asks for it to be corrected.
        form["hours_exceptions"] = json.dumps(settings.get("hours_exceptions"), ensure_ascii=False)
    return form


def _text(form: FormData, name: str, limit: int = _MAX_INPUT) -> str:
    value = form.get(name, "")
    return value[:limit] if isinstance(value, str) else ""


def _form_from_post(form: FormData) -> dict[str, Any]:
    """What the clerk typed, as typed (for the form shown again after an error)."""
    kept: dict[str, Any] = {
        "version": _text(form, "version", 64),
        "print_mode": _text(form, "print_mode", 16),
        "office_device": _text(form, "office_device", 16),
        "receipt_footer": _text(form, "receipt_footer"),
        "kiosk": [str(v)[:32] for v in form.getlist("kiosk")][:10],
        "enforce_hours": form.get("enforce_hours") == "on",
        "hours_exceptions": _text(form, "hours_exceptions", _MAX_EXCEPTIONS_TEXT),
    }
    for kind in CertificateType:
        kept[f"fee_{kind.value}"] = _text(form, f"fee_{kind.value}", 32)
    for day in WEEKDAYS:
        kept[f"open_{day}"] = _text(form, f"open_{day}", 32)
        kept[f"close_{day}"] = _text(form, f"close_{day}", 32)
        kept[f"closed_{day}"] = form.get(f"closed_{day}") == "on"
    return kept


def changes_from_form(kept: dict[str, Any]) -> dict[str, Any]:
    """The service's changes for a posted form; every value is checked there."""
    print_mode = kept["print_mode"]
    return {
        "auto_print": {"auto": True, "confirm": False}.get(print_mode, print_mode),
        "office_device": kept["office_device"],
        "receipt_footer": kept["receipt_footer"],
        "fees": {kind.value: kept[f"fee_{kind.value}"] for kind in CertificateType},
        "kiosk_certificates": kept["kiosk"],
        "hours": {
            day: None if kept[f"closed_{day}"] else (kept[f"open_{day}"], kept[f"close_{day}"])
            for day in WEEKDAYS
        },
        "hours_exceptions": kept["hours_exceptions"],
        "enforce_hours": kept["enforce_hours"],
    }


def _load(session: Session, location_id: int) -> tuple[Location, str]:
    location = session.get(Location, location_id)
    if location is None:
        raise HTTPException(status_code=404)
    site = session.exec(select(Site).where(Site.id == location.site_id)).first()
    return location, site.name if site else ""


def _page(
    request: Request,
    location_id: int,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, list[str]] | None = None,
) -> Response:
    with _db(request).session() as session:
        location, site = _load(session, location_id)
        devices = location_service.back_office_devices(session)
        own_device = location_service.default_office_device(session, location_id)
        if form is None:
            form = _form_from_settings(location)
        elif errors and location_service.FORM_ERROR in errors:
            # After a colleague's save the next save may overwrite it, knowingly.
            form = {**form, "version": location_service.settings_version(location)}
    known_codes = {device.code for device, _name in devices}
    response: Response = request.app.state.templates.TemplateResponse(
        request,
        "staff/location.html",
        {
            "location": location,
            "site": site,
            "form": form,
            "errors": errors or {},
            "devices": devices,
            "unknown_device": form["office_device"] if form["office_device"] not in known_codes else "",
            "own_device": own_device,
            "types": list(CertificateType),
            "weekdays": WEEKDAYS,
            "days": day_labels(),
            "saved": request.query_params.get("saved") == "1",
        },
        status_code=422 if errors else 200,
    )
    return response


def detail(request: Request) -> Response:
    return _page(request, int(request.path_params["location_id"]))


async def update(request: Request) -> Response:
    location_id = int(request.path_params["location_id"])
    posted = await request.form()
    kept = _form_from_post(posted)
    actor = user_of(request).actor(client_ip(request))
    db = _db(request)

    def _save() -> dict[str, list[str]] | None:
        with db.write_session() as session:
            if session.get(Location, location_id) is None:
                raise HTTPException(status_code=404)
            try:
                location_service.update_settings(
                    session,
                    actor,
                    location_id,
                    changes_from_form(kept),
                    expected_version=kept["version"] or None,
                )
            except SettingsError as error:
                session.rollback()
                return error.errors
            session.commit()
            return None

    errors = await run_in_threadpool(_save)
    if errors:
        return await run_in_threadpool(_page, request, location_id, form=kept, errors=errors)
    url = request.url_for("staff:location", location_id=location_id)
    return RedirectResponse(f"{url}?saved=1", status_code=303)
