"""Resident kiosk screens (touch): choose → card + PIN → options → confirm → receipt.

Each kiosk tablet opens /kiosk/<terminal code>/. Pages are full pages (a reload always works);
the PIN keypad and the inactivity timer are small scripts in static/js/kiosk.js. The PIN is
posted once, handed to the terminal's bridge in memory and forgotten (app/services/kiosk.py).
"""

from __future__ import annotations

import binascii
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from app import i18n
from app.config import Settings
from app.db import Database
from app.domain.certificates import CertificateType, total_fee
from app.domain.registry import DeviceKind
from app.integrations.jpki import (
    CrlRevocationChecker,
    RevocationChecker,
    SerialListRevocationChecker,
    TrustStore,
)
from app.models import CertificateRequest, Device, KioskSession, Location, Resident
from app.services import card_face, kiosk as kiosk_service
from app.services.certificates import location_settings, reception_label
from app.services.kiosk import CardResult, Choice, KioskError
from app.web.guards import client_ip
from app.web.htmx import client_redirect, is_htmx
from app.web.templating import FURIGANA_COOKIE, VOICE_COOKIE

log = logging.getLogger("madoguchi.kiosk")
KIOSK_COOKIE = "madoguchi_kiosk"


# Card checking configuration -------------------------------------------------------------------


class CardChecks:
    """Trust roots and the revocation checker, built from settings on first use (files may appear
    after start-up, e.g. the demo CA) and rebuilt when a file changes."""

    def __init__(self, settings: Settings) -> None:
        self.roots = settings.paths(settings.jpki_trust_roots)
        self.crls = settings.paths(settings.jpki_crls)
        self.serials = settings.paths(settings.jpki_revoked_serials)
        self._built: tuple[tuple[float, ...], TrustStore, RevocationChecker] | None = None

    def _stamp(self) -> tuple[float, ...]:
        return tuple(
            p.stat().st_mtime if p.exists() else -1.0 for p in (*self.roots, *self.crls, *self.serials)
        )

    def get(self) -> tuple[TrustStore, RevocationChecker] | None:
        if not self.roots or not (self.crls or self.serials):
            return None
        stamp = self._stamp()
        if self._built is None or self._built[0] != stamp:
            try:
                trust = TrustStore.from_pem_files(self.roots)
                checker: RevocationChecker = (
                    CrlRevocationChecker(self.crls, trust)
                    if self.crls
                    else SerialListRevocationChecker(self.serials[0])
                )
            except (OSError, ValueError) as error:
                log.error("card checks are not usable: %s", error)
                return None
            self._built = (stamp, trust, checker)
        return self._built[1], self._built[2]


# Helpers ---------------------------------------------------------------------------------------


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _device(session: Session, code: str) -> Device:
    device = session.exec(select(Device).where(Device.code == code)).first()
    if device is None or device.kind not in (DeviceKind.KIOSK, DeviceKind.COUNTER) or device.revoked:
        raise HTTPException(status_code=404)
    return device


def _render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    response: Response = request.app.state.templates.TemplateResponse(
        request, f"kiosk/{template}", {"lang": i18n.current_language(), **context}, status_code=status
    )
    return response


def _to(request: Request, code: str, step: str) -> Response:
    url = f"/kiosk/{code}/{step}" if step else f"/kiosk/{code}/"
    if is_htmx(request):
        return client_redirect(url)
    return RedirectResponse(url, status_code=303)


def _types_for(location: Location | None) -> list[CertificateType]:
    allowed = location_settings(location)["kiosk_certificates"] if location else []
    return [t for t in CertificateType if t.value in allowed]


@dataclass
class Walk:
    device: Device
    location: Location | None
    row: KioskSession | None


def _walk(request: Request, session: Session) -> Walk:
    device = _device(session, request.path_params["code"])
    location = session.get(Location, device.location_id)
    row = kiosk_service.load(session, device, request.cookies.get(KIOSK_COOKIE))
    return Walk(device, location, row)


# Screens ---------------------------------------------------------------------------------------


def choose_terminal(request: Request) -> Response:
    """/kiosk/: which kiosk is this tablet? (set once when the tablet is installed)"""
    with _db(request).session() as session:
        devices = session.exec(
            select(Device)
            .where(
                col(Device.kind).in_([DeviceKind.KIOSK, DeviceKind.COUNTER]), col(Device.revoked).is_(False)
            )
            .order_by(col(Device.code))
        ).all()
        locations = {loc.id: loc.name for loc in session.exec(select(Location)).all()}
    return _render(request, "terminals.html", {"devices": devices, "locations": locations})


def start(request: Request) -> Response:
    from app.models._types import utcnow
    from app.services.locations import closed_context  # opening hours: the closed page

    with _db(request).write_session() as session:
        walk = _walk(request, session)
        if walk.row is not None:
            kiosk_service.wipe(session, walk.row)
        session.commit()
        types = _types_for(walk.location)
        closed = closed_context(walk.location, utcnow())
    request.state.walk_reset = True  # the switches start off for the next resident
    if closed is not None:
        return _render(request, "closed.html", {"code": walk.device.code, **closed})
    response = _render(request, "start.html", {"code": walk.device.code, "types": types})
    response.delete_cookie(KIOSK_COOKIE, path="/kiosk/")
    response.delete_cookie(FURIGANA_COOKIE, path="/kiosk/")  # the next resident starts without
    response.delete_cookie(VOICE_COOKIE, path="/kiosk/")
    return response


async def begin(request: Request) -> Response:
    form = await request.form()
    code = request.path_params["code"]
    try:
        kind = CertificateType(str(form.get("type", "")))
    except ValueError:
        return _to(request, code, "")

    def _begin() -> str | None:
        with _db(request).write_session() as session:
            walk = _walk(request, session)
            if kind not in _types_for(walk.location):
                return None
            cookie = kiosk_service.begin(session, walk.device, kind, i18n.current_language())
            session.commit()
            return cookie

    cookie = await run_in_threadpool(_begin)
    if cookie is None:
        return _to(request, code, "")
    return with_walk_cookie(request, _to(request, code, "card"), cookie)


def with_walk_cookie(request: Request, response: Response, cookie: str) -> Response:
    """The kiosk walk's opaque cookie (HttpOnly, this kiosk's paths only)."""
    response.set_cookie(
        KIOSK_COOKIE,
        cookie,
        httponly=True,
        samesite="strict",
        path="/kiosk/",
        secure=request.app.state.settings.cookie_secure,
    )
    return response


def card(request: Request) -> Response:
    """Place the card and type the PIN. Also shows why the last try did not work."""
    with _db(request).session() as session:
        walk = _walk(request, session)
        if walk.row is None:
            return _to(request, walk.device.code, "")
        card_present = bool((walk.device.status or {}).get("card_reader", {}).get("card"))
        return _render(
            request,
            "card.html",
            {
                "code": walk.device.code,
                "type": CertificateType(walk.row.certificate_type),
                "error": walk.row.result.get("error", ""),
                "tries_left": walk.row.result.get("tries_left"),
                "card_present": card_present,
                "step": walk.row.step,
            },
        )


def card_state(request: Request) -> Response:
    """Polled by the card screen: is a card on the reader (from the bridge's card events)?"""
    with _db(request).session() as session:
        device = _device(session, request.path_params["code"])
        present = bool((device.status or {}).get("card_reader", {}).get("card"))
    return JSONResponse({"card": present})


async def pin(request: Request) -> Response:
    form = await request.form()
    code = request.path_params["code"]
    value = str(form.get("pin", ""))
    checks: CardChecks = request.app.state.card_checks

    def _send() -> str:
        with _db(request).write_session() as session:
            walk = _walk(request, session)
            if walk.row is None:
                return "expired"
            if checks.get() is None:
                walk.row.result = {"error": "not_configured"}
                session.add(walk.row)
                session.commit()
                return "card"
            try:
                kiosk_service.send_pin(session, walk.row, walk.device, value)
            except KioskError as error:
                walk.row.result = {"error": error.code}
                session.add(walk.row)
                session.commit()
                return "card"
            session.commit()
            return "wait"

    outcome = await run_in_threadpool(_send)
    if outcome == "expired":
        return _to(request, code, "")
    return _to(request, code, "wait" if outcome == "wait" else "card")


def wait(request: Request) -> Response:
    """Checking the card; polls itself until the bridge has answered (or gives up)."""
    # Polled every second while the card is checked: read only, and write just once on a timeout.
    with _db(request).session() as session:
        walk = _walk(request, session)
        if walk.row is None:
            return _to(request, walk.device.code, "")
        row = walk.row
        timed_out = kiosk_service.command_timed_out(row)
    if timed_out:
        with _db(request).write_session() as session:
            fresh = session.get(KioskSession, row.id)
            if fresh is not None and kiosk_service.command_timed_out(fresh):
                fresh.step = "card"
                fresh.result = {"error": "no_answer"}
                session.add(fresh)
                session.commit()
                row = fresh
    if row.step == "authenticating":
        return _render(request, "wait.html", {"code": walk.device.code})
    next_step = {"card": "card", "refused": "refused", "options": "options"}.get(row.step, "")
    return _to(request, walk.device.code, next_step)


def refused(request: Request) -> Response:
    with _db(request).session() as session:
        walk = _walk(request, session)
        if walk.row is None:
            return _to(request, walk.device.code, "")
        return _render(request, "refused.html", {"code": walk.device.code, "result": walk.row.result})


def options(request: Request, *, refusals: list[Any] | None = None, error: str = "") -> Response:
    with _db(request).session() as session:
        walk = _walk(request, session)
        if walk.row is None or walk.row.resident_id is None:
            return _to(request, walk.device.code, "")
        applicant = session.get(Resident, walk.row.resident_id)
        assert applicant is not None
        members = kiosk_service.household_of(session, applicant)
        kind = CertificateType(walk.row.certificate_type)
        fees = location_settings(walk.location)["fees"] if walk.location else {}
        return _render(
            request,
            "options.html",
            {
                "code": walk.device.code,
                "type": kind,
                "applicant": applicant,
                "members": [m for m in members if m.status.value in ("resident",)],
                "chosen": walk.row.options,
                "unit_fee": total_fee(kind, 1, fees),
                "refusals": refusals or [],
                "error": error,
            },
            status=422 if (refusals or error) else 200,
        )


async def options_submit(request: Request) -> Response:
    form = await request.form()
    code = request.path_params["code"]
    whole = form.get("scope", "all") == "all"
    try:
        member_ids = None if whole else [int(str(v)) for v in form.getlist("member")]
        copies = int(str(form.get("copies", "1")))
    except ValueError:
        return await run_in_threadpool(options, request, error="copies")
    choice = Choice(
        member_ids=member_ids,
        show_head_relationship=form.get("head_relationship") == "on",
        show_honseki=form.get("honseki") == "on",
        show_my_number=form.get("my_number") == "on",
        show_resident_code=form.get("resident_code") == "on",
        copies=copies,
    )

    def _choose() -> tuple[str, list[Any]]:
        with _db(request).write_session() as session:
            walk = _walk(request, session)
            if walk.row is None:
                return "expired", []
            try:
                refusals = kiosk_service.choose(session, walk.row, choice)
            except KioskError as error:
                return error.code, []
            session.commit()
            return ("refused" if refusals else "ok"), refusals

    outcome, refusals = await run_in_threadpool(_choose)
    if outcome == "expired":
        return _to(request, code, "")
    if outcome == "ok":
        return _to(request, code, "confirm")
    return await run_in_threadpool(
        options, request, refusals=refusals, error=outcome if outcome != "refused" else ""
    )


def confirm_page(request: Request) -> Response:
    with _db(request).session() as session:
        walk = _walk(request, session)
        if walk.row is None or walk.row.step != "confirm" or walk.row.resident_id is None:
            return _to(request, walk.device.code, "")
        applicant = session.get(Resident, walk.row.resident_id)
        assert applicant is not None
        kind = CertificateType(walk.row.certificate_type)
        member_ids = walk.row.options.get("member_ids")
        members = [
            m
            for m in kiosk_service.household_of(session, applicant)
            if member_ids is None or m.id in member_ids
        ]
        copies = int(walk.row.options.get("copies", 1))
        fees = location_settings(walk.location)["fees"] if walk.location else {}
        return _render(
            request,
            "confirm.html",
            {
                "code": walk.device.code,
                "type": kind,
                "applicant": applicant,
                "members": members if kind == CertificateType.JUMINHYO else [applicant],
                "options": walk.row.options,
                "shown_items": [
                    name
                    for name in ("head_relationship", "honseki", "my_number", "resident_code")
                    if walk.row.options.get(f"show_{name}")
                ],
                "copies": copies,
                "fee": total_fee(kind, copies, fees),
                "idempotency_key": secrets.token_urlsafe(16),
            },
        )


async def confirm_submit(request: Request) -> Response:
    form = await request.form()
    code = request.path_params["code"]
    key = str(form.get("idempotency_key", ""))[:40]
    if not key:
        return _to(request, code, "confirm")

    def _confirm() -> bool:
        with _db(request).write_session() as session:
            walk = _walk(request, session)
            if walk.row is None:
                return False
            try:
                kiosk_service.confirm(session, walk.row, walk.device, key)
            except KioskError:
                return False
            session.commit()
            return True

    ok = await run_in_threadpool(_confirm)
    return _to(request, code, "done" if ok else "")


def done(request: Request) -> Response:
    with _db(request).session() as session:
        walk = _walk(request, session)
        if walk.row is None or walk.row.request_id is None:
            return _to(request, walk.device.code, "")
        certificate_request = session.get(CertificateRequest, walk.row.request_id)
        assert certificate_request is not None
        return _render(
            request,
            "done.html",
            {
                "code": walk.device.code,
                "number": reception_label(certificate_request.reception_number),
                "certificate_request": certificate_request,
            },
        )


async def cancel(request: Request) -> Response:
    code = request.path_params["code"]

    def _cancel() -> None:
        with _db(request).write_session() as session:
            walk = _walk(request, session)
            if walk.row is not None:
                kiosk_service.wipe(session, walk.row)
            session.commit()

    await run_in_threadpool(_cancel)
    response = _to(request, code, "")
    response.delete_cookie(KIOSK_COOKIE, path="/kiosk/")
    return response


# The bridge's answer (device API) ---------------------------------------------------------------


async def api_command_result(request: Request) -> Response:
    """POST /devices/api/commands/{command_id}: the bridge's answer to a card command.

    Dispatched by the step of the kiosk session that sent the command: "authenticating" (the
    certificate kiosk's ``card.authenticate``) or "reading_face" (``card.read_face``)."""
    from app.web.devices import _device as authenticated_device, _unauthorized

    device = await authenticated_device(request)
    if device is None:
        return _unauthorized()
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"error": "bad_request"}, status_code=400)
    answer: dict[str, Any] = body if isinstance(body, dict) else {}
    checks: CardChecks = request.app.state.card_checks
    command_id = request.path_params["command_id"]
    ip = client_ip(request)

    def _receive() -> str:
        with _db(request).write_session() as session:
            step = kiosk_service.command_step(session, device, command_id)
            if step == card_face.STEP_READING_FACE:
                configured = checks.get()
                accepted = card_face.receive_face_result(
                    session,
                    device,
                    command_id,
                    card_face.FaceResult.from_json(answer),
                    trust=configured[0] if configured else None,
                    revocation=configured[1] if configured else None,
                    ip=ip,
                )
            else:
                try:
                    result = CardResult.from_json(answer)
                except (ValueError, TypeError, binascii.Error):
                    return "bad_request"
                accepted = kiosk_service.receive_card_result(
                    session, device, command_id, result, checks=checks.get(), ip=ip
                )
            session.commit()
            return "accepted" if accepted else "unknown_command"

    outcome = await run_in_threadpool(_receive)
    if outcome == "bad_request":
        return JSONResponse({"error": "bad_request"}, status_code=400)
    if outcome == "unknown_command":
        return JSONResponse({"error": "unknown_command"}, status_code=404)
    return JSONResponse({"accepted": True})
