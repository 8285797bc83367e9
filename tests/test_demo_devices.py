"""The demo's devices: real bridges, simulated printers and card, wired to a running server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import zxingcpp
from sqlmodel import col, select

from app.demo.generator import generate_demo
from app.domain.devices import PrinterKind, PrintJobState
from app.domain.registry import DeviceKind
from app.models import Device, PrintJob
from app.services import devices as device_service
from device_bridge.simulators.demo import DemoDevices
from tests.conftest import LiveServer

pytestmark = pytest.mark.slow


def _wait(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_demo_terminals_come_online_and_print(live_server: LiveServer, tmp_path: Path) -> None:
    generate_demo(live_server.db, residents=200)
    devices = DemoDevices(live_server.url, live_server.db, tmp_path / "demo")
    try:
        devices.start()
        kinds = {t.kind for t in devices.terminals}
        assert {DeviceKind.KIOSK, DeviceKind.BACK_OFFICE} <= kinds

        def all_online() -> bool:
            with live_server.db.session() as session:
                rows = session.exec(select(Device)).all()
                return all(device_service.is_online(d) for d in rows)

        _wait(all_online)
        kiosk = next(t for t in devices.terminals if t.printer is not None)
        with live_server.db.write_session() as session:
            job = device_service.enqueue(
                session,
                device_id=kiosk.device_id,
                printer=PrinterKind.RECEIPT,
                title="受付票 A-001",
                payload={
                    "receipt": {
                        "title": "受付票",
                        "number": "A-001",
                        "lines": ["住民票の写し 1通"],
                        "qr": "A-001",
                    }
                },
            )
            session.commit()
            job_id = job.id
        assert kiosk.printer is not None
        receipts = kiosk.printer.wait_for_receipts(1, timeout=20)
        # Text and QR go to the printer as raster images; an independent reader decodes the QR back.
        decoded = [result.text for result in zxingcpp.read_barcodes(receipts[0].image)]
        assert decoded == ["A-001"]

        def done() -> bool:
            with live_server.db.session() as session:
                row = session.get(PrintJob, job_id)
                return row is not None and row.state == PrintJobState.DONE

        _wait(done)
        # Each terminal got its own token; the config files hold it, readable by root only.
        for terminal in devices.terminals:
            assert terminal.config_path.stat().st_mode & 0o077 == 0
        with live_server.db.session() as session:
            assert session.exec(select(Device).where(col(Device.token_hash) == "")).first() is None
    finally:
        devices.stop()
    for terminal in devices.terminals:
        assert terminal.process is not None and terminal.process.poll() is not None
