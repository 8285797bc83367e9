"""Certificate requests: create (idempotently), print, hand over, cancel; numbers that restart daily.

A request is written together with its kiosk receipt's print job and the staff event, in one
transaction. Printing the certificate itself (render → store → office print job) happens at once
for locations that print automatically, or after a staff click for those that confirm first.
"""

from __future__ import annotations

import functools
import logging
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

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
    SealRecord,
    TaxRecordData,
    render_certificate,
)
from app.printing.seal import demo_seal_text, make_demo_seal
from app.printing.signing import SignerConfig, sign_pdf
from app.services import audit, devices as device_service
from app.services.audit import Actor
from app.storage import LocalObjectStore

JST = ZoneInfo("Asia/Tokyo")
log = logging.getLogger("madoguchi.certificates")


class RequestError(ValueError):
    """A request that cannot be made or moved; the message is Japanese (for staff or residents)."""


def today_jst(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(JST).date()


def next_number(session: Session, name: str, day: date) -> int:
    """The next number of a counter that restarts every day, taken under the row's write lock.

    The day's row is created with INSERT … ON CONFLICT DO NOTHING, so two requests that are both a
    location's first of the day do not collide; the second waits on the row lock instead.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(DailyCounter.__table__).values(name=name, day=day, value=0).on_conflict_do_nothing()  # type: ignore[attr-defined]
    )
    row = session.exec(
        select(DailyCounter)
        .where(DailyCounter.name == name, DailyCounter.day == day)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    row.value += 1
    session.add(row)
    session.flush()
    return row.value


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
    number = next_number(session, f"reception:{location.id}", day)
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
    if request.state == RequestState.RECEIVED:
        _print_automatically(session, request)
    publish_on_commit(session, "staff", "certificate.requested", request_event(request, location))
    _light(session, location, on=True)
    return request, True


def _print_automatically(session: Session, request: CertificateRequest) -> None:
    """Locations that print at once: queue the certificate now; if that cannot be done the request
    stays 受付 with the reason, and staff print it from the queue once it is fixed."""
    assert request.id is not None
    try:
        with session.begin_nested():
            print_certificate(session, Actor.system("auto print"), request.id)
    except RequestError as error:
        request.reason = f"自動印刷できません：{error}"[:255]
        session.add(request)
    except Exception:  # a rendering or storage fault must not lose the resident's request
        log.exception("automatic printing of request %s failed", request.id)
        request.reason = "自動印刷に失敗しました。窓口の画面から印刷してください。"
        session.add(request)


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
    """Set by the web app (and the worker) at start-up."""
    global _print_context
    _print_context = context


def print_certificate(
    session: Session,
    actor: Actor,
    request_id: int,
    *,
    staff_id: int | None = None,
    reprint: bool = False,
) -> CertificateIssue:
    """Render, sign and store the certificate, and queue it on the location's office printer.

    The request becomes 印刷済 when the printer reports the job done (on_print_job_done). A
    reprint makes a new issue with new 発行番号 and says which issue it repeats.
    """
    context = _print_context
    if context is None:
        raise RequestError("証明書の印刷が設定されていません。")
    request = session.get(CertificateRequest, request_id)
    if request is None:
        raise RequestError("申請が見つかりません。")
    if request.state == RequestState.CANCELLED or (request.state == RequestState.HANDED_OVER and not reprint):
        raise RequestError(f"「{request.state.label_ja}」の申請は印刷できません。")
    location = session.get(Location, request.location_id)
    assert location is not None
    device = office_device_for(session, location)
    if device is None or device.id is None:
        raise RequestError("この窓口の事務用プリンター（端末）が登録されていません。")
    kiosk = session.get(Device, request.device_id) if request.device_id else None
    previous = session.exec(
        select(CertificateIssue)
        .where(CertificateIssue.request_id == request_id)
        .order_by(col(CertificateIssue.id).desc())
    ).first()
    if previous is not None and not reprint:
        raise RequestError("この申請はすでに印刷しています。再印刷は履歴から行ってください。")
    data = _certificate_data(
        session, request, context, terminal=kiosk.code if kiosk else "0000", printer=device.code
    )
    rendered = render_certificate(data)
    pdf = sign_pdf(rendered.pdf, context.signer) if context.signer else rendered.pdf
    key = f"certificates/{request.reception_date:%Y/%m%d}/{request.id}-{secrets.token_hex(4)}.pdf"
    context.store.put(key, pdf)
    issue = CertificateIssue(
        request_id=request_id,
        document_key=key,
        sha256=rendered.sha256,
        pages=rendered.pages,
        copies=request.copies,
        reprint_of=previous.id if (reprint and previous is not None) else None,
        issued_by=staff_id,
        items_shown={
            "type": request.certificate_type.value,
            **request.options,
            "subjects": request.subject_ids,
        },
    )
    session.add(issue)
    session.flush()
    assert issue.id is not None
    issued_on = today_jst()
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
        device_id=device.id,
        printer=PrinterKind.OFFICE,
        title=f"{request.certificate_type.label_ja} {reception_label(request.reception_number)}",
        payload={"document_key": key, "request_id": request.id, "issue_id": issue.id},
        copies=1,  # the PDF holds every copy, each with its own 発行番号
        source_type="certificate_issue",
        source_id=str(issue.id),
    )
    issue.print_job_id = job.id
    session.add(issue)
    audit.record(
        session,
        actor,
        "certificate.reprint" if reprint else "certificate.print",
        target_type="certificate_request",
        target_id=request_id,
        detail={
            "issue_id": issue.id,
            "issue_numbers": rendered.issue_numbers,
            "reprint_of": issue.reprint_of,
        },
    )
    if request.state == RequestState.AWAITING_CONFIRMATION:
        request.state = RequestState.RECEIVED
        request.updated_at = utcnow()
        session.add(request)
        publish_on_commit(session, "staff", "certificate.state", request_event(request, location))
    return issue


@functools.lru_cache(maxsize=256)
def _demo_seal(text: str, size_px: int) -> bytes:
    """Demo seals drawn once (drawing one takes ~150 ms): the 公印 and demo 印影 without images."""
    return make_demo_seal(text, size_px=size_px)


def _certificate_data(
    session: Session, request: CertificateRequest, context: PrintContext, *, terminal: str, printer: str
) -> CertificateData:
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
    day = request.reception_date
    serial = next_number(session, f"issue:{terminal}:{printer}", day)
    # Reserve a serial per copy so that concurrent issues never share a 発行番号.
    for _ in range(request.copies - 1):
        next_number(session, f"issue:{terminal}:{printer}", day)
    common: dict[str, Any] = {
        "certificate_type": request.certificate_type,
        "municipality": info,
        "issued_at": utcnow(),
        "terminal_code": terminal,
        "printer_code": printer,
        "serial_start": serial,
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
