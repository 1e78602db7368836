"""`newsletter doctor`: each check passes on a good configuration and fails, saying what to
fix, on a bad one. The provider check talks to the sandbox over HTTP with the real
`sendgrid` client (SendGrid's `GET /v3/scopes`), and to a real SMTP server on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from newsletter.config import Settings
from newsletter.devtools.sandbox import Sandbox
from newsletter.doctor import (
    CheckResult,
    Status,
    check_base_url,
    check_database,
    check_firm_name,
    check_from_address,
    check_metrics_token,
    check_postal_address,
    check_provider,
    check_secret,
    check_trusted_proxies,
    check_webhook_key,
    load_settings,
)
from newsletter.doctor.checks import METRICS_TOKEN_EXAMPLE
from tests.conftest import SANDBOX_KEY, clean_env, test_settings
from tests.ops_support import blank_db_url, stamp_as_migrated_by_a_newer_version
from tests.test_transports import closed_port, mailbox

__all__ = ["blank_db_url", "closed_port", "mailbox"]  # fixtures, used by name

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what `serve --host` is given, not bound here
GOOD_SECRET = "a-random-secret-that-is-long-enough-0123456789"
GOOD_METRICS_TOKEN = "9f2c4e1a7b3d8f60c5a2e9d4b7f1c3a8"


def production(**overrides: object):
    """A production configuration whose every value is fine, changed by `overrides`."""
    values: dict[str, object] = {
        "NEWSLETTER_ENV": "production",
        "NEWSLETTER_SECRET_KEY": GOOD_SECRET,
        "NEWSLETTER_BASE_URL": "https://news.firm.co.jp",
        "NEWSLETTER_FROM": "Firm Briefings <briefs@firm.co.jp>",
        "NEWSLETTER_POSTAL_ADDRESS": "Firm KK, 1-2-3 Marunouchi, Tokyo",
        "NEWSLETTER_FIRM_NAME": "Marunouchi Analysis",
        "NEWSLETTER_TRUSTED_PROXIES": ["127.0.0.1"],
    }
    return test_settings(**{**values, **overrides})


def fails(result: CheckResult, *words: str) -> None:
    assert result.status is Status.FAIL, result
    for word in words:
        assert word in result.message, result


# --- database -------------------------------------------------------------------------------


def test_the_database_check_passes_on_a_migrated_database(db_url):
    result = check_database(production(DATABASE_URL=db_url))
    assert result.status is Status.OK and "migrations are current" in result.message


def test_the_database_check_fails_on_an_unmigrated_database(blank_db_url):
    fails(check_database(production(DATABASE_URL=blank_db_url)), "run `newsletter init`")


def test_the_database_check_on_a_database_a_newer_version_migrated_gives_the_way_back(
    db_url, engine
):
    stamp_as_migrated_by_a_newer_version(engine)
    result = check_database(production(DATABASE_URL=db_url))
    fails(result, "migrated by a newer version", "0099", "restore the backup")
    assert "newsletter init" not in result.message


def test_the_database_check_fails_on_a_missing_sqlite_file_without_creating_one(tmp_path):
    missing = tmp_path / "typo" / "newsletter.db"
    fails(check_database(production(DATABASE_URL=f"sqlite:///{missing}")), "no database at")
    assert not missing.parent.exists()


def test_the_database_check_fails_when_postgresql_does_not_answer(closed_port):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port}/newsletter"
    fails(check_database(production(DATABASE_URL=url)), "does not answer", "DATABASE_URL")


# --- secret, base URL, from address, postal address -----------------------------------------


def _with_secret(settings, secret: str):
    """Settings as they would be with this secret, past the validator that refuses it."""
    return settings.model_copy(update={"NEWSLETTER_SECRET_KEY": SecretStr(secret)})


def test_the_secret_check_fails_on_the_placeholder_in_production_and_warns_in_development():
    fails(check_secret(_with_secret(production(), "change-me")), "placeholder", "token_urlsafe")
    warned = check_secret(test_settings(NEWSLETTER_SECRET_KEY="change-me"))
    assert warned.status is Status.WARN and "fine in development" in warned.message
    assert check_secret(production()).status is Status.OK


def test_the_secret_check_fails_on_a_short_secret():
    fails(check_secret(_with_secret(production(), "x" * 12)), "only 12 characters")


def test_settings_production_refuses_to_load_are_checked_as_production_all_the_same():
    """Production refuses a placeholder secret at load time; the doctor still runs every
    check, as production, so the secret's own line says what to fix."""

    def load(**override: object):
        return test_settings(
            **{**production().model_dump(), "NEWSLETTER_SECRET_KEY": "change-me", **override}
        )

    settings, problems = load_settings(load)
    assert problems == [] and settings is not None
    assert settings.NEWSLETTER_ENV == "production"
    fails(check_secret(settings), "placeholder")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://news.firm.co.jp", ["not https"]),
        ("https://127.0.0.1:8000", ["is this machine"]),
        ("https://localhost", ["is this machine"]),
        ("news.firm.co.jp", ["is not a URL"]),
    ],
)
def test_the_base_url_check_fails_unless_it_is_public_https(url, words):
    fails(check_base_url(production(NEWSLETTER_BASE_URL=url)), *words)
    assert check_base_url(production()).status is Status.OK


def test_the_base_url_check_only_warns_in_development():
    result = check_base_url(test_settings(NEWSLETTER_BASE_URL="http://127.0.0.1:8000"))
    assert result.status is Status.WARN


@pytest.mark.parametrize(
    ("sender", "words"),
    [
        ("Briefings <briefs at firm.co.jp>", ["not a valid address"]),
        ("Briefings", ["not a valid address"]),
        ("Briefings <briefs@example.com>", ["example.com", "receives no mail"]),
        ("briefs@firm.test", ["firm.test"]),
    ],
)
def test_the_from_address_check_fails_on_an_invalid_or_reserved_address(sender, words):
    fails(check_from_address(production(NEWSLETTER_FROM=sender)), *words)
    ok = check_from_address(production(NEWSLETTER_FROM='"Müller, Briefs" <briefs@firm.co.jp>'))
    assert ok.status is Status.OK and "briefs@firm.co.jp" in ok.message


def test_the_postal_address_check_fails_when_empty_or_the_example():
    fails(check_postal_address(production(NEWSLETTER_POSTAL_ADDRESS="  ")), "CAN-SPAM")
    example = test_settings().NEWSLETTER_POSTAL_ADDRESS
    fails(check_postal_address(production(NEWSLETTER_POSTAL_ADDRESS=example)), "the example")
    assert check_postal_address(production()).status is Status.OK


def test_the_firm_name_check_fails_in_production_on_the_example():
    """Every email went out as "Example Analysis" while the doctor passed."""
    example = Settings.model_fields["NEWSLETTER_FIRM_NAME"].default
    fails(check_firm_name(production(NEWSLETTER_FIRM_NAME=example)), "the example", "masthead")
    assert check_firm_name(production()).status is Status.OK


def test_the_metrics_token_check_fails_in_production_on_the_example_or_a_short_token():
    fails(
        check_metrics_token(production(NEWSLETTER_METRICS_TOKEN=METRICS_TOKEN_EXAMPLE)),
        "the example",
    )
    fails(check_metrics_token(production(NEWSLETTER_METRICS_TOKEN="letmein")), "short")
    good = production(NEWSLETTER_METRICS_TOKEN=GOOD_METRICS_TOKEN)
    assert check_metrics_token(good).status is Status.OK


def test_the_metrics_token_check_warns_when_a_proxy_on_this_machine_leaves_prometheus_out():
    """127.0.0.1 trusted as a proxy: every loopback request is a proxy's, and Prometheus on
    the same machine got 403 from /metrics with the doctor saying nothing."""
    warned = check_metrics_token(production(NEWSLETTER_TRUSTED_PROXIES=["127.0.0.1"]))
    assert warned.status is Status.WARN and "403" in warned.message
    bare = check_metrics_token(production(NEWSLETTER_TRUSTED_PROXIES=[]))
    assert bare.status is Status.OK


# --- the provider ---------------------------------------------------------------------------


def _sendgrid(host: str, key: str = SANDBOX_KEY, **more: object):
    return production(SENDGRID_API_HOST=host, SENDGRID_API_KEY=key, **more)


def test_the_provider_check_passes_when_sendgrid_accepts_the_key_with_mail_send(sandbox):
    result = check_provider(_sendgrid(sandbox.url, NEWSLETTER_ENV="development"))
    assert result.status is Status.OK and "mail.send" in result.message


def test_the_provider_check_fails_on_a_key_sendgrid_refuses(sandbox):
    settings = _sendgrid(sandbox.url, "SG.revoked", NEWSLETTER_ENV="development")
    fails(check_provider(settings), "refused SENDGRID_API_KEY (401)")


def test_the_provider_check_fails_on_a_key_without_the_mail_send_scope():
    with Sandbox(SANDBOX_KEY, scopes=["stats.read", "suppression.read"]) as limited:
        settings = _sendgrid(limited.url, NEWSLETTER_ENV="development")
        fails(check_provider(settings), "may not send mail", "mail.send")


def test_the_provider_check_fails_when_sendgrid_cannot_be_reached(closed_port):
    settings = _sendgrid(f"http://127.0.0.1:{closed_port}", NEWSLETTER_ENV="development")
    fails(check_provider(settings), "cannot reach", "SENDGRID_API_HOST")


def test_the_provider_check_fails_without_a_key_or_with_the_sandbox_left_in_production(sandbox):
    fails(check_provider(production(SENDGRID_API_KEY="")), "SENDGRID_API_KEY is not set")
    fails(check_provider(_sendgrid(sandbox.url)), "a sandbox?")


def test_the_provider_check_reaches_an_smtp_server_or_says_it_cannot(mailbox, closed_port):
    _, port = mailbox
    smtp = {"NEWSLETTER_TRANSPORT": "smtp", "SMTP_HOST": "127.0.0.1"}
    assert check_provider(production(**smtp, SMTP_PORT=port)).status is Status.OK
    fails(check_provider(production(**smtp, SMTP_PORT=closed_port)), "cannot reach SMTP")


def test_the_outbox_transport_fails_the_provider_check_in_production():
    fails(check_provider(production(NEWSLETTER_TRANSPORT="outbox")), "delivers nothing")


# --- webhook key ----------------------------------------------------------------------------


def test_the_webhook_key_check_passes_on_sendgrids_kind_of_key(sandbox):
    settings = production(SENDGRID_WEBHOOK_PUBLIC_KEY=sandbox.events.public_key)
    assert check_webhook_key(settings).status is Status.OK


def test_the_webhook_key_check_fails_when_missing_unreadable_or_the_wrong_kind():
    fails(check_webhook_key(production()), "not set", "Event Webhook")
    fails(check_webhook_key(production(SENDGRID_WEBHOOK_PUBLIC_KEY="not-a-key")), "readable")
    rsa_der = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    body = "".join(rsa_der.splitlines()[1:-1])
    fails(check_webhook_key(production(SENDGRID_WEBHOOK_PUBLIC_KEY=body)), "elliptic-curve")


# --- trusted proxies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("proxies", "host", "words"),
    [
        (["0.0.0.0/0"], ALL_INTERFACES, ["trusts every address"]),
        ([], "127.0.0.1", ["every reader appears as 127.0.0.1"]),
        (["10.0.0.2"], "127.0.0.1", ["add 127.0.0.1"]),
        (["127.0.0.1"], "10.0.0.5", ["list the proxy's own address"]),
        ([], ALL_INTERFACES, ["reachable without the TLS proxy"]),
    ],
)
def test_the_trusted_proxies_check_fails_when_they_do_not_fit_how_serve_is_bound(
    proxies, host, words
):
    fails(check_trusted_proxies(production(NEWSLETTER_TRUSTED_PROXIES=proxies), host), *words)


@pytest.mark.parametrize(
    ("proxies", "host"),
    [
        (["127.0.0.1"], "127.0.0.1"),
        (["::1", "127.0.0.0/8"], "localhost"),
        (["10.0.0.2"], ALL_INTERFACES),
    ],
)
def test_the_trusted_proxies_check_passes_when_the_proxy_can_reach_serve(proxies, host):
    result = check_trusted_proxies(production(NEWSLETTER_TRUSTED_PROXIES=proxies), host)
    assert result.status is Status.OK, result


# --- the command ----------------------------------------------------------------------------


def _doctor(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", "doctor", *args],
        env=clean_env(COLUMNS="300", **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _good_env(db_url: str, sandbox: Sandbox) -> dict[str, str]:
    return {
        "DATABASE_URL": db_url,
        "SENDGRID_API_HOST": sandbox.url,
        "SENDGRID_API_KEY": SANDBOX_KEY,
        "SENDGRID_WEBHOOK_PUBLIC_KEY": sandbox.events.public_key,
        "NEWSLETTER_SECRET_KEY": GOOD_SECRET,
        "NEWSLETTER_BASE_URL": "https://news.firm.co.jp",
        "NEWSLETTER_FROM": "Firm Briefings <briefs@firm.co.jp>",
        "NEWSLETTER_POSTAL_ADDRESS": "Firm KK, Tokyo",
        "NEWSLETTER_FIRM_NAME": "Marunouchi Analysis",
        "NEWSLETTER_TRUSTED_PROXIES": "127.0.0.1",
        "NEWSLETTER_METRICS_TOKEN": GOOD_METRICS_TOKEN,
    }


def test_doctor_passes_a_good_configuration_with_one_ok_line_per_check(db_url, sandbox, tmp_path):
    result = _doctor(tmp_path, **_good_env(db_url, sandbox))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 10 and all(line.startswith("OK ") for line in lines), lines
    assert result.stderr.strip() == "all checks passed"


def test_doctor_in_production_fails_a_placeholder_secret_and_says_what_to_fix(
    db_url, sandbox, tmp_path
):
    env = {
        **_good_env(db_url, sandbox),
        "NEWSLETTER_ENV": "production",
        "NEWSLETTER_SECRET_KEY": "change-me",
    }
    result = _doctor(tmp_path, "--json", **env)
    assert result.returncode == 1
    report = json.loads(result.stdout)  # one document, even when checks fail
    failed = {c["check"]: c["message"] for c in report["checks"] if c["status"] == "fail"}
    assert report["ok"] is False
    assert set(failed) == {"secret", "provider"}  # and the sandbox URL left in production
    assert "NEWSLETTER_SECRET_KEY" in failed["secret"] and "a sandbox?" in failed["provider"]
    assert "Traceback" not in result.stderr


def test_doctor_names_a_setting_that_cannot_be_read_at_all(tmp_path):
    result = _doctor(tmp_path, NEWSLETTER_TIMEZONE="Mars/Olympus")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "FAIL  settings        NEWSLETTER_TIMEZONE: Value error, unknown IANA timezone "
        "'Mars/Olympus' (e.g. Asia/Tokyo)"
    ]
