"""`newsletter subscribers …`: the list, one reader or a spreadsheet at a time."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.table import Table

from newsletter.cli.common import (
    JsonOption,
    err,
    out,
    print_json,
    settings_and_engine,
    split_list,
    user_errors,
    warn,
)
from newsletter.db import BULK_ROWS, session_scope, vacuum_after_bulk_load
from newsletter.engagement import inactive_since, parse_window
from newsletter.links import Links
from newsletter.readers.actions import (
    edit_reader,
    find_reader,
    resubscribe,
    staff_forget,
    staff_unsubscribe,
    target,
)
from newsletter.readers.importing import import_readers
from newsletter.readers.profile import reader_profile
from newsletter.staff import audit
from subscribers.exporter import export_subscribers
from subscribers.importer import WRITTEN_TABLES
from subscribers.models import id_of, utcnow
from subscribers.roster import add_subscriber, list_subscribers
from subscribers.topics import resolve_topics

InactiveOption = Annotated[
    str | None,
    typer.Option(
        "--inactive",
        help="Only active readers with no open or click for this long, e.g. 90d or 12w "
        "(the sunset list).",
        show_default=False,
    ),
]


def _inactive(window: str | None) -> list[sa.ColumnElement[bool]]:
    return [] if window is None else [inactive_since(utcnow() - parse_window(window))]


app = typer.Typer(help="Who gets what.", no_args_is_help=True)
# `resubscribe`'s exit status when the reader was made pending but no confirmation went.
LIMITED = 3
# An import's updated, skipped and merged lines printed each, before a count of the rest: a
# file whose every other row was refused printed 124 KB of them.
NOTES_SHOWN = 50


@app.command("add")
@user_errors
def subscribers_add(
    email: str,
    name: Annotated[str, typer.Option(help="How emails address them.")] = "",
    topics: Annotated[str, typer.Option(help="Topic slugs a,b or 'all'.")] = "all",
    cadence: Annotated[str, typer.Option(help="immediate, daily or weekly.")] = "immediate",
    timezone: Annotated[str | None, typer.Option(help="IANA zone; default the firm's.")] = None,
) -> None:
    """Add one subscriber (active: staff vouch for their consent)."""
    settings, engine = settings_and_engine()
    with session_scope(engine) as session:
        subscriber = add_subscriber(
            email,
            session=session,
            name=name,
            topics=split_list(topics) or [],
            cadence=cadence,
            timezone=timezone or settings.NEWSLETTER_TIMEZONE,
        )
        audit.record(session, audit.cli_actor(), "subscriber.add", target(subscriber))
    err.print(f"subscriber {subscriber.email} added (id {subscriber.id})")


@app.command("edit")
@user_errors
def subscribers_edit(
    email: str,
    name: Annotated[str | None, typer.Option(help="How emails address them ('' for none).")] = None,
    topics: Annotated[
        str | None, typer.Option(help="Topics a,b (slugs or names) or 'all'.")
    ] = None,
    cadence: Annotated[str | None, typer.Option(help="immediate, daily or weekly.")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA zone, e.g. Asia/Tokyo.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a reader's name, topics, cadence or timezone; what is not given stays as it is.
    Audited, as the console's edit is."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        person = find_reader(email, session=session)
        changes = edit_reader(
            person,
            session=session,
            actor=audit.cli_actor(),
            topics=split_list(topics) if topics is not None else None,
            cadence=cadence,
            timezone=timezone,
            name=name,
        )
        address = person.email
    if as_json:
        print_json({"email": address, "changes": changes})
        return
    err.print(f"{address}: {'; '.join(changes)}" if changes else f"{address}: nothing changed")


@app.command("unsubscribe")
@user_errors
def subscribers_unsubscribe(email: str) -> None:
    """Stop all mail to an address; the record stays so nothing re-adds it."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        person = find_reader(email, session=session)
        changed = staff_unsubscribe(person, session=session, actor=audit.cli_actor())
        address = person.email
    err.print(f"{address} is unsubscribed" if changed else f"{address} was unsubscribed already")


@app.command("forget")
@user_errors
def subscribers_forget(email: str) -> None:
    """Erase a person's data; a hash stays so the address is never mailed again."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        staff_forget(find_reader(email, session=session), session=session, actor=audit.cli_actor())
    err.print(f"{email} forgotten: personal data erased, address suppressed for good")


@app.command("import")
@user_errors
def subscribers_import(
    file: Annotated[Path, typer.Argument(help="CSV: email,name,topics,cadence,timezone.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; change nothing.")
    ] = False,
    require_confirmation: Annotated[
        bool,
        typer.Option(
            "--require-confirmation",
            help="New addresses start as pending and are sent a confirmation; mail starts "
            "once they confirm.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Import subscribers from a spreadsheet: good rows go in, bad rows are reported."""
    settings, engine = settings_and_engine()
    with session_scope(engine) as session:
        outcome = import_readers(
            file,
            session=session,
            default_timezone=settings.NEWSLETTER_TIMEZONE,
            dry_run=dry_run,
            require_confirmation=require_confirmation,
        )
        report = outcome.report
        if not dry_run:
            detail = outcome.audit_detail()
            audit.record(session, audit.cli_actor(), "subscriber.import", str(file), detail)
    if not dry_run and report.counts()["added"] + report.counts()["updated"] >= BULK_ROWS:
        try:
            vacuum_after_bulk_load(engine, WRITTEN_TABLES)
        except sa.exc.SQLAlchemyError as exc:  # the rows are in: say so, and report them
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            warn(
                f"imported, but the VACUUM (ANALYZE) after it failed ({first}); autovacuum "
                "does it within minutes, or run it before the first send"
            )
    if as_json:
        print_json(outcome.as_dict())
        return
    for warning in report.warnings:
        warn(warning)
    counts = report.counts()
    out.print(
        f"{file}: {counts['added']} added, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged, {counts['skipped']} skipped, "
        f"{counts['merged']} merged" + (" (dry run: nothing changed)" if dry_run else ""),
        highlight=False,
    )
    for note in report.added_named:
        out.print(f"  added line {note.line} {note.email}", highlight=False)
    if len(report.added) > len(report.added_named):
        rest = len(report.added) - len(report.added_named)
        words = report.added_unnamed_in_words()
        out.print(f"  … and {rest:,} more added, lines {words}", highlight=False)
    if report.unchanged:
        out.print(f"  unchanged, lines {report.lines_in_words('unchanged')}", highlight=False)
    for label, notes in (
        ("updated", report.updated),
        ("skipped", report.skipped),
        ("merged", report.merged),
    ):
        for note in notes[:NOTES_SHOWN]:
            out.print(f"  {label} line {note.line} {note.email}: {note.detail}", highlight=False)
        if len(notes) > NOTES_SHOWN:
            more = len(notes) - NOTES_SHOWN
            out.print(f"  … and {more:,} more {label} (--json lists every one)", highlight=False)
    for line in outcome.confirmation_lines():
        out.print(f"  {line}", highlight=False)


@app.command("export")
@user_errors
def subscribers_export(
    file: Annotated[
        Path | None, typer.Argument(help="Where to write; standard output if omitted.")
    ] = None,
    inactive: InactiveOption = None,
) -> None:
    """Export every subscriber as CSV, in the format `import` reads. A file starts with
    UTF-8's byte-order mark, so Excel shows names in any script as written; standard output
    has none: it usually feeds another program (grep, a script), which would take the mark
    for part of the first column's name."""
    where = _inactive(inactive)
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        if file is None:
            count = export_subscribers(sys.stdout, session=session, where=where)
        else:
            with file.open("w", encoding="utf-8", newline="") as stream:
                count = export_subscribers(stream, session=session, where=where, bom=True)
        scope = f"inactive since {inactive}" if inactive else "every reader"
        audit.record(session, audit.cli_actor(), "subscriber.export", scope, f"{count} rows")
    err.print(f"{count} subscriber(s) exported" + (f" to {file}" if file else ""))


@app.command("list")
@user_errors
def subscribers_list(
    topic: Annotated[
        str | None, typer.Option(help="Only who a brief on this topic reaches.")
    ] = None,
    status: Annotated[str | None, typer.Option(help="pending, active, unsubscribed…")] = None,
    cadence: Annotated[
        str | None, typer.Option(help="Only readers of this cadence (immediate, daily or weekly).")
    ] = None,
    inactive: InactiveOption = None,
    as_json: JsonOption = False,
) -> None:
    """List subscribers."""
    where = _inactive(inactive)
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        topic_ids = None
        if topic is not None:
            topic_ids = [t.id or 0 for t in resolve_topics([topic], session=session)]
        rows = list_subscribers(
            session=session, topic_ids=topic_ids, status=status, cadence=cadence, where=where
        )
    if as_json:
        print_json([row.as_dict() for row in rows])
        return
    table = Table("email", "name", "status", "topics", "cadence", "timezone")
    for r in rows:
        s = r.subscriber
        table.add_row(s.email, s.name, s.status, ", ".join(r.topics), s.cadence, s.timezone)
    out.print(table)
    err.print(f"{len(rows)} subscriber(s)")


@app.command("show")
@user_errors
def subscribers_show(email: str, as_json: JsonOption = False) -> None:
    """One reader: status and its history, consent, topics, every delivery and its events,
    last open and click."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        profile = reader_profile(find_reader(email, session=session), session=session)
        document = profile.as_dict()
    if as_json:
        print_json(document)
        return
    lines = [
        f"{document['email']}  {document['name']}",
        f"status     {document['status']} (since {document['status_changed_at'] or '-'}, "
        f"by {document['status_changed_by'] or '-'})",
        f"topics     {', '.join(document['topics']) or '-'}",
        f"cadence    {document['cadence']}   timezone {document['timezone']}",
        f"consent    {document['consent']['source'] or '-'} at "
        f"{document['consent']['at'] or '-'} from {document['consent']['ip'] or '-'}",
        f"last open  {document['last_open'] or 'never'}   "
        f"last click {document['last_click'] or 'never'}",
        "history",
        *(
            f"  {change['at']}  {change['from']} → {change['to']}  by {change['by']}"
            for change in document["status_history"]
        ),
        "confirmations and welcomes",
        *(
            f"  {mail['queued']}  {mail['kind']}  {mail['status']}"
            + (f" {mail['sent']}" if mail["sent"] else "")
            + (f" ({mail['error']})" if mail["error"] else "")
            for mail in document["mail"]
        ),
        *([] if document["mail"] else ["  none"]),
        f"deliveries ({len(document['deliveries'])})",
    ]
    for line in document["deliveries"]:
        lines.append(
            f"  send {line['send']} ({line['kind']}) “{line['brief']}”  {line['when'] or '-'}  "
            f"{line['status']}" + (f" ({line['error']})" if line["error"] else "")
        )
        lines.extend(
            f"    {event['at']}  {event['kind']}"
            + (" (machine)" if event["machine"] else "")
            + (f"  {event['url']}" if event["url"] else "")
            for event in line["events"]
        )
    out.print("\n".join(lines), highlight=False, markup=False)


@app.command("links")
@user_errors
def subscribers_links(email: str, as_json: JsonOption = False) -> None:
    """A reader's own preferences and unsubscribe links, for a reader who lost every email
    that held them. Whoever holds them can change this reader's subscription: give them
    to the reader only. Audited."""
    settings, engine = settings_and_engine()
    with session_scope(engine) as session:
        person = find_reader(email, session=session)
        audit.record(session, audit.cli_actor(), "subscriber.links", target(person))
        reader_id = id_of(person)
    links = Links.from_settings(settings)
    token = links.reader_token(reader_id)
    urls = {
        "preferences": links.preferences_url(token),
        "unsubscribe": links.unsubscribe_url(token),
    }
    if as_json:
        print_json(urls)
        return
    out.print("\n".join(f"{kind:<12} {url}" for kind, url in urls.items()), highlight=False)


@app.command("resubscribe")
@user_errors
def subscribers_resubscribe(email: str) -> None:
    """Send a confirmation to a reader who asks to come back; mail starts when they confirm.
    Never for a reader who complained, bounced or was forgotten. Exits 3 when the reader is
    made pending but their mailbox has had its day's confirmations, so none is queued."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        person = find_reader(email, session=session)
        queued = resubscribe(person, session=session, actor=audit.cli_actor())
        address = person.email
    if queued:
        err.print(
            f"{address} is pending: a confirmation is queued (a worker sends it); mail "
            "starts once they confirm"
        )
    else:
        err.print(
            f"{address} is pending, but no confirmation went: its mailbox has had three "
            "today (however many +tag addresses reach it); try again tomorrow"
        )
        # Not 0: a script must be able to tell that no email went (a refusal is 1).
        raise typer.Exit(LIMITED)
