"""A real CUPS queue that "prints" into a folder: the office printer for tests and the demo.

Choice: the system ``cupsd`` with a raw queue on a tiny backend, ``madoguchi-folder``, that this
module installs into CUPS's backend folder (``/usr/lib/cups/backend`` on Debian). The device URI
names the folder, e.g. ``madoguchi-folder:/work/main/var/office-print``. For each job the backend
writes the document once per copy as ``job-<id>-<copy>.pdf`` (``.bin`` when it isn't a PDF) and
``job-<id>.json`` with the job's id, user, title, copies and options (``sides``,
``media-source``, … exactly as CUPS passed them), each file renamed into place only when complete.

Why not the alternatives:

- ``file:`` device URIs need ``FileDevice Yes`` in cups-files.conf, a change to the machine's CUPS
  configuration and a restart of cupsd; the backend is one file and needs neither.
- ``-m everywhere`` needs an IPP printer to ask. ``ippeveprinter`` (cups-ipp-utils) can be that
  printer, but it is a second daemon, on a port, with its own spool to watch.
- A raw queue (``-m raw``) passes the PDF through untouched, so what lands in the folder is byte
  for byte what the driver sent; CUPS 2.4 prints a deprecation note for raw queues and still runs
  them. Copies reach the backend as its copies argument (a raw job has no filter to make them).

The backend is installed mode 0700, owned by root, so cupsd runs it as root and it can write into
any folder (CUPS runs backends that others can't execute as root). Everything here that changes
the machine (starting cupsd, installing the backend, ``lpadmin``) needs root; ``scripts/test``
runs as root in CI.

Command line (idempotent; run ``setup`` as often as you like)::

    python -m device_bridge.simulators.office_printer setup --queue madoguchi-sim --folder var/office-print
    python -m device_bridge.simulators.office_printer status --queue madoguchi-sim
    python -m device_bridge.simulators.office_printer teardown --queue madoguchi-sim
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BACKEND_NAME = "madoguchi-folder"
DEFAULT_QUEUE = "madoguchi-sim"
DEFAULT_FOLDER = "var/office-print"
CUPS_FILES_CONF = Path("/etc/cups/cups-files.conf")
CUPS_SOCKET = Path("/run/cups/cups.sock")
# Written when this module started cupsd, so teardown --stop-cupsd stops only a cupsd it started.
STARTED_MARKER = Path("/run/cups/madoguchi-started-cupsd")

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,126}$")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./+-]*$")

BACKEND_SCRIPT = r"""#!/bin/sh
# CUPS backend installed by Madoguchi (device_bridge/simulators/office_printer.py).
# Device URI: madoguchi-folder:/absolute/folder. Writes each job's document once per copy as
# job-<id>-<copy>.pdf (or .bin) and job-<id>.json describing the job, renamed into place when complete.
# cupsd runs this for every job, so it starts few processes: shell builtins wherever they do, one cat
# and one mv (the rename into place) per file, tr and sed only for strings that need JSON escaping.
if [ $# -eq 0 ]; then
  echo 'direct madoguchi-folder "Unknown" "Madoguchi folder (simulated office printer)"'
  exit 0
fi
if [ $# -lt 5 ] || [ $# -gt 6 ]; then
  echo "Usage: madoguchi-folder job-id user title copies options [file]" >&2
  exit 1
fi
folder=${DEVICE_URI#madoguchi-folder:}
case $folder in
  //*) folder=${folder#//} ;;
esac
case $folder in
  /*) ;;
  *) echo "ERROR: device URI must name an absolute folder: $DEVICE_URI" >&2; exit 1 ;;
esac
[ -d "$folder" ] || mkdir -p "$folder" || { echo "ERROR: cannot create $folder" >&2; exit 1; }
# Files are created 0644 (cupsd gives backends umask 077); the folder above keeps cupsd's umask.
umask 022
job=$1
user=$2
title=$3
copies=$4
options=$5
case $copies in
  ''|*[!0-9]*) copies=1 ;;
esac
fail() {
  echo "ERROR: $1" >&2
  exit 1
}
# A temporary file left by a run that died would keep its mode through ">": remove it first.
fresh() {
  if [ -e "$1" ] || [ -h "$1" ]; then rm -f "$1"; fi
}
if [ $# -eq 6 ]; then
  src=$6
else
  # Data on stdin has been through filters, which made the copies already: it goes straight into
  # the temporary file of copy 1.
  src="$folder/.job-$job-1.tmp"
  fresh "$src"
  cat > "$src" || fail "cannot read the job data"
  copies=1
fi
ext=bin
if [ "$CONTENT_TYPE" = application/pdf ]; then
  # A PDF's first line is short (%PDF-1.7): the read builtin takes it, no head process.
  first=
  IFS= read -r first < "$src" || :
  case $first in
    %PDF-*) ext=pdf ;;
  esac
elif [ "$(head -c 5 "$src")" = "%PDF-" ]; then
  ext=pdf
fi
n=1
while [ "$n" -le "$copies" ]; do
  tmp="$folder/.job-$job-$n.tmp"
  if [ "$tmp" != "$src" ]; then
    fresh "$tmp"
    cat "$src" > "$tmp" || fail "cannot write into $folder"
  fi
  mv -f "$tmp" "$folder/job-$job-$n.$ext" || fail "cannot write into $folder"
  n=$((n + 1))
done
# A JSON string: as it is when it has no backslash, double quote or control character (no
# process); else control characters dropped, backslashes and double quotes escaped.
esc() {
  case $1 in
    *[[:cntrl:]\\\"]*) printf '%s' "$1" | tr -d '\000-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' ;;
    *) printf '%s' "$1" ;;
  esac
}
tmp="$folder/.job-$job.json.tmp"
fresh "$tmp"
{
  printf '{"job_id": %s, "user": "' "$job"
  esc "$user"
  printf '", "title": "'
  esc "$title"
  printf '", "copies": %s, "options": "' "$copies"
  esc "$options"
  printf '", "format": "%s"}\n' "$ext"
} > "$tmp" && mv -f "$tmp" "$folder/job-$job.json" || fail "cannot write into $folder"
echo "INFO: wrote $copies cop(ies) of job $job into $folder" >&2
exit 0
"""


class SetupError(RuntimeError):
    """The simulated office printer could not be set up (message says why and what to do)."""


@dataclass(frozen=True)
class SimulatedQueue:
    """A CUPS queue whose jobs land in ``folder``."""

    queue: str
    folder: Path

    @property
    def device_uri(self) -> str:
        return f"{BACKEND_NAME}:{self.folder}"

    def documents(self) -> list[Path]:
        """The documents written so far (``job-<id>-<copy>.<ext>``), oldest job first."""
        return sorted(
            (p for p in self.folder.glob("job-*-*.*") if p.suffix != ".json"),
            key=_job_sort_key,
        )

    def job_files(self, job_id: int) -> list[Path]:
        """The copies written for one job, in copy order."""
        return sorted(self.folder.glob(f"job-{job_id}-*.*"), key=_job_sort_key)

    def job_info(self, job_id: int) -> dict[str, object] | None:
        """The backend's ``job-<id>.json`` (id, user, title, copies, options, format) once written."""
        path = self.folder / f"job-{job_id}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        if not isinstance(data, dict):
            return None
        return data

    def wait_for_job(self, job_id: int, timeout: float = 30.0) -> dict[str, object]:
        """Wait until the backend has written ``job_id``; returns its job info."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.job_info(job_id)
            if info is not None:
                return info
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} did not reach {self.folder} within {timeout} s")
            time.sleep(0.05)


def _job_sort_key(path: Path) -> tuple[int, int, str]:
    parts = path.stem.split("-")
    try:
        return int(parts[1]), int(parts[2]), path.name
    except (IndexError, ValueError):
        return 0, 0, path.name


# --- machine state -----------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    return env


def _run(args: list[str], *, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            args,
            capture_output=True,
            text=True,
            env=_env(),
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise SetupError(f"{args[0]} is missing: install CUPS (apt-get install cups cups-client)") from exc
    if check and result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise SetupError(f"{' '.join(args)} failed ({result.returncode}): {output}")
    return result


def missing_tools() -> list[str]:
    """The CUPS programs this module and its tests need that are not on PATH (the office driver
    itself runs none: it speaks IPP to cupsd)."""
    tools = ["cupsd", "lpadmin", "lpstat", "cancel", "cupsenable", "cupsaccept", "cupsdisable", "cupsreject"]
    found = []
    for tool in tools:
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None:
            found.append(tool)
    return found


def is_root() -> bool:
    return os.geteuid() == 0


def scheduler_running() -> bool:
    """True when a CUPS scheduler answers (``lpstat -r``)."""
    if shutil.which("lpstat") is None:
        return False
    try:
        result = _run(["lpstat", "-r"], check=False, timeout=10)
    except (SetupError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and "scheduler is running" in result.stdout


def server_bin() -> Path:
    """CUPS's ServerBin (where backends live), from cups-files.conf; /usr/lib/cups by default."""
    with contextlib.suppress(OSError):
        for line in CUPS_FILES_CONF.read_text(encoding="utf-8", errors="replace").splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[0] == "ServerBin":
                return Path(fields[1])
    return Path("/usr/lib/cups")


def backend_path() -> Path:
    return server_bin() / "backend" / BACKEND_NAME


def _cupsd_binary() -> str:
    found = shutil.which("cupsd") or shutil.which("cupsd", path="/usr/sbin:/sbin")
    if found is None:
        raise SetupError("cupsd is missing: install CUPS (apt-get install cups)")
    return found


def ensure_cupsd(timeout: float = 20.0) -> bool:
    """Start cupsd when no scheduler answers. Returns True when this call started it.

    cupsd forks into the background and stays running after this process exits, as a system
    service would (there is no systemd in containers and CI machines).
    """
    if scheduler_running():
        return False
    if not is_root():
        raise SetupError("CUPS is not running and only root can start it: run `sudo cupsd` (or this as root)")
    subprocess.run(
        [_cupsd_binary()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        check=False,
        timeout=timeout,
    )
    deadline = time.monotonic() + timeout
    while not scheduler_running():
        if time.monotonic() >= deadline:
            raise SetupError(
                f"cupsd did not come up within {timeout:.0f} s; see /var/log/cups/error_log "
                f"(or run `cupsd -f` to see why)"
            )
        time.sleep(0.1)
    with contextlib.suppress(OSError):
        pid = Path("/run/cups/cupsd.pid").read_text(encoding="ascii").strip()
        STARTED_MARKER.write_text(pid + "\n", encoding="ascii")
    return True


def install_backend() -> Path:
    """Install (or refresh) the ``madoguchi-folder`` backend; idempotent."""
    path = backend_path()
    wanted = BACKEND_SCRIPT.encode("utf-8")
    try:
        current = path.read_bytes()
    except FileNotFoundError:
        current = b""
    if current != wanted:
        if not is_root():
            raise SetupError(f"installing {path} needs root")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{BACKEND_NAME}.tmp")
        tmp.write_bytes(wanted)
        os.chmod(tmp, 0o700)
        os.chown(tmp, 0, 0)
        os.replace(tmp, path)
    elif is_root() and (path.stat().st_mode & 0o777) != 0o700:
        os.chmod(path, 0o700)
    return path


def queue_exists(queue: str) -> bool:
    result = _run(["lpstat", "-v", queue], check=False)
    return result.returncode == 0 and f"device for {queue}:" in result.stdout


def queue_device(queue: str) -> str | None:
    result = _run(["lpstat", "-v", queue], check=False)
    prefix = f"device for {queue}: "
    for line in result.stdout.splitlines():
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    return None


def setup(queue: str = DEFAULT_QUEUE, folder: str | os.PathLike[str] = DEFAULT_FOLDER) -> SimulatedQueue:
    """Make ``queue`` a CUPS queue that writes its jobs into ``folder``; idempotent.

    Starts cupsd when needed, installs the backend, (re)creates the queue enabled and accepting
    jobs with the ``abort-job`` error policy (a failing backend shows up as an aborted job).
    """
    if not _QUEUE_NAME.match(queue):
        raise SetupError(f"invalid queue name {queue!r} (letters, digits, '_', '.', '-')")
    target = Path(folder).resolve()
    if not _SAFE_PATH.match(str(target)):
        raise SetupError(f"folder {target} must be a path of letters, digits and ._/+- (no spaces)")
    missing = missing_tools()
    if missing:
        raise SetupError(f"missing CUPS programs: {', '.join(missing)} (apt-get install cups cups-client)")
    target.mkdir(parents=True, exist_ok=True)
    ensure_cupsd()
    install_backend()
    sim = SimulatedQueue(queue=queue, folder=target)
    _run(
        [
            "lpadmin",
            "-p",
            queue,
            "-E",
            "-v",
            sim.device_uri,
            "-m",
            "raw",
            "-D",
            "Madoguchi simulated office printer",
            "-L",
            str(target),
            "-o",
            "printer-error-policy=abort-job",
            "-o",
            "printer-is-shared=false",
        ]
    )
    # -E enables and accepts on creation; say it again for a queue a test left disabled.
    _run(["cupsenable", queue])
    _run(["cupsaccept", queue])
    return sim


def teardown(queue: str = DEFAULT_QUEUE, *, stop_cupsd: bool = False) -> None:
    """Remove ``queue`` (no error when it's gone), the backend when no queue uses it any more, and
    with ``stop_cupsd`` the cupsd that :func:`ensure_cupsd` started (never one it didn't)."""
    if scheduler_running():
        if queue_exists(queue):
            _run(["cancel", "-a", queue], check=False)
            _run(["lpadmin", "-x", queue])
        devices = _run(["lpstat", "-v"], check=False).stdout
        if f": {BACKEND_NAME}:" not in devices and is_root():
            with contextlib.suppress(FileNotFoundError):
                backend_path().unlink()
    if stop_cupsd and STARTED_MARKER.exists():
        with contextlib.suppress(OSError, ValueError):
            pid = int(STARTED_MARKER.read_text(encoding="ascii").strip())
            current = Path("/run/cups/cupsd.pid").read_text(encoding="ascii").strip()
            if str(pid) == current:
                os.kill(pid, 15)
        with contextlib.suppress(OSError):
            STARTED_MARKER.unlink()


# --- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m device_bridge.simulators.office_printer",
        description="A real CUPS queue that writes each job into a folder (needs root to set up).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_setup = sub.add_parser("setup", help="start cupsd if needed, install the backend, create the queue")
    p_setup.add_argument("--queue", default=DEFAULT_QUEUE)
    p_setup.add_argument("--folder", default=DEFAULT_FOLDER)
    p_down = sub.add_parser("teardown", help="remove the queue (and the backend when unused)")
    p_down.add_argument("--queue", default=DEFAULT_QUEUE)
    p_down.add_argument("--stop-cupsd", action="store_true", help="also stop cupsd if setup started it")
    p_status = sub.add_parser("status", help="say whether CUPS runs and where the queue prints")
    p_status.add_argument("--queue", default=DEFAULT_QUEUE)
    args = parser.parse_args(argv)
    try:
        if args.command == "setup":
            sim = setup(args.queue, args.folder)
            print(f"queue {sim.queue} → {sim.device_uri} (enabled, accepting jobs)")
        elif args.command == "teardown":
            teardown(args.queue, stop_cupsd=args.stop_cupsd)
            print(f"queue {args.queue} removed")
        else:
            running = scheduler_running()
            print(f"cupsd: {'running' if running else 'not running'}")
            device = queue_device(args.queue) if running else None
            print(f"queue {args.queue}: {device or 'missing'}")
            return 0 if device else 1
    except SetupError as exc:
        print(f"office_printer: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
