"""What a check answers, and the judgements every check shares."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from newsletter.config import Environment, Settings

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


def is_production(settings: Settings) -> bool:
    return settings.NEWSLETTER_ENV is Environment.PRODUCTION


def needed_in_production(settings: Settings, check: str, message: str) -> CheckResult:
    """A problem that fails production and is only a warning in development."""
    if is_production(settings):
        return CheckResult(check, Status.FAIL, message)
    return CheckResult(check, Status.WARN, f"{message} (fine in development)")


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_reserved(domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    return domain in RESERVED_DOMAINS or domain.endswith(RESERVED_SUFFIXES)
