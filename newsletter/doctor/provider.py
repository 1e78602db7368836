"""Whether the configured provider will take our mail: SendGrid accepts the key and lets it
send (`GET /v3/scopes`, which changes nothing and which the sandbox answers too); an SMTP
server answers and takes the login."""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.error

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from newsletter.config import Settings, TransportName
from newsletter.doctor.results import CheckResult, Status, is_production, needed_in_production

# The key must be allowed to send mail; SendGrid names that scope `mail.send`.
SEND_SCOPE = "mail.send"
PROVIDER_TIMEOUT = 10.0


def check_provider(settings: Settings) -> CheckResult:
    if settings.NEWSLETTER_TRANSPORT is TransportName.SMTP:
        return _check_smtp(settings)
    if settings.NEWSLETTER_TRANSPORT is TransportName.OUTBOX:
        return needed_in_production(
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
    if is_production(settings) and not host.startswith("https://"):
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
