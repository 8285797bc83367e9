"""Device bridge: job enqueued → bridge ack latency on loopback, and the bridge's memory.

    uv run python bench/bench_bridge.py                    # 200 jobs one by one, then a burst of 200
    uv run python bench/bench_bridge.py --jobs 50 --burst 0   # quick look
    uv run python bench/bench_bridge.py --text raster         # receipts rendered as images

It starts the fake device API (tests/bridge_fake_server.py) and the bridge (``python -m
device_bridge``) as processes, and the simulated ESC/POS printer in this process, all on
127.0.0.1; enqueues receipt jobs through the fake server's test endpoint and reads back when each
was acknowledged. Latency runs from the job's insert on the server to the server receiving the
bridge's "done" (both stamped by the server's clock): the stream delivery, the journal writes
(two fsyncs), rendering the receipt, the printer round trips and the report.

Sequential jobs measure latency; the burst (all enqueued at once) measures throughput (its
per-job times include waiting behind the others). Memory: the bridge's VmRSS sampled during the
run and its VmHWM (peak) from /proc. Targets: p95 ≤ 100 ms, RSS ≤ 60 MB. It stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
FAKE_SERVER = ROOT / "tests" / "bridge_fake_server.py"
TOKEN = "mdg_bench-token"
TARGET_P95_MS = 100.0
TARGET_RSS_MB = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM in kB from /proc/<pid>/status."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


@contextlib.contextmanager
def process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def wait_until(condition: object, timeout: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(name: str, latencies_ms: list[float]) -> str:
    return (
        f"{name}: n={len(latencies_ms)}  p50 {percentile(latencies_ms, 50):.1f} ms  "
        f"p95 {percentile(latencies_ms, 95):.1f} ms  p99 {percentile(latencies_ms, 99):.1f} ms  "
        f"max {max(latencies_ms):.1f} ms  mean {statistics.fmean(latencies_ms):.1f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=200, help="jobs enqueued one by one (latency)")
    parser.add_argument("--burst", type=int, default=200, help="jobs enqueued at once (throughput)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--text",
        choices=("kanji", "raster"),
        default="kanji",
        help="receipt text as Shift_JIS text + native QR (kanji) or rendered images (raster, the driver's default)",
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from device_bridge.simulators.escpos_printer import EscposPrinterSimulator

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-bridge-") as tmp_name:
        tmp = Path(tmp_name)
        server_args = [sys.executable, str(FAKE_SERVER), "--db", str(tmp / "server.db"), "--port", str(port)]
        server_args += ["--token", TOKEN]
        with (
            EscposPrinterSimulator(port=0) as sim,
            process(server_args, tmp / "server.log"),
            httpx.Client(base_url=url, timeout=10) as http,
        ):
            wait_until(lambda: _up(http), 20, "the fake server")
            config = tmp / "bridge.toml"
            config.write_text(
                f'server_url = "{url}"\ntoken = "{TOKEN}"\ndata_dir = "{tmp / "bridge"}"\nlog_level = "warning"\n'
                f'[printers.receipt]\nkind = "network"\nhost = "127.0.0.1"\nport = {sim.port}\n'
                + (
                    'qr = "native"\ntext = "kanji"\n'
                    if args.text == "kanji"
                    else 'qr = "raster"\ntext = "raster"\n'
                ),
                encoding="utf-8",
            )
            with process(
                [sys.executable, "-m", "device_bridge", "--config", str(config)], tmp / "bridge.log"
            ) as bridge:
                wait_until(
                    lambda: http.get("/test/summary").json()["streams"] == 1, 30, "the bridge to connect"
                )
                rss_samples: list[int] = []
                sampling = threading.Event()

                def sample() -> None:
                    while not sampling.wait(0.05):
                        rss = proc_status(bridge.pid).get("VmRSS")
                        if rss:
                            rss_samples.append(rss)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()

                def run_one() -> float:
                    [job_id] = http.post("/test/jobs", json={"count": 1}).json()["ids"]
                    while True:
                        job = http.get(f"/test/jobs/{job_id}").json()
                        if job["state"] == "done":
                            return float(job["finished_at"] - job["created_at"]) * 1000
                        if job["state"] == "failed":
                            raise SystemExit(f"job {job_id} failed: {job['reason']}")
                        time.sleep(0.001)

                for _ in range(args.warmup):
                    run_one()
                sequential = [run_one() for _ in range(args.jobs)]
                burst: list[float] = []
                burst_seconds = 0.0
                if args.burst:
                    started = time.monotonic()
                    ids = http.post("/test/jobs", json={"count": args.burst}).json()["ids"]
                    wait_until(
                        lambda: http.get(f"/test/jobs/{ids[-1]}").json()["state"] == "done", 120, "the burst"
                    )
                    burst_seconds = time.monotonic() - started
                    jobs = http.get("/test/state").json()["jobs"]
                    burst = [(j["finished_at"] - j["created_at"]) * 1000 for j in jobs if j["id"] in set(ids)]
                sampling.set()
                sampler.join()
                peak = proc_status(bridge.pid).get("VmHWM", 0)
            printed = len(sim.receipts)

    expected = args.warmup + args.jobs + args.burst
    print(
        f"bridge bench: {expected} receipts enqueued, {printed} printed "
        f"(simulated ESC/POS on loopback, text={args.text})"
    )
    print(summary("enqueue → ack, one at a time", sequential))
    if burst:
        print(summary(f"burst of {args.burst} (includes queueing)", burst))
        print(f"burst throughput: {args.burst / burst_seconds:.0f} receipts/s")
    rss_mb = max(rss_samples) / 1024 if rss_samples else 0.0
    print(f"bridge RSS: max sampled {rss_mb:.1f} MB, peak (VmHWM) {peak / 1024:.1f} MB")
    p95 = percentile(sequential, 95)
    ok_latency = p95 <= TARGET_P95_MS
    ok_rss = peak / 1024 <= TARGET_RSS_MB
    print(
        f"targets: p95 ≤ {TARGET_P95_MS:.0f} ms {'OK' if ok_latency else 'MISSED'}; "
        f"RSS ≤ {TARGET_RSS_MB:.0f} MB {'OK' if ok_rss else 'MISSED'}"
    )
    if printed != expected:
        print(f"ERROR: {printed} receipts printed, expected {expected}")
        return 1
    return 0 if ok_latency and ok_rss else 1


def _up(http: httpx.Client) -> bool:
    try:
        return http.get("/test/summary").status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
