"""The console's tables: staff accounts, their signed-in sessions, wrong guesses at passwords
(throttling), and the audit log of what staff did."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from subscribers.models import UTCDateTime, utc_column, utcnow

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Staff(SQLModel, table=True):
    """A member of staff who signs in to the console (`newsletter staff add`)."""

    __tablename__ = "staff"

    id: int | None = Field(default=None, primary_key=True)
    # Stored lower-cased, so sign-in is case-insensitive and uniqueness too.
    email: str = Field(max_length=320, unique=True)
    name: str = Field(default="", max_length=200)
    # argon2id, in the PHC string format (salt and parameters inside).
    password_hash: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    password_changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_login_at: datetime | None = utc_column()

    def as_dict(self) -> dict[str, object]:
        return {
            "email": self.email,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
        }


class StaffSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored,
    so a copy of the database lets no one in. Signing out deletes the row."""

    __tablename__ = "staff_session"

    token_hash: str = Field(primary_key=True, max_length=64)
    staff_id: int = Field(foreign_key="staff.id", index=True, ondelete="CASCADE")
    # The token every form of this session carries (the synchronizer-token pattern).
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    ip: str = Field(default="", max_length=45)


class LoginFailure(SQLModel, table=True):
    """One wrong guess at a password: counted per account and per IP to throttle guessing,
    in the database so every web process sees the same count."""

    __tablename__ = "login_failure"
    __table_args__ = (
        sa.Index("ix_login_failure_email_at", "email", "at"),
        sa.Index("ix_login_failure_ip_at", "ip", "at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=_BIG_ID)
    email: str = Field(max_length=320)
    ip: str = Field(max_length=45)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AuditEntry(SQLModel, table=True):
    """Who did what, when, from where: every change staff make in the console (and the CLI's
    brief and staff commands). Kept by name, so it outlives a removed account."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True, sa_type=_BIG_ID)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor: str = Field(max_length=320)
    action: str = Field(max_length=64)
    target: str = Field(default="", max_length=300)
    detail: str = Field(default="", sa_type=sa.Text)
    ip: str = Field(default="", max_length=45)

    def as_dict(self) -> dict[str, object]:
        return {
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
            "ip": self.ip,
        }
