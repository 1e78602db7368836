"""Staff accounts (`newsletter staff …`): addresses, names and argon2id password hashes.

Hashing is argon2-cffi's `PasswordHasher` with its defaults (argon2id, RFC 9106's
low-memory profile: 64 MiB, 3 passes), so the parameters live in each hash and a later
library default upgrades old hashes at their next sign-in (`needs_rehash`).
"""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, select

from newsletter.errors import ConflictError, NewsletterError, NotFoundError
from newsletter.staff.models import Staff, StaffSession
from subscribers.models import utcnow
from subscribers.roster import normalize_email

# NIST SP 800-63B: at least 8; we ask for 12, and cap the length so nobody can make the
# server hash a megabyte per guess.
PASSWORD_MIN = 12
PASSWORD_MAX = 1024


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    """Checked against when the address is unknown, so a wrong address takes as long as a
    wrong password and the timing tells no one which addresses have accounts."""
    return _hasher().hash("no such account, only a decoy")


def check_password_rules(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise NewsletterError(f"the password is too short: use at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise NewsletterError(f"the password is too long: at most {PASSWORD_MAX} characters")


def hash_password(password: str) -> str:
    check_password_rules(password)
    return _hasher().hash(password)


def find_staff(email: str, *, session: Session) -> Staff | None:
    return session.exec(select(Staff).where(Staff.email == normalize_email(email))).first()


def get_staff(email: str, *, session: Session) -> Staff:
    found = find_staff(email, session=session)
    if found is None:
        raise NotFoundError(f"no staff account {email!r}", hint="see `newsletter staff list`")
    return found


def add_staff(email: str, password: str, *, session: Session, name: str = "") -> Staff:
    address = normalize_email(email)
    if find_staff(address, session=session) is not None:
        raise ConflictError(
            f"{address} already has a staff account",
            hint=f"`newsletter staff password {address}` sets a new password",
        )
    if len(name) > 200:
        raise NewsletterError("the name is too long: at most 200 characters")
    staff = Staff(email=address, name=name.strip(), password_hash=hash_password(password))
    session.add(staff)
    session.flush()
    return staff


def list_staff(*, session: Session) -> list[Staff]:
    return list(session.exec(select(Staff).order_by(col(Staff.email))))


def remove_staff(email: str, *, session: Session) -> Staff:
    """Delete the account; its sessions go with it (ON DELETE CASCADE), so a browser still
    signed in is signed out at its next request. The audit log keeps its name."""
    staff = get_staff(email, session=session)
    session.delete(staff)
    session.flush()
    return staff


def set_password(email: str, password: str, *, session: Session) -> Staff:
    """A new password; every session of the account ends (a leaked one included)."""
    staff = get_staff(email, session=session)
    staff.password_hash = hash_password(password)
    staff.password_changed_at = utcnow()
    session.add(staff)
    for open_session in session.exec(select(StaffSession).where(StaffSession.staff_id == staff.id)):
        session.delete(open_session)
    session.flush()
    return staff


def verify_password(staff: Staff | None, password: str) -> bool:
    """True if `password` is this account's; always does the work of one check."""
    if len(password) > PASSWORD_MAX:
        return False
    stored = staff.password_hash if staff is not None else _decoy_hash()
    try:
        _hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
    return staff is not None


def upgrade_hash(staff: Staff, password: str, *, session: Session) -> None:
    """Rehash with the library's current parameters after a good sign-in, if they moved."""
    if _hasher().check_needs_rehash(staff.password_hash):
        staff.password_hash = _hasher().hash(password)
        session.add(staff)
