"""Configuration: environment variables prefixed ``METERBOOK_``, each with a default that works on a fresh machine."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="METERBOOK_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///meterbook.db",
        description="SQLAlchemy URL. The default is a SQLite file in the working directory; "
        "use postgresql+psycopg://user:password@host/dbname for PostgreSQL.",
    )
    host: str = Field(default="127.0.0.1", description="Address `meterbook serve` listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `meterbook serve` listens on.")
    public_url: str | None = Field(
        default=None,
        description="Base URL clients use to reach meterbook (printed by `demo`); default http://HOST:PORT.",
    )
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="Largest request body accepted.")
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL",
        description="SQLite synchronous pragma. FULL makes every acknowledged write survive power loss; "
        "NORMAL survives a killed process but may lose the last commits on power loss.",
    )
    pool_size: int = Field(default=10, ge=1, description="Database connections kept per process (PostgreSQL).")
    log_level: str = Field(default="info")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="Log lines as JSON objects (`json`), readable text (`console`), or `auto`: "
        "text when stderr is a terminal, JSON otherwise.",
    )
    migrate_on_start: bool = Field(default=True, description="Bring the schema up to date when the server starts.")
    session_secret: SecretStr | None = Field(
        default=None,
        min_length=32,
        description="Key that signs the web console's session cookies (at least 32 characters). Unset: a random "
        "one per process, so sessions end when the server restarts; `serve` shares one with its workers.",
    )

    metrics_token: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="Bearer token that `GET /metrics` requires (at least 16 characters). Unset: `/metrics` is open, "
        "as Prometheus setups without credentials expect; its business counters are then visible to anyone "
        "who reaches the server.",
    )

    worker: bool = Field(
        default=True,
        description="Run the background worker (webhook deliveries, later scheduled work) inside each server "
        "process. Off: jobs wait in the database until a server with a worker runs them.",
    )
    worker_poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often an idle worker looks for due jobs."
    )
    worker_concurrency: int = Field(
        default=4, ge=1, le=64, description="Jobs one worker runs at once (a slow webhook receiver holds one)."
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow webhook endpoints whose address is loopback, private or link-local (a receiver on "
        "this machine or network). Off, such destinations are refused when created and when delivered to.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="How long a webhook receiver has to answer an attempt."
    )

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        if not (url.startswith("sqlite") or url.startswith("postgresql")):
            raise ValueError("METERBOOK_DATABASE_URL must be a sqlite:/// or postgresql+psycopg:// URL")
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
