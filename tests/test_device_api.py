"""The device-bridge API: tokens, the job stream with redelivery, reports, heartbeats."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from app.db import Database
from app.domain.devices import PrinterKind, PrintJobState
from app.domain.registry import DeviceKind, SiteKind
from app.models import AuditEntry, Device, Location, Municipality, PrintJob, Site
from app.services import devices as device_service
from app.services.audit import Actor
from tests.conftest import LiveServer, StaffAccounts, csrf_of, sign_in

ADMIN = Actor(type="staff", id="1", name="admin")


def _location(db: Database) -> int:
    with db.write_session() as session:
        town = Municipality(code="993417", name="青葉台町")
        session.add(town)
        session.flush()
        assert town.id is not None
        site = Site(municipality_id=town.id, name="本庁", kind=SiteKind.MAIN_OFFICE)
        session.add(site)
        session.flush()
        assert site.id is not None
        location = Location(site_id=site.id, code="01", name="住民課窓口")
        session.add(location)
        session.commit()
        assert location.id is not None
        return location.id


def _device(db: Database, code: str = "K01") -> tuple[int, str]:
    location_id = _location(db)
    with db.write_session() as session:
        device, token = device_service.register(
            session, ADMIN, location_id=location_id, code=code, name="キオスク1", kind=DeviceKind.KIOSK
        )
        session.commit()
        assert device.id is not None
        return device.id, token


def _enqueue(db: Database, device_id: int, title: str = "受付票") -> int:
    with db.write_session() as session:
        job = device_service.enqueue(
            session,
            device_id=device_id,
            printer=PrinterKind.RECEIPT,
            title=title,
            payload={"receipt": {"title": title, "lines": ["テスト"]}},
        )
        session.commit()
        assert job.id is not None
        return job.id


def test_token_is_stored_only_as_a_hash(sqlite_db: Database) -> None:
    device_id, token = _device(sqlite_db)
    with sqlite_db.session() as session:
        device = session.get(Device, device_id)
        assert device is not None
        assert token not in device.token_hash
        assert device_service.authenticate(session, token) is not None
        assert device_service.authenticate(session, token + "x") is None
        entries = session.exec(select(AuditEntry).where(AuditEntry.action == "device.register")).all()
        assert len(entries) == 1 and token not in json.dumps(entries[0].detail)


def test_rotated_and_revoked_tokens_stop_working(client: TestClient, db: Database) -> None:
    device_id, token = _device(db)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/devices/api/heartbeat", headers=headers, json={"status": {}}).status_code == 200
    with db.write_session() as session:
        new_token = device_service.rotate_token(session, ADMIN, device_id)
        session.commit()
    assert client.post("/devices/api/heartbeat", headers=headers, json={"status": {}}).status_code == 401
    new_headers = {"Authorization": f"Bearer {new_token}"}
    assert client.post("/devices/api/heartbeat", headers=new_headers, json={"status": {}}).status_code == 200
    with db.write_session() as session:
        device_service.revoke(session, ADMIN, device_id)
        session.commit()
    refused = client.post("/devices/api/heartbeat", headers=new_headers, json={"status": {}})
    assert refused.status_code == 401
    assert "機器トークンが無効です" in refused.json()["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/devices/api/stream"),
        ("POST", "/devices/api/heartbeat"),
        ("POST", "/devices/api/events"),
        ("POST", "/devices/api/jobs/1"),
        ("GET", "/devices/api/jobs/1/document"),
    ],
)
def test_api_refuses_missing_and_wrong_tokens(client: TestClient, method: str, path: str) -> None:
    assert client.request(method, path).status_code == 401
    bad = {"Authorization": "Bearer mdg_not-a-real-token"}
    assert client.request(method, path, headers=bad).status_code == 401


def test_reports_move_forward_only_and_stale_attempts_are_refused(client: TestClient, db: Database) -> None:
    device_id, token = _device(db)
    job_id = _enqueue(db, device_id)
    headers = {"Authorization": f"Bearer {token}"}

    def post(state: str, attempt: int = 1, reason: str = "") -> httpx.Response:
        body = {"attempt": attempt, "state": state, "reason": reason}
        return client.post(f"/devices/api/jobs/{job_id}", headers=headers, json=body)

    assert post("delivered", reason="用紙切れ").json() == {"state": "delivered"}
    with db.session() as session:
        job = session.get(PrintJob, job_id)
        assert job is not None and job.reason == "用紙切れ"  # staff see why it waits
    assert post("printing").json() == {"state": "printing"}
    assert post("delivered").json() == {"state": "printing"}  # never backwards
    assert post("done").json() == {"state": "done"}
    assert post("done").json() == {"state": "done"}  # repeated ack is harmless
    assert post("bogus").status_code == 400
    with db.write_session() as session, pytest.raises(device_service.DeviceError):
        device_service.retry(session, ADMIN, job_id)  # a printed job is not printed again by mistake
    other_id, other_token = _device_on_same_location(db)
    other = {"Authorization": f"Bearer {other_token}"}
    assert (
        client.post(
            f"/devices/api/jobs/{job_id}", headers=other, json={"attempt": 1, "state": "done"}
        ).status_code
        == 404
    )


def _device_on_same_location(db: Database) -> tuple[int, str]:
    with db.write_session() as session:
        location = session.exec(select(Location)).first()
        assert location is not None and location.id is not None
        device, token = device_service.register(
            session, ADMIN, location_id=location.id, code="K02", name="キオスク2", kind=DeviceKind.KIOSK
        )
        session.commit()
        assert device.id is not None
        return device.id, token


def test_cancel_and_retry_make_new_attempts(client: TestClient, db: Database) -> None:
    device_id, token = _device(db)
    job_id = _enqueue(db, device_id)
    headers = {"Authorization": f"Bearer {token}"}
    with db.write_session() as session:
        device_service.cancel(session, ADMIN, job_id)
        session.commit()
    stale = client.post(f"/devices/api/jobs/{job_id}", headers=headers, json={"attempt": 1, "state": "done"})
    assert stale.status_code == 409
    with db.write_session() as session:
        job = device_service.retry(session, ADMIN, job_id)
        session.commit()
        assert job.attempt == 2 and job.state == PrintJobState.QUEUED
    ok = client.post(f"/devices/api/jobs/{job_id}", headers=headers, json={"attempt": 2, "state": "done"})
    assert ok.json() == {"state": "done"}
    with db.session() as session:
        actions = [e.action for e in session.exec(select(AuditEntry)).all()]
    assert "print.cancel" in actions and "print.retry" in actions


def test_a_live_delivery_counts_and_gives_the_jobs_message(db: Database) -> None:
    """deliver_job (one UPDATE … RETURNING) does what mark_delivered + job_message do, for this
    device's current attempt of an unfinished job only (SQLite and PostgreSQL)."""
    device_id, _ = _device(db)
    other_id, _ = _device_on_same_location(db)
    job_id = _enqueue(db, device_id)

    def deliver(device: int, attempt: int = 1) -> dict[str, object] | None:
        with db.write_session() as session:
            message = device_service.deliver_job(session, device, job_id, attempt)
            session.commit()
        return message

    def stored() -> PrintJob:
        with db.session() as session:
            job = session.get(PrintJob, job_id)
            assert job is not None
            return job

    with db.session() as session:
        job = session.get(PrintJob, job_id)
        assert job is not None
        expected = device_service.job_message(job)
    assert deliver(other_id) is None and deliver(device_id, attempt=2) is None
    assert stored().deliveries == 0 and stored().state == PrintJobState.QUEUED
    assert deliver(device_id) == expected
    assert expected["printer"] == "receipt" and expected["payload"] == {
        "receipt": {"title": "受付票", "lines": ["テスト"]}
    }
    assert (stored().deliveries, stored().state) == (1, PrintJobState.DELIVERED)
    assert deliver(device_id) == expected  # a second stream hears of it too: counted, still delivered
    assert (stored().deliveries, stored().state) == (2, PrintJobState.DELIVERED)
    with db.write_session() as session:
        device = session.get(Device, device_id)
        assert device is not None
        device_service.report(session, device, job_id, attempt=1, state=PrintJobState.DONE)
        session.commit()
    assert deliver(device_id) is None and stored().deliveries == 2


def test_expired_jobs_fail_with_a_reason(db: Database) -> None:
    from datetime import timedelta

    from app.models._types import utcnow

    device_id, _ = _device(db)
    job_id = _enqueue(db, device_id)
    with db.write_session() as session:
        assert device_service.expire_jobs(session, now=utcnow() + timedelta(days=2)) == 1
        session.commit()
        job = session.get(PrintJob, job_id)
        assert job is not None and job.state == PrintJobState.FAILED and "期限" in job.reason
        assert device_service.expire_jobs(session, now=utcnow() + timedelta(days=2)) == 0


def _read_events(
    response: httpx.Response, events: list[tuple[str, dict[str, Any]]], stop: threading.Event
) -> None:
    name = ""
    try:
        for line in response.iter_lines():
            if stop.is_set():
                return
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line.split(":", 1)[1])))
    except httpx.HTTPError:
        if not stop.is_set():
            raise  # the test closes the stream once it has what it needs; anything else is a failure


@pytest.fixture
def device_on_live(live_server: LiveServer) -> Iterator[tuple[LiveServer, int, str]]:
    device_id, token = _device(live_server.db)
    yield live_server, device_id, token


def test_stream_redelivers_unfinished_jobs_then_sends_new_ones(
    device_on_live: tuple[LiveServer, int, str],
) -> None:
    server, device_id, token = device_on_live
    first = _enqueue(server.db, device_id, "受付票 1")
    headers = {"Authorization": f"Bearer {token}"}

    def connect_and_collect(expect: int, during: Any = None) -> list[tuple[str, dict[str, Any]]]:
        events: list[tuple[str, dict[str, Any]]] = []
        stop = threading.Event()
        with (
            httpx.Client(timeout=10) as http,
            http.stream("GET", f"{server.url}/devices/api/stream", headers=headers) as response,
        ):
            assert response.status_code == 200
            reader = threading.Thread(target=_read_events, args=(response, events, stop), daemon=True)
            reader.start()
            if during:
                _wait(lambda: len(events) >= 2)
                during()
            _wait(lambda: len(events) >= expect)
            stop.set()
        reader.join(timeout=5)
        return events

    got = connect_and_collect(3, during=lambda: _enqueue(server.db, device_id, "受付票 2"))
    assert [name for name, _ in got[:3]] == ["hello", "job", "job"]
    assert got[1][1]["id"] == first and got[1][1]["payload"]["receipt"]["title"] == "受付票 1"
    assert got[0][1]["device"]["id"] == device_id
    # Not acknowledged yet: a reconnect delivers both again.
    again = connect_and_collect(3)
    assert sorted(e[1]["id"] for e in again if e[0] == "job") == sorted(
        e[1]["id"] for e in got if e[0] == "job"
    )
    with server.db.session() as session:
        job = session.get(PrintJob, first)
        assert job is not None and job.deliveries == 2 and job.state == PrintJobState.DELIVERED


def _wait(predicate: Any, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_heartbeat_shows_on_the_staff_page(
    client: TestClient, db: Database, staff_accounts: StaffAccounts
) -> None:
    device_id, token = _device(db)
    status = {"printers": {"receipt": {"online": True, "paper_out": True, "reason": "用紙切れ"}}}
    client.post(
        "/devices/api/heartbeat", headers={"Authorization": f"Bearer {token}"}, json={"status": status}
    )
    sign_in(client, "clerk")
    page = client.get("/staff/devices")
    assert "K01" in page.text and "用紙切れ" in page.text and "オンライン" in page.text


def test_admin_registers_a_device_and_sees_the_token_once(
    client: TestClient, db: Database, staff_accounts: StaffAccounts
) -> None:
    location_id = _location(db)
    sign_in(client, "admin")
    token = csrf_of(client, "/admin/devices")
    page = client.post(
        "/admin/devices",
        data={
            "csrf_token": token,
            "code": "B01",
            "name": "後方プリンタ",
            "location_id": str(location_id),
            "kind": "back_office",
        },
    )
    assert page.status_code == 200
    shown = page.text.split('id="new-token">')[1].split("<")[0]
    assert shown.startswith("mdg_")
    assert shown not in client.get("/admin/devices").text
    assert (
        client.post(
            "/devices/api/heartbeat", headers={"Authorization": f"Bearer {shown}"}, json={}
        ).status_code
        == 200
    )
    duplicate = client.post(
        "/admin/devices",
        data={
            "csrf_token": token,
            "code": "B01",
            "name": "x",
            "location_id": str(location_id),
            "kind": "kiosk",
        },
    )
    assert duplicate.status_code == 422 and "端末コード「B01」はすでに使われています。" in duplicate.text
