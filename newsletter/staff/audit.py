"""The audit log: who did what to which brief, send or reader, when and from where.

Written in the same transaction as the change it records, so an entry exists exactly when
the change does. The console shows it (`/admin/audit`, and the newest on the dashboard).
"""

from __future__ import annotations

import getpass

from sqlmodel import Session, col, select

from newsletter.briefs.store import AddedBrief
from newsletter.models import Brief
from newsletter.sending.audience import Audience
from newsletter.staff.models import AuditEntry

DETAIL_MAX = 2000

# Every action code `record` is given, as the console's audit log says it to staff, who
# do not read "send.cancel". The entries keep the code (stable, greppable); this table is
# the one place it turns into words. A code missing here is shown as itself.
ACTION_WORDS = {
    "staff.sign_in": "Signed in",
    "staff.sign_out": "Signed out",
    "staff.add": "Added a staff account",
    "staff.remove": "Removed a staff account",
    "staff.password": "Changed a staff password",
    "brief.add": "Added a brief",
    "brief.update": "Updated a draft",
    "brief.topics": "Changed a brief's topics",
    "brief.test_send": "Sent a test copy",
    "brief.schedule": "Scheduled a brief",
    "brief.delete": "Deleted a draft",
    "send.pause": "Paused a send",
    "send.resume": "Resumed a send",
    "send.cancel": "Cancelled a send",
    "send.resolve": "Settled a send's unknown deliveries",
    "subscriber.add": "Added a reader",
    "subscriber.edit": "Edited a reader",
    "subscriber.unsubscribe": "Unsubscribed a reader",
    "subscriber.resubscribe": "Resubscribed a reader",
    "subscriber.forget": "Erased a reader's data",
    "subscriber.import": "Imported a list",
    "subscriber.export": "Exported the list",
    "subscriber.links": "Made a reader's own links (they act as the reader)",
    "topic.add": "Added a topic",
    "topic.rename": "Renamed a topic",
    "topic.keywords": "Changed a topic's keywords",
    "topic.hide": "Hid a topic from the public forms",
    "topic.offer": "Offered a topic on the public forms again",
    "topic.merge": "Merged a topic into another",
}


def action_words(action: str) -> str:
    """An entry's action as staff read it; an unknown code as itself, so nothing is
    hidden (an entry written by a newer version, say)."""
    return ACTION_WORDS.get(action, action)


def record(
    session: Session, actor: str, action: str, target: str = "", detail: str = "", ip: str = ""
) -> None:
    """One entry. `action` is a dotted verb ("brief.schedule", "send.cancel",
    "staff.sign_in"); `target` what it was done to ("brief 3 2026-06-10-rice-prices")."""
    session.add(
        AuditEntry(
            actor=actor[:320],
            action=action[:64],
            target=target[:300],
            detail=detail[:DETAIL_MAX],
            ip=ip[:45],
        )
    )
    session.flush()


def brief_target(brief: Brief) -> str:
    """How the log names a brief: its id and slug, both, since a draft's slug can change."""
    return f"brief {brief.id} {brief.slug}"


def record_added(
    session: Session, actor: str, added: AddedBrief, source: str, ip: str = ""
) -> None:
    """A brief added, a draft updated (by a file or the editor) or given other topics (the
    same file with `--topics`, audited as the console's topic change is); nothing if
    unchanged."""
    if added.created or added.updated:
        action = "brief.add" if added.created else "brief.update"
        record(session, actor, action, brief_target(added.brief), source, ip)
    elif added.topics_changed:
        slugs = ", ".join(topic.slug for topic in added.topics) or "none"
        record(session, actor, "brief.topics", brief_target(added.brief), slugs, ip)


def record_scheduled(
    session: Session,
    actor: str,
    brief: Brief,
    send_id: int | None,
    when: str,
    audience: Audience,
    ip: str = "",
) -> None:
    """A send scheduled, in the console or at a terminal, in the same words: which send,
    when (`when`, as its caller says it), and whom it reaches."""
    detail = (
        f"send {send_id}, {when}; reaches {audience.now} now and {audience.digests} through digests"
    )
    record(session, actor, "brief.schedule", brief_target(brief), detail, ip)


def cli_actor() -> str:
    """Who ran a command at a terminal, as far as the machine knows."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def recent(session: Session, *, limit: int = 100, before: int | None = None) -> list[AuditEntry]:
    """The newest entries first; `before` (an entry id) pages further back."""
    statement = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
    if before is not None:
        statement = statement.where(col(AuditEntry.id) < before)
    return list(session.exec(statement))
