"""`newsletter …`: the staff command line. Handlers parse, call one function, print.

Every failure a user can fix prints one line on stderr and exits 1, never a traceback.
`--json` prints exactly one JSON document on stdout and nothing else there.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from newsletter.briefs import add_brief, brief_topics, get_brief, list_briefs, parse_brief_file
from newsletter.config import Settings, get_settings
from newsletter.db import make_engine, migrate, schema_is_current, session_scope
from newsletter.dispatch import (
    ResolveAction,
    SendSummary,
    cancel_send,
    create_send,
    pause_send,
    resolve_unknown,
    resume_send,
    summarize_sends,
)
from newsletter.errors import NewsletterError
from newsletter.preview import write_preview
from subscribers.errors import SubscriberError
from subscribers.roster import add_subscriber, forget, list_subscribers, unsubscribe
from subscribers.topics import add_topic, list_topics, merge_topics, rename_topic, resolve_topics

app = typer.Typer(
    help="Briefs in, emails out: the briefing newsletter pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
topics_app = typer.Typer(
    help="The topics briefs are about and subscribers follow.", no_args_is_help=True
)
subscribers_app = typer.Typer(help="Who gets what.", no_args_is_help=True)
briefs_app = typer.Typer(help="Brief files: add, list, preview.", no_args_is_help=True)
sends_app = typer.Typer(help="Sends and their delivery ledger.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(briefs_app, name="briefs")
app.add_typer(sends_app, name="sends")

out = Console()
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
P = ParamSpec("P")
R = TypeVar("R")


def user_errors(function: Callable[P, R]) -> Callable[P, R]:
    """One line on stderr and exit 1 for anything the user can fix."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except (NewsletterError, SubscriberError) as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False, markup=True, soft_wrap=True)
        except ValidationError as exc:
            for problem in exc.errors():
                field = ".".join(str(part) for part in problem["loc"]) or "settings"
                err.print(f"[red]error:[/red] setting {field}: {problem['msg']}", soft_wrap=True)
        except OperationalError as exc:
            err.print(f"[red]error:[/red] database: {exc.orig or exc}", soft_wrap=True)
        raise typer.Exit(1)

    return wrapper


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, default=str) + "\n")


def settings_and_engine() -> tuple[Settings, Engine]:
    """Settings and an engine for a database that `newsletter init` has prepared."""
    settings = get_settings()
    engine = make_engine(settings.DATABASE_URL)
    if not schema_is_current(engine, settings.NEWSLETTER_MIGRATIONS_DIR):
        raise NewsletterError(
            f"the database {engine.url.render_as_string(hide_password=True)} is not set up "
            "or is out of date: run `newsletter init`"
        )
    return settings, engine


def split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


# --- setup ---------------------------------------------------------------------------------


@app.command()
@user_errors
def init() -> None:
    """Create or migrate the database."""
    settings = get_settings()
    migrate(settings.DATABASE_URL, settings.NEWSLETTER_MIGRATIONS_DIR)
    url = make_engine(settings.DATABASE_URL).url.render_as_string(hide_password=True)
    err.print(f"database ready: {url}")


@app.command()
@user_errors
def demo(
    workdir: Annotated[
        Path, typer.Option(help="Where the demo's database and previews go.")
    ] = Path("var/demo"),
) -> None:
    """The whole pipeline on the bundled examples, through a local SendGrid sandbox."""
    from newsletter.demo import run_demo

    run_demo(workdir, out)


# --- topics --------------------------------------------------------------------------------


@topics_app.command("add")
@user_errors
def topics_add(
    slug: str,
    name: Annotated[str, typer.Option("--name", help="Shown to subscribers.")],
    keywords: Annotated[str, typer.Option(help="Comma-separated words that suggest it.")] = "",
    description: Annotated[str, typer.Option(help="One line for the preference page.")] = "",
) -> None:
    """Add a topic."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        topic = add_topic(
            slug, name, split_list(keywords) or [], session=session, description=description
        )
    err.print(f"topic {topic.slug!r} added")


@topics_app.command("rename")
@user_errors
def topics_rename(
    slug: str,
    new_slug: Annotated[str | None, typer.Argument(help="The new slug, if it changes.")] = None,
    name: Annotated[str | None, typer.Option(help="A new display name.")] = None,
) -> None:
    """Rename a topic; everyone who follows it still does."""
    if new_slug is None and name is None:
        raise NewsletterError("say what changes: a NEW_SLUG argument, --name, or both")
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        topic = rename_topic(slug, new_slug, session=session, name=name)
    err.print(f"topic {slug!r} is now {topic.slug!r} ({topic.name})")


@topics_app.command("merge")
@user_errors
def topics_merge(
    source: str,
    into: Annotated[str, typer.Option("--into", help="The topic that remains.")],
) -> None:
    """Fold one topic into another: its followers and briefs move, it goes."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        moved = merge_topics(source, into, session=session)
    err.print(f"topic {source!r} merged into {into!r}; {moved} follower(s) moved")


@topics_app.command("list")
@user_errors
def topics_list(as_json: JsonOption = False) -> None:
    """List topics."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        topics = list_topics(session=session)
    if as_json:
        print_json(
            [
                {
                    "slug": t.slug,
                    "name": t.name,
                    "description": t.description,
                    "keywords": split_list(t.keywords),
                }
                for t in topics
            ]
        )
        return
    table = Table("slug", "name", "keywords", "description")
    for topic in topics:
        table.add_row(topic.slug, topic.name, topic.keywords.replace(",", ", "), topic.description)
    out.print(table)


# --- subscribers ---------------------------------------------------------------------------


@subscribers_app.command("add")
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


@subscribers_app.command("unsubscribe")
@user_errors
def subscribers_unsubscribe(email: str) -> None:
    """Stop all mail to an address; the record stays so nothing re-adds it."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        subscriber = unsubscribe(email, session=session)
    err.print(f"{subscriber.email} is unsubscribed")


@subscribers_app.command("forget")
@user_errors
def subscribers_forget(email: str) -> None:
    """Erase a person's data; a hash stays so the address is never mailed again."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        forget(email, session=session)
    err.print(f"{email} forgotten: personal data erased, address suppressed for good")


@subscribers_app.command("import")
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
    from subscribers.importer import import_subscribers

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


@subscribers_app.command("export")
@user_errors
def subscribers_export(
    file: Annotated[
        Path | None, typer.Argument(help="Where to write; standard output if omitted.")
    ] = None,
) -> None:
    """Export every subscriber as CSV, in the format `import` reads."""
    from subscribers.exporter import export_subscribers

    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        if file is None:
            count = export_subscribers(sys.stdout, session=session)
        else:
            with file.open("w", encoding="utf-8", newline="") as stream:
                count = export_subscribers(stream, session=session)
    err.print(f"{count} subscriber(s) exported" + (f" to {file}" if file else ""))


@subscribers_app.command("list")
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
        print_json(
            [
                {
                    "email": r.subscriber.email,
                    "name": r.subscriber.name,
                    "status": r.subscriber.status,
                    "cadence": r.subscriber.cadence,
                    "timezone": r.subscriber.timezone,
                    "topics": r.topics,
                }
                for r in rows
            ]
        )
        return
    table = Table("email", "name", "status", "topics", "cadence", "timezone")
    for r in rows:
        s = r.subscriber
        table.add_row(s.email, s.name, s.status, ", ".join(r.topics), s.cadence, s.timezone)
    out.print(table)
    err.print(f"{len(rows)} subscriber(s)")


# --- briefs --------------------------------------------------------------------------------


@briefs_app.command("add")
@user_errors
def briefs_add(
    file: Path,
    topics: Annotated[
        str | None, typer.Option(help="Topic slugs a,b; overrides the file's.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Add a brief file; prints its id and slug, and suggests topics when it names none."""
    from newsletter.render import GMAIL_CLIP_BYTES, render_brief
    from subscribers.topics import suggest_topics

    settings, engine = settings_and_engine()
    parsed = parse_brief_file(file)
    with session_scope(engine) as session:
        added = add_brief(parsed, session=session, topics=split_list(topics))
        brief = added.brief
        suggestions = (
            []
            if added.topics
            else suggest_topics(f"{brief.title}\n{brief.takeaways}\n{brief.body}", session=session)
        )
        html_bytes = render_brief(brief, added.topics, settings).html_bytes
    slugs = [t.slug for t in added.topics]
    over = html_bytes - GMAIL_CLIP_BYTES
    if as_json:
        print_json(
            {
                "id": brief.id,
                "slug": brief.slug,
                "title": brief.title,
                "date": brief.date.isoformat(),
                "topics": slugs,
                "created": added.created,
                "suggested_topics": [
                    {"slug": s.topic.slug, "matched": s.matched} for s in suggestions
                ],
                "html_bytes": html_bytes,
            }
        )
        return
    verb = "added" if added.created else "already added"
    out.print(f"{brief.id} {brief.slug}", highlight=False)
    err.print(f"brief {verb}: {brief.title!r} ({brief.date}), topics: {', '.join(slugs) or 'none'}")
    if over > 0:
        err.print(
            f"[yellow]warning:[/yellow] the email's HTML is {html_bytes:,} bytes, {over:,} over "
            f"Gmail's {GMAIL_CLIP_BYTES:,}-byte clipping limit; `send` will refuse it until it "
            "is shorter",
            highlight=False,
        )
    if suggestions:
        err.print(
            "suggested topics, from the words that matched: "
            + "; ".join(s.describe() for s in suggestions),
            highlight=False,
        )
        err.print(
            f"confirm with: newsletter briefs add {file} --topics "
            + ",".join(s.topic.slug for s in suggestions),
            highlight=False,
        )
    elif not slugs:
        err.print(
            "[yellow]warning:[/yellow] no topics, so a send would reach no one; "
            "add it again with --topics a,b"
        )


@briefs_app.command("test-send")
@user_errors
def briefs_test_send(
    brief: str,
    to: Annotated[str, typer.Option("--to", help="Where the test copy goes.")],
    name: Annotated[str, typer.Option(help="The name the copy greets.")] = "Test Reader",
) -> None:
    """Send one copy, marked [TEST], through the configured transport; no ledger, no send."""
    from newsletter.testsend import send_test_copy

    settings, engine = settings_and_engine()
    with session_scope(engine) as session:
        result = send_test_copy(brief, to, session=session, settings=settings, name=name)
    err.print(f"test copy to {to}: {result}", highlight=False)


@briefs_app.command("list")
@user_errors
def briefs_list(as_json: JsonOption = False) -> None:
    """List briefs, newest first."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        rows = [
            (b, [t.slug for t in brief_topics(b, session=session)])
            for b in list_briefs(session=session)
        ]
    if as_json:
        print_json(
            [
                {
                    "id": b.id,
                    "slug": b.slug,
                    "title": b.title,
                    "date": b.date.isoformat(),
                    "author": b.author,
                    "topics": t,
                }
                for b, t in rows
            ]
        )
        return
    table = Table("id", "date", "slug", "title", "topics")
    for b, t in rows:
        table.add_row(str(b.id), b.date.isoformat(), b.slug, b.title, ", ".join(t))
    out.print(table)


@briefs_app.command("preview")
@user_errors
def briefs_preview(
    brief: str,
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the files.")] = Path(
        "var/preview"
    ),
) -> None:
    """Write the email's HTML and text as a sample reader gets them, its web version, and
    screenshots at 375 and 640 px wide."""
    settings, engine = settings_and_engine()
    with session_scope(engine) as session:
        found = get_brief(brief, session=session)
        preview = write_preview(found, brief_topics(found, session=session), settings, out_dir)
    for path in preview.files:
        out.print(str(path), highlight=False)
    for warning in preview.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)


# --- sending -------------------------------------------------------------------------------


def parse_when(at: str, tz: str) -> datetime:
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise NewsletterError(f"--tz {tz!r} is not an IANA timezone (e.g. Asia/Tokyo)") from exc
    try:
        local = datetime.strptime(at.strip(), "%Y-%m-%d %H:%M")
    except ValueError as exc:
        raise NewsletterError(f'--at {at!r}: write the time as "YYYY-MM-DD HH:MM"') from exc
    return local.replace(tzinfo=zone)


@app.command()
@user_errors
def send(
    brief: str,
    now: Annotated[bool, typer.Option("--now", help="Send as soon as a worker runs.")] = False,
    at: Annotated[str | None, typer.Option(help='"YYYY-MM-DD HH:MM" in --tz.')] = None,
    tz: Annotated[str | None, typer.Option(help="Zone for --at; default the firm's.")] = None,
    local_time: Annotated[
        str | None,
        typer.Option(
            "--local-time",
            help="HH:MM in each reader's own timezone (the next one: tomorrow's if today's "
            "has passed).",
        ),
    ] = None,
    foreground: Annotated[
        bool,
        typer.Option(
            "--foreground", help="With --now: send it from this process, with a progress bar."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Schedule a brief for its subscribers; a worker sends it."""
    if [now, at is not None, local_time is not None].count(True) != 1:
        raise NewsletterError(
            'say when, once: --now, --at "YYYY-MM-DD HH:MM", or --local-time HH:MM'
        )
    if foreground and not now:
        raise NewsletterError("--foreground works with --now only; a worker sends the others")
    settings, engine = settings_and_engine()
    when = parse_when(at, tz or settings.NEWSLETTER_TIMEZONE) if at is not None else None
    with session_scope(engine) as session:
        created = create_send(
            brief, session=session, settings=settings, when=when, local_time=local_time or ""
        )
        summary = summarize_sends(session=session, send_id=created.id)[0]
    if foreground:
        summary = run_in_foreground(settings, engine, summary.id, quiet=as_json)
    if as_json:
        print_json(summary.as_dict())
        return
    if foreground:
        print_summary(summary)
        return
    when_text = (
        f"at {local_time} in each reader's timezone"
        if local_time
        else f"for {summary.scheduled_at:%Y-%m-%d %H:%M} UTC"
    )
    out.print(
        f"send {summary.id} of {summary.brief_slug} scheduled {when_text}; a worker sends it "
        "(`newsletter worker`, or `newsletter worker --once`)",
        highlight=False,
    )


def run_in_foreground(
    settings: Settings, engine: Engine, send_id: int, *, quiet: bool
) -> SendSummary:
    """Work one send from this process, with a Rich progress bar on stderr."""
    import threading

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from newsletter.dispatch import Dispatcher, start_due_sends
    from newsletter.transports import make_transport
    from subscribers.models import utcnow

    lock = threading.Lock()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
    ) as progress:
        task = progress.add_task(f"send {send_id}", total=None)

        def advance(rows: int) -> None:
            with lock:
                progress.advance(task, rows)

        start_due_sends(engine, now=utcnow(), only=send_id)
        with session_scope(engine) as session:
            progress.update(
                task, total=summarize_sends(session=session, send_id=send_id)[0].planned
            )
        dispatcher = Dispatcher(engine, settings, make_transport(settings), on_progress=advance)
        report = dispatcher.work_due(only=send_id)
    with session_scope(engine) as session:
        summary = summarize_sends(session=session, send_id=send_id)[0]
    if send_id in report.paused:
        raise NewsletterError(f"send {send_id} paused: {report.paused[send_id]}")
    return summary


@sends_app.command("list")
@user_errors
def sends_list(as_json: JsonOption = False) -> None:
    """Sends, newest first, with counts per delivery state."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        summaries = summarize_sends(session=session)
    if as_json:
        print_json([s.as_dict() for s in summaries])
        return
    table = Table(
        "id",
        "brief",
        "status",
        "scheduled (UTC)",
        "planned",
        "sent",
        "failed",
        "unknown",
        "waiting",
        "next (UTC)",
    )
    for s in summaries:
        c = s.counts
        table.add_row(
            str(s.id),
            s.brief_slug,
            s.status,
            f"{s.scheduled_at:%Y-%m-%d %H:%M}",
            str(s.planned),
            str(c["sent"]),
            str(c["failed"]),
            str(c["unknown"]),
            str(s.waiting),
            f"{s.next_action_at:%Y-%m-%d %H:%M}" if s.next_action_at else "",
        )
    out.print(table)


def print_summary(summary: SendSummary) -> None:
    out.print(f"send {summary.id} of {summary.brief_slug}: {summary.status}", highlight=False)
    out.print(f"scheduled {summary.scheduled_at:%Y-%m-%d %H:%M} UTC, planned {summary.planned}")
    out.print("  ".join(f"{state} {count}" for state, count in summary.counts.items() if count))
    if summary.rate:
        eta = f", about {summary.eta_seconds:,.0f} s to go" if summary.eta_seconds else ""
        out.print(f"rate {summary.rate:,.0f} deliveries/s{eta}")
    if summary.failed_batches:
        out.print(f"failed batches: {summary.failed_batches}")
    if summary.last_error:
        out.print(f"last error: {summary.last_error}", highlight=False)
    if summary.counts["unknown"]:
        out.print(
            f"{summary.counts['unknown']} deliveries are unknown (the request may or may not "
            f"have reached the provider): `newsletter sends resolve {summary.id} --resend` or "
            "`--drop` once you know which",
            highlight=False,
        )


@sends_app.command("status")
@user_errors
def sends_status(send_id: int, as_json: JsonOption = False) -> None:
    """One send: its state, ledger counts, rate, time to go, errors."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        summary = summarize_sends(session=session, send_id=send_id)[0]
    if as_json:
        print_json(summary.as_dict())
        return
    print_summary(summary)


@sends_app.command("pause")
@user_errors
def sends_pause(send_id: int) -> None:
    """Stop claiming new batches; those already on the wire finish."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        pause_send(send_id, session=session)
    out.print(f"send {send_id} paused; `newsletter sends resume {send_id}` continues it")


@sends_app.command("resume")
@user_errors
def sends_resume(send_id: int) -> None:
    """Continue a paused send where it stopped."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        send_row = resume_send(send_id, session=session)
    out.print(f"send {send_id} is {send_row.status} again; a worker carries on")


@sends_app.command("cancel")
@user_errors
def sends_cancel(send_id: int) -> None:
    """Stop for good: deliveries not yet handed off are cancelled."""
    from subscribers.models import utcnow

    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        cancelled = cancel_send(send_id, session=session, now=utcnow())
    out.print(f"send {send_id} cancelled; {cancelled} deliveries will not be sent")


@sends_app.command("resolve")
@user_errors
def sends_resolve(
    send_id: int,
    resend: Annotated[
        bool, typer.Option("--resend", help="Queue the unknown deliveries again.")
    ] = False,
    drop: Annotated[bool, typer.Option("--drop", help="Give the unknown deliveries up.")] = False,
) -> None:
    """Settle deliveries whose hand-off was ambiguous: resend them or drop them."""
    from subscribers.models import utcnow

    if resend == drop:
        raise NewsletterError(
            "choose --resend (some readers may get it twice) or --drop (some may never get it)"
        )
    _, engine = settings_and_engine()
    action = ResolveAction.RESEND if resend else ResolveAction.DROP
    with session_scope(engine) as session:
        changed = resolve_unknown(send_id, action, session=session, now=utcnow())
    verb = "queued again" if resend else "dropped"
    out.print(f"send {send_id}: {changed} unknown deliveries {verb}")


# --- processes -----------------------------------------------------------------------------


@app.command()
@user_errors
def worker(
    once: Annotated[bool, typer.Option("--once", help="Do all due work, then exit.")] = False,
) -> None:
    """The worker: sends what is due, on a clock (same as `python scheduler.py`)."""
    import logging

    import scheduler

    settings, _ = settings_and_engine()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if once:
        scheduler.run_once(settings)
    else:
        scheduler.run(settings)


@app.command()
@user_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Subscriber pages (unsubscribe) and the SendGrid webhook at POST /webhooks/sendgrid."""
    import uvicorn

    from newsletter.web.app import create_app

    settings, _ = settings_and_engine()
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@app.command()
@user_errors
def sandbox(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8025,
    api_key: Annotated[
        str | None, typer.Option(help="Key to accept; default SENDGRID_API_KEY.")
    ] = None,
    keep_messages: Annotated[
        bool, typer.Option(help="Keep each accepted message (off: only count them).")
    ] = True,
    faults: Annotated[
        str | None,
        typer.Option(
            help='Injected faults as JSON, e.g. \'{"rate_429": 0.1, "rate_drop": 0.01}\'; '
            "change them later with PUT /sandbox/faults."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="Do not log each request.")] = False,
) -> None:
    """A local SendGrid v3 stand-in: accepts mail/send, keeps it, sends nothing."""
    from newsletter.sandbox import Faults, Sandbox

    key = api_key or get_settings().SENDGRID_API_KEY.get_secret_value()
    if not key:
        raise NewsletterError("give the sandbox a key to accept: --api-key or SENDGRID_API_KEY")
    try:
        injected = Faults.from_dict(json.loads(faults)) if faults else None
    except (ValueError, TypeError) as exc:
        raise NewsletterError(f"--faults: {exc}") from exc
    server = Sandbox(
        key, port=port, verbose=not quiet, keep_messages=keep_messages, faults=injected
    )
    err.print(
        f"SendGrid sandbox on {server.url}: set SENDGRID_API_HOST={server.url}; "
        f"accepted mail at {server.url}/sandbox/messages, counts at {server.url}/sandbox/stats"
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
