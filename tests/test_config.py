"""Settings: defaults, derived values, and errors that name the setting and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.config import Settings, SettingsError, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.effective_database_url == "sqlite:///var/madoguchi.db"
    assert settings.effective_events_url == "memory://"
    assert settings.session_idle_minutes == 30
    assert not settings.cookie_secure


def test_redis_url_becomes_the_broker() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:6379/0")
    assert settings.effective_events_url == "redis://127.0.0.1:6379/0"


def test_https_makes_cookies_secure() -> None:
    assert Settings(public_url="https://madoguchi.example.lg.jp").cookie_secure


def test_secret_key_is_generated_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = settings.resolved_secret_key()
    assert first == settings.resolved_secret_key()
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        ("MADOGUCHI_PORT", "eighty", "MADOGUCHI_PORT='eighty'"),
        ("MADOGUCHI_AUDIT_RETENTION_DAYS", "30", "at least 730"),
        ("MADOGUCHI_DATABASE_URL", "mysql://x", "must start with sqlite:/// or postgresql"),
        ("MADOGUCHI_EVENTS_URL", "kafka://x", "memory://"),
    ],
)
def test_wrong_setting_names_itself(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert env in message
    assert expected in message
    assert "docs/configuration.md" in message


def test_cli_reports_a_broken_setting(tmp_path: Path) -> None:
    env = {"MADOGUCHI_PORT": "99999", "MADOGUCHI_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "db", "upgrade"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "MADOGUCHI_PORT='99999'" in result.stderr
    assert "Traceback" not in result.stderr
