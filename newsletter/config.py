"""Settings: one class, read from the environment and an optional `.env`.

Built by `get_settings()` at the edge (CLI, worker, web app), never at import, so tests and
the demo can build their own without touching global state.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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


class LogFormat(StrEnum):
    TEXT = "text"  # one readable line per event, for a person at a terminal or journalctl
    JSON = "json"  # one JSON object per line, for a log collector


class TransportName(StrEnum):
    SENDGRID = "sendgrid"
    SMTP = "smtp"
    OUTBOX = "outbox"


class ArchiveVisibility(StrEnum):
    PUBLIC = "public"  # anyone may read the archive and each brief's web version
    SUBSCRIBERS = "subscribers"  # only through each reader's signed link from an email
    OFF = "off"  # no archive; emails carry no "View in browser" link


_HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")
_ORIGIN = re.compile(r"^https://[a-z0-9.-]+(?::[0-9]{1,5})?$")
_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f]")


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
    # SendGrid's open tracking (a one-pixel image) and click tracking (links rewritten through
    # SendGrid's redirect) on every brief and digest; their events feed `sends report`.
    # Apple Mail's privacy proxy opens every message it fetches: those opens are marked
    # (`sg_machine_open`) and counted apart. Confirmations, welcomes and test copies are
    # never tracked.
    NEWSLETTER_TRACK_OPENS: bool = True
    NEWSLETTER_TRACK_CLICKS: bool = True

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
    NEWSLETTER_POSTAL_ADDRESS: str = Field(
        default="Example Analysis LLC, 1 Main Street, Springfield", max_length=300
    )
    # Branding, set once and shared by every email and page (newsletter/branding.py).
    NEWSLETTER_FIRM_NAME: str = Field(default="Example Analysis", min_length=1, max_length=100)
    # An absolute https:// URL (emails need one); its origin is allowed on the pages.
    NEWSLETTER_LOGO_URL: str = Field(default="", max_length=500)
    # The logo's width as shown, in CSS pixels (its height follows).
    NEWSLETTER_LOGO_WIDTH: int = Field(default=160, ge=16, le=592)
    # Links, headings and buttons. Darkened where it would read below 4.5:1 on white,
    # lightened for dark mode: the firm's colour, never unreadable text.
    NEWSLETTER_ACCENT_COLOR: str = "#1d4e89"
    # One more line in every footer, e.g. "Independent analysis since 1998."
    NEWSLETTER_FOOTER_LINE: str = Field(default="", max_length=300)
    # Origins (https://host[:port], comma-separated) whose images the web pages may show;
    # the Content-Security-Policy allows only these (and the logo's). Images elsewhere are
    # shown on the web version as a link, never loaded.
    NEWSLETTER_IMAGE_ORIGINS: str = Field(default="", max_length=2000)
    # Who may read the archive and each brief's web version.
    NEWSLETTER_ARCHIVE: ArchiveVisibility = ArchiveVisibility.PUBLIC
    NEWSLETTER_TIMEZONE: str = "UTC"
    # Proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For the web app believes.
    # Empty: the socket's peer is the client, whatever the headers say.
    NEWSLETTER_TRUSTED_PROXIES: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Daily and weekly readers get their digest at this hour of their own timezone; weekly
    # ones on this day (monday … sunday).
    NEWSLETTER_DIGEST_HOUR: int = Field(default=7, ge=0, le=23)
    NEWSLETTER_DIGEST_WEEKDAY: Weekday = Weekday.MONDAY
    # (cadence, timezone) groups whose digests PostgreSQL makes at once, each on its own
    # connection. On 2 cores, 1M readers in 4 zones: 2 at once 9.1-9.3 s, one at a time
    # 10.4-10.8 s, 3 or 4 at once 11.3-12.2 s (their WAL writes wait on each other).
    # At most 8: each is a connection from the worker's pool (15).
    NEWSLETTER_DIGEST_CONCURRENCY: int = Field(default=2, ge=1, le=8)

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

    # Logs of `worker`, `python scheduler.py` and `serve` (newsletter/logs.py).
    NEWSLETTER_LOG_FORMAT: LogFormat = LogFormat.TEXT
    NEWSLETTER_LOG_LEVEL: str = Field(
        default="INFO", pattern=r"(?i)^(debug|info|warning|error|critical)$"
    )
    # The worker serves Prometheus metrics on this port when set (0: any free port, logged);
    # the web process serves its own at /metrics. Loopback unless told otherwise: the
    # figures are for the operator's Prometheus, not for the internet.
    NEWSLETTER_METRICS_PORT: int | None = Field(default=None, ge=0, le=65535)
    NEWSLETTER_METRICS_HOST: str = "127.0.0.1"
    # The web process's /metrics answers this machine only (a request from loopback that no
    # proxy forwarded), or a scrape carrying this as its bearer token from anywhere.
    NEWSLETTER_METRICS_TOKEN: SecretStr = SecretStr("")
    # The staff console (/admin): a session ends after this long without a request, and
    # after NEWSLETTER_STAFF_SESSION_HOURS in any case.
    NEWSLETTER_STAFF_IDLE_MINUTES: int = Field(default=30, ge=1, le=24 * 60)
    NEWSLETTER_STAFF_SESSION_HOURS: int = Field(default=12, ge=1, le=24 * 30)
    # Wrong passwords allowed per account and per IP in NEWSLETTER_LOGIN_WINDOW_MINUTES;
    # past either, sign-in is refused (even with the right password) until the window passes.
    NEWSLETTER_LOGIN_LIMIT_ACCOUNT: int = Field(default=5, ge=1)
    NEWSLETTER_LOGIN_LIMIT_IP: int = Field(default=20, ge=1)
    NEWSLETTER_LOGIN_WINDOW_MINUTES: int = Field(default=15, ge=1)

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

    @field_validator("NEWSLETTER_TRUSTED_PROXIES", mode="before")
    @classmethod
    def _networks(cls, value: object) -> list[str]:
        entries = value.split(",") if isinstance(value, str) else value
        if not isinstance(entries, list | tuple):
            raise ValueError("a comma-separated list of IP addresses or networks")
        try:
            return [
                str(ipaddress.ip_network(str(entry).strip(), strict=False))
                for entry in entries
                if str(entry).strip()
            ]
        except ValueError as exc:
            raise ValueError(f"not an IP address or network: {exc}") from exc

    @field_validator("NEWSLETTER_ACCENT_COLOR")
    @classmethod
    def _hex_colour(cls, value: str) -> str:
        if not _HEX_COLOUR.match(value.strip()):
            raise ValueError(f"{value!r} is not a colour like #1d4e89")
        value = value.strip().lower()
        if len(value) == 4:  # #abc → #aabbcc
            value = "#" + "".join(digit * 2 for digit in value[1:])
        return value

    @field_validator("NEWSLETTER_LOGO_URL")
    @classmethod
    def _https_logo(cls, value: str) -> str:
        value = value.strip()
        if value and (not value.startswith("https://") or any(c.isspace() for c in value)):
            raise ValueError(f"{value!r}: the logo needs an absolute https:// URL, as emails do")
        return value

    @field_validator("NEWSLETTER_IMAGE_ORIGINS")
    @classmethod
    def _origins(cls, value: str) -> str:
        origins = [item.strip().rstrip("/").lower() for item in value.split(",") if item.strip()]
        for origin in origins:
            if not _ORIGIN.match(origin):
                raise ValueError(
                    f"{origin!r} is not an origin like https://charts.example.com "
                    "(https, a host, an optional port, no path)"
                )
        return ",".join(origins)

    @field_validator("NEWSLETTER_FIRM_NAME", "NEWSLETTER_POSTAL_ADDRESS", "NEWSLETTER_FOOTER_LINE")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if _LINE_BREAKS.search(value):
            raise ValueError("must be one line of text (no line breaks or control characters)")
        return value.strip()

    @property
    def image_origins(self) -> list[str]:
        """The origins images may come from on the web pages (the logo's included)."""
        origins = [o for o in self.NEWSLETTER_IMAGE_ORIGINS.split(",") if o]
        if self.NEWSLETTER_LOGO_URL:
            logo = urlsplit(self.NEWSLETTER_LOGO_URL)
            origins.append(f"{logo.scheme}://{logo.netloc}".lower())
        return list(dict.fromkeys(origins))

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
