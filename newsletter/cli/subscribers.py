"""`newsletter subscribers …`: the list, one reader or a spreadsheet at a time."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

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
)
from newsletter.db import session_scope
from subscribers.exporter import export_subscribers
from subscribers.importer import import_subscribers
from subscribers.roster import add_subscriber, forget, list_subscribers, unsubscribe
from subscribers.topics import resolve_topics

app = typer.Typer(help="Who gets what.", no_args_is_help=True)


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
    err.print(f"subscriber {subscriber.email} added (id {subscriber.id})")


@app.command("unsubscribe")
@user_errors
def subscribers_unsubscribe(email: str) -> None:
    """Stop all mail to an address; the record stays so nothing re-adds it."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        subscriber = unsubscribe(email, session=session)
    err.print(f"{subscriber.email} is unsubscribed")


@app.command("forget")
@user_errors
def subscribers_forget(email: str) -> None:
    """Erase a person's data; a hash stays so the address is never mailed again."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        forget(email, session=session)
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
            help="New addresses start as pending until they confirm, instead of active.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Import subscribers from a spreadsheet: good rows go in, bad rows are reported."""
    settings, engine = settings_and_engine()
    with session_scope(engine) as session:
        report = import_subscribers(
            file,
            session=session,
            default_timezone=settings.NEWSLETTER_TIMEZONE,
            dry_run=dry_run,
            require_confirmation=require_confirmation,
        )
    if as_json:
        print_json(report.as_dict())
        return
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    document = report.as_dict()
    verb = "would be" if dry_run else "were"
    counts = report.counts()
    out.print(
        f"{file}: {counts['added']} added, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged, {counts['skipped']} skipped, "
        f"{counts['merged']} merged" + (" (dry run: nothing changed)" if dry_run else ""),
        highlight=False,
    )
    if document["added_lines"]:
        out.print(f"  added, lines {document['added_lines']}", highlight=False)
    for label, notes in (
        ("updated", report.updated),
        ("skipped", report.skipped),
        ("merged", report.merged),
    ):
        for note in notes:
            out.print(f"  {label} line {note.line} {note.email}: {note.detail}", highlight=False)
    if require_confirmation and counts["added"]:
        out.print(
            f"  {counts['added']} new address(es) {verb} added as pending: they receive nothing "
            "until they confirm",
            highlight=False,
        )


@app.command("export")
@user_errors
def subscribers_export(
    file: Annotated[
        Path | None, typer.Argument(help="Where to write; standard output if omitted.")
    ] = None,
) -> None:
    """Export every subscriber as CSV, in the format `import` reads."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        if file is None:
            count = export_subscribers(sys.stdout, session=session)
        else:
            with file.open("w", encoding="utf-8", newline="") as stream:
                count = export_subscribers(stream, session=session)
    err.print(f"{count} subscriber(s) exported" + (f" to {file}" if file else ""))


@app.command("list")
@user_errors
def subscribers_list(
    topic: Annotated[
        str | None, typer.Option(help="Only who a brief on this topic reaches.")
    ] = None,
    status: Annotated[str | None, typer.Option(help="pending, active, unsubscribed…")] = None,
    cadence: Annotated[str | None, typer.Option(help="With --topic: only this cadence.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List subscribers."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        topic_ids = None
        if topic is not None:
            topic_ids = [t.id or 0 for t in resolve_topics([topic], session=session)]
        rows = list_subscribers(
            session=session, topic_ids=topic_ids, status=status, cadence=cadence
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
