"""Office printer driver against a real CUPS queue whose backend writes jobs into a folder.

Needs CUPS (cupsd, lpadmin, cupsenable …: apt-get install cups cups-client) and root to set up the
queue; scripts/test runs as root. No environment variables. Each run makes its own queue
(madoguchi-test-<pid>) and removes it. The backend script itself is also run directly with /bin/sh
(no CUPS needed for those tests).
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import stat
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
    job_id = printer.print_pdf(
        pdf,
        copies=2,
        duplex="long",
        tray="tray-2",
        title="住民票の写し",
        options={"print-quality": "5", "madoguchi-note": "窓口 2番"},
    )
    assert isinstance(job_id, int) and job_id > 0

    final = printer.wait(job_id, timeout=60)
    assert final.state is JobState.COMPLETED
    assert final.is_final

    files = sim_queue.job_files(job_id)
    assert [f.name for f in files] == [f"job-{job_id}-1.pdf", f"job-{job_id}-2.pdf"]
    assert files[0].read_bytes() == pdf and files[1].read_bytes() == pdf
    info = sim_queue.wait_for_job(job_id, timeout=5)
    assert info["copies"] == 2
    assert info["user"] == getpass.getuser()
    assert info["title"] == "住民票の写し"
    assert info["format"] == "pdf"
    assert [(f.stat().st_mode & 0o777) for f in files] == [0o644, 0o644]
    options = str(info["options"]).split()
    assert "sides=two-sided-long-edge" in options
    assert "media-source=tray-2" in options
    assert "print-quality=5" in options  # an integer
    assert "madoguchi-note=窓口\\ 2番" in str(info["options"])  # a name; CUPS escapes the space


def test_title_with_quote_backslash_and_japanese_reaches_the_backend_json(
    printer: OfficePrinter, sim_queue: SimulatedQueue
) -> None:
    title = '住民票の写し "窓口" C:\\madoguchi\\'
    job_id = printer.print_pdf(minimal_pdf(), copies=2, title=title)
    assert printer.wait(job_id, timeout=60).state is JobState.COMPLETED
    text = (sim_queue.folder / f"job-{job_id}.json").read_text(encoding="utf-8")
    info = json.loads(text)
    assert info == {
        "job_id": job_id,
        "user": getpass.getuser(),
        "title": title,
        "copies": 2,
        "options": info["options"],
        "format": "pdf",
    }
    assert [f.name for f in sim_queue.job_files(job_id)] == [f"job-{job_id}-1.pdf", f"job-{job_id}-2.pdf"]


def test_bytes_that_are_not_a_pdf(printer: OfficePrinter, sim_queue: SimulatedQueue) -> None:
    data = b"plain text, not a PDF\n"
    job_id = printer.print_pdf(data)
    assert printer.wait(job_id, timeout=60).state is JobState.COMPLETED
    assert [f.read_bytes() for f in sim_queue.job_files(job_id)] == [data]
    info = sim_queue.wait_for_job(job_id)
    assert info["format"] == "bin" and info["title"] == "(stdin)" and info["copies"] == 1


def test_pdf_from_a_file_one_sided(printer: OfficePrinter, sim_queue: SimulatedQueue, tmp_path: Path) -> None:
    path = tmp_path / "guide.pdf"
    path.write_bytes(minimal_pdf("guidance sheet"))
    job_id = printer.print_pdf(path, duplex=False)
    assert printer.wait(job_id, timeout=60).state is JobState.COMPLETED
    assert sim_queue.job_files(job_id)[0].read_bytes() == path.read_bytes()
    info = sim_queue.wait_for_job(job_id)
    assert "sides=one-sided" in str(info["options"]).split()
    assert info["title"] == "guide.pdf"  # named after the file, as lp names it
    with pytest.raises(FileNotFoundError):
        printer.print_pdf(tmp_path / "missing.pdf")


def test_queue_status(printer: OfficePrinter) -> None:
    status = printer.queue_status()
    assert status.exists and status.accepting and status.state in ("idle", "processing")
    assert status.can_print and status.staff_reason() == ""


def test_disabled_queue_raises_printer_unavailable(printer: OfficePrinter, sim_queue: SimulatedQueue) -> None:
    before = len(sim_queue.documents())
    queued = printer.jobs("not-completed")
    cups("cupsdisable", "-r", "stopped by the test", sim_queue.queue)
    try:
        with pytest.raises(PrinterUnavailable) as caught:
            printer.print_pdf(minimal_pdf())
        assert caught.value.reason == f"プリンター「{sim_queue.queue}」が停止しています"
        assert printer.jobs("not-completed") == queued  # refused before anything was queued
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
    assert (
        caught.value.reason
        == "プリンター「madoguchi-no-such-queue」が見つかりません（設定を確認してください）"
    )


def unchecked(printer: OfficePrinter, monkeypatch: pytest.MonkeyPatch) -> OfficePrinter:
    """The printer without the check before Print-Job: the queue changes between check and job."""
    monkeypatch.setattr(printer, "check_available", lambda: None)
    return printer


def test_print_job_errors_from_cups_are_mapped(
    sim_queue: SimulatedQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = unchecked(OfficePrinter.from_config({"queue": "madoguchi-no-such-queue"}), monkeypatch)
    with pytest.raises(PrinterUnavailable) as caught:
        missing.print_pdf(minimal_pdf())  # client-error-not-found
    assert (
        caught.value.reason
        == "プリンター「madoguchi-no-such-queue」が見つかりません（設定を確認してください）"
    )

    printer = unchecked(OfficePrinter.from_config({"queue": sim_queue.queue}), monkeypatch)
    cups("cupsreject", sim_queue.queue)
    try:
        with pytest.raises(PrinterUnavailable) as caught:
            printer.print_pdf(minimal_pdf())  # server-error-not-accepting-jobs
        assert caught.value.reason == f"プリンター「{sim_queue.queue}」が印刷の受付を停止しています"
    finally:
        cups("cupsaccept", sim_queue.queue)

    with pytest.raises(PrinterUnavailable) as caught:
        printer.print_pdf(b"")  # client-error-bad-request, with CUPS's status-message
    assert caught.value.reason == "印刷できませんでした（No file in print request.）"


def test_no_scheduler_raises_printer_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = OfficePrinter.from_config({"queue": "q", "server": str(tmp_path / "no-cups.sock")})
    with pytest.raises(PrinterUnavailable) as caught:
        nowhere.print_pdf(minimal_pdf())
    assert caught.value.reason == "印刷サービス（CUPS）に接続できません"
    with pytest.raises(PrinterUnavailable) as caught:
        unchecked(nowhere, monkeypatch).print_pdf(minimal_pdf())
    assert caught.value.reason == "印刷サービス（CUPS）に接続できません"

    # A scheduler that takes the connection and never answers.
    path = tmp_path / "silent.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(str(path))
        silent.listen()
        slow = OfficePrinter.from_config({"queue": "q", "server": str(path), "timeout": 0.3})
        with pytest.raises(PrinterUnavailable) as caught:
            unchecked(slow, monkeypatch).print_pdf(minimal_pdf())
        assert caught.value.reason == "印刷サービス（CUPS）が応答しません"


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
    with pytest.raises(JobNotFound):
        printer.cancel(987_654)


def test_queue_that_wants_authenticated_users(printer: OfficePrinter, sim_queue: SimulatedQueue) -> None:
    cups("lpadmin", "-p", sim_queue.queue, "-o", "printer-op-policy=authenticated")
    try:
        job_id = printer.print_pdf(minimal_pdf(), options={"job-hold-until": "indefinite"})  # PeerCred
        assert printer.job_state(job_id).state is JobState.HELD
        assert printer.cancel(job_id) is True
    finally:
        cups("lpadmin", "-p", sim_queue.queue, "-o", "printer-op-policy=default")


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
    backend = office_printer.backend_path()
    assert backend.read_text(encoding="utf-8") == office_printer.BACKEND_SCRIPT
    # An older backend (still working: other queues may be printing) is replaced by setup.
    backend.write_text(office_printer.BACKEND_SCRIPT + "# an older version\n", encoding="utf-8")
    office_printer.setup(sim_queue.queue, sim_queue.folder)
    assert backend.read_text(encoding="utf-8") == office_printer.BACKEND_SCRIPT
    assert stat.S_IMODE(backend.stat().st_mode) == 0o700
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
    printer = OfficePrinter.from_config({"queue": "q", "server": "/nonexistent/cups.sock"})
    for bad_call in (
        {"copies": 0},
        {"copies": 1000},
        {"duplex": "sideways"},
        {"options": {"bad name": "x"}},
        {"options": {"note": "x" * 1024}},
    ):
        with pytest.raises(ValueError):
            printer.print_pdf(b"%PDF-", **bad_call)  # type: ignore[arg-type]


# --- the backend script, run directly (as cupsd runs it: /bin/sh, umask 077) ---------------------


def run_backend(
    folder: Path, args: list[str], *, stdin: bytes | None = None, content_type: str = "application/pdf"
) -> subprocess.CompletedProcess[bytes]:
    script = folder.parent / "backend.sh"
    script.write_text(office_printer.BACKEND_SCRIPT, encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "DEVICE_URI": f"madoguchi-folder:{folder}", "CONTENT_TYPE": content_type}
    return subprocess.run(
        ["/bin/sh", "-c", 'umask 077 && exec /bin/sh "$0" "$@"', str(script), *args],
        input=stdin or b"",
        capture_output=True,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("content_type", ["application/pdf", "application/octet-stream"])
def test_backend_writes_copies_and_valid_json(tmp_path: Path, content_type: str) -> None:
    folder = tmp_path / "out"
    spool = tmp_path / "d00042-001"
    spool.write_bytes(minimal_pdf())
    title = '住民票の写し "窓口" C:\\madoguchi\\ tab\there'
    options = 'sides=one-sided madoguchi-note=\\"x\\" media-source=tray-2'
    result = run_backend(folder, ["42", "root", title, "2", options, str(spool)], content_type=content_type)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["job-42-1.pdf", "job-42-2.pdf", "job-42.json"]
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert (folder / "job-42-1.pdf").read_bytes() == (folder / "job-42-2.pdf").read_bytes() == minimal_pdf()
    assert json.loads((folder / "job-42.json").read_text(encoding="utf-8")) == {
        "job_id": 42,
        "user": "root",
        "title": title.replace("\t", ""),  # control characters are dropped
        "copies": 2,
        "options": options,
        "format": "pdf",
    }
    plain = run_backend(folder, ["43", "root", "住民票", "1", "sides=one-sided", str(spool)])
    assert plain.returncode == 0, plain.stderr
    assert (folder / "job-43.json").read_text(encoding="utf-8") == (
        '{"job_id": 43, "user": "root", "title": "住民票", "copies": 1, "options": "sides=one-sided", '
        '"format": "pdf"}\n'
    )


def test_backend_reads_filtered_data_from_stdin(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    result = run_backend(folder, ["7", "root", "x", "3", ""], stdin=b"not a pdf", content_type="text/plain")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["job-7-1.bin", "job-7.json"]  # filters made copies
    assert (folder / "job-7-1.bin").read_bytes() == b"not a pdf"
    assert stat.S_IMODE((folder / "job-7-1.bin").stat().st_mode) == 0o644
    info = json.loads((folder / "job-7.json").read_text(encoding="utf-8"))
    assert info["copies"] == 1 and info["format"] == "bin"
