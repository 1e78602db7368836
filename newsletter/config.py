"""Settings: one class, read from the environment and an optional `.env`.

Built by `get_settings()` at the edge (CLI, worker, web app), never at import, so tests and
the demo can build their own without touching global state.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "change-me"  # noqa: S105 - a placeholder, refused outside development.


def _data_dir(name: str) -> Path:
    """Where `templates/`, `migrations/` or `examples/` live.

    An editable install or a checkout has them at the project root; a wheel carries them
    inside the package (pyproject's force-include).
    """
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / name, package / "_data" / name):
        if candidate.is_dir():
            return candidate
    return package.parent / name


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"

    @property
    def number(self) -> int:
        """0 for Monday, as `date.weekday()` counts."""
        return list(Weekday).index(self)


class TransportName(StrEnum):
    SENDGRID = "sendgrid"
    SMTP = "smtp"
    OUTBOX = "outbox"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    NEWSLETTER_ENV: Environment = Environment.DEVELOPMENT
    DATABASE_URL: str = "sqlite:///./var/newsletter.db"

    SENDGRID_API_KEY: SecretStr = SecretStr("")
    SENDGRID_API_HOST: str = "https://api.sendgrid.com"
    # The sendgrid client waits forever by default; a hung connection would hold a batch.
    SENDGRID_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0)
    # The Event Webhook's verification key (base64 DER, as SendGrid's settings page shows it).
    SENDGRID_WEBHOOK_PUBLIC_KEY: str = ""
    # Soft bounces in a row before an address counts as bounced (a hard bounce: at once).
    NEWSLETTER_SOFT_BOUNCE_LIMIT: int = Field(default=3, ge=1)
    # An unsubscribe group (Advanced Suppression Manager) to attach to every message.
    SENDGRID_ASM_GROUP_ID: int | None = None
    # SendGrid validates the request but delivers nothing: a dry run against the real API.
    SENDGRID_SANDBOX_MODE: bool = False

    # For NEWSLETTER_TRANSPORT=smtp: a self-hosted MTA.
    SMTP_HOST: str = "127.0.0.1"
    SMTP_PORT: int = 25
    SMTP_USERNAME: str = ""
    SMTP_PASSWORD: SecretStr = SecretStr("")
    SMTP_STARTTLS: bool = False
    SMTP_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0)
    # For NEWSLETTER_TRANSPORT=outbox: one .eml file per message, nothing leaves the machine.
    NEWSLETTER_OUTBOX_DIR: Path = Path("var/outbox")

    NEWSLETTER_TRANSPORT: TransportName = TransportName.SENDGRID
    NEWSLETTER_FROM: str = "Briefings <briefs@example.com>"
    NEWSLETTER_BASE_URL: str = "http://127.0.0.1:8000"
    NEWSLETTER_SECRET_KEY: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    NEWSLETTER_POSTAL_ADDRESS: str = "Example Analysis LLC, 1 Main Street, Springfield"
    NEWSLETTER_TIMEZONE: str = "UTC"
    # Daily and weekly readers get their digest at this hour of their own timezone; weekly
    # ones on this day (monday … sunday).
    NEWSLETTER_DIGEST_HOUR: int = Field(default=7, ge=0, le=23)
    NEWSLETTER_DIGEST_WEEKDAY: Weekday = Weekday.MONDAY

    # SendGrid accepts at most 1000 personalizations per request.
    NEWSLETTER_BATCH_SIZE: int = Field(default=1000, ge=1, le=1000)
    # Requests in flight at once per worker process (threads). SendGrid answers a full
    # batch in a few hundred ms; 4 keeps a 2-core worker busy without queuing at the API.
    NEWSLETTER_CONCURRENCY: int = Field(default=4, ge=1, le=64)
    # Messages per second per worker process, for accounts on a plan cap; 0 means no cap.
    NEWSLETTER_RATE_LIMIT: float = Field(default=0.0, ge=0)
    # A batch that outlives its lease is presumed dead: requeued if its request never
    # started, `unknown` if it had. Keep it longer than one request with all its retries.
    NEWSLETTER_LEASE_SECONDS: float = Field(default=300, ge=1)
    NEWSLETTER_TICK_SECONDS: float = Field(default=5.0, gt=0)
    NEWSLETTER_MAX_RETRIES: int = Field(default=5, ge=0)
    # A send pauses itself after this many failed batches, rather than burn the whole list
    # against a broken template, a full account or a provider outage.
    NEWSLETTER_PAUSE_AFTER_FAILED_BATCHES: int = Field(default=5, ge=1)
    # A recipient the provider keeps deferring (SMTP 4xx, batches that never got through)
    # is marked failed after this many claims, instead of being tried forever.
    NEWSLETTER_MAX_ATTEMPTS: int = Field(default=10, ge=1)
    # `sends resolve --resend` waits this long after a delivery became unknown before it
    # resends it: the provider's events (which settle it if the mail was accepted) can lag
    # by minutes. `--now` resends at once anyway.
    NEWSLETTER_RESOLVE_WAIT_SECONDS: float = Field(default=900, ge=0)

    # Headless Chromium for preview screenshots; found on PATH when empty.
    NEWSLETTER_CHROMIUM: str = ""

    NEWSLETTER_TEMPLATES_DIR: Path = Field(default_factory=lambda: _data_dir("templates"))
    NEWSLETTER_MIGRATIONS_DIR: Path = Field(default_factory=lambda: _data_dir("migrations"))
    NEWSLETTER_EXAMPLES_DIR: Path = Field(default_factory=lambda: _data_dir("examples"))

    @field_validator("NEWSLETTER_TIMEZONE")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r} (e.g. Asia/Tokyo)") from exc
        return value

    @field_validator("NEWSLETTER_BASE_URL", "SENDGRID_API_HOST")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        secret = self.NEWSLETTER_SECRET_KEY.get_secret_value()
        if self.NEWSLETTER_ENV is Environment.PRODUCTION and (
            secret == PLACEHOLDER_SECRET or len(secret) < 32
        ):
            raise ValueError(
                "NEWSLETTER_SECRET_KEY must be set to a random value of at least 32 characters "
                "in production (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return self


def get_settings(*, env_file: Path | str | None = ".env", **overrides: Any) -> Settings:
    """Settings from the environment and `env_file`, with explicit overrides (the demo).

    Tests pass `env_file=None` and start from a scrubbed environment, so a developer's
    shell or `.env` never decides what a test sees.
    """
    return Settings(_env_file=env_file, **overrides)
