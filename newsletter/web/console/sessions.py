"""Signed-in browsers, held in the database (`staff_session`) behind one cookie.

The cookie carries a random 256-bit token and nothing else; the database keeps only its
SHA-256, so neither a stolen backup nor a log line lets anyone in, and signing out (or
removing the account, or a new password) ends a session for good. The cookie is HttpOnly
(no script reads it), SameSite=Lax (no other site's form posts with it), and Secure with
the `__Host-` prefix when the console is served over https.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from fastapi.responses import Response
from sqlalchemy.engine import Engine
from sqlmodel import col

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.staff.models import Staff, StaffSession
from subscribers.models import id_of

# The last-seen time is written at most this often: a page that polls every 2 s should not
# write a row every 2 s.
TOUCH_EVERY = timedelta(seconds=60)
TOKEN_MAX = 100  # characters; a longer cookie is not one of ours


@dataclass(frozen=True)
class SignedIn:
    """The member of staff behind a request."""

    staff_id: int
    email: str
    name: str
    csrf: str  # every form of this session carries it
    token_hash: str

    @property
    def display(self) -> str:
        return self.name or self.email


def cookie_name(settings: Settings) -> str:
    return "__Host-nl_staff" if is_https(settings) else "nl_staff"


def is_https(settings: Settings) -> bool:
    return settings.NEWSLETTER_BASE_URL.startswith("https://")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def open_session(engine: Engine, staff: Staff, *, ip: str, now: datetime) -> str:
    """A new session for `staff`; returns the token for the cookie."""
    token = secrets.token_urlsafe(32)
    with session_scope(engine) as session:
        session.add(
            StaffSession(
                token_hash=_hash(token),
                staff_id=id_of(staff),
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                last_seen_at=now,
                ip=ip[:45],
            )
        )
    return token


def find_session(
    engine: Engine, token: str, settings: Settings, *, now: datetime
) -> SignedIn | None:
    """The session behind a cookie, or None: unknown (forged, tampered, signed out), idle
    past NEWSLETTER_STAFF_IDLE_MINUTES or older than NEWSLETTER_STAFF_SESSION_HOURS. An
    expired session is deleted, so it cannot come back."""
    if not token or len(token) > TOKEN_MAX:
        return None
    token_hash = _hash(token)
    idle = timedelta(minutes=settings.NEWSLETTER_STAFF_IDLE_MINUTES)
    lifetime = timedelta(hours=settings.NEWSLETTER_STAFF_SESSION_HOURS)
    with session_scope(engine) as session:
        row = session.get(StaffSession, token_hash)
        staff = session.get(Staff, row.staff_id) if row is not None else None
        if row is None or staff is None:
            return None
        if now - row.last_seen_at > idle or now - row.created_at > lifetime:
            session.delete(row)
            return None
        if now - row.last_seen_at > TOUCH_EVERY:
            row.last_seen_at = now
            session.add(row)
        return SignedIn(id_of(staff), staff.email, staff.name, row.csrf_token, token_hash)


def end_session(engine: Engine, signed_in: SignedIn) -> None:
    with session_scope(engine) as session:
        session.execute(
            sa.delete(StaffSession).where(col(StaffSession.token_hash) == signed_in.token_hash)
        )


def set_cookie(response: Response, token: str, settings: Settings) -> None:
    response.set_cookie(
        cookie_name(settings),
        token,
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(settings),
    )


def clear_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        cookie_name(settings), path="/", httponly=True, samesite="lax", secure=is_https(settings)
    )
