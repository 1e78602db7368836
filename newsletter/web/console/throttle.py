"""Wrong password guesses, counted per account and per IP in the database (so every web
process, and a restarted one, sees the same count). Past either limit, sign-in is refused
before the password is even checked, so a correct guess is refused too and the limit cannot
be used to test passwords."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.config import Settings
from newsletter.staff.models import LoginFailure


def _count(session: Session, column: Any, value: str, since: datetime) -> int:
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(LoginFailure)
            .where(column == value, col(LoginFailure.at) > since)
        )
        or 0
    )


def throttled(session: Session, email: str, ip: str, settings: Settings, *, now: datetime) -> bool:
    since = now - timedelta(minutes=settings.NEWSLETTER_LOGIN_WINDOW_MINUTES)
    return (
        _count(session, col(LoginFailure.email), email, since)
        >= settings.NEWSLETTER_LOGIN_LIMIT_ACCOUNT
        or _count(session, col(LoginFailure.ip), ip, since) >= settings.NEWSLETTER_LOGIN_LIMIT_IP
    )


def record_failure(
    session: Session, email: str, ip: str, settings: Settings, *, now: datetime
) -> None:
    """Count one wrong guess, and forget those older than a day (nothing counts them)."""
    session.add(LoginFailure(email=email[:320], ip=ip[:45], at=now))
    session.execute(sa.delete(LoginFailure).where(col(LoginFailure.at) < now - timedelta(days=1)))


def forget_failures(session: Session, email: str) -> None:
    """A good sign-in clears the account's count (not the IP's)."""
    session.execute(sa.delete(LoginFailure).where(col(LoginFailure.email) == email))
