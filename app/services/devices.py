"""Devices (terminals running the device bridge) and the print-job outbox.

Tokens: an admin registers a device and is shown its token once; only a SHA-256 is stored.
Print jobs: written in the caller's transaction; the device's SSE stream is woken after commit
(topic `device:<id>`); the bridge reports each state by (job id, attempt); unfinished jobs are
delivered again on every reconnect. A staff retry starts a new attempt, so the bridge's journal,
keyed by (id, attempt), prints it again; a cancel or an expiry stops it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, update
from sqlmodel import Session, col, select

from app.domain.devices import FINAL_STATES, PrinterKind, PrintJobState, may_move
from app.domain.registry import DeviceKind
from app.events import publish_on_commit
from app.models import Device, Location, PrintJob
from app.models._types import utcnow
from app.services import audit
from app.services.audit import Actor

TOKEN_PREFIX = "mdg_"
# A device is shown as online while its heartbeats keep coming (every 15 s; three missed = offline).
ONLINE_WINDOW = timedelta(seconds=45)
DEFAULT_JOB_LIFETIME = timedelta(hours=24)


class DeviceError(ValueError):
    """A request about devices that cannot be carried out; the message is Japanese."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def device_topic(device_id: int) -> str:
    return f"device:{device_id}"


def register(
    session: Session,
    actor: Actor,
    *,
    location_id: int,
    code: str,
    name: str,
    kind: DeviceKind,
) -> tuple[Device, str]:
    code = code.strip()
    if not code or not code.isalnum() or len(code) > 8:
        raise DeviceError("端末コードは英数字8文字以内で入力してください。")
    if session.get(Location, location_id) is None:
        raise DeviceError("設置場所が見つかりません。")
    if session.exec(select(Device).where(Device.code == code)).first() is not None:
        raise DeviceError(f"端末コード「{code}」はすでに使われています。")
    token = _new_token()
    device = Device(
        location_id=location_id,
        code=code,
        name=name.strip() or code,
        kind=kind,
        token_hash=hash_token(token),
        token_set_at=utcnow(),
    )
    session.add(device)
    session.flush()
    audit.record(
        session,
        actor,
        "device.register",
        target_type="device",
        target_id=device.id or "",
        detail={"code": code},
    )
    return device, token


def rotate_token(session: Session, actor: Actor, device_id: int) -> str:
    """A new token for a device (the old one stops working at once); also un-revokes it."""
    device = _get(session, device_id)
    token = _new_token()
    device.token_hash = hash_token(token)
    device.token_set_at = utcnow()
    device.revoked = False
    session.add(device)
    audit.record(session, actor, "device.rotate_token", target_type="device", target_id=device_id)
    publish_on_commit(session, device_topic(device_id), "device.disconnect", {"reason": "token rotated"})
    return token


def revoke(session: Session, actor: Actor, device_id: int) -> None:
    device = _get(session, device_id)
    device.revoked = True
    session.add(device)
    audit.record(session, actor, "device.revoke", target_type="device", target_id=device_id)
    publish_on_commit(session, device_topic(device_id), "device.disconnect", {"reason": "revoked"})
    publish_on_commit(session, "staff", "device.status", {"device_id": device_id, "revoked": True})


def _get(session: Session, device_id: int) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise DeviceError("機器が見つかりません。")
    return device


def authenticate(session: Session, token: str) -> Device | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    device = session.exec(select(Device).where(Device.token_hash == hash_token(token))).first()
    if device is None or device.revoked:
        return None
    return device


def is_online(device: Device, now: datetime | None = None) -> bool:
    return device.last_seen_at is not None and (now or utcnow()) - device.last_seen_at <= ONLINE_WINDOW


def heartbeat(
    session: Session, device: Device, status: dict[str, Any], *, now: datetime | None = None
) -> None:
    """Record that a device is alive and what its printers and reader say; staff screens hear of changes."""
    now = now or utcnow()
    was_online = is_online(device, now)
    changed = status != device.status or not was_online
    device.last_seen_at = now
    device.status = status
    session.add(device)
    if changed:
        assert device.id is not None
        publish_on_commit(
            session,
            "staff",
            "device.status",
            {"device_id": device.id, "code": device.code, "online": True, "status": status},
        )


def enqueue(
    session: Session,
    *,
    device_id: int,
    printer: PrinterKind,
    title: str,
    payload: dict[str, Any],
    copies: int = 1,
    options: dict[str, Any] | None = None,
    source_type: str = "",
    source_id: str = "",
    lifetime: timedelta = DEFAULT_JOB_LIFETIME,
) -> PrintJob:
    """Add a print job in the caller's transaction; the bridge hears of it after commit."""
    if not 1 <= copies <= 99:
        raise DeviceError("部数は1から99までです。")
    now = utcnow()
    job = PrintJob(
        device_id=device_id,
        printer=printer,
        title=title[:128],
        payload=payload,
        copies=copies,
        options=options or {},
        source_type=source_type,
        source_id=source_id,
        created_at=now,
        updated_at=now,
        expires_at=now + lifetime,
    )
    session.add(job)
    session.flush()
    assert job.id is not None
    publish_on_commit(
        session, device_topic(device_id), "print.job", {"job_id": job.id, "attempt": job.attempt}
    )
    publish_on_commit(session, "staff", "print.state", _job_event(job))
    return job


def _job_event(job: PrintJob) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "device_id": job.device_id,
        "state": job.state.value,
        "reason": job.reason,
        "title": job.title,
        "attempt": job.attempt,
    }


def job_message(job: PrintJob | Row[Any]) -> dict[str, Any]:
    """What the bridge receives for a job (a PrintJob, or a row with those columns)."""
    return {
        "id": job.id,
        "attempt": job.attempt,
        "printer": PrinterKind(job.printer).value,
        "title": job.title,
        "payload": job.payload,
        "copies": job.copies,
        "options": job.options,
    }


def pending_jobs(session: Session, device_id: int, *, now: datetime | None = None) -> list[PrintJob]:
    """Jobs to (re)deliver to a connecting bridge: unfinished and not expired, oldest first."""
    now = now or utcnow()
    rows = session.exec(
        select(PrintJob)
        .where(
            PrintJob.device_id == device_id,
            col(PrintJob.state).in_([PrintJobState.QUEUED, PrintJobState.DELIVERED, PrintJobState.PRINTING]),
        )
        .order_by(col(PrintJob.id))
    ).all()
    return [job for job in rows if job.expires_at is None or job.expires_at > now]


def mark_delivered(session: Session, jobs: list[PrintJob]) -> None:
    for job in jobs:
        job.deliveries += 1
        if job.state == PrintJobState.QUEUED:
            job.state = PrintJobState.DELIVERED
            job.updated_at = utcnow()
        session.add(job)


def deliver_job(session: Session, device_id: int, job_id: int, attempt: int) -> dict[str, Any] | None:
    """A job announced on the device's stream, as `mark_delivered` and `job_message` would give it:
    counted as delivered (queued → delivered) and its message, in one UPDATE … RETURNING (this runs
    for every job a bridge hears of live). None when it is not this device's, not this attempt, or
    finished. The caller commits."""
    table = PrintJob.__table__  # type: ignore[attr-defined]
    c = table.c
    mine = (c.id == job_id, c.device_id == device_id, c.attempt == attempt)
    message = (c.id, c.attempt, c.printer, c.title, c.payload, c.copies, c.options)
    row = session.execute(
        update(table)
        .where(*mine, c.state == PrintJobState.QUEUED)
        .values(deliveries=c.deliveries + 1, state=PrintJobState.DELIVERED, updated_at=utcnow())
        .returning(*message)
    ).first()
    if row is None:  # delivered before (a reconnect's outbox, or a second stream): count it only
        row = session.execute(
            update(table)
            .where(*mine, c.state.in_([PrintJobState.DELIVERED, PrintJobState.PRINTING]))
            .values(deliveries=c.deliveries + 1)
            .returning(*message)
        ).first()
    return job_message(row) if row is not None else None


@dataclass(frozen=True)
class ReportResult:
    state: PrintJobState
    stale: bool = False


def report(
    session: Session, device: Device, job_id: int, *, attempt: int, state: PrintJobState, reason: str = ""
) -> ReportResult | None:
    """Apply a bridge's report. None: not this device's job. stale: that attempt no longer counts."""
    job = session.get(PrintJob, job_id)
    if job is None or job.device_id != device.id:
        return None
    if attempt != job.attempt or job.state == PrintJobState.CANCELLED:
        return ReportResult(job.state, stale=True)
    reason = reason[:255]
    if may_move(job.state, state):
        job.state = state
        job.reason = reason
        job.updated_at = utcnow()
        if state in FINAL_STATES:
            job.finished_at = job.updated_at
    elif state == job.state and reason != job.reason:
        job.reason = reason  # e.g. 「用紙切れ」 while the job waits at the printer
        job.updated_at = utcnow()
    else:
        return ReportResult(job.state)
    session.add(job)
    publish_on_commit(session, "staff", "print.state", _job_event(job))
    if job.state == PrintJobState.DONE and job.source_type == "certificate_issue":
        from app.services.certificates import on_print_job_done  # the request follows its print job

        on_print_job_done(session, job)
    return ReportResult(job.state)


def cancel(session: Session, actor: Actor, job_id: int) -> PrintJob:
    job = session.get(PrintJob, job_id)
    if job is None:
        raise DeviceError("印刷ジョブが見つかりません。")
    if job.state in FINAL_STATES:
        raise DeviceError("終了した印刷ジョブは取り消せません。")
    job.state = PrintJobState.CANCELLED
    job.reason = "職員が取り消しました"
    job.finished_at = job.updated_at = utcnow()
    session.add(job)
    audit.record(session, actor, "print.cancel", target_type="print_job", target_id=job_id)
    publish_on_commit(
        session, device_topic(job.device_id), "print.cancel", {"job_id": job_id, "attempt": job.attempt}
    )
    publish_on_commit(session, "staff", "print.state", _job_event(job))
    return job


def retry(session: Session, actor: Actor, job_id: int) -> PrintJob:
    """Print a failed, cancelled or expired job again, as a new attempt."""
    job = session.get(PrintJob, job_id)
    if job is None:
        raise DeviceError("印刷ジョブが見つかりません。")
    if job.state not in (PrintJobState.FAILED, PrintJobState.CANCELLED) and not _expired(job):
        raise DeviceError("この印刷ジョブはまだ処理中です。")
    now = utcnow()
    job.attempt += 1
    job.state = PrintJobState.QUEUED
    job.reason = ""
    job.finished_at = None
    job.updated_at = now
    job.expires_at = now + DEFAULT_JOB_LIFETIME
    session.add(job)
    audit.record(
        session,
        actor,
        "print.retry",
        target_type="print_job",
        target_id=job_id,
        detail={"attempt": job.attempt},
    )
    publish_on_commit(
        session, device_topic(job.device_id), "print.job", {"job_id": job_id, "attempt": job.attempt}
    )
    publish_on_commit(session, "staff", "print.state", _job_event(job))
    return job


def _expired(job: PrintJob, now: datetime | None = None) -> bool:
    return job.expires_at is not None and job.expires_at <= (now or utcnow())


def expire_jobs(session: Session, *, now: datetime | None = None) -> int:
    """Fail unfinished jobs past their expiry (the worker runs this; safe to run twice)."""
    now = now or utcnow()
    rows = session.exec(
        select(PrintJob).where(
            col(PrintJob.state).in_([PrintJobState.QUEUED, PrintJobState.DELIVERED, PrintJobState.PRINTING]),
            col(PrintJob.expires_at) <= now,
        )
    ).all()
    for job in rows:
        job.state = PrintJobState.FAILED
        job.reason = "有効期限が切れました（印刷されていません）"
        job.finished_at = job.updated_at = now
        session.add(job)
        publish_on_commit(session, "staff", "print.state", _job_event(job))
    return len(rows)
