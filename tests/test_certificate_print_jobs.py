"""Certificates are made after the confirm commits: print orders, their idempotency, failures,
the order of events, and the arq worker path (real Redis: MADOGUCHI_TEST_REDIS_URL).

Service level, on SQLite and PostgreSQL (the `db` fixture). The HTTP walk is in
tests/test_kiosk_flow.py and tests/test_history.py.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from app.db import Database
from app.demo.generator import generate_demo
from app.domain.certificates import CertificateType
from app.domain.devices import PrinterKind, PrintJobState
from app.domain.requests import RequestState
from app.events import Event, set_event_sink
from app.models import (
    AuditEntry,
    CertificateIssue,
    CertificateRequest,
    DailyCounter,
    Device,
    EventRecord,
    IssuedCopy,
    PrintJob,
    Resident,
)
from app.services import certificates, devices as device_service, history
from app.services.audit import Actor
from app.services.certificates import (
    NewRequest,
    PrintContext,
    PrintOrder,
    configure_printing,
    create_request,
    run_print_order,
    set_print_dispatcher,
)
from app.storage import LocalObjectStore

REDIS_URL = os.environ.get("MADOGUCHI_TEST_REDIS_URL", "")
CLERK = Actor(type="staff", id="1", name="clerk", ip="127.0.0.1")


@dataclass
class Town:
    db: Database
    store: LocalObjectStore
    applicant_id: int
    orders: list[PrintOrder] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def confirm(self, key: str = "k1", copies: int = 1) -> int:
        """What the kiosk confirm does: create the request, commit."""
        with self.db.write_session() as session:
            device = session.exec(select(Device).where(Device.code == "0101")).one()
            applicant = session.get(Resident, self.applicant_id)
            assert applicant is not None
            request, created = create_request(
                session,
                NewRequest(
                    device=device,
                    applicant=applicant,
                    certificate_type=CertificateType.JUMINHYO,
                    options={},
                    subject_ids=[self.applicant_id],
                    copies=copies,
                    idempotency_key=key,
                ),
            )
            session.commit()
            assert created and request.id is not None
            return request.id

    def request(self, request_id: int) -> CertificateRequest:
        with self.db.session() as session:
            request = session.get(CertificateRequest, request_id)
            assert request is not None
            return request

    def issues(self) -> list[CertificateIssue]:
        with self.db.session() as session:
            return list(session.exec(select(CertificateIssue).order_by(col(CertificateIssue.id))).all())

    def office_jobs(self) -> list[PrintJob]:
        with self.db.session() as session:
            return list(session.exec(select(PrintJob).where(PrintJob.printer == PrinterKind.OFFICE)).all())

    def pdfs(self) -> list[Path]:
        return sorted((self.store.root / "certificates").rglob("*.pdf"))


@pytest.fixture
def town(db: Database, tmp_path: Path) -> Iterator[Town]:
    generate_demo(db, residents=120, today=date.today())
    with db.session() as session:
        applicant = session.exec(
            select(Resident).where(col(Resident.auth_cert_serial) != "").order_by(col(Resident.id))
        ).first()
        assert applicant is not None and applicant.id is not None
    store = LocalObjectStore(tmp_path / "objects")
    configure_printing(PrintContext(store=store, signer=None, verify_base_url="http://testserver"))
    result = Town(db, store, applicant.id)
    previous_dispatcher = set_print_dispatcher(result.orders.append)
    previous_sink = set_event_sink(result.events.append)
    try:
        yield result
    finally:
        set_event_sink(previous_sink)
        set_print_dispatcher(previous_dispatcher)
        configure_printing(None)


def test_the_confirm_commits_the_request_without_rendering_and_hands_over_one_order(
    town: Town, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_render(*args: Any) -> Any:
        raise AssertionError("rendered inside the confirm")

    monkeypatch.setattr(certificates, "render_certificate", no_render)
    request_id = town.confirm()
    request = town.request(request_id)
    assert request.state == RequestState.RECEIVED and request.reason == ""
    assert town.issues() == [] and town.office_jobs() == []
    assert town.orders == [PrintOrder(request_id=request_id, actor=certificates.AUTO_PRINT, automatic=True)]
    assert [e.type for e in town.events if e.type.startswith("certificate.")] == ["certificate.requested"]


def test_an_order_is_handed_over_only_when_the_transaction_commits(town: Town) -> None:
    with town.db.write_session() as session:
        certificates.print_on_commit(session, PrintOrder(request_id=1, actor=CLERK))
        session.rollback()
    assert town.orders == []
    with town.db.write_session() as session:
        certificates.print_on_commit(session, PrintOrder(request_id=2, actor=CLERK))
        with session.begin_nested():
            pass  # a savepoint released is no commit
        assert town.orders == []
        session.commit()
    assert [o.request_id for o in town.orders] == [2]


def test_manual_location_orders_nothing_until_staff_print(town: Town) -> None:
    with town.db.write_session() as session:
        device = session.exec(select(Device).where(Device.code == "0101")).one()
        from app.models import Location

        location = session.get(Location, device.location_id)
        assert location is not None
        location.settings = {**location.settings, "auto_print": False}
        session.add(location)
        session.commit()
    request_id = town.confirm()
    assert town.request(request_id).state == RequestState.AWAITING_CONFIRMATION and town.orders == []
    with town.db.write_session() as session:
        certificates.request_print(session, CLERK, request_id, staff_id=None)
        session.commit()
    assert town.request(request_id).state == RequestState.RECEIVED
    (order,) = town.orders
    assert order.actor == CLERK and not order.automatic
    assert run_print_order(town.db, order).outcome == "issued"
    with town.db.session() as session:
        actions = [e.action for e in session.exec(select(AuditEntry).order_by(col(AuditEntry.seq))).all()]
    assert actions[-2:] == ["certificate.received", "certificate.print"]


def test_running_an_order_twice_makes_one_issue(town: Town) -> None:
    request_id = town.confirm(copies=2)
    (order,) = town.orders
    first = run_print_order(town.db, order)
    again = run_print_order(town.db, order)
    assert first.outcome == "issued" and again.outcome == "skipped"
    (issue,) = town.issues()
    assert issue.id == first.issue_id and issue.reprint_of is None and issue.copies == 2
    (job,) = town.office_jobs()
    assert job.payload == {"document_key": issue.document_key, "request_id": request_id, "issue_id": issue.id}
    assert town.store.get(issue.document_key).startswith(b"%PDF")
    assert len(town.pdfs()) == 1
    with town.db.session() as session:
        numbers = session.exec(select(IssuedCopy).where(IssuedCopy.issue_id == issue.id)).all()
        audit = session.exec(select(AuditEntry).where(AuditEntry.action == "certificate.print")).all()
    assert len({n.issue_number.rsplit(" ", 1)[0] for n in numbers}) == 2
    assert len(audit) == 1 and audit[0].actor_name == "auto print"
    assert town.request(request_id).state == RequestState.RECEIVED  # 印刷済 once the printer says so


def test_two_runs_at_once_make_one_issue_and_the_loser_leaves_a_serial_gap(
    town: Town, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id = town.confirm()
    (order,) = town.orders
    both_rendering = threading.Barrier(2, timeout=30)
    render = certificates.render_certificate

    def render_together(data: Any) -> Any:
        both_rendering.wait()  # both runs are past the serial reservation before either records
        return render(data)

    monkeypatch.setattr(certificates, "render_certificate", render_together)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(run_print_order(town.db, order).outcome))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == ["issued", "skipped"]
    (issue,) = town.issues()
    assert len(town.office_jobs()) == 1 and len(town.pdfs()) == 1  # the loser's PDF is removed
    with town.db.session() as session:
        counters = session.exec(select(DailyCounter).where(col(DailyCounter.name).startswith("issue:"))).all()
        (number,) = session.exec(select(IssuedCopy).where(IssuedCopy.issue_id == issue.id)).all()
    assert [c.value for c in counters] == [2]  # two serials reserved, one printed: a gap
    assert request_id == issue.request_id and number.issue_number


def test_render_failure_keeps_the_request_with_a_reason_and_a_retry_prints_it(
    town: Town, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id = town.confirm()
    (order,) = town.orders
    render = certificates.render_certificate

    def broken(data: Any) -> Any:
        raise OSError("font cache unreadable")

    monkeypatch.setattr(certificates, "render_certificate", broken)
    result = run_print_order(town.db, order)
    assert result.outcome == "failed"
    request = town.request(request_id)
    assert request.state == RequestState.RECEIVED
    assert request.reason == "自動印刷に失敗しました。窓口の画面から印刷してください。"
    assert town.issues() == [] and town.office_jobs() == []
    told = [e for e in town.events if e.type == "certificate.state"]
    assert told and told[-1].data["request_id"] == request_id

    # Fixed; staff press 印刷 in the queue: the reason goes, the certificate is made.
    monkeypatch.setattr(certificates, "render_certificate", render)
    with town.db.write_session() as session:
        certificates.request_print(session, CLERK, request_id, staff_id=None)
        session.commit()
    assert town.request(request_id).reason == ""
    retry = town.orders[-1]
    assert retry.actor == CLERK and retry.reprint_of is None
    assert run_print_order(town.db, retry).outcome == "issued"
    assert len(town.issues()) == 1 and town.request(request_id).reason == ""
    # Printed now: another 印刷 is refused with a Japanese message.
    with town.db.write_session() as session, pytest.raises(certificates.RequestError, match="すでに印刷"):
        certificates.request_print(session, CLERK, request_id, staff_id=None)


def test_no_office_printer_is_told_in_japanese(town: Town) -> None:
    with town.db.write_session() as session:
        for device in session.exec(select(Device).where(Device.code == "0102")).all():
            device.revoked = True
            session.add(device)
        session.commit()
    request_id = town.confirm()
    assert run_print_order(town.db, town.orders[0]).outcome == "failed"
    assert town.request(request_id).reason.startswith("自動印刷できません：この窓口の事務用プリンター")


def test_a_request_cancelled_before_its_print_runs_prints_nothing(town: Town) -> None:
    request_id = town.confirm()
    with town.db.write_session() as session:
        certificates.move(session, CLERK, request_id, RequestState.CANCELLED, reason="本人が不要と申し出")
        session.commit()
    assert run_print_order(town.db, town.orders[0]).outcome == "skipped"
    request = town.request(request_id)
    assert request.state == RequestState.CANCELLED and request.reason == "本人が不要と申し出"
    assert town.issues() == [] and town.pdfs() == []


def test_events_go_out_received_then_issued_then_printed(town: Town) -> None:
    request_id = town.confirm()
    run_print_order(town.db, town.orders[0])
    (job,) = town.office_jobs()
    with town.db.write_session() as session:
        device = session.get(Device, job.device_id)
        assert device is not None and job.id is not None
        device_service.report(session, device, job.id, attempt=1, state=PrintJobState.DONE)
        session.commit()
    told = [e for e in town.events if e.type.startswith("certificate.")]
    staff = [(e.type, e.data.get("state"), "issue_id" in e.data) for e in told]
    assert staff == [
        ("certificate.requested", "received", False),
        ("certificate.state", "received", True),  # the issue is made, its office job queued
        ("certificate.state", "printed", False),
    ]
    ids = [e.id for e in told]
    assert ids == sorted(ids)  # published in the order they were recorded
    with town.db.session() as session:
        recorded = [r.id for r in session.exec(select(EventRecord).order_by(col(EventRecord.id)))]
    assert [i for i in recorded if i in ids] == ids
    assert town.request(request_id).state == RequestState.PRINTED


def test_a_reprint_order_run_twice_makes_one_reprint(town: Town) -> None:
    request_id = town.confirm()
    run_print_order(town.db, town.orders[0])
    (original,) = town.issues()
    with town.db.write_session() as session:
        reprint_of = history.reprint(
            session, CLERK, request_id, reason="紙詰まり", staff_id=None, expected_latest_issue=original.id
        )
        session.commit()
    assert reprint_of == original.id
    order = town.orders[-1]
    assert order.reprint_of == original.id and order.reason == "紙詰まり"
    assert order == PrintOrder.from_json(order.to_json())  # what the arq job carries
    assert [run_print_order(town.db, order).outcome for _ in range(2)] == ["issued", "skipped"]
    first, second = town.issues()
    assert second.reprint_of == first.id
    with town.db.session() as session:
        (reason,) = session.exec(select(AuditEntry).where(AuditEntry.action == "certificate.reprint_reason"))
    assert reason.detail == {"issue_id": second.id, "reprint_of": first.id, "reason": "紙詰まり"}
    assert reason.actor_name == "clerk"


# The arq worker, with a real Redis -------------------------------------------------------------


@pytest.mark.skipif(not REDIS_URL, reason="Redis not configured (set MADOGUCHI_TEST_REDIS_URL)")
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")  # arq's Worker.close
def test_the_arq_worker_prints_an_order_enqueued_after_the_commit(
    town: Town, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import Worker

    from app.config import get_settings
    from app.jobs import worker as worker_module
    from app.jobs.printing import ArqPrintDispatcher, LocalPrintRunner

    queue = f"madoguchi:test:{uuid.uuid4().hex}"  # the Redis database is shared: a queue of our own
    data_dir = tmp_path / "worker-data"
    for name, value in {
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": town.db.url,
        "EVENTS_URL": "memory://",
        "REDIS_URL": REDIS_URL,
        "JOB_QUEUE": queue,
        "SECRET_KEY": "test-secret-key-not-for-production",
    }.items():
        monkeypatch.setenv(f"MADOGUCHI_{name}", value)
    get_settings.cache_clear()
    local = LocalPrintRunner(town.db, threads=1)

    async def scenario() -> int:
        pool = await create_pool(RedisSettings.from_dsn(REDIS_URL), default_queue_name=queue)
        try:
            set_print_dispatcher(
                ArqPrintDispatcher(pool, asyncio.get_running_loop(), local, queue_name=queue)
            )
            request_id = await asyncio.to_thread(town.confirm)  # commits in a thread, as the web does
            assert town.issues() == []
            for _ in range(500):  # the enqueue runs on this loop, after the commit returned
                if await pool.zcard(queue):
                    break
                await asyncio.sleep(0.01)
            assert await pool.zcard(queue) == 1
            worker = Worker(
                functions=worker_module.WorkerSettings.functions,
                queue_name=queue,
                redis_settings=RedisSettings.from_dsn(REDIS_URL),
                on_startup=worker_module.startup,  # the worker's own wiring: database, printing, events
                on_shutdown=worker_module.shutdown,
                burst=True,
                handle_signals=False,
                poll_delay=0.01,
            )
            try:
                assert await worker.run_check() == 1
            finally:
                await worker.close()
            return request_id
        finally:
            await pool.delete(queue)
            await pool.aclose()

    try:
        request_id = asyncio.run(scenario())
    finally:
        set_print_dispatcher(town.orders.append)
        local.close()
        get_settings.cache_clear()
    (issue,) = town.issues()
    assert issue.request_id == request_id and len(town.office_jobs()) == 1
    # Rendered and stored by the worker, into the worker's object store.
    assert (data_dir / "objects" / issue.document_key).read_bytes().startswith(b"%PDF")
    assert town.pdfs() == []
