"""The configuration's checks, one plain function each: settings in, a `CheckResult` out.
The provider's own check is in `provider.py`."""

from __future__ import annotations

import ipaddress
from email.utils import parseaddr
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from email_validator import EmailNotValidError, validate_email
from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from newsletter.config import PLACEHOLDER_SECRET, Settings, TransportName
from newsletter.db import make_engine, require_current_schema
from newsletter.db.outage import outage_words
from newsletter.doctor.results import (
    CheckResult,
    Status,
    is_loopback,
    is_reserved,
    needed_in_production,
)
from newsletter.errors import NewsletterError
from newsletter.web.limits import Network


def check_database(settings: Settings) -> CheckResult:
    name = "database"
    try:
        url = make_url(settings.DATABASE_URL)
    except (ValueError, SQLAlchemyError) as exc:
        return CheckResult(name, Status.FAIL, f"DATABASE_URL cannot be read: {exc}")
    shown = url.render_as_string(hide_password=True)
    try:
        engine = make_engine(settings.DATABASE_URL)  # a missing SQLite file: refused, not made
    except NewsletterError as exc:
        return CheckResult(name, Status.FAIL, _as_the_cli_says(exc))
    try:
        require_current_schema(engine, settings.NEWSLETTER_MIGRATIONS_DIR)
    except SQLAlchemyError as exc:
        return CheckResult(
            name,
            Status.FAIL,
            f"{shown} does not answer ({outage_words(exc)}): check DATABASE_URL and that the "
            "server runs",
        )
    except NewsletterError as exc:
        return CheckResult(name, Status.FAIL, _as_the_cli_says(exc))
    finally:
        engine.dispose()
    return CheckResult(name, Status.OK, f"{shown} answers; its migrations are current")


def _as_the_cli_says(exc: NewsletterError) -> str:
    """The refusal in the words every other command prints for it, next step included."""
    return f"{exc}: {exc.hint}" if exc.hint else str(exc)


def check_secret(settings: Settings) -> CheckResult:
    secret = settings.NEWSLETTER_SECRET_KEY.get_secret_value()
    fix = (
        "set NEWSLETTER_SECRET_KEY to the output of "
        "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
    )
    if not secret:
        return needed_in_production(settings, "secret", f"NEWSLETTER_SECRET_KEY is empty: {fix}")
    if secret == PLACEHOLDER_SECRET:
        return needed_in_production(settings, "secret", f"the placeholder is in use: {fix}")
    if len(secret) < 32:
        return needed_in_production(
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
    if is_loopback(parts.hostname) or parts.hostname == "0.0.0.0":  # noqa: S104 - compared, not bound
        return needed_in_production(
            settings,
            name,
            f"{url} is this machine: readers' links would lead nowhere; set NEWSLETTER_BASE_URL "
            "to the public https address of the web process",
        )
    if is_reserved(parts.hostname):
        return needed_in_production(
            settings,
            name,
            f"{url} is an example address: set NEWSLETTER_BASE_URL to the public https "
            "address of the web process",
        )
    if parts.scheme != "https":
        return needed_in_production(
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
    if is_reserved(domain):
        return needed_in_production(
            settings,
            name,
            f"{address} is at {domain}, which receives no mail and no provider sends from: "
            "set NEWSLETTER_FROM to an address on a domain the provider has verified",
        )
    return CheckResult(name, Status.OK, f"{display} <{address}>" if display else address)


def check_webhook_key(settings: Settings) -> CheckResult:
    name, key = "webhook_key", settings.SENDGRID_WEBHOOK_PUBLIC_KEY
    if settings.NEWSLETTER_TRANSPORT is not TransportName.SENDGRID:
        return CheckResult(name, Status.OK, f"not used with {settings.NEWSLETTER_TRANSPORT}")
    if not key:
        return needed_in_production(
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
        return needed_in_production(
            settings,
            name,
            "NEWSLETTER_POSTAL_ADDRESS is the example: set the firm's own postal address",
        )
    return CheckResult(name, Status.OK, address)


def check_firm_name(settings: Settings) -> CheckResult:
    """The example name passed every check, and production emails went out under it: the
    masthead, the footer and the confirmation's subject all say the firm's name."""
    name, firm = "firm_name", settings.NEWSLETTER_FIRM_NAME.strip()
    if firm == Settings.model_fields["NEWSLETTER_FIRM_NAME"].default:
        return needed_in_production(
            settings,
            name,
            f"NEWSLETTER_FIRM_NAME is the example ({firm!r}): set the firm's own name, which "
            "every email's masthead, footer and confirmation subject show",
        )
    return CheckResult(name, Status.OK, firm)


def check_trusted_proxies(settings: Settings, host: str = "127.0.0.1") -> CheckResult:
    """NEWSLETTER_TRUSTED_PROXIES against the address `serve --host` listens on: a proxy
    must be able to reach it, and no one else may speak for readers' addresses."""
    name, entries = "trusted_proxies", settings.NEWSLETTER_TRUSTED_PROXIES
    networks, unreadable = _proxy_networks(entries)
    if unreadable:
        return CheckResult(
            name,
            Status.FAIL,
            f"NEWSLETTER_TRUSTED_PROXIES has {unreadable[0]!r}, not an IP address or CIDR",
        )
    if any(network.prefixlen == 0 for network in networks):
        return CheckResult(
            name,
            Status.FAIL,
            "NEWSLETTER_TRUSTED_PROXIES trusts every address: anyone could claim any reader "
            "address and slip the rate limits; list only the proxy's address",
        )
    listening = f"`serve --host {host}`"
    if is_loopback(host):
        if not networks:
            return needed_in_production(
                settings,
                name,
                f"{listening} is reached through a proxy on this machine, but "
                "NEWSLETTER_TRUSTED_PROXIES is empty, so every reader appears as 127.0.0.1 "
                "(one rate limit for all): set NEWSLETTER_TRUSTED_PROXIES=127.0.0.1",
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
        return needed_in_production(
            settings,
            name,
            f"{listening} is reachable without the TLS proxy: bind it to 127.0.0.1 behind "
            "the proxy and set NEWSLETTER_TRUSTED_PROXIES=127.0.0.1",
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


# The env example's value for NEWSLETTER_METRICS_TOKEN (deploy/newsletter.env.example).
METRICS_TOKEN_EXAMPLE = "replace-with-a-long-random-string"  # noqa: S105 - refused, not used
METRICS_TOKEN_MIN = 24


def check_metrics_token(settings: Settings) -> CheckResult:
    """NEWSLETTER_METRICS_TOKEN against who may read the web process's /metrics
    (`web/routes/health.may_read_metrics`): a proxy on this machine, trusted as 127.0.0.1,
    makes every loopback request a proxy's, so Prometheus beside it is refused without the
    token; and a short or example token opens the list's figures to whoever guesses it."""
    name = "metrics_token"
    token = settings.NEWSLETTER_METRICS_TOKEN.get_secret_value()
    if token == METRICS_TOKEN_EXAMPLE or (token and len(token) < METRICS_TOKEN_MIN):
        what = "the example" if token == METRICS_TOKEN_EXAMPLE else "short"
        return needed_in_production(
            settings,
            name,
            f"NEWSLETTER_METRICS_TOKEN is {what}: set a random one of {METRICS_TOKEN_MIN} "
            "characters or more (e.g. `openssl rand -hex 24`), and the same in "
            "Prometheus's credentials_file",
        )
    if token:
        return CheckResult(name, Status.OK, "set: /metrics answers a scrape with it")
    networks, _ = _proxy_networks(settings.NEWSLETTER_TRUSTED_PROXIES)  # bad: the check above
    if any(network.network_address.is_loopback for network in networks):
        return CheckResult(
            name,
            Status.WARN,
            "not set, and 127.0.0.1 is a trusted proxy: Prometheus on this machine gets 403 "
            "from the web process's /metrics; set NEWSLETTER_METRICS_TOKEN and give "
            "Prometheus the same as its bearer token",
        )
    return CheckResult(name, Status.OK, "not set: /metrics answers this machine only")


def _proxy_networks(entries: list[str]) -> tuple[list[Network], list[str]]:
    """NEWSLETTER_TRUSTED_PROXIES read as networks, and the entries that are none."""
    networks: list[Network] = []
    unreadable: list[str] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            unreadable.append(entry)
    return networks, unreadable
