"""Office printer driver against a real CUPS queue whose backend writes jobs into a folder.

Needs CUPS (cupsd, lp, lpadmin: apt-get install cups cups-client) and root to set up the queue;
scripts/test runs as root. Each run makes its own queue (madoguchi-test-<pid>) and removes it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_bridge.drivers.office import JobNotFound, JobState, OfficePrinter, PrinterUnavailable
from device_bridge.simulators import office_printer
from device_bridge.simulators.office_printer import SetupError, SimulatedQueue

pytestmark = pytest.mark.slow


def minimal_pdf(text: str = "Madoguchi test page") -> bytes:
    """A one-page PDF written by hand, with a correct cross-reference table."""
    content = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


@pytest.fixture(scope="module")
def sim_queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedQueue]:
    missing = office_printer.missing_tools()
    if missing:
        pytest.skip(f"CUPS is not installed (missing {', '.join(missing)}): apt-get install cups cups-client")
    if not office_printer.is_root():
        pytest.skip("setting up a CUPS queue needs root (scripts/test runs as root)")
    queue = f"madoguchi-test-{os.getpid()}"
    folder = tmp_path_factory.mktemp("office-print")
    try:
        sim = office_printer.setup(queue, folder)
    except SetupError as exc:
        pytest.fail(f"could not set up the simulated office printer: {exc}")
    yield sim
    office_printer.teardown(queue)


@pytest.fixture
def printer(sim_queue: SimulatedQueue) -> OfficePrinter:
    return OfficePrinter.from_config({"queue": sim_queue.queue})


def cups(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True, env={**os.environ, "LC_ALL": "C"})


def test_pdf_with_two_copies_duplex_and_tray_lands_in_the_folder(
    printer: OfficePrinter, sim_queue: SimulatedQueue
) -> None:
    pdf = minimal_pdf()
    job_id = printer.print_pdf(pdf, copies=2, duplex="long", tray="tray-2", title="住民票の写し")
    assert isinstance(job_id, int) and job_id > 0

    final = printer.wait(job_id, timeout=60)
    assert final.state is JobState.COMPLETED
    assert final.is_final

    files = sim_queue.job_files(job_id)
    assert [f.name for f in files] == [f"job-{job_id}-1.pdf", f"job-{job_id}-2.pdf"]
    assert files[0].read_bytes() == pdf and files[1].read_bytes() == pdf
    info = sim_queue.wait_for_job(job_id, timeout=5)
    assert info["copies"] == 2
    assert info["title"] == "住民票の写し"
    assert info["format"] == "pdf"
    options = str(info["options"]).split()
    assert "sides=two-sided-long-edge" in options
    assert "media-source=tray-2" in options


def test_pdf_from_a_file_one_sided(printer: OfficePrinter, sim_queue: SimulatedQueue, tmp_path: Path) -> None:
    path = tmp_path / "guide.pdf"
    path.write_bytes(minimal_pdf("guidance sheet"))
    job_id = printer.print_pdf(path, duplex=False)
    assert printer.wait(job_id, timeout=60).state is JobState.COMPLETED
    assert sim_queue.job_files(job_id)[0].read_bytes() == path.read_bytes()
    assert "sides=one-sided" in str(sim_queue.wait_for_job(job_id)["options"]).split()


def test_queue_status(printer: OfficePrinter) -> None:
    status = printer.queue_status()
    assert status.exists and status.accepting and status.state in ("idle", "processing")
    assert status.can_print and status.staff_reason() == ""


def test_disabled_queue_raises_printer_unavailable(printer: OfficePrinter, sim_queue: SimulatedQueue) -> None:
    before = len(sim_queue.documents())
    cups("cupsdisable", "-r", "stopped by the test", sim_queue.queue)
    try:
        with pytest.raises(PrinterUnavailable) as caught:
            printer.print_pdf(minimal_pdf())
        assert caught.value.reason == f"プリンター「{sim_queue.queue}」が停止しています"
    finally:
        cups("cupsenable", sim_queue.queue)
    assert len(sim_queue.documents()) == before


def test_rejecting_queue_raises_printer_unavailable(
    printer: OfficePrinter, sim_queue: SimulatedQueue
) -> None:
    cups("cupsreject", sim_queue.queue)
    try:
        with pytest.raises(PrinterUnavailable) as caught:
            printer.print_pdf(minimal_pdf())
        assert "受付を停止しています" in caught.value.reason
    finally:
        cups("cupsaccept", sim_queue.queue)


def test_missing_queue_raises_printer_unavailable(sim_queue: SimulatedQueue) -> None:
    printer = OfficePrinter.from_config({"queue": "madoguchi-no-such-queue"})
    assert not printer.queue_status().exists
    with pytest.raises(PrinterUnavailable) as caught:
        printer.print_pdf(minimal_pdf())
    assert "見つかりません" in caught.value.reason


def test_cancel_a_held_job(printer: OfficePrinter, sim_queue: SimulatedQueue) -> None:
    job_id = printer.print_pdf(minimal_pdf(), options={"job-hold-until": "indefinite"})
    assert printer.job_state(job_id).state is JobState.HELD
    with pytest.raises(TimeoutError):
        printer.wait(job_id, timeout=0.3)

    assert printer.cancel(job_id) is True
    final = printer.wait(job_id, timeout=30)
    assert final.state is JobState.CANCELLED
    assert printer.cancel(job_id) is False  # already finished
    assert sim_queue.job_files(job_id) == []


def test_find_a_job_by_its_title(printer: OfficePrinter) -> None:
    title = f"madoguchi-job-{os.getpid()}-short"
    job_id = printer.print_pdf(minimal_pdf(), duplex="short", title=title)
    assert printer.find_job(title) == job_id
    printer.wait(job_id, timeout=60)
    assert printer.find_job(title) == job_id  # finished jobs too
    assert any(job.job_id == job_id and job.name == title for job in printer.jobs("completed"))
    assert printer.find_job("madoguchi-job-never-printed") is None
    assert OfficePrinter.from_config({"queue": "madoguchi-no-such-queue"}).find_job(title) is None


def test_unknown_job(printer: OfficePrinter) -> None:
    with pytest.raises(JobNotFound):
        printer.job_state(987_654)


def test_setup_is_idempotent_and_the_cli_reports(sim_queue: SimulatedQueue, printer: OfficePrinter) -> None:
    again = office_printer.setup(sim_queue.queue, sim_queue.folder)
    assert again == sim_queue
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "device_bridge.simulators.office_printer",
            "status",
            "--queue",
            sim_queue.queue,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert sim_queue.device_uri in result.stdout
    job_id = printer.print_pdf(minimal_pdf())
    assert printer.wait(job_id, timeout=60).state is JobState.COMPLETED


def test_bad_configuration_is_refused() -> None:
    for bad in ({}, {"queue": ""}, {"queue": "q", "timeout": 0}, {"queue": "q", "colour": True}):
        with pytest.raises(ValueError):
            OfficePrinter.from_config(bad)
    printer = OfficePrinter.from_config({"queue": "q"})
    with pytest.raises(ValueError):
        printer.print_pdf(b"%PDF-", copies=0)
