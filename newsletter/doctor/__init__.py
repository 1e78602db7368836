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

from collections.abc import Callable

from pydantic import ValidationError

from newsletter.config import Environment, Settings, get_settings
from newsletter.doctor.checks import (
    check_base_url,
    check_database,
    check_firm_name,
    check_from_address,
    check_metrics_token,
    check_postal_address,
    check_secret,
    check_trusted_proxies,
    check_webhook_key,
)
from newsletter.doctor.provider import check_provider
from newsletter.doctor.results import CheckResult, Status

__all__ = [
    "CHECKS",
    "CheckResult",
    "Status",
    "check_base_url",
    "check_database",
    "check_firm_name",
    "check_from_address",
    "check_metrics_token",
    "check_postal_address",
    "check_provider",
    "check_secret",
    "check_trusted_proxies",
    "check_webhook_key",
    "load_settings",
    "run_checks",
]


CHECKS: tuple[Callable[[Settings], CheckResult], ...] = (
    check_database,
    check_secret,
    check_base_url,
    check_from_address,
    check_provider,
    check_webhook_key,
    check_postal_address,
    check_firm_name,
    check_metrics_token,
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
