"""`madoguchi serve` brings up a private Redis, the worker and the web server, and stops them all."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_serve_runs_everything_and_stops_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MADOGUCHI_DATA_DIR": str(tmp_path / "var"),
        "MADOGUCHI_PORT": str(port),
    }
    # Before migrating, the server refuses to start and says why.
    refused = _run(["web"], env)
    assert refused.returncode == 2
    assert "madoguchi db upgrade" in refused.stderr

    assert _run(["db", "upgrade"], env).returncode == 0
    env["MADOGUCHI_ADMIN_PASSWORD"] = "admin-password-123"
    created = _run(["create-admin", "root-admin", "--name", "管理者"], env)
    assert created.returncode == 0, created.stderr

    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120  # generous: CI machines can be busy
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)
        assert (tmp_path / "var" / "redis.sock").exists()
        login = httpx.get(f"http://127.0.0.1:{port}/staff/login", timeout=5)
        assert "職員ログイン" in login.text
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert f"http://localhost:{port}/staff/" in output
    assert not (tmp_path / "var" / "redis.sock").exists() or _socket_dead(tmp_path / "var" / "redis.sock")

    verified = _run(["audit", "verify"], env)
    assert verified.returncode == 0
    assert "audit chain intact" in verified.stdout


def _socket_dead(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return True
        return False
