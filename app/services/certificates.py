"""Certificate requests: create (idempotently), print, hand over, cancel; numbers that restart daily.

A request is written together with its kiosk receipt's print job and the staff event, in one short
transaction. Printing the certificate itself (render → sign → store → office print job) is a *print
order* handed over only after that transaction commits (`print_on_commit`): at once for locations
that print automatically, after a staff click for those that confirm first, and for reprints. An
order runs as an arq job in the worker, or in the web process when there is no Redis
(app/jobs/printing.py), through `run_print_order`: reserve the 発行番号 serials (short transaction),
render and sign outside any transaction, then record the issue and queue the office job (second
short transaction). Running an order twice makes one issue; see docs/decisions.md.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, event as sa_event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session as OrmSession, SessionTransaction
from sqlmodel import Session, col, func, select

from app.domain.certificates import CertificateType, JuminhyoOptions, total_fee
from app.domain.devices import PrinterKind
from app.domain.registry import DeviceKind
from app.domain.requests import RequestState, may_move
from app.events import publish_on_commit
from app.models import (
    CertificateIssue,
    CertificateRequest,
    DailyCounter,
    Device,
    Household,
    IssuedCopy,
    Location,
    Municipality,
    PrintJob,
    Resident,
    SealRegistration,
    TaxRecord,
)
from app.models._types import utcnow
from app.printing.certificates import (
    CertificateData,
    HouseholdRecord,
    MunicipalityInfo,
    PersonRecord,
    RenderedCertificate,
    SealRecord,
    TaxRecordData,
    render_certificate,
)
from app.printing.seal import demo_seal_text, make_demo_seal
from app.printing.signing import SignerConfig, sign_pdf, signer_from_settings
from app.services import audit, devices as device_service
from app.services.audit import Actor
from app.storage import LocalObjectStore

if TYPE_CHECKING:
    from app.config import Settings
    from app.db import Database

JST = ZoneInfo("Asia/Tokyo")
log = logging.getLogger("madoguchi.certificates")


class RequestError(ValueError):
    """A request that cannot be made or moved; the message is Japanese (for staff or residents)."""


def today_jst(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(JST).date()


def next_number(
    session: Session, name: str, day: date, count: int = 1, *, own_transaction: bool = False
) -> int:
    """The next number of a counter that restarts every day; with `count` > 1, the first of `count`
    consecutive numbers.

    One statement: INSERT … ON CONFLICT DO UPDATE … RETURNING creates the day's row or adds to it
    under the row's write lock, so two requests that are both a location's first of the day do not
    collide (the second waits on the row lock) and no two callers get the same number.

    `own_transaction`: on PostgreSQL, run that statement on a connection of its own in autocommit,
    so that the row is locked for the statement only and not until the caller's transaction
    commits (every request of a location waited for the one before it to commit). A number taken
    this way stays used if the caller's transaction then rolls back: the day's numbers may have a
    gap. SQLite has one writer at a time anyway, so there the caller's transaction takes it.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    bind = session.get_bind()
    table = DailyCounter.__table__  # type: ignore[attr-defined]
    insert = postgresql_insert if bind.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(table)
        .values(name=name, day=day, value=count)
        .on_conflict_do_update(
            index_elements=[table.c.name, table.c.day], set_={"value": table.c.value + count}
        )
        .returning(table.c.value)
    )
    if own_transaction and bind.dialect.name == "postgresql" and isinstance(bind, Engine):
        with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            last = connection.execute(statement).scalar_one()
    else:
        last = session.execute(statement).scalar_one()
    return int(last) - count + 1


def location_settings(location: Location) -> dict[str, Any]:
    """A location's settings with the defaults filled in (see docs/manual/locations.md)."""
    settings: dict[str, Any] = {
        "auto_print": True,
        "office_device": "",
        "fees": {},
        "kiosk_certificates": [t.value for t in CertificateType],
        "receipt_footer": "お呼びするまでお待ちください。",
    }
    settings.update(location.settings or {})
    return settings


def office_device_for(session: Session, location: Location) -> Device | None:
    """The back-office terminal whose printer prints this location's certificates."""
    code = str(location_settings(location).get("office_device") or "")
    statement = select(Device).where(col(Device.revoked).is_(False))
    if code:
        return session.exec(statement.where(Device.code == code)).first()
    return session.exec(
        statement.where(Device.location_id == location.id, Device.kind == DeviceKind.BACK_OFFICE).order_by(
            col(Device.id)
        )
    ).first()


def reception_label(number: int) -> str:
    return f"{number:03d}"


@dataclass(frozen=True)
class NewRequest:
    device: Device
    applicant: Resident
    certificate_type: CertificateType
    options: dict[str, Any]
    subject_ids: list[int]
    copies: int
    idempotency_key: str
    auth_cert_serial: str = ""
    channel: str = "kiosk"


def create_request(
    session: Session, new: NewRequest, *, now: datetime | None = None
) -> tuple[CertificateRequest, bool]:
    """Record a request; returns it and whether it was created now (False: a repeated confirm)."""
    existing = session.exec(
        select(CertificateRequest).where(CertificateRequest.idempotency_key == new.idempotency_key)
    ).first()
    if existing is not None:
        return existing, False
    if not 1 <= new.copies <= 10:
        raise RequestError("通数は1通から10通までです。")
    location = session.get(Location, new.device.location_id)
    if location is None:
        raise RequestError("この端末の設置場所が登録されていません。")
    settings = location_settings(location)
    if new.certificate_type.value not in settings["kiosk_certificates"]:
        raise RequestError("この証明書はこの端末では交付していません。")
    now = now or utcnow()
    day = today_jst(now)
    assert location.id is not None and new.applicant.id is not None
    number = next_number(session, f"reception:{location.id}", day, own_transaction=True)
    fee = total_fee(new.certificate_type, new.copies, settings.get("fees"))
    request = CertificateRequest(
        location_id=location.id,
        device_id=new.device.id,
        channel=new.channel,
        reception_date=day,
        reception_number=number,
        idempotency_key=new.idempotency_key,
        applicant_id=new.applicant.id,
        certificate_type=new.certificate_type,
        options=new.options,
        subject_ids=new.subject_ids,
        copies=new.copies,
        fee_total=fee,
        state=RequestState.RECEIVED if settings["auto_print"] else RequestState.AWAITING_CONFIRMATION,
        auth_cert_serial=new.auth_cert_serial,
        created_at=now,
        updated_at=now,
    )
    session.add(request)
    session.flush()
    assert request.id is not None and new.device.id is not None
    local = now.astimezone(JST)
    device_service.enqueue(
        session,
        device_id=new.device.id,
        printer=PrinterKind.RECEIPT,
        title=f"受付票 {reception_label(number)}",
        payload={
            "receipt": {
                "title": "受付票",
                "number": reception_label(number),
                "number_label": "受付番号",
                "lines": [
                    f"{new.certificate_type.label_ja}　{new.copies}通",
                    f"手数料　{fee:,}円",
                    local.strftime("%Y年%m月%d日 %H:%M"),
                    location.name,
                ],
                "qr": f"madoguchi:request:{request.id}",
                "footer": [str(settings["receipt_footer"])],
            }
        },
        source_type="certificate_request",
        source_id=str(request.id),
    )
    audit.record(
        session,
        Actor(type="resident", id=str(new.applicant.id), name=new.applicant.atena_number),
        "certificate.request",
        target_type="certificate_request",
        target_id=request.id,
        detail={
            "type": new.certificate_type.value,
            "copies": new.copies,
            "subjects": new.subject_ids,
            "options": new.options,
            "device": new.device.code,
            "reception_number": number,
        },
    )
    publish_on_commit(session, "staff", "certificate.requested", request_event(request, location))
    _light(session, location, on=True)
    if request.state == RequestState.RECEIVED:
        # Locations that print at once: the certificate is made after this commit, outside it.
        print_on_commit(session, PrintOrder(request_id=request.id, actor=AUTO_PRINT, automatic=True))
    return request, True


def request_event(request: CertificateRequest, location: Location | None = None) -> dict[str, Any]:
    return {
        "request_id": request.id,
        "location_id": request.location_id,
        "location": location.name if location else "",
        "reception_number": reception_label(request.reception_number),
        "type": request.certificate_type.value,
        "type_label": request.certificate_type.label_ja,
        "copies": request.copies,
        "state": request.state.value,
        "state_label": request.state.label_ja,
    }


def _light(session: Session, location: Location, *, on: bool) -> None:
    """Switch the back office's signal light (the bridge ignores it when it has none)."""
    device = office_device_for(session, location)
    if device is not None and device.id is not None:
        publish_on_commit(
            session,
            device_service.device_topic(device.id),
            "device.command",
            {"command": "light", "state": "on" if on else "off"},
        )


def move(
    session: Session,
    actor: Actor,
    request_id: int,
    to: RequestState,
    *,
    reason: str = "",
    staff_id: int | None = None,
) -> CertificateRequest:
    request = session.get(CertificateRequest, request_id)
    if request is None:
        raise RequestError("申請が見つかりません。")
    if request.state == to:
        return request  # a repeated click
    if not may_move(request.state, to):
        raise RequestError(f"「{request.state.label_ja}」の申請を「{to.label_ja}」にはできません。")
    if to == RequestState.CANCELLED and not reason.strip():
        raise RequestError("取消の理由を入力してください。")
    now = utcnow()
    before = request.state
    request.state = to
    request.reason = reason.strip()[:255]
    request.updated_at = now
    if to == RequestState.PRINTED:
        request.printed_at = now
    if to == RequestState.HANDED_OVER:
        request.handed_over_at = now
        request.handed_over_by = staff_id
    session.add(request)
    audit.record(
        session,
        actor,
        f"certificate.{to.value}",
        target_type="certificate_request",
        target_id=request_id,
        detail={"from": before.value, "reason": request.reason},
    )
    location = session.get(Location, request.location_id)
    publish_on_commit(session, "staff", "certificate.state", request_event(request, location))
    return request


def on_print_job_done(session: Session, job: PrintJob) -> None:
    """A certificate's office print finished: the request is 印刷済 (called by the device service)."""
    if job.source_type != "certificate_issue" or not job.payload.get("request_id"):
        return
    request = session.get(CertificateRequest, int(job.payload["request_id"]))
    if request is not None and request.state in (RequestState.RECEIVED, RequestState.AWAITING_CONFIRMATION):
        move(session, Actor.system("printer"), request.id or 0, RequestState.PRINTED)


# Printing the certificate itself --------------------------------------------------------------


@dataclass(frozen=True)
class PrintContext:
    """What printing needs besides the database: where files go, how PDFs are signed, the verify URL."""

    store: LocalObjectStore
    signer: SignerConfig | None
    verify_base_url: str


_print_context: PrintContext | None = None


def configure_printing(context: PrintContext | None) -> None:
    """Set by the web app and the worker at start-up (`print_context_from_settings`)."""
    global _print_context
    _print_context = context


def print_context_from_settings(settings: Settings) -> PrintContext:
    return PrintContext(
        store=LocalObjectStore(settings.data_dir / "objects"),
        signer=signer_from_settings(settings),
        verify_base_url=settings.base_url,
    )


AUTO_PRINT = Actor.system("auto print")


@dataclass(frozen=True)
class PrintOrder:
    """One certificate to print: the first print of a request (`reprint_of` None) or a reprint of
    its issue `reprint_of`. That issue id is also what makes running the order twice harmless: an
    order is carried out only while the request's newest issue is still `reprint_of`."""

    request_id: int
    actor: Actor
    staff_id: int | None = None
    reprint_of: int | None = None
    reason: str = ""  # a reprint's reason, for the audit log
    automatic: bool = False  # made by the confirm of a location that prints at once

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "actor": dataclasses.asdict(self.actor)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PrintOrder:
        return cls(
            request_id=int(data["request_id"]),
            actor=Actor(**data["actor"]),
            staff_id=data.get("staff_id"),
            reprint_of=data.get("reprint_of"),
            reason=str(data.get("reason", "")),
            automatic=bool(data.get("automatic", False)),
        )


PrintDispatcher = Callable[[PrintOrder], None]

_ORDERS = "madoguchi.print.orders"
_dispatcher_lock = threading.Lock()
_dispatcher: PrintDispatcher | None = None


def set_print_dispatcher(dispatcher: PrintDispatcher | None) -> PrintDispatcher | None:
    """Install the process-wide print dispatcher (app/jobs/printing.py); returns the previous one.

    Called from whichever thread commits, so it must be thread-safe and must not block for long.
    """
    global _dispatcher
    with _dispatcher_lock:
        previous, _dispatcher = _dispatcher, dispatcher
    return previous


def print_on_commit(session: Session, order: PrintOrder) -> None:
    """Hand `order` to the print dispatcher once `session`'s transaction commits (never if it rolls
    back). Events published in the same transaction go out first."""
    session.info.setdefault(_ORDERS, []).append(order)


@sa_event.listens_for(OrmSession, "after_commit")
def _dispatch_after_commit(session: OrmSession) -> None:
    # Registered after app.events.publish's listener, so the transaction's events go out first.
    if session.in_nested_transaction():
        return
    orders: list[PrintOrder] = session.info.pop(_ORDERS, [])
    if not orders:
        return
    dispatcher = _dispatcher
    for order in orders:
        if dispatcher is None:
            log.warning(
                "no print dispatcher in this process; request %s waits to be printed", order.request_id
            )
            continue
        try:
            dispatcher(order)
        except Exception:
            # Committed already: the request stays 受付 and staff can print it from the queue.
            log.exception("print order for request %s committed but not dispatched", order.request_id)


@sa_event.listens_for(OrmSession, "after_soft_rollback")
def _forget_orders_after_rollback(session: OrmSession, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_ORDERS, None)


def _latest_issue_id(session: Session, request_id: int) -> int | None:
    return session.exec(
        select(CertificateIssue.id)
        .where(CertificateIssue.request_id == request_id)
        .order_by(col(CertificateIssue.id).desc())
        .limit(1)
    ).first()


def _office_device(session: Session, request: CertificateRequest) -> tuple[Location, Device]:
    location = session.get(Location, request.location_id)
    assert location is not None
    device = office_device_for(session, location)
    if device is None or device.id is None:
        raise RequestError("この窓口の事務用プリンター（端末）が登録されていません。")
    return location, device


def request_print(
    session: Session, actor: Actor, request_id: int, *, staff_id: int | None = None
) -> CertificateRequest:
    """Staff's 印刷 in the queue: the first print of a 確認待ち request, or another try for a 受付
    request whose automatic print failed. Checks what it can now, then prints after the commit;
    the staff screens hear of the result through the usual events. The caller commits."""
    request = session.get(CertificateRequest, request_id)
    if request is None:
        raise RequestError("申請が見つかりません。")
    if request.state not in (RequestState.RECEIVED, RequestState.AWAITING_CONFIRMATION):
        if request.state in (RequestState.PRINTED, RequestState.HANDED_OVER):
            raise RequestError("この申請はすでに印刷しています。再印刷は履歴から行ってください。")
        raise RequestError(f"「{request.state.label_ja}」の申請は印刷できません。")
    if _latest_issue_id(session, request_id) is not None:
        raise RequestError("この申請はすでに印刷しています。再印刷は履歴から行ってください。")
    _office_device(session, request)
    if request.state == RequestState.AWAITING_CONFIRMATION:
        move(session, actor, request_id, RequestState.RECEIVED)  # audit entry and event
    elif request.reason:
        request.reason = ""  # the failure it showed is being retried
        request.updated_at = utcnow()
        session.add(request)
        location = session.get(Location, request.location_id)
        publish_on_commit(session, "staff", "certificate.state", request_event(request, location))
    print_on_commit(session, PrintOrder(request_id=request_id, actor=actor, staff_id=staff_id))
    return request


@dataclass(frozen=True)
class PrintResult:
    outcome: Literal["issued", "skipped", "failed"]
    issue_id: int | None = None
    message: str = ""


@dataclass(frozen=True)
class _Prepared:
    data: CertificateData
    office_device_id: int
    location: Location  # detached: for the staff event's location name


def run_print_order(db: Database, order: PrintOrder) -> PrintResult:
    """Carry out a print order (in the worker, or the web process's print threads).

    1. Read what the certificate shows and reserve its 発行番号 serials (a short transaction on
       the daily counter).
    2. Render and sign the PDF, and store it, outside any transaction.
    3. In a second short transaction, with the request locked: if the request's newest issue is
       still the order's `reprint_of` (so no other run of this order got there first) and the
       request is not cancelled, record the issue and its copies, queue the office print job and
       audit it; otherwise record nothing (a repeated run: its serials stay unused, a gap).

    A RequestError or any other fault is recorded as the request's reason (the request itself
    stays, staff see why on the queue and print again from there); nothing is raised.
    """
    context = _print_context
    try:
        if context is None:
            raise RequestError("証明書の印刷が設定されていません。")
        prepared = _prepare_print(db, order, context)
        if prepared is None:
            return PrintResult("skipped")
        rendered = render_certificate(prepared.data)
        pdf = sign_pdf(rendered.pdf, context.signer) if context.signer else rendered.pdf
        day = prepared.data.issued_at.astimezone(JST)
        key = f"certificates/{day:%Y/%m%d}/{order.request_id}-{secrets.token_hex(4)}.pdf"
        context.store.put(key, pdf)
        try:
            issue_id = _record_issue(db, order, prepared, rendered, key)
        except BaseException:
            context.store.delete(key)
            raise
        if issue_id is None:
            context.store.delete(key)
            return PrintResult("skipped")
        return PrintResult("issued", issue_id)
    except RequestError as error:
        message = f"{_what(order)}できません：{error}"
    except Exception:  # a rendering or storage fault must not lose the resident's request
        log.exception("printing request %s failed (%s)", order.request_id, order)
        message = _FAILED[_what(order)]
    _record_failure(db, order, message)
    return PrintResult("failed", message=message)


_FAILED = {
    "自動印刷": "自動印刷に失敗しました。窓口の画面から印刷してください。",
    "印刷": "印刷に失敗しました。もう一度「印刷」を押してください。",
    "再印刷": "再印刷に失敗しました。履歴の画面からもう一度行ってください。",
}


def _what(order: PrintOrder) -> Literal["自動印刷", "印刷", "再印刷"]:
    if order.reprint_of is not None:
        return "再印刷"
    return "自動印刷" if order.automatic else "印刷"


def _skip_reason(request: CertificateRequest, latest_issue: int | None, order: PrintOrder) -> str:
    """Why this order is not (or no longer) to be carried out; "" when it is."""
    if request.state == RequestState.CANCELLED:
        return "cancelled"
    if order.reprint_of is None and request.state in (RequestState.PRINTED, RequestState.HANDED_OVER):
        return "printed already"
    if latest_issue != order.reprint_of:
        return f"newest issue is {latest_issue}, the order expected {order.reprint_of}"
    return ""


def _prepare_print(db: Database, order: PrintOrder, context: PrintContext) -> _Prepared | None:
    with db.read_session() as session:
        request, latest_issue = _request_and_latest_issue(session, order.request_id)
        if request is None:
            log.warning("print order for a missing request %s", order.request_id)
            return None
        skip = _skip_reason(request, latest_issue, order)
        if skip:
            log.info("print order for request %s not carried out: %s", order.request_id, skip)
            return None
        location, device = _office_device(session, request)
        assert device.id is not None and location.id is not None
        kiosk = session.get(Device, request.device_id) if request.device_id else None
        terminal = kiosk.code if kiosk else "0000"
        data = _certificate_data(session, request, context, terminal=terminal, printer=device.code)
        counter = f"issue:{terminal}:{device.code}"
        day = data.issue_day  # the day the 発行番号 carries (a reprint of yesterday's request: today)
        copies = request.copies
        device_id = device.id
        session.expunge(location)
    # Reserve a serial per copy on its own (PostgreSQL: one autocommit statement), so that
    # concurrent issues never share a 発行番号 and the counter's lock is held for milliseconds, not
    # for the rendering.
    with db.write_session() as session:
        serial = next_number(session, counter, day, count=copies, own_transaction=True)
        session.commit()
    return _Prepared(dataclasses.replace(data, serial_start=serial), device_id, location)


def _request_and_latest_issue(
    session: Session, request_id: int
) -> tuple[CertificateRequest | None, int | None]:
    """The request and the id of its newest issue (None: none yet), in one statement (no lock)."""
    latest = (
        select(func.max(CertificateIssue.id))
        .where(CertificateIssue.request_id == CertificateRequest.id)
        .scalar_subquery()
    )
    row = session.exec(select(CertificateRequest, latest).where(CertificateRequest.id == request_id)).first()
    return (row[0], row[1]) if row is not None else (None, None)


def _locked_request(session: Session, request_id: int) -> CertificateRequest | None:
    """The request, locked until the transaction ends (SQLite: write_session's BEGIN IMMEDIATE).

    Read its newest issue with a statement of its own after this one: on PostgreSQL a statement
    that waited for the lock still sees what its snapshot, taken before the wait, saw."""
    return session.exec(
        select(CertificateRequest)
        .where(CertificateRequest.id == request_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def _record_issue(
    db: Database, order: PrintOrder, prepared: _Prepared, rendered: RenderedCertificate, key: str
) -> int | None:
    with db.write_session() as session:
        request = _locked_request(session, order.request_id)
        if request is None:
            return None
        skip = _skip_reason(request, _latest_issue_id(session, order.request_id), order)
        if skip:
            log.info("print order for request %s discarded after rendering: %s", order.request_id, skip)
            return None
        data = prepared.data
        issue = CertificateIssue(
            request_id=order.request_id,
            document_key=key,
            sha256=rendered.sha256,
            pages=rendered.pages,
            copies=request.copies,
            reprint_of=order.reprint_of,
            issued_by=order.staff_id,
            items_shown={
                "type": request.certificate_type.value,
                **request.options,
                "subjects": request.subject_ids,
            },
        )
        session.add(issue)
        session.flush()
        assert issue.id is not None
        issued_on = data.issued_at.astimezone(JST).date()
        for number in rendered.issue_numbers:
            session.add(
                IssuedCopy(
                    issue_id=issue.id,
                    issue_number=number,
                    certificate_type=request.certificate_type,
                    issued_on=issued_on,
                    content_hash=rendered.sha256,
                )
            )
        job = device_service.enqueue(
            session,
            device_id=prepared.office_device_id,
            printer=PrinterKind.OFFICE,
            title=f"{request.certificate_type.label_ja} {reception_label(request.reception_number)}",
            payload={"document_key": key, "request_id": request.id, "issue_id": issue.id},
            copies=1,  # the PDF holds every copy, each with its own 発行番号
            source_type="certificate_issue",
            source_id=str(issue.id),
        )
        issue.print_job_id = job.id
        session.add(issue)
        if request.state == RequestState.AWAITING_CONFIRMATION:
            request.state = RequestState.RECEIVED  # an order made before request_print moved it
        request.reason = ""
        request.updated_at = utcnow()
        session.add(request)
        publish_on_commit(
            session,
            "staff",
            "certificate.state",
            {**request_event(request, prepared.location), "issue_id": issue.id, "print_job_id": job.id},
        )
        # Last: the audit chain's head row stays locked from here to the commit.
        audit.record(
            session,
            order.actor,
            "certificate.reprint" if order.reprint_of is not None else "certificate.print",
            target_type="certificate_request",
            target_id=order.request_id,
            detail={
                "issue_id": issue.id,
                "issue_numbers": rendered.issue_numbers,
                "reprint_of": issue.reprint_of,
            },
        )
        if order.reprint_of is not None:
            audit.record(
                session,
                order.actor,
                "certificate.reprint_reason",
                target_type="certificate_request",
                target_id=order.request_id,
                detail={"issue_id": issue.id, "reprint_of": order.reprint_of, "reason": order.reason},
            )
        session.commit()
        return issue.id


def _record_failure(db: Database, order: PrintOrder, message: str) -> None:
    """Tell staff why the certificate was not printed: the request's reason, and an event."""
    try:
        with db.write_session() as session:
            request = session.get(CertificateRequest, order.request_id)
            if request is None or request.state == RequestState.CANCELLED:
                return  # a cancel reason is never overwritten
            request.reason = message[:255]
            request.updated_at = utcnow()
            session.add(request)
            location = session.get(Location, request.location_id)
            publish_on_commit(session, "staff", "certificate.state", request_event(request, location))
            session.commit()
    except Exception:
        log.exception("could not record the print failure of request %s: %s", order.request_id, message)


def unprinted_orders(
    session: Session, *, older_than: timedelta, now: datetime | None = None
) -> list[PrintOrder]:
    """Automatic prints that were committed but never carried out (a process stopped between the
    confirm's commit and its print): today's 受付 requests with no issue and no reason, untouched
    for `older_than`. The worker's cron job and the web's start-up print them."""
    now = now or utcnow()
    issued = select(CertificateIssue.request_id).where(CertificateIssue.request_id == CertificateRequest.id)
    ids = session.exec(
        select(CertificateRequest.id)
        .where(
            CertificateRequest.reception_date == today_jst(now),
            CertificateRequest.state == RequestState.RECEIVED,
            CertificateRequest.reason == "",
            col(CertificateRequest.updated_at) < now - older_than,
            ~issued.exists(),
        )
        .order_by(col(CertificateRequest.id))
    ).all()
    return [PrintOrder(request_id=i, actor=AUTO_PRINT, automatic=True) for i in ids if i is not None]


@functools.lru_cache(maxsize=256)
def _demo_seal(text: str, size_px: int) -> bytes:
    """Demo seals drawn once (drawing one takes ~150 ms): the 公印 and demo 印影 without images."""
    return make_demo_seal(text, size_px=size_px)


def _certificate_data(
    session: Session, request: CertificateRequest, context: PrintContext, *, terminal: str, printer: str
) -> CertificateData:
    """What the certificate shows, read from the registry (serial_start is filled in later)."""
    municipality = session.exec(select(Municipality)).first()
    if municipality is None:
        raise RequestError("自治体の情報が登録されていません。")
    seal_png = b""
    if municipality.seal_image_key and context.store.exists(municipality.seal_image_key):
        seal_png = context.store.get(municipality.seal_image_key)
    else:
        seal_png = _demo_seal(demo_seal_text(municipality.name, municipality.mayor_title), 600)
    info = MunicipalityInfo.from_model(municipality, seal_png=seal_png)
    applicant = session.get(Resident, request.applicant_id)
    assert applicant is not None
    common: dict[str, Any] = {
        "certificate_type": request.certificate_type,
        "municipality": info,
        "issued_at": utcnow(),
        "terminal_code": terminal,
        "printer_code": printer,
        "serial_start": 0,  # reserved after these reads (run_print_order)
        "verify_base_url": context.verify_base_url,
        "copies": request.copies,
        "reception_number": reception_label(request.reception_number),
    }
    kind = request.certificate_type
    if kind == CertificateType.JUMINHYO:
        household = session.get(Household, applicant.household_id)
        assert household is not None
        members = list(
            session.exec(
                select(Resident).where(Resident.household_id == household.id).order_by(col(Resident.id))
            ).all()
        )
        ids = request.options.get("member_ids")
        options = JuminhyoOptions(
            member_ids=tuple(ids) if ids else None,
            show_head_relationship=bool(request.options.get("show_head_relationship")),
            show_honseki=bool(request.options.get("show_honseki")),
            show_my_number=False,  # 個人番号 is not mirrored here; the counter issues those
            show_resident_code=bool(request.options.get("show_resident_code")),
        )
        return CertificateData(
            persons=tuple(PersonRecord.from_resident(m) for m in members),
            household=HouseholdRecord.from_model(household),
            juminhyo_options=options,
            **common,
        )
    if kind == CertificateType.INKAN:
        seal = session.exec(
            select(SealRegistration).where(
                SealRegistration.resident_id == applicant.id, col(SealRegistration.active).is_(True)
            )
        ).first()
        if seal is None:
            raise RequestError("印鑑登録がありません。")
        impression = (
            context.store.get(seal.seal_image_key)
            if seal.seal_image_key and context.store.exists(seal.seal_image_key)
            else _demo_seal(applicant.family_name[:4] or "印", 300)
        )
        return CertificateData(
            persons=(PersonRecord.from_resident(applicant),),
            seal=SealRecord.from_model(seal, impression),
            **common,
        )
    fiscal_year = int(request.options.get("fiscal_year") or 0)
    record = session.exec(
        select(TaxRecord).where(TaxRecord.resident_id == applicant.id, TaxRecord.fiscal_year == fiscal_year)
    ).first()
    if record is None:
        raise RequestError("この年度の課税情報がありません。窓口でお尋ねください。")
    return CertificateData(
        persons=(PersonRecord.from_resident(applicant),),
        tax=TaxRecordData.from_model(record),
        **common,
    )
