"""The device-bridge API (bearer tokens, no cookies) and the device screens for staff and admins.

API, all with `Authorization: Bearer <token>`:
- GET  /devices/api/stream            SSE: hello, every unfinished job (redelivery), then live jobs,
                                      cancels and commands
- POST /devices/api/jobs/{id}         {"attempt", "state", "reason"} → {"state"}; 409 stale
- GET  /devices/api/jobs/{id}/document  the PDF of an office job
- POST /devices/api/heartbeat         {"status": {...}} every 15 s
- POST /devices/api/events            {"type": "scan" | "card_inserted" | "card_removed", "data"}
- POST /devices/api/commands/{id}     the answer to a card command (app/web/kiosk.py
                                      `api_command_result`; docs/devices.md "Kiosk card commands")
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from pydantic import BaseModel, Field, ValidationError
from sqlmodel import col, select
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from app.db import Database
from app.domain.devices import PrinterKind, PrintJobState
from app.domain.registry import DeviceKind
from app.events import EventHub, Reload, publish_on_commit
from app.events.types import device_topic
from app.models import Device, Location, PrintJob, Site
from app.services import devices as device_service
from app.services.devices import DeviceError
from app.storage import LocalObjectStore, ObjectNotFound
from app.web.guards import client_ip, user_of

SEND_TIMEOUT_SECONDS: Final = 30.0


# Device authentication ------------------------------------------------------------------------


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _device(request: Request) -> Device | None:
    token = _bearer(request)
    if not token:
        return None
    db: Database = request.app.state.db

    def _lookup() -> Device | None:
        with db.read_session() as session:
            return device_service.authenticate(session, token)

    return await run_in_threadpool(_lookup)


def _unauthorized() -> Response:
    return JSONResponse(
        {"error": "unauthorized", "message": "機器トークンが無効です。管理画面で機器を確認してください。"},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="madoguchi-device"'},
    )


_Body = TypeVar("_Body", bound=BaseModel)


class _JobReport(BaseModel):
    attempt: int = Field(ge=1)
    state: PrintJobState
    reason: str = Field(default="", max_length=255)


class _Heartbeat(BaseModel):
    status: dict[str, Any] = Field(default_factory=dict)


class _DeviceEvent(BaseModel):
    type: str = Field(pattern=r"^(scan|card_inserted|card_removed)$")
    data: dict[str, Any] = Field(default_factory=dict)


async def _device_and_body(request: Request, model: type[_Body]) -> tuple[Device, _Body] | Response:
    """The calling device and its JSON body, or the 401/400 answer to send instead."""
    device = await _device(request)
    if device is None:
        return _unauthorized()
    try:
        return device, model.model_validate(json.loads(await request.body() or b"{}"))
    except (ValueError, ValidationError) as error:
        return JSONResponse({"error": "bad_request", "detail": str(error)[:500]}, status_code=400)


# API endpoints --------------------------------------------------------------------------------


async def api_stream(request: Request) -> Response:
    device = await _device(request)
    if device is None:
        return _unauthorized()
    hub: EventHub = request.app.state.hub
    db: Database = request.app.state.db
    ping: int = request.app.state.settings.sse_ping_seconds
    return EventSourceResponse(
        _device_stream(hub, db, device),
        ping=ping,
        send_timeout=SEND_TIMEOUT_SECONDS,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _device_stream(hub: EventHub, db: Database, device: Device) -> AsyncIterator[ServerSentEvent]:
    assert device.id is not None
    device_id = device.id
    topic = device_topic(device_id)
    sent: set[tuple[int, int]] = set()
    # Listen first, then read the outbox: a job committed in between arrives live, and `sent`
    # drops the copy.
    async with hub.connect(lambda t: t == topic) as stream:
        hello = {
            "device": {"id": device_id, "code": device.code, "name": device.name, "kind": device.kind.value},
            "server_time": datetime.now(UTC).isoformat(),
        }
        yield ServerSentEvent(json.dumps(hello, ensure_ascii=False), event="hello")
        for pending in await run_in_threadpool(_deliver_pending, db, device_id):
            sent.add((pending["id"], pending["attempt"]))
            yield ServerSentEvent(json.dumps(pending, ensure_ascii=False), event="job")
        async for item in stream:
            if isinstance(item, Reload):
                return  # the bridge reconnects and gets the outbox again
            if item.type == "print.job":
                key = (int(item.data["job_id"]), int(item.data["attempt"]))
                if key in sent:
                    continue
                message: dict[str, Any] | None = await run_in_threadpool(
                    functools.partial(_deliver_one, db, device_id, key[0], key[1])
                )
                if message is not None:
                    sent.add(key)
                    yield ServerSentEvent(
                        json.dumps(message, ensure_ascii=False), id=str(item.id), event="job"
                    )
            elif item.type == "print.cancel":
                yield ServerSentEvent(json.dumps(item.data), id=str(item.id), event="cancel")
            elif item.type == "device.disconnect":
                return
            elif item.type == "device.command":
                # Transient commands (id 0) carry no id: they are never replayed.
                yield ServerSentEvent(
                    json.dumps(item.data, ensure_ascii=False),
                    id=str(item.id) if not item.transient else None,
                    event="command",
                )


def _deliver_pending(db: Database, device_id: int) -> list[dict[str, Any]]:
    with db.write_session() as session:
        jobs = device_service.pending_jobs(session, device_id)
        device_service.mark_delivered(session, jobs)
        messages = [device_service.job_message(job) for job in jobs]
        session.commit()
    return messages


def _deliver_one(db: Database, device_id: int, job_id: int, attempt: int) -> dict[str, Any] | None:
    with db.write_session() as session:
        message = device_service.deliver_job(session, device_id, job_id, attempt)
        session.commit()
    return message


async def api_job_report(request: Request) -> Response:
    checked = await _device_and_body(request, _JobReport)
    if isinstance(checked, Response):
        return checked
    device, body = checked
    job_id = int(request.path_params["job_id"])
    db: Database = request.app.state.db

    def _apply() -> device_service.ReportResult | None:
        with db.write_session() as session:
            result = device_service.report(
                session, device, job_id, attempt=body.attempt, state=body.state, reason=body.reason
            )
            session.commit()
            return result

    result = await run_in_threadpool(_apply)
    if result is None:
        return JSONResponse({"error": "not_found"}, status_code=404)
    if result.stale:
        return JSONResponse({"error": "stale", "state": result.state.value}, status_code=409)
    return JSONResponse({"state": result.state.value})


async def api_job_document(request: Request) -> Response:
    device = await _device(request)
    if device is None:
        return _unauthorized()
    job_id = int(request.path_params["job_id"])
    db: Database = request.app.state.db
    store: LocalObjectStore = request.app.state.objects

    def _read() -> bytes | Response:
        with db.read_session() as session:
            job = session.get(PrintJob, job_id)
        if job is None or job.device_id != device.id or job.printer != PrinterKind.OFFICE:
            return JSONResponse({"error": "not_found"}, status_code=404)
        try:
            return store.get(str(job.payload.get("document_key", "")))
        except (ObjectNotFound, ValueError):
            return JSONResponse({"error": "document_missing"}, status_code=404)

    # In a thread: the job's row and the file are blocking reads the event loop must not wait on.
    data = await run_in_threadpool(_read)
    if isinstance(data, Response):
        return data
    return Response(data, media_type="application/pdf", headers={"Cache-Control": "no-store"})


async def api_heartbeat(request: Request) -> Response:
    checked = await _device_and_body(request, _Heartbeat)
    if isinstance(checked, Response):
        return checked
    device, body = checked
    db: Database = request.app.state.db

    def _beat() -> None:
        with db.write_session() as session:
            row = session.get(Device, device.id)
            assert row is not None
            device_service.heartbeat(session, row, body.status)
            session.commit()

    await run_in_threadpool(_beat)
    return JSONResponse({"server_time": datetime.now(UTC).isoformat()})


async def api_event(request: Request) -> Response:
    checked = await _device_and_body(request, _DeviceEvent)
    if isinstance(checked, Response):
        return checked
    device, body = checked
    db: Database = request.app.state.db

    def _publish() -> None:
        with db.write_session() as session:
            if body.type in ("card_inserted", "card_removed"):
                row = session.get(Device, device.id)
                assert row is not None
                status = dict(row.status or {})
                reader = dict(status.get("card_reader") or {})
                reader["card"] = body.type == "card_inserted"
                status["card_reader"] = reader
                row.status = status  # the kiosk's card screen reads this
                session.add(row)
            publish_on_commit(
                session,
                f"location:{device.location_id}",
                f"device.{body.type}",
                {"device_id": device.id, "code": device.code, **body.data},
            )
            session.commit()

    await run_in_threadpool(_publish)
    return JSONResponse({"accepted": True}, status_code=202)


# Screens --------------------------------------------------------------------------------------


def _device_rows(db: Database) -> list[dict[str, Any]]:
    with db.session() as session:
        devices = session.exec(select(Device).order_by(col(Device.code))).all()
        locations = {loc.id: loc for loc in session.exec(select(Location)).all()}
        sites = {site.id: site for site in session.exec(select(Site)).all()}
        rows = []
        for device in devices:
            location = locations.get(device.location_id)
            site = sites.get(location.site_id) if location else None
            rows.append(
                {
                    "device": device,
                    "location": location.name if location else "",
                    "site": site.name if site else "",
                    "online": device_service.is_online(device),
                    "registered": bool(device.token_hash),
                }
            )
    return rows


def staff_devices(request: Request) -> Response:
    db: Database = request.app.state.db
    with db.session() as session:
        jobs = session.exec(select(PrintJob).order_by(col(PrintJob.id).desc()).limit(50)).all()
    rows = _device_rows(db)
    codes = {row["device"].id: row["device"].code for row in rows}
    response: Response = request.app.state.templates.TemplateResponse(
        request, "staff/devices.html", {"rows": rows, "jobs": jobs, "codes": codes}
    )
    return response


async def staff_job_action(request: Request) -> Response:
    job_id = int(request.path_params["job_id"])
    action = request.path_params["action"]
    if action not in ("cancel", "retry"):
        raise HTTPException(status_code=404)
    actor = user_of(request).actor(client_ip(request))
    db: Database = request.app.state.db

    def _act() -> str:
        with db.write_session() as session:
            try:
                if action == "cancel":
                    device_service.cancel(session, actor, job_id)
                else:
                    device_service.retry(session, actor, job_id)
            except DeviceError as error:
                session.rollback()
                return str(error)
            session.commit()
            return ""

    error = await run_in_threadpool(_act)
    if error:
        response: Response = request.app.state.templates.TemplateResponse(
            request, "errors/400.html", {"message": error}, status_code=422
        )
        return response
    return RedirectResponse(request.url_for("staff:devices"), status_code=303)


def admin_devices(request: Request, *, token: str = "", token_device: str = "", error: str = "") -> Response:
    db: Database = request.app.state.db
    with db.session() as session:
        locations = session.exec(select(Location).order_by(col(Location.code))).all()
    response: Response = request.app.state.templates.TemplateResponse(
        request,
        "admin/devices.html",
        {
            "rows": _device_rows(db),
            "locations": locations,
            "kinds": list(DeviceKind),
            "new_token": token,
            "token_device": token_device,
            "error": error,
        },
        status_code=422 if error else 200,
    )
    return response


async def admin_device_register(request: Request) -> Response:
    form = await request.form()
    actor = user_of(request).actor(client_ip(request))
    db: Database = request.app.state.db

    def _register() -> tuple[str, str, str]:
        with db.write_session() as session:
            try:
                kind = DeviceKind(str(form.get("kind", "kiosk")))
                device, token = device_service.register(
                    session,
                    actor,
                    location_id=int(str(form.get("location_id", "0")) or 0),
                    code=str(form.get("code", ""))[:8],
                    name=str(form.get("name", ""))[:64],
                    kind=kind,
                )
            except (DeviceError, ValueError) as error:
                session.rollback()
                message = str(error) if isinstance(error, DeviceError) else "入力内容を確認してください。"
                return "", "", message
            session.commit()
            return token, device.code, ""

    token, code, error = await run_in_threadpool(_register)
    return await run_in_threadpool(admin_devices, request, token=token, token_device=code, error=error)


async def admin_device_action(request: Request) -> Response:
    device_id = int(request.path_params["device_id"])
    action = request.path_params["action"]
    if action not in ("rotate", "revoke", "test-print"):
        raise HTTPException(status_code=404)
    actor = user_of(request).actor(client_ip(request))
    db: Database = request.app.state.db

    def _act() -> tuple[str, str, str]:
        with db.write_session() as session:
            try:
                token = ""
                if action == "rotate":
                    token = device_service.rotate_token(session, actor, device_id)
                elif action == "revoke":
                    device_service.revoke(session, actor, device_id)
                else:
                    _test_print(session, device_id)
                device = session.get(Device, device_id)
                code = device.code if device else ""
            except DeviceError as error:
                session.rollback()
                return "", "", str(error)
            session.commit()
            return token, code, ""

    token, code, error = await run_in_threadpool(_act)
    if token or error:
        return await run_in_threadpool(admin_devices, request, token=token, token_device=code, error=error)
    return RedirectResponse(request.url_for("admin:devices"), status_code=303)


def _test_print(session: Any, device_id: int) -> None:
    device = session.get(Device, device_id)
    if device is None:
        raise DeviceError("機器が見つかりません。")
    now = datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M")
    device_service.enqueue(
        session,
        device_id=device_id,
        printer=PrinterKind.RECEIPT,
        title=f"テスト印刷 {device.code}",
        payload={
            "receipt": {
                "title": "テスト印刷 / Test print",
                "number": device.code,
                "lines": [f"端末 {device.code} {device.name}", now, "この用紙が出れば印刷は正常です。"],
                "qr": f"madoguchi-test:{device.code}",
            }
        },
        source_type="test",
    )
