"""Life events at the kiosk (touch only): event → card → people → questions → procedures → sign → done.

The walk is the kiosk's `KioskSession` (cookie) whose `options["case"]` names the draft case; the
case is saved at every step, so a reload or the back button loses nothing, and a clerk can pick
up the same case at the counter. The card's 券面事項入力補助AP (read through the bridge with its
own 4-digit PIN) gives the applicant's name, address, birth date and sex; without a card the
resident still gets the list of procedures, and the clerk fills in the rest.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from app import i18n
from app.domain.cases import CaseMode, CaseStatus, Person, SignatureRole
from app.domain.devices import PrinterKind
from app.models import KioskSession, LifeCase, Location, Resident
from app.services import card_face, case_input, cases, devices as device_service, kiosk as kiosk_service
from app.services.case_signatures import SignatureError, parse_signature
from app.services.kiosk import KioskError
from app.services.lifeevent_rules import current_rules
from app.web.case_context import case_page_context
from app.web.guards import client_ip, public
from app.web.kiosk import Walk, _db, _render, _to, _walk, with_walk_cookie

# What a resident can add with a touch (the relationship of a person moving in with them).
ADD_RELATIONSHIPS = ("妻", "夫", "子", "父", "母", "祖父", "祖母", "兄", "姉", "弟", "妹", "縁故者")


def routes() -> list[BaseRoute]:
    return [
        public("/kiosk/{code:str}/life", events_page, name="kiosk-life:events"),
        public("/kiosk/{code:str}/life/begin", begin, name="kiosk-life:begin", methods=["POST"]),
        public("/kiosk/{code:str}/life/card", card_page, name="kiosk-life:card"),
        public("/kiosk/{code:str}/life/pin", pin, name="kiosk-life:pin", methods=["POST"]),
        public("/kiosk/{code:str}/life/wait", wait, name="kiosk-life:wait"),
        public("/kiosk/{code:str}/life/people", people_page, name="kiosk-life:people"),
        public("/kiosk/{code:str}/life/people", people_save, name="kiosk-life:people-save", methods=["POST"]),
        public("/kiosk/{code:str}/life/questions", questions_page, name="kiosk-life:questions"),
        public(
            "/kiosk/{code:str}/life/questions",
            questions_save,
            name="kiosk-life:questions-save",
            methods=["POST"],
        ),
        public("/kiosk/{code:str}/life/result", result_page, name="kiosk-life:result"),
        public("/kiosk/{code:str}/life/sign", sign_page, name="kiosk-life:sign"),
        public("/kiosk/{code:str}/life/sign", sign_submit, name="kiosk-life:sign-submit", methods=["POST"]),
        public("/kiosk/{code:str}/life/done", done_page, name="kiosk-life:done"),
    ]


def _case(session: Session, walk: Walk) -> LifeCase | None:
    if walk.row is None:
        return None
    token = str(walk.row.options.get("case", ""))
    return cases.by_token(session, token) if token else None


def _context(session: Session, walk: Walk, case: LifeCase) -> dict[str, Any]:
    return case_page_context(session, case) | {"code": walk.device.code}


def _draft_page(request: Request) -> dict[str, Any] | Response:
    """The context of a step of a walk whose case is still a draft, or where to go instead."""
    with _db(request).session() as session:
        walk = _walk(request, session)
        case = _case(session, walk)
        if case is None:
            return _to(request, walk.device.code, "life")
        if case.status is not CaseStatus.DRAFT:
            return _to(request, walk.device.code, "life/done")
        return _context(session, walk, case)


# Choose ----------------------------------------------------------------------------------------


def events_page(request: Request) -> Response:
    with _db(request).session() as session:
        walk = _walk(request, session)
        rules = current_rules(session)[1]
    events = sorted(rules.catalog.events, key=lambda e: (e.order, e.id))
    return _render(request, "life_events.html", {"code": walk.device.code, "events": events})


async def begin(request: Request) -> Response:
    """Start a walk for one life event. The applicant is typed/added by touch (or by the clerk);
    the card path fills the applicant from the card."""
    form = await request.form()
    code = request.path_params["code"]
    event_id = str(form.get("event", ""))[:64]

    def _begin() -> str | None:
        with _db(request).write_session() as session:
            walk = _walk(request, session)
            rules = current_rules(session)[1]
            if rules.catalog.event(event_id) is None or walk.location is None:
                return None
            cookie = kiosk_service.begin_life(session, walk.device, i18n.current_language())
            row = session.get(KioskSession, kiosk_service.session_id(cookie))
            assert row is not None
            applicant = Person(key="new-1", relationship="世帯主", source="typed")
            case = cases.start(
                session,
                event_id=event_id,
                mode=CaseMode.KIOSK,
                location=walk.location,
                applicant=applicant,
                members=[applicant],
                device=walk.device,
                ip=client_ip(request),
            )
            row.options = {"case": case.token, "event": event_id}
            row.step = "life"
            session.add(row)
            session.commit()
            return cookie

    cookie = await run_in_threadpool(_begin)
    if cookie is None:
        return _to(request, code, "life")
    return with_walk_cookie(request, _to(request, code, "life/card"), cookie)


# Card (券面事項入力補助AP: name, address, birth date, sex) --------------------------------------


def card_page(request: Request) -> Response:
    with _db(request).session() as session:
        walk = _walk(request, session)
        case = _case(session, walk)
        if case is None or walk.row is None:
            return _to(request, walk.device.code, "life")
        rules = current_rules(session)[1]
        event = rules.catalog.event(case.event_id)
        card_present = bool((walk.device.status or {}).get("card_reader", {}).get("card"))
        result = walk.row.result if walk.row.step == card_face.STEP_FACE_PIN else {}
    return _render(
        request,
        "life_card.html",
        {
            "code": walk.device.code,
            "event": event,
            "card_present": card_present,
            "error": result.get("error", ""),
            "tries_left": result.get("tries_left"),
        },
    )


async def pin(request: Request) -> Response:
    form = await request.form()
    code = request.path_params["code"]
    value = str(form.get("pin", ""))

    def _send() -> str:
        with _db(request).write_session() as session:
            walk = _walk(request, session)
            if walk.row is None or _case(session, walk) is None:
                return "expired"
            try:
                card_face.send_face_pin(session, walk.row, walk.device, value)
            except KioskError as error:
                walk.row.step = card_face.STEP_FACE_PIN
                walk.row.result = {"error": error.code}
                session.add(walk.row)
                session.commit()
                return "card"
            session.commit()
            return "wait"

    outcome = await run_in_threadpool(_send)
    if outcome == "expired":
        return _to(request, code, "life")
    return _to(request, code, "life/wait" if outcome == "wait" else "life/card")


def wait(request: Request) -> Response:
    """Reading the card; polls itself until the bridge has answered, then fills the applicant."""
    with _db(request).session() as session:
        walk = _walk(request, session)
        if walk.row is None:
            return _to(request, walk.device.code, "life")
        step = walk.row.step
        timed_out = card_face.face_command_timed_out(walk.row)
    if step == card_face.STEP_READING_FACE and not timed_out:
        return _render(request, "wait.html", {"code": walk.device.code})
    if step == card_face.STEP_FACE_PIN or timed_out:
        if timed_out:
            with _db(request).write_session() as session:
                row = session.get(KioskSession, walk.row.id)
                if row is not None and card_face.expire_face_command(row):
                    session.add(row)
                    session.commit()
        return _to(request, walk.device.code, "life/card")
    if step == card_face.STEP_FACE_READ:
        with _db(request).write_session() as session:
            fresh = _walk(request, session)
            case = _case(session, fresh)
            if case is not None and fresh.row is not None and not fresh.row.options.get("face_applied"):
                _apply_face(session, fresh.row, case)
                fresh.row.options = dict(fresh.row.options) | {"face_applied": True}
                session.add(fresh.row)
                session.commit()
    return _to(request, walk.device.code, "life/people")


def _apply_face(session: Session, row: KioskSession, case: LifeCase) -> None:
    """The card's four facts become the applicant; a matched resident brings the household."""
    face = row.result.get("face") or {}
    resident = session.get(Resident, row.resident_id) if row.resident_id else None
    if resident is not None:
        household = cases.household_people(session, resident)
        applicant = next((p for p in household if p.resident_id == resident.id), None)
        if applicant is not None:
            cases.set_household(
                session,
                case,
                applicant=applicant,
                members=household,
                applicant_resident=resident,
                old_address=cases.resident_address(resident),
            )
            return
    applicant = replace(card_face.face_to_person(face, "new-1"), relationship="世帯主")
    cases.set_household(
        session, case, applicant=applicant, members=[applicant], old_address=card_face.face_address(face)
    )


# People ----------------------------------------------------------------------------------------


def people_page(request: Request, *, status: int = 200) -> Response:
    context = _draft_page(request)
    if isinstance(context, Response):
        return context
    return _render(
        request,
        "life_people.html",
        context | {"add_relationships": ADD_RELATIONSHIPS},
        status,
    )


async def people_save(request: Request) -> Response:
    form = await request.form()
    code = request.path_params["code"]
    action = str(form.get("action", "next"))

    def _save() -> str:
        with _db(request).write_session() as session:
            walk = _walk(request, session)
            case = _case(session, walk)
            if case is None:
                return "expired"
            revision_raw = str(form.get("revision", ""))
            revision = int(revision_raw) if revision_raw.isdigit() else None
            try:
                case_input.apply_form(session, case, form, revision=revision)
                if action.startswith("add:"):
                    relationship = action.removeprefix("add:")
                    if relationship in ADD_RELATIONSHIPS:
                        case_input.add_person(
                            session, case, revision=case.revision, relationship=relationship
                        )
                elif action.startswith("remove:"):
                    case_input.remove_person(
                        session, case, action.removeprefix("remove:"), revision=case.revision
                    )
            except cases.CaseError:
                session.rollback()
                return "stale"
            session.commit()
            if action != "next":
                return "again"
            problems = {
                k: v
                for k, v in case_input.field_problems(case).items()
                if k.endswith((".birth_date", ".relationship"))
            }
            return "problems" if problems else "ok"

    outcome = await run_in_threadpool(_save)
    if outcome == "expired":
        return _to(request, code, "life")
    if outcome == "ok":
        return _to(request, code, "life/questions")
    if outcome == "problems":
        return await run_in_threadpool(people_page, request, status=422)
    return _to(request, code, "life/people")


# Questions -------------------------------------------------------------------------------------


def questions_page(request: Request, *, status: int = 200) -> Response:
    context = _draft_page(request)
    if isinstance(context, Response):
        return context
    return _render(request, "life_questions.html", context | {"submitted": status != 200}, status)


async def questions_save(request: Request) -> Response:
    form = await request.form()
    code = request.path_params["code"]

    def _save() -> str:
        with _db(request).write_session() as session:
            walk = _walk(request, session)
            case = _case(session, walk)
            if case is None:
                return "expired"
            revision_raw = str(form.get("revision", ""))
            try:
                case_input.apply_form(
                    session, case, form, revision=int(revision_raw) if revision_raw.isdigit() else None
                )
            except cases.CaseError:
                session.rollback()
                return "stale"
            session.commit()
            evaluation = cases.evaluate_case(session, case)
            answered = {q.id for q in evaluation.questions if q.id in case.data.get("answers", {})}
            missing = [q for q in evaluation.questions if q.required and q.id not in answered]
            return "ok" if evaluation.ok and not missing else "problems"

    outcome = await run_in_threadpool(_save)
    if outcome == "expired":
        return _to(request, code, "life")
    if outcome == "ok":
        return _to(request, code, "life/result")
    return await run_in_threadpool(questions_page, request, status=422)


# Result, signature, done -----------------------------------------------------------------------


def result_page(request: Request) -> Response:
    with _db(request).session() as session:
        walk = _walk(request, session)
        case = _case(session, walk)
        if case is None:
            return _to(request, walk.device.code, "life")
        context = _context(session, walk, case)
    if not context["evaluation"].ok:
        return _to(request, walk.device.code, "life/questions")
    return _render(request, "life_result.html", context)


def sign_page(request: Request, *, error: str = "", status: int = 200) -> Response:
    context = _draft_page(request)
    if isinstance(context, Response):
        return context
    return _render(request, "life_sign.html", context | {"error": error}, status)


async def sign_submit(request: Request) -> Response:
    form = await request.form()
    code = request.path_params["code"]

    def _submit() -> str:
        with _db(request).write_session() as session:
            walk = _walk(request, session)
            case = _case(session, walk)
            if case is None or walk.location is None:
                return "expired"
            if case.status is not CaseStatus.DRAFT:
                return "ok"  # a double tap: already submitted
            try:
                signature = parse_signature(str(form.get("signature.resident", "")), SignatureRole.RESIDENT)
            except SignatureError as error:
                return error.message_ja
            try:
                cases.submit(
                    session,
                    case,
                    revision=None,
                    signatures=[signature],
                    device=walk.device,
                    ip=client_ip(request),
                )
                _print_receipt(session, walk, case, walk.location, request.app.state.settings.base_url)
            except cases.CaseError as error:
                session.rollback()
                return error.message_ja
            session.commit()
            return "ok"

    outcome = await run_in_threadpool(_submit)
    if outcome == "expired":
        return _to(request, code, "life")
    if outcome == "ok":
        return _to(request, code, "life/done")
    return await run_in_threadpool(sign_page, request, error=outcome, status=422)


def _print_receipt(session: Session, walk: Walk, case: LifeCase, location: Location, base: str) -> None:
    """The kiosk's slip: reception number and the case QR a department scans (no personal data)."""
    assert walk.device.id is not None
    device_service.enqueue(
        session,
        device_id=walk.device.id,
        printer=PrinterKind.RECEIPT,
        title=f"手続き受付票 {cases.reception_label(case)}",
        payload={
            "receipt": {
                "title": "手続き受付票",
                "number": cases.reception_label(case),
                "number_label": "受付番号",
                "lines": [str(case.data.get("event_name", "")), location.name],
                "qr": f"{base}/cases/scan/{case.token}",
                "footer": ["窓口でこの紙をお見せください。", "書類はこちらで用意します。"],
            }
        },
        source_type="life_case",
        source_id=str(case.id),
    )


def done_page(request: Request) -> Response:
    with _db(request).session() as session:
        walk = _walk(request, session)
        case = _case(session, walk)
        if case is None or case.status is CaseStatus.DRAFT:
            return _to(request, walk.device.code, "life")
        data = cases.case_data(case, cases.procedures_of(session, case))
    departments: dict[str, str] = {}
    for p in data.procedures:
        departments.setdefault(p.department_id, p.department_name)
    return _render(
        request,
        "life_done.html",
        {
            "code": walk.device.code,
            "case": case,
            "data": data,
            "departments": departments,
            "today": date.today(),
        },
    )
