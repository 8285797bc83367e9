"""Settings, read from MADOGUCHI_* environment variables (or a .env file).

Every field is documented in docs/configuration.md; tests/test_docs.py keeps the two in step.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "MADOGUCHI_"
# Audit entries are kept at least this long (2 years); the setting may only lengthen it.
MIN_AUDIT_RETENTION_DAYS = 730


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=Path("var"),
        description="Folder for the SQLite database, the private Redis socket, the secret key and stored files.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL. Empty: SQLite at <data_dir>/madoguchi.db. "
        "PostgreSQL: postgresql+psycopg://user:pass@host/db.",
    )
    redis_url: str = Field(
        default="",
        description="Redis URL (redis://host:6379/0 or unix:///path/redis.sock). Empty: `madoguchi serve` "
        "starts a private redis-server on a unix socket in the data folder.",
    )
    job_queue: str = Field(
        default="arq:queue",
        min_length=1,
        max_length=100,
        description="Name of the arq job queue in Redis (web and workers must agree).",
    )
    form_processes: int = Field(
        default=0,
        ge=0,
        le=16,
        description="Worker processes that render a case's form set side by side. 0: the CPU count "
        "(at most 4); 1: render in the web process.",
    )
    events_url: str = Field(
        default="",
        description="Event broker: memory:// (one process) or redis://…. Empty: the Redis URL if one is set, "
        "otherwise memory://.",
    )
    secret_key: str = Field(
        default="",
        description="Key that signs cookies and CSRF tokens. Empty: generated once and kept in "
        "<data_dir>/secret_key.",
    )
    host: str = Field(default="127.0.0.1", description="Address the web server listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the web server listens on.")
    public_url: str = Field(
        default="",
        description="The URL users open, e.g. https://madoguchi.town.example.lg.jp. An https URL makes "
        "cookies Secure. Empty: http://<host>:<port>.",
    )
    session_idle_minutes: int = Field(
        default=30, ge=1, le=24 * 60, description="Staff sessions end after this many idle minutes."
    )
    login_max_failures: int = Field(
        default=5, ge=1, le=100, description="Wrong passwords in a row before an account is locked."
    )
    login_lockout_minutes: int = Field(
        default=15, ge=1, le=24 * 60, description="How long a locked account stays locked."
    )
    audit_retention_days: int = Field(
        default=MIN_AUDIT_RETENTION_DAYS,
        description="Audit entries older than this may be archived; never less than 730 (2 years).",
    )
    event_replay_size: int = Field(
        default=2000, ge=10, le=1_000_000, description="Events kept in memory for Last-Event-ID replay."
    )
    sse_ping_seconds: int = Field(
        default=15, ge=1, le=300, description="Heartbeat interval on event streams."
    )
    jpki_trust_roots: str = Field(
        default="",
        description="Comma-separated PEM files of the roots that issue 利用者証明用電子証明書 (J-LIS's, "
        "or the demo CA's). Empty: kiosks cannot check cards.",
    )
    jpki_crls: str = Field(
        default="",
        description="Comma-separated CRL files (PEM or DER) for revocation by serial. A stale or "
        "unverifiable CRL refuses cards (fail closed).",
    )
    jpki_revoked_serials: str = Field(
        default="",
        description="A text file of revoked certificate serials (hex, one a line), used when no CRL is set.",
    )
    signing_key_file: str = Field(
        default="",
        description="PEM private key (PKCS#8) that signs certificate PDFs (PAdES). Empty: a key made "
        "once in <data_dir>/signing — fine for trials, replace with the municipality's (LGPKI) key.",
    )
    signing_cert_file: str = Field(default="", description="PEM certificate of the signing key.")
    signing_chain_files: str = Field(
        default="", description="Comma-separated PEM files of the signing certificate's chain (to the root)."
    )
    default_locale: Literal["ja", "en"] = Field(default="ja", description="Language of screens by default.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Log level.")
    web_workers: int = Field(
        default=1, ge=1, le=64, description="Web processes started by `madoguchi serve`."
    )

    @field_validator("audit_retention_days")
    @classmethod
    def _retention_at_least_two_years(cls, value: int) -> int:
        if value < MIN_AUDIT_RETENTION_DAYS:
            raise ValueError(
                f"must be at least {MIN_AUDIT_RETENTION_DAYS} (2 years); audit entries are never deleted sooner"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _known_redis(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("events_url")
    @classmethod
    def _known_broker(cls, value: str) -> str:
        if value and not value.startswith(("memory://", "redis://", "rediss://", "unix://")):
            raise ValueError("must be memory:// or a Redis URL (redis://, rediss://, unix://)")
        return value

    @model_validator(mode="after")
    def _public_url_shape(self) -> Settings:
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise ValueError("MADOGUCHI_PUBLIC_URL must start with http:// or https://")
        return self

    # Derived values -------------------------------------------------------------------------

    @staticmethod
    def paths(value: str) -> list[Path]:
        return [Path(part.strip()) for part in value.split(",") if part.strip()]

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'madoguchi.db'}"

    @property
    def effective_events_url(self) -> str:
        return self.events_url or self.redis_url or "memory://"

    @property
    def private_redis_socket(self) -> Path:
        return (self.data_dir / "redis.sock").resolve()

    @property
    def base_url(self) -> str:
        """Where users reach the server (verification QR codes on certificates point here)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "localhost" if self.host in ("127.0.0.1", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    @property
    def cookie_secure(self) -> bool:
        return self.public_url.startswith("https://")

    def resolved_secret_key(self) -> str:
        """The configured key, or one generated on first use and kept in the data folder."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key


class SettingsError(Exception):
    """A setting is wrong; the message names it and says how to fix it."""


def describe_validation_error(error: ValidationError) -> str:
    lines = ["設定エラー / Configuration error:"]
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "settings"
        env = ENV_PREFIX + field.upper() if item["loc"] else "MADOGUCHI_*"
        given = item.get("input")
        lines.append(f"  {env}={given!r}: {item['msg']}")
        lines.append(f"    → fix {env} in the environment or .env (see docs/configuration.md)")
    return "\n".join(lines)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(describe_validation_error(error)) from error


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
