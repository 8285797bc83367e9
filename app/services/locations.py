"""Per-location settings (窓口ごとの設定): printing, receipt text, fees, opening hours, kiosk offer.

Settings live in `Location.settings` (JSON). The keys, with their defaults when a key is absent:

- ``auto_print`` (True): print certificates at once; False: a clerk confirms each one first.
- ``office_device`` (""): code of the back-office terminal whose printer prints this location's
  certificates; "" means this location's first back-office terminal.
- ``receipt_footer`` ("お呼びするまでお待ちください。"): the last line of the kiosk's 受付票.
- ``fees`` ({}): yen a copy per certificate type value; types left out cost DEFAULT_FEES.
- ``kiosk_certificates`` (every type): the certificate types the kiosk offers (may be empty).
- ``hours`` ({}): the weekly opening hours, ``{"mon": ["08:30", "17:15"], …}``; see
  app/domain/hours.py.
- ``hours_exceptions`` ([]): dated closed days and special hours (年末年始 …).
- ``enforce_hours`` (False): the kiosk shows 「受付時間外」 outside the opening hours. Off by
  default so that existing locations (and the demo town, whose hours are set) keep their kiosks
  open until a clerk turns it on; it is ignored while no weekday has hours.

`update_settings` validates every change (messages in Japanese, per form field), writes only
what changed, records before/after in the audit log and tells open staff screens.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from app.domain.certificates import CertificateType, fees_with_overrides
from app.domain.hours import (
    DateRule,
    HoursError,
    OpeningHours,
    Span,
    is_open,
    next_opening,
    parse_exception_lines,
    parse_exceptions_json,
    parse_weekly,
    weekly_groups,
    weekly_json,
)
from app.domain.registry import DeviceKind
from app.events import publish_on_commit
from app.models import Device, Location, Site
from app.services import audit
from app.services.audit import Actor
from app.services.certificates import location_settings, office_device_for

log = logging.getLogger("madoguchi.locations")

SETTINGS_KEYS: tuple[str, ...] = (
    "auto_print",
    "office_device",
    "receipt_footer",
    "fees",
    "kiosk_certificates",
    "hours",
    "hours_exceptions",
    "enforce_hours",
)
EXTRA_DEFAULTS: Mapping[str, Any] = {"hours": {}, "hours_exceptions": [], "enforce_hours": False}
MAX_FEE = 100_000
MAX_RECEIPT_TEXT = 200
FORM_ERROR = "_form"  # errors that belong to no single field

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class SettingsError(ValueError):
    """Settings that cannot be saved: Japanese messages per field ("fees.juminhyo", "hours.thu", …)."""

    def __init__(self, errors: Mapping[str, Sequence[str]]) -> None:
        self.errors: dict[str, list[str]] = {key: list(messages) for key, messages in errors.items()}
        super().__init__(" ".join(m for messages in self.errors.values() for m in messages))


# Reading ---------------------------------------------------------------------------------------


def settings_of(location: Location) -> dict[str, Any]:
    """Every setting of `location`, defaults filled in (location_settings plus the hours keys)."""
    settings = dict(EXTRA_DEFAULTS)
    settings.update(location_settings(location))
    return settings


def settings_version(location: Location) -> str:
    """A short fingerprint of the stored settings: a form carries it to notice a concurrent save."""
    canonical = json.dumps(location.settings or {}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def opening_hours(location: Location) -> OpeningHours:
    """The location's opening hours; HoursError when what is stored is malformed."""
    settings = settings_of(location)
    return OpeningHours.from_json(settings.get("hours"), settings.get("hours_exceptions"))


def kiosk_open(location: Location, now: datetime) -> bool:
    """Whether the location's kiosks take requests at `now`.

    Always True unless ``enforce_hours`` is on and some weekday has hours. Unreadable stored
    hours also count as open (logged): a typo must not shut residents out without a trace.
    """
    if not settings_of(location).get("enforce_hours"):
        return True
    try:
        hours = opening_hours(location)
    except HoursError as error:
        log.warning("location %s has unreadable opening hours (%s); kiosk kept open", location.code, error)
        return True
    return not hours.configured or is_open(hours, now)


def closed_context(location: Location | None, now: datetime) -> dict[str, Any] | None:
    """What the kiosk's 「受付時間外」 page shows, or None while the kiosk is open."""
    if location is None or kiosk_open(location, now):
        return None
    hours = opening_hours(location)  # readable: kiosk_open is True otherwise
    return {
        "location": location,
        "groups": weekly_groups(hours.weekly),
        "next_opening": next_opening(hours, now),
    }


@dataclass(frozen=True)
class LocationSummary:
    """One row of the locations list."""

    location: Location
    site: str
    settings: dict[str, Any]
    office_device: Device | None
    fees: dict[CertificateType, int]
    kiosk_types: list[CertificateType]
    hours: OpeningHours | None  # None: the stored hours cannot be read
    kiosk_open: bool

    @property
    def hour_groups(self) -> list[tuple[tuple[str, ...], Span | None]]:
        """Runs of weekdays with the same hours, for a short summary."""
        return weekly_groups(self.hours.weekly) if self.hours is not None else []


def list_locations(session: Session, now: datetime) -> list[LocationSummary]:
    sites = {site.id: site.name for site in session.exec(select(Site)).all()}
    rows: list[LocationSummary] = []
    for location in session.exec(select(Location).order_by(col(Location.site_id), col(Location.code))).all():
        settings = settings_of(location)
        try:
            fees = fees_with_overrides(settings.get("fees"))
        except ValueError:
            fees = fees_with_overrides()
        try:
            hours: OpeningHours | None = opening_hours(location)
        except HoursError:
            hours = None
        allowed = settings.get("kiosk_certificates") or []
        rows.append(
            LocationSummary(
                location=location,
                site=sites.get(location.site_id, ""),
                settings=settings,
                office_device=office_device_for(session, location),
                fees=fees,
                kiosk_types=[t for t in CertificateType if t.value in allowed],
                hours=hours,
                kiosk_open=kiosk_open(location, now),
            )
        )
    return rows


def back_office_devices(session: Session) -> list[tuple[Device, str]]:
    """Back-office terminals that may print certificates, with their location's name."""
    names = {loc.id: loc.name for loc in session.exec(select(Location)).all()}
    devices = session.exec(
        select(Device)
        .where(Device.kind == DeviceKind.BACK_OFFICE, col(Device.revoked).is_(False))
        .order_by(col(Device.code))
    ).all()
    return [(device, names.get(device.location_id, "")) for device in devices]


def default_office_device(session: Session, location_id: int) -> Device | None:
    """The terminal an empty ``office_device`` means: the location's first back-office one."""
    return session.exec(
        select(Device)
        .where(
            Device.location_id == location_id,
            Device.kind == DeviceKind.BACK_OFFICE,
            col(Device.revoked).is_(False),
        )
        .order_by(col(Device.id))
    ).first()


# Validation ------------------------------------------------------------------------------------


def _bool(value: object, key: str, message: str, errors: dict[str, list[str]]) -> bool | None:
    if isinstance(value, bool):
        return value
    errors[key] = [message]
    return None


def _office_device(session: Session, value: object, errors: dict[str, list[str]]) -> str | None:
    if not isinstance(value, str):
        errors["office_device"] = ["事務用プリンターの指定が正しくありません。"]
        return None
    code = value.strip()
    if not code:
        return ""
    device = session.exec(select(Device).where(Device.code == code)).first()
    if device is None:
        errors["office_device"] = [f"端末「{code}」は登録されていません。一覧から事務端末を選んでください。"]
        return None
    if device.kind != DeviceKind.BACK_OFFICE:
        errors["office_device"] = [
            f"端末「{code} {device.name}」は事務端末ではありません。証明書は事務端末のプリンターで印刷します。"
        ]
        return None
    if device.revoked:
        errors["office_device"] = [
            f"端末「{code} {device.name}」は停止されています。ほかの事務端末を選んでください。"
        ]
        return None
    return code


def _receipt_text(value: object, key: str, label: str, errors: dict[str, list[str]]) -> str | None:
    if not isinstance(value, str):
        errors[key] = [f"{label}の指定が正しくありません。"]
        return None
    text = value.strip()
    problems = []
    if _CONTROL.search(text):
        problems.append(f"{label}に改行やタブなどの制御文字は使えません。1行で入力してください。")
    if len(text) > MAX_RECEIPT_TEXT:
        problems.append(f"{label}は{MAX_RECEIPT_TEXT}文字以内にしてください（いまは{len(text)}文字）。")
    if problems:
        errors[key] = problems
        return None
    return text


def _fee(value: object, label: str) -> int:
    """One fee in yen from an int or a typed text (「1,000」「３００円」 are fine)."""
    if isinstance(value, bool):
        raise ValueError(f"{label}の手数料の指定が正しくありません。")
    if isinstance(value, int):
        amount = value
    elif isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip().replace(",", "").removesuffix("円").strip()
        if not text:
            raise ValueError(f"{label}の手数料を入力してください（無料なら 0）。")
        if not text.isdigit():
            raise ValueError(
                f"{label}の手数料「{value.strip()}」は金額ではありません。円単位の整数で入力してください（例 300）。"
            )
        amount = int(text)
    else:
        raise ValueError(f"{label}の手数料の指定が正しくありません。")
    if not 0 <= amount <= MAX_FEE:
        raise ValueError(f"{label}の手数料は0円から{MAX_FEE:,}円までにしてください。")
    return amount


def _fees(value: object, errors: dict[str, list[str]]) -> dict[str, int] | None:
    if not isinstance(value, Mapping):
        errors["fees"] = ["手数料の指定が正しくありません。"]
        return None
    fees: dict[str, int] = {}
    ok = True
    for key, raw in value.items():
        try:
            kind = CertificateType(str(key))
        except ValueError:
            errors["fees"] = [f"証明書の種類「{key}」はありません。"]
            ok = False
            continue
        try:
            fees[kind.value] = _fee(raw, kind.label_ja)
        except ValueError as error:
            errors[f"fees.{kind.value}"] = [str(error)]
            ok = False
    return {t.value: fees[t.value] for t in CertificateType if t.value in fees} if ok else None


def _kiosk_certificates(value: object, errors: dict[str, list[str]]) -> list[str] | None:
    if isinstance(value, str) or not isinstance(value, Sequence):
        errors["kiosk_certificates"] = ["キオスクで交付する証明書の指定が正しくありません。"]
        return None
    known = {t.value for t in CertificateType}
    unknown = [str(v) for v in value if str(v) not in known]
    if unknown:
        errors["kiosk_certificates"] = [f"証明書の種類「{'、'.join(unknown)}」はありません。"]
        return None
    chosen = {str(v) for v in value}
    return [t.value for t in CertificateType if t.value in chosen]  # zero is fine: the kiosk says so


def _hours(value: object, errors: dict[str, list[str]]) -> dict[str, list[str]] | None:
    if not isinstance(value, Mapping):
        errors["hours"] = ["開庁時間の指定が正しくありません。"]
        return None
    try:
        return weekly_json(parse_weekly({str(k): v for k, v in value.items()}))
    except HoursError as error:
        errors.update(error.errors)
        return None


def _exceptions(value: object, errors: dict[str, list[str]]) -> list[dict[str, Any]] | None:
    try:
        rules: list[DateRule] = (
            parse_exception_lines(value) if isinstance(value, str) else parse_exceptions_json(value)
        )
    except HoursError as error:
        errors.update(error.errors)
        return None
    return [rule.to_json() for rule in rules]


def validate_changes(session: Session, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The changes normalized to what is stored; SettingsError with every problem found."""
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(changes) - set(SETTINGS_KEYS))
    if unknown:
        errors[FORM_ERROR] = [f"設定項目「{'、'.join(unknown)}」はありません。"]
    clean: dict[str, Any] = {}
    checks: dict[str, Any] = {
        "auto_print": lambda v: _bool(
            v,
            "auto_print",
            "印刷の方法を「自動印刷」か「職員が確認してから印刷」から選んでください。",
            errors,
        ),
        "enforce_hours": lambda v: _bool(
            v, "enforce_hours", "時間外のキオスクの扱いを選んでください。", errors
        ),
        "office_device": lambda v: _office_device(session, v, errors),
        "receipt_footer": lambda v: _receipt_text(v, "receipt_footer", "受付票の文言", errors),
        "fees": lambda v: _fees(v, errors),
        "kiosk_certificates": lambda v: _kiosk_certificates(v, errors),
        "hours": lambda v: _hours(v, errors),
        "hours_exceptions": lambda v: _exceptions(v, errors),
    }
    for key in SETTINGS_KEYS:
        if key in changes:
            value = checks[key](changes[key])
            if value is not None:
                clean[key] = value
    if errors:
        raise SettingsError(errors)
    return clean


# Writing ---------------------------------------------------------------------------------------


def update_settings(
    session: Session,
    actor: Actor,
    location_id: int,
    changes: Mapping[str, Any],
    *,
    expected_version: str | None = None,
) -> Location:
    """Validate and apply `changes` (settings key → new value) to one location.

    Values: ``auto_print`` / ``enforce_hours`` bool; ``office_device`` a device code or "";
    ``receipt_footer`` text; ``fees`` type → int or typed text (replaces all overrides);
    ``kiosk_certificates`` type values; ``hours`` weekday → (opens, closes) texts or None
    (replaces the week; missing days are closed); ``hours_exceptions`` the lines staff type, or
    the stored list. `expected_version` (settings_version when the form was opened) refuses to
    overwrite a colleague's save made in between.

    Raises SettingsError (nothing is written). Only changed keys are stored; a save that changes
    nothing is not logged. The caller commits.
    """
    location = session.exec(select(Location).where(Location.id == location_id).with_for_update()).first()
    if location is None:
        raise SettingsError({FORM_ERROR: ["窓口が見つかりません。"]})
    if expected_version is not None and expected_version != settings_version(location):
        raise SettingsError(
            {
                FORM_ERROR: [
                    "この画面を開いた後に、ほかの職員がこの窓口の設定を変更しました。"
                    "いまの設定を確かめてから、もう一度「保存」を押してください。"
                ]
            }
        )
    clean = validate_changes(session, changes)
    before = settings_of(location)
    after = {**before, **clean}
    if after.get("enforce_hours") and {"enforce_hours", "hours"} & clean.keys():
        weekly = after.get("hours") or {}
        if not isinstance(weekly, Mapping) or not any(weekly.values()):
            raise SettingsError(
                {"enforce_hours": ["キオスクを時間外に休止するには、開庁時間を1日以上入力してください。"]}
            )
    changed = [key for key in SETTINGS_KEYS if key in clean and before.get(key) != after.get(key)]
    if not changed:
        return location
    location.settings = {**(location.settings or {}), **{key: after[key] for key in changed}}
    session.add(location)
    audit.record(
        session,
        actor,
        "location.settings",
        target_type="location",
        target_id=location_id,
        detail={
            "location": location.code,
            "name": location.name,
            "before": {key: before.get(key) for key in changed},
            "after": {key: after[key] for key in changed},
        },
    )
    publish_on_commit(
        session,
        "staff",
        "location.settings",
        {"location_id": location_id, "location": location.name, "changed": changed},
    )
    return location


__all__ = [
    "EXTRA_DEFAULTS",
    "FORM_ERROR",
    "MAX_FEE",
    "MAX_RECEIPT_TEXT",
    "SETTINGS_KEYS",
    "LocationSummary",
    "SettingsError",
    "back_office_devices",
    "closed_context",
    "default_office_device",
    "kiosk_open",
    "list_locations",
    "opening_hours",
    "settings_of",
    "settings_version",
    "update_settings",
    "validate_changes",
]
