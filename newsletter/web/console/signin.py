"""Signing in: throttle, check the password, open a session, say so in the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.engine import Engine

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.errors import NewsletterError
from newsletter.staff import audit
from newsletter.staff.accounts import find_staff, upgrade_hash, verify_password
from newsletter.staff.models import Staff
from newsletter.web.console.sessions import open_session
from newsletter.web.console.throttle import forget_failures, record_failure, throttled
from subscribers.models import id_of


class Refusal(StrEnum):
    WRONG = "wrong"  # address or password (we never say which)
    THROTTLED = "throttled"


@dataclass(frozen=True)
class SignInResult:
    token: str = ""  # for the cookie, when it worked
    refused: Refusal | None = None


def sign_in(
    engine: Engine, settings: Settings, email: str, password: str, *, ip: str, now: datetime
) -> SignInResult:
    """Read, check the password outside any transaction, then write in a short one.

    The check (argon2id) takes about half a second. On SQLite, a transaction that read and
    then writes after another process (the worker) wrote meanwhile is refused at once, not
    made to wait ("database is locked"): one wrong-password guess in eighteen answered 500
    while a worker was sending. The write now takes SQLite's lock first and waits its turn.
    """
    key = email.strip().lower()[:320]
    with session_scope(engine) as session:
        if throttled(session, key, ip, settings, now=now):
            return SignInResult(refused=Refusal.THROTTLED)
        try:
            staff = find_staff(key, session=session) if key else None
        except NewsletterError:  # not even an address
            staff = None
    # Checked against a decoy when there is no such account: the same work either way.
    good = verify_password(staff, password) and staff is not None
    with session_scope(engine, immediate=True) as session:
        if not good or staff is None:
            record_failure(session, key, ip, settings, now=now)
            return SignInResult(refused=Refusal.WRONG)
        checked_hash = staff.password_hash
        fresh = session.get(Staff, id_of(staff))
        if fresh is None or fresh.password_hash != checked_hash:
            # Removed, or given a new password, while this one was being checked.
            record_failure(session, key, ip, settings, now=now)
            return SignInResult(refused=Refusal.WRONG)
        staff = fresh
        forget_failures(session, key)
        upgrade_hash(staff, password, session=session)
        staff.last_login_at = now
        session.add(staff)
        audit.record(session, staff.email, "staff.sign_in", staff.email, ip=ip)
    return SignInResult(token=open_session(engine, staff, ip=ip, now=now))
