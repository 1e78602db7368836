"""`newsletter doctor`: the configuration checked before the first real send, one line per
check, each saying what to fix.

A placeholder secret, a missing webhook key, a wrong API key or an http base URL are
otherwise found only when something breaks (links that stop working, bounces never
applied, a send paused at 02:00). Each check is a plain function of the settings returning
a `CheckResult`; `run_checks` runs them all. What only matters in production (a placeholder
secret, an http base URL, an example address) fails under NEWSLETTER_ENV=production and is
a warning in development.
"""

from __future__ import annotations

import ipaddress
import json
import smtplib
import ssl
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from email_validator import EmailNotValidError, validate_email
from pydantic import ValidationError
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from newsletter.config import (
    PLACEHOLDER_SECRET,
    Environment,
    Settings,
    TransportName,
    get_settings,
)
from newsletter.db import make_engine, schema_is_current
from newsletter.errors import NewsletterError

# Domains that can never receive mail (RFC 2606, RFC 6761): fine for trying things out.
RESERVED_DOMAINS = ("example.com", "example.net", "example.org", "localhost")
RESERVED_SUFFIXES = (
    ".example",
    ".test",
    ".invalid",
    ".localhost",
    ".example.com",
    ".example.net",
    ".example.org",
)
LOOPBACK_NAMES = ("localhost",)
# The key must be allowed to send mail; SendGrid names that scope `mail.send`.
SEND_SCOPE = "mail.send"
PROVIDER_TIMEOUT = 10.0


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"  # fine here, wrong in production; does not fail the run
    FAIL = "fail"


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: Status
    message: str  # what was found; when not ok, what to do about it

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status.value, "message": self.message}

    @property
    def line(self) -> str:
        return f"{self.status.value.upper():<4}  {self.check:<16}{self.message}"


def _production(settings: Settings) -> bool:
    return settings.NEWSLETTER_ENV is Environment.PRODUCTION


def _needed_in_production(settings: Settings, check: str, message: str) -> CheckResult:
    """A problem that fails production and is only a warning in development."""
    if _production(settings):
        return CheckResult(check, Status.FAIL, message)
    return CheckResult(check, Status.WARN, f"{message} (fine in development)")


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_reserved(domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    return domain in RESERVED_DOMAINS or domain.endswith(RESERVED_SUFFIXES)


# --- the checks -----------------------------------------------------------------------------


def check_database(settings: Settings) -> CheckResult:
    name = "database"
    try:
        url = make_url(settings.DATABASE_URL)
    except (ValueError, SQLAlchemyError) as exc:
        return CheckResult(name, Status.FAIL, f"DATABASE_URL cannot be read: {exc}")
    shown = url.render_as_string(hide_password=True)
    database = url.database or ""
    sqlite_file = url.get_backend_name() == "sqlite" and database not in ("", ":memory:")
    if sqlite_file and not Path(database).is_file():  # connecting would create an empty file
        return CheckResult(
            name, Status.FAIL, f"no database at {shown}: run `newsletter init` (or fix the path)"
        )
    try:
        engine = make_engine(settings.DATABASE_URL)
    except NewsletterError as exc:
        return CheckResult(name, Status.FAIL, str(exc))
    try:
        current = schema_is_current(engine, settings.NEWSLETTER_MIGRATIONS_DIR)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return CheckResult(
            name,
            Status.FAIL,
            f"{shown} does not answer ({reason}): check DATABASE_URL and that the server runs",
        )
    finally:
        engine.dispose()
    if not current:
        return CheckResult(
            name, Status.FAIL, f"{shown} is not set up or out of date: run `newsletter init`"
        )
    return CheckResult(name, Status.OK, f"{shown} answers; its migrations are current")


def check_secret(settings: Settings) -> CheckResult:
    secret = settings.NEWSLETTER_SECRET_KEY.get_secret_value()
    fix = (
        "set NEWSLETTER_SECRET_KEY to the output of "
        "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
    )
    if not secret:
        return _needed_in_production(settings, "secret", f"NEWSLETTER_SECRET_KEY is empty: {fix}")
    if secret == PLACEHOLDER_SECRET:
        return _needed_in_production(settings, "secret", f"the placeholder is in use: {fix}")
    if len(secret) < 32:
        return _needed_in_production(
            settings, "secret", f"only {len(secret)} characters (32 at least): {fix}"
        )
    return CheckResult("secret", Status.OK, "set, not the placeholder")


def check_base_url(settings: Settings) -> CheckResult:
    name, url = "base_url", settings.NEWSLETTER_BASE_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return CheckResult(
            name,
            Status.FAIL,
            f"NEWSLETTER_BASE_URL {url!r} is not a URL like https://news.firm.com",
        )
    if _is_loopback(parts.hostname) or parts.hostname == "0.0.0.0":  # noqa: S104 - compared, not bound
        return _needed_in_production(
            settings,
            name,
            f"{url} is this machine: readers' links would lead nowhere; set NEWSLETTER_BASE_URL "
            "to the public https address of the web process",
        )
    if _is_reserved(parts.hostname):
        return _needed_in_production(
            settings,
            name,
            f"{url} is an example address: set NEWSLETTER_BASE_URL to the public https "
            "address of the web process",
        )
    if parts.scheme != "https":
        return _needed_in_production(
            settings,
            name,
            f"{url} is not https: put a TLS proxy in front of `serve` and set "
            "NEWSLETTER_BASE_URL to its https address",
        )
    return CheckResult(name, Status.OK, f"{url}")


def check_from_address(settings: Settings) -> CheckResult:
    name = "from_address"
    display, address = parseaddr(settings.NEWSLETTER_FROM)
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        return CheckResult(
            name,
            Status.FAIL,
            f"NEWSLETTER_FROM {settings.NEWSLETTER_FROM!r} is not a valid address ({exc}): "
            "write it as 'Firm Briefings <briefs@firm.com>'",
        )
    domain = address.rpartition("@")[2].lower()
    if _is_reserved(domain):
        return _needed_in_production(
            settings,
            name,
            f"{address} is at {domain}, which receives no mail and no provider sends from: "
            "set NEWSLETTER_FROM to an address on a domain the provider has verified",
        )
    return CheckResult(name, Status.OK, f"{display} <{address}>" if display else address)


def check_provider(settings: Settings) -> CheckResult:
    if settings.NEWSLETTER_TRANSPORT is TransportName.SMTP:
        return _check_smtp(settings)
    if settings.NEWSLETTER_TRANSPORT is TransportName.OUTBOX:
        return _needed_in_production(
            settings,
            "provider",
            f"NEWSLETTER_TRANSPORT=outbox writes .eml files under "
            f"{settings.NEWSLETTER_OUTBOX_DIR} and delivers nothing",
        )
    return _check_sendgrid(settings)


def _check_sendgrid(settings: Settings) -> CheckResult:
    """The key is accepted and may send mail: SendGrid's `GET /v3/scopes`, which changes
    nothing and which the sandbox answers too."""
    name, host = "provider", settings.SENDGRID_API_HOST
    key = settings.SENDGRID_API_KEY.get_secret_value()
    if not key:
        return CheckResult(
            name, Status.FAIL, "SENDGRID_API_KEY is not set: create a key with Mail Send access"
        )
    if _production(settings) and not host.startswith("https://"):
        return CheckResult(
            name,
            Status.FAIL,
            f"SENDGRID_API_HOST is {host} (a sandbox?): unset it to reach SendGrid",
        )
    client = SendGridAPIClient(api_key=key, host=host)
    client.client.timeout = min(PROVIDER_TIMEOUT, settings.SENDGRID_TIMEOUT_SECONDS)
    try:
        response = client.client.scopes.get()
    except HTTPError as exc:
        status = int(exc.status_code)
        if status in (401, 403):
            return CheckResult(
                name,
                Status.FAIL,
                f"SendGrid refused SENDGRID_API_KEY ({status}): it is wrong or revoked; "
                "create a new key with Mail Send access",
            )
        return CheckResult(name, Status.FAIL, f"{host} answered {status}: try again later")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return CheckResult(
            name, Status.FAIL, f"cannot reach {host} ({reason}): check SENDGRID_API_HOST"
        )
    try:
        scopes = set(json.loads(response.body)["scopes"])
    except (ValueError, KeyError, TypeError):
        return CheckResult(name, Status.FAIL, f"{host}/v3/scopes answered something unreadable")
    if SEND_SCOPE not in scopes:
        return CheckResult(
            name,
            Status.FAIL,
            f"SENDGRID_API_KEY is accepted but may not send mail (no {SEND_SCOPE} scope): "
            "give the key Mail Send access",
        )
    return CheckResult(name, Status.OK, f"SendGrid at {host} accepts the key, with {SEND_SCOPE}")


def _check_smtp(settings: Settings) -> CheckResult:
    name, where = "provider", f"{settings.SMTP_HOST}:{settings.SMTP_PORT}"
    try:
        with smtplib.SMTP(
            settings.SMTP_HOST, settings.SMTP_PORT, timeout=PROVIDER_TIMEOUT
        ) as connection:
            if settings.SMTP_STARTTLS:
                connection.starttls(context=ssl.create_default_context())
            if settings.SMTP_USERNAME:
                connection.login(settings.SMTP_USERNAME, settings.SMTP_PASSWORD.get_secret_value())
            connection.noop()
    except smtplib.SMTPAuthenticationError:
        return CheckResult(
            name, Status.FAIL, f"{where} refused SMTP_USERNAME/SMTP_PASSWORD: check them"
        )
    except (smtplib.SMTPException, OSError) as exc:
        return CheckResult(
            name, Status.FAIL, f"cannot reach SMTP server {where} ({exc}): check SMTP_HOST/PORT"
        )
    return CheckResult(name, Status.OK, f"SMTP server {where} answers")


def check_webhook_key(settings: Settings) -> CheckResult:
    name, key = "webhook_key", settings.SENDGRID_WEBHOOK_PUBLIC_KEY
    if settings.NEWSLETTER_TRANSPORT is not TransportName.SENDGRID:
        return CheckResult(name, Status.OK, f"not used with {settings.NEWSLETTER_TRANSPORT}")
    if not key:
        return _needed_in_production(
            settings,
            name,
            "SENDGRID_WEBHOOK_PUBLIC_KEY is not set, so bounces, complaints and unsubscribes "
            "from SendGrid are refused: paste the verification key from SendGrid's Event "
            "Webhook settings",
        )
    try:
        parsed = EventWebhook(key).public_key
    except (ValueError, TypeError):
        return CheckResult(
            name,
            Status.FAIL,
            "SENDGRID_WEBHOOK_PUBLIC_KEY is not a readable key: paste it again from SendGrid's "
            "Event Webhook settings, without BEGIN/END lines",
        )
    if not isinstance(parsed, ec.EllipticCurvePublicKey):
        return CheckResult(
            name,
            Status.FAIL,
            "SENDGRID_WEBHOOK_PUBLIC_KEY is not an elliptic-curve key, as SendGrid's is: "
            "paste the Event Webhook's verification key",
        )
    return CheckResult(name, Status.OK, "set and readable")


def check_postal_address(settings: Settings) -> CheckResult:
    name, address = "postal_address", settings.NEWSLETTER_POSTAL_ADDRESS.strip()
    if not address:
        return CheckResult(
            name,
            Status.FAIL,
            "NEWSLETTER_POSTAL_ADDRESS is empty: the law (CAN-SPAM) wants the firm's postal "
            "address in every email",
        )
    if address == Settings.model_fields["NEWSLETTER_POSTAL_ADDRESS"].default:
        return _needed_in_production(
            settings,
            name,
            "NEWSLETTER_POSTAL_ADDRESS is the example: set the firm's own postal address",
        )
    return CheckResult(name, Status.OK, address)


def check_trusted_proxies(settings: Settings, host: str = "127.0.0.1") -> CheckResult:
    """NEWSLETTER_TRUSTED_PROXIES against the address `serve --host` listens on: a proxy
    must be able to reach it, and no one else may speak for readers' addresses."""
    name, entries = "trusted_proxies", settings.NEWSLETTER_TRUSTED_PROXIES
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            return CheckResult(
                name,
                Status.FAIL,
                f"NEWSLETTER_TRUSTED_PROXIES has {entry!r}, not an IP address or CIDR",
            )
    if any(network.prefixlen == 0 for network in networks):
        return CheckResult(
            name,
            Status.FAIL,
            "NEWSLETTER_TRUSTED_PROXIES trusts every address: anyone could claim any reader "
            "address and slip the rate limits; list only the proxy's address",
        )
    listening = f"`serve --host {host}`"
    if _is_loopback(host):
        if not networks:
            return _needed_in_production(
                settings,
                name,
                f"{listening} is reached through a proxy on this machine, but "
                "NEWSLETTER_TRUSTED_PROXIES is empty, so every reader appears as 127.0.0.1 "
                "(one rate limit for all): set NEWSLETTER_TRUSTED_PROXIES='[\"127.0.0.1\"]'",
            )
        if not any(network.network_address.is_loopback for network in networks):
            return CheckResult(
                name,
                Status.FAIL,
                f"{listening} is only reachable from this machine, but no trusted proxy is a "
                "loopback address: add 127.0.0.1",
            )
        return CheckResult(name, Status.OK, f"{listening} trusts {', '.join(entries)}")
    if not networks:
        return _needed_in_production(
            settings,
            name,
            f"{listening} is reachable without the TLS proxy: bind it to 127.0.0.1 behind "
            "the proxy and set NEWSLETTER_TRUSTED_PROXIES='[\"127.0.0.1\"]'",
        )
    if all(network.network_address.is_loopback for network in networks) and host not in (
        "0.0.0.0",  # noqa: S104 - compared, not bound
        "::",
    ):
        return CheckResult(
            name,
            Status.FAIL,
            f"{listening} is not on loopback, so a proxy's connections never come from "
            f"{', '.join(entries)}: list the proxy's own address",
        )
    return CheckResult(name, Status.OK, f"{listening} trusts {', '.join(entries)}")


CHECKS: tuple[Callable[[Settings], CheckResult], ...] = (
    check_database,
    check_secret,
    check_base_url,
    check_from_address,
    check_provider,
    check_webhook_key,
    check_postal_address,
)


def run_checks(settings: Settings, *, host: str = "127.0.0.1") -> list[CheckResult]:
    return [check(settings) for check in CHECKS] + [check_trusted_proxies(settings, host)]


def load_settings(
    load: Callable[..., Settings] = get_settings,
) -> tuple[Settings | None, list[CheckResult]]:
    """The settings to check, and what kept them from loading.

    Production refuses to load a placeholder secret; the doctor loads them as development
    then, and checks them as production, so the secret's own check says what to fix and
    every other check still runs.
    """
    try:
        return load(), []
    except ValidationError as refused:
        try:
            settings = load(NEWSLETTER_ENV=Environment.DEVELOPMENT)
        except ValidationError:
            return None, [
                CheckResult(
                    "settings",
                    Status.FAIL,
                    ".".join(str(part) for part in problem["loc"]) + f": {problem['msg']}"
                    if problem["loc"]
                    else problem["msg"],
                )
                for problem in refused.errors()
            ]
        return settings.model_copy(update={"NEWSLETTER_ENV": Environment.PRODUCTION}), []
