"""Pre-filled forms of a case: preview (a PDF for the screen) and printing on an office printer.

Rendering (WeasyPrint, ~70 ms a page) happens outside any write transaction; storing the PDF and
queueing the print job happen in one short transaction with the audit entry, like certificates.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session

from app.domain.cases import CaseData, CaseStatus
from app.domain.devices import PrinterKind
from app.models import Device, LifeCase, Location, PrintJob
from app.printing.forms import PRINTABLE_FORMS, RenderedForms, question_texts
from app.printing.forms_parallel import default_processes, render_forms_parallel
from app.services import audit, cases, devices as device_service
from app.services.audit import Actor
from app.services.certificates import office_device_for
from app.services.lifeevent_rules import current_rules
from app.storage import LocalObjectStore


class FormsError(ValueError):
    """Something staff must be told (Japanese)."""


def chosen_forms(wanted: Sequence[str]) -> list[str] | None:
    """The printable forms asked for, in the order asked; None: the whole set."""
    if not wanted or "all" in wanted:
        return None
    unknown = [f for f in wanted if f not in PRINTABLE_FORMS]
    if unknown:
        raise FormsError(f"印刷できない様式です: {'、'.join(unknown)}")
    return list(dict.fromkeys(wanted))


@dataclass(frozen=True)
class FormInput:
    """What rendering a case's forms reads, loaded in one short read so that no database
    session is held while WeasyPrint works."""

    case: LifeCase
    data: CaseData
    questions: dict[str, str]
    choices: dict[str, dict[str, str]]


def load(session: Session, token: str) -> FormInput | None:
    """A submitted (or done) case's data for its forms; None for an unknown token or a draft."""
    case = cases.by_token(session, token)
    if case is None or case.status is CaseStatus.DRAFT:
        return None
    event = current_rules(session)[1].catalog.event(case.event_id)
    questions, choices = question_texts(event) if event is not None else ({}, {})
    return FormInput(case, cases.case_data(case, cases.procedures_of(session, case)), questions, choices)


def render(
    found: FormInput, form_ids: Sequence[str] | None, *, base_url: str, processes: int = 0
) -> RenderedForms:
    """The case's forms as one PDF, rendered on `processes` worker processes (0: one per CPU)."""
    return render_forms_parallel(
        found.data,
        form_ids,
        base_url=base_url,
        questions=found.questions,
        choices=found.choices,
        processes=default_processes(processes),
    )


def record_preview(session: Session, actor: Actor, case: LifeCase, rendered: RenderedForms) -> None:
    audit.record(
        session,
        actor,
        "case.forms_preview",
        target_type="life_case",
        target_id=case.id or "",
        detail={"forms": list(rendered.form_ids), "pages": rendered.pages},
    )


def queue_print(
    session: Session,
    actor: Actor,
    case: LifeCase,
    rendered: RenderedForms,
    *,
    store: LocalObjectStore,
    device: Device | None = None,
) -> PrintJob:
    """Store the rendered PDF and queue it on `device` (default: the case's counter's printer)."""
    if device is None:
        location = session.get(Location, case.location_id)
        device = office_device_for(session, location) if location is not None else None
    if device is None or device.id is None:
        raise FormsError("この窓口に事務室のプリンターが登録されていません。管理 → 機器 で登録してください。")
    key = f"forms/{case.reception_date:%Y/%m%d}/{case.id}-{secrets.token_hex(4)}.pdf"
    store.put(key, rendered.pdf)
    job = device_service.enqueue(
        session,
        device_id=device.id,
        printer=PrinterKind.OFFICE,
        title=f"申請書 {cases.reception_label(case)} {case.data.get('event_name', '')}",
        payload={"document_key": key, "case_id": case.id},
        source_type="life_case_forms",
        source_id=str(case.id),
    )
    audit.record(
        session,
        actor,
        "case.forms_print",
        target_type="life_case",
        target_id=case.id or "",
        detail={
            "forms": list(rendered.form_ids),
            "pages": rendered.pages,
            "device": device.code,
            "job": job.id,
        },
    )
    return job
