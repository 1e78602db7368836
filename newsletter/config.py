"""Settings: one class, read from the environment and an optional `.env`.

Built by `get_settings()` at the edge (CLI, worker, web app), never at import, so tests and
the demo can build their own without touching global state.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
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


class TransportName(StrEnum):
    SENDGRID = "sendgrid"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    NEWSLETTER_ENV: Environment = Environment.DEVELOPMENT
    DATABASE_URL: str = "sqlite:///./var/newsletter.db"

    SENDGRID_API_KEY: SecretStr = SecretStr("")
    SENDGRID_API_HOST: str = "https://api.sendgrid.com"
    # The sendgrid client waits forever by default; a hung connection would hold a batch.
    SENDGRID_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0)
    SENDGRID_WEBHOOK_PUBLIC_KEY: str = ""

    NEWSLETTER_TRANSPORT: TransportName = TransportName.SENDGRID
    NEWSLETTER_FROM: str = "Briefings <briefs@example.com>"
    NEWSLETTER_BASE_URL: str = "http://127.0.0.1:8000"
    NEWSLETTER_SECRET_KEY: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    NEWSLETTER_POSTAL_ADDRESS: str = "Example Analysis LLC, 1 Main Street, Springfield"
    NEWSLETTER_TIMEZONE: str = "UTC"

    # SendGrid accepts at most 1000 personalizations per request.
    NEWSLETTER_BATCH_SIZE: int = Field(default=1000, ge=1, le=1000)
    # Longer than the worst case of one request with its retries, so a live worker's lease
    # never expires under it.
    NEWSLETTER_LEASE_SECONDS: int = Field(default=300, ge=30)
    NEWSLETTER_TICK_SECONDS: float = Field(default=5.0, gt=0)
    NEWSLETTER_MAX_RETRIES: int = Field(default=5, ge=0)

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


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (tests, the demo)."""
    return Settings(**overrides)  # type: ignore[arg-type]
