"""Office printing: the CPU one job costs, from the driver to the simulated printer's folder.

    uv run python bench/bench_office_print.py               # 100 jobs through the driver, 100 with lp
    uv run python bench/bench_office_print.py --jobs 300 --no-lp

Needs root and CUPS (``cupsd``, as scripts/setup installs it): it makes a queue of its own on the
simulated office printer (device_bridge/simulators/office_printer.py: a raw queue whose backend
writes each job into a folder) and removes it afterwards. Each job is a certificate-sized PDF
(~40 KB) with copies, duplex and tray, as the bridge sends them.

Two ways of sending, side by side in one run:

- ``driver``: ``OfficePrinter.print_pdf`` — one Get-Printer-Attributes and one IPP Print-Job
  to the scheduler's socket (what the bridge does);
- ``lp``: the ``lp`` command of cups-client with the same options (what the driver did before it
  spoke IPP itself).

For each: the submitting process's CPU (with its children: ``lp``), the scheduler's own CPU and
its children's (the backends cupsd starts for every job), per job. cupsd writes its job files
every 30 s (DirtyCleanInterval), so the bench waits ``--settle`` seconds before and after each
batch to count that too. Waiting for the jobs to land reads the folder (no cost to cupsd).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from device_bridge.drivers.office import OfficePrinter  # noqa: E402
from device_bridge.simulators import office_printer as simulator  # noqa: E402

QUEUE = "madoguchi-bench-office"
TICK = os.sysconf("SC_CLK_TCK")


def certificate_sized_pdf() -> bytes:
    """A valid one-page PDF padded with a comment to ~40 KB, the size of a signed certificate."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    out += b"%" + os.urandom(20_000).hex().encode() + b"\n"
    xref = len(out)
    out += b"xref\n0 4\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size 4 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def cupsd_cpu() -> tuple[float, float]:
    """(cupsd's own CPU seconds, its finished children's) from /proc."""
    pid = int(Path("/run/cups/cupsd.pid").read_text().split()[0])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK, (int(fields[13]) + int(fields[14])) / TICK


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def send_with_driver(printer: OfficePrinter, pdf: bytes, title: str) -> int:
    return printer.print_pdf(pdf, copies=1, duplex="long", tray="tray-2", title=title)


def send_with_lp(printer: OfficePrinter, pdf: bytes, title: str) -> int:
    options = ["-o", "sides=two-sided-long-edge", "-o", "media-source=tray-2"]
    command = ["lp", "-d", printer.queue, "-n", "1", "-t", title, *options, "--"]
    result = subprocess.run(
        command, input=pdf, capture_output=True, check=True, env={**os.environ, "LC_ALL": "C"}
    )
    return int(result.stdout.decode().split("request id is ")[1].split()[0].rsplit("-", 1)[1])


def run(
    name: str,
    send: Callable[[OfficePrinter, bytes, str], int],
    queue: simulator.SimulatedQueue,
    jobs: int,
    settle: float,
) -> None:
    printer = OfficePrinter.from_config({"queue": QUEUE})
    pdf = certificate_sized_pdf()
    time.sleep(settle)
    client, (daemon, children), started = own_cpu(), cupsd_cpu(), time.monotonic()
    ids = [send(printer, pdf, f"bench-{name}-{n}") for n in range(jobs)]
    client_used, sent = own_cpu() - client, time.monotonic()
    while not all((queue.folder / f"job-{job}.json").exists() for job in ids):
        if time.monotonic() - started > 120 + jobs:
            raise SystemExit(f"{name}: jobs did not reach {queue.folder}")
        time.sleep(0.05)
    landed = time.monotonic()
    time.sleep(settle)
    daemon_now, children_now = cupsd_cpu()
    daemon_used, children_used = daemon_now - daemon, children_now - children
    total = client_used + daemon_used + children_used
    print(
        f"{name:7s} CPU per job: sender {client_used / jobs * 1000:5.1f} ms, cupsd {daemon_used / jobs * 1000:5.1f} ms, "
        f"backends {children_used / jobs * 1000:5.1f} ms → {total / jobs * 1000:5.1f} ms "
        f"(the machine's 2 cores: {2 * jobs / total:.0f} jobs/s at most)  |  {jobs} sent in {sent - started:.1f} s, "
        f"all printed after {landed - started:.1f} s",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100, help="jobs per way of sending (default 100)")
    parser.add_argument("--settle", type=float, default=32.0, help="seconds for cupsd's job files (32)")
    parser.add_argument("--no-lp", action="store_true", help="only the driver")
    args = parser.parse_args()
    if not simulator.is_root() or simulator.missing_tools():
        print("needs root and CUPS (scripts/setup installs it); nothing measured")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-office-") as tmp:
        folder = Path(tmp) / "printed"
        try:
            queue = simulator.setup(QUEUE, folder)  # starts cupsd when needed
        except simulator.SetupError as error:
            print(f"no simulated office printer: {error}")
            return 1
        try:
            print(
                f"{args.jobs} jobs of {len(certificate_sized_pdf()) / 1024:.0f} KB each way; queue {QUEUE} → {folder}"
            )
            run("driver", send_with_driver, queue, args.jobs, args.settle)
            if not args.no_lp:
                run("lp", send_with_lp, queue, args.jobs, args.settle)
        finally:
            simulator.teardown(QUEUE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
