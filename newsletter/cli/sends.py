"""`newsletter send BRIEF …` and `newsletter sends …`: schedule a brief, then watch and
steer its send."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.table import Table

from newsletter.cli.common import (
    JsonOption,
    err,
    out,
    print_json,
    row_id,
    settings_and_engine,
    user_errors,
)
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.errors import NewsletterError
from newsletter.models import Brief, Send
from newsletter.sending.controls import (
    ResolveAction,
    cancel_send,
    pause_send,
    resolve_unknown,
    resume_send,
)
from newsletter.sending.create import schedule_send, wall_clock
from newsletter.sending.report import SendSummary, summarize_sends
from newsletter.sending.worker import Worker
from newsletter.staff import audit
from newsletter.words import counted, duration
from subscribers.models import utcnow

app = typer.Typer(help="Sends and their delivery ledger.", no_args_is_help=True)


def parse_when(at: str, tz: str) -> datetime:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise NewsletterError(f"--tz {tz!r} is not an IANA timezone (e.g. Asia/Tokyo)") from exc
    try:
        local = datetime.strptime(at.strip(), "%Y-%m-%d %H:%M")
    except ValueError as exc:
        raise NewsletterError(f'--at {at!r}: write the time as "YYYY-MM-DD HH:MM"') from exc
    return wall_clock(local, tz)


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
    again: Annotated[
        bool,
        typer.Option(
            "--again", help="The brief was sent before: send it to readers who do not have it."
        ),
    ] = False,
    include_received: Annotated[
        bool,
        typer.Option(
            "--include-received",
            help="Send a second copy to readers who already have it (implies --again).",
        ),
    ] = False,
    allow_empty: Annotated[
        bool,
        typer.Option("--allow-empty", help="Send (and publish) it even if it reaches nobody."),
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
        scheduled = schedule_send(
            brief,
            session=session,
            settings=settings,
            when=when,
            local_time=local_time or "",
            again=again,
            include_received=include_received,
            allow_empty=allow_empty,
        )
        summary = summarize_sends(session=session, send_id=scheduled.send.id)[0]
        # As the console's schedule is: who queued which send, for when, reaching whom.
        due = f"{summary.scheduled_at:%Y-%m-%d %H:%M} UTC"
        audit.record_scheduled(
            session,
            audit.cli_actor(),
            session.get_one(Brief, scheduled.send.brief_id),
            summary.id,
            f"at {local_time} local time" if local_time else due,
            scheduled.audience,
        )
    audience = scheduled.audience
    if foreground:
        summary = _in_foreground(settings, summary.id, quiet=as_json)
    if as_json:
        print_json({**summary.as_dict(), "audience": audience.as_dict()})
        return
    if foreground:
        print_summary(summary)
        return
    if local_time:
        when_text = f"at {local_time} in each reader's timezone"
    elif when is not None:
        when_text = (
            f"for {when:%Y-%m-%d %H:%M} {when.tzinfo} ({summary.scheduled_at:%Y-%m-%d %H:%M} UTC)"
        )
    else:
        when_text = f"now ({summary.scheduled_at:%Y-%m-%d %H:%M} UTC)"
    out.print(
        f"send {summary.id} of {summary.brief_slug} scheduled {when_text}; it reaches "
        f"{counted(audience.now, 'reader')} now and {audience.digests:,} through their digests; a "
        "worker sends it (`newsletter worker`, or `newsletter worker --once`)",
        highlight=False,
        soft_wrap=True,
    )


def _in_foreground(settings: Settings, send_id: int, *, quiet: bool) -> SendSummary:
    """Work one send from this process, with a Rich progress bar on stderr when it is a
    terminal (in a log or from cron a bar is noise: the summary after says it all)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    lock = threading.Lock()
    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
    ) as progress:
        task = progress.add_task(f"send {send_id}", total=None)

        def advance(rows: int) -> None:
            with lock:
                progress.advance(task, rows)

        worker = Worker.from_settings(settings, on_progress=advance)
        try:
            with worker.stopped_by_signals():
                return worker.work_one_send(send_id)
        finally:
            worker.close()


@app.command("list")
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
        "not sent",
        "waiting",
        "next (UTC)",
    )
    for s in summaries:
        c = s.counts
        table.add_row(
            str(s.id),
            s.label,
            s.status,
            f"{s.scheduled_at:%Y-%m-%d %H:%M}",
            str(s.planned),
            str(c["sent"]),
            str(c["failed"]),
            str(c["unknown"]),
            str(s.not_sent),
            str(s.waiting),
            f"{s.next_action_at:%Y-%m-%d %H:%M}" if s.next_action_at else "",
        )
    out.print(table)


def print_summary(summary: SendSummary) -> None:
    out.print(f"send {summary.id} of {summary.label}: {summary.status}", highlight=False)
    out.print(f"scheduled {summary.scheduled_at:%Y-%m-%d %H:%M} UTC, planned {summary.planned}")
    out.print("  ".join(f"{state} {count}" for state, count in summary.counts.items() if count))
    if summary.local_time:
        out.print(summary.rate_words(), highlight=False)
    elif summary.rate:
        eta = f", about {duration(summary.eta_seconds)} to go" if summary.eta_seconds else ""
        out.print(f"rate {summary.rate:,.0f} deliveries/s{eta}", highlight=False)
    if summary.counts["claimed"] and summary.held_until:
        out.print(
            f"{summary.counts['claimed']} in a worker's hands; if that worker has stopped, at "
            f"{summary.held_until:%H:%M:%S} UTC (its lease) those it had not sent go back in "
            "the queue, and those it had on the wire become unknown",
            highlight=False,
        )
    if waiting := summary.next_due_words(utcnow()):
        out.print(waiting)
    if summary.failed_batches and not summary.errors_are_past:
        out.print(f"failed batches: {summary.failed_batches}")
    if error := summary.error_words():
        out.print(f"last error: {error}", highlight=False)
    if summary.counts["unknown"] and summary.unknown_since:
        oldest, newest = (_age(utcnow() - moment) for moment in summary.unknown_since)
        unknown = summary.counts["unknown"]
        out.print(
            f"{counted(unknown, 'delivery', 'deliveries')} {'is' if unknown == 1 else 'are'} "
            "unknown (the request may or may not "
            f"have reached the provider), the newest for {newest}, the oldest for {oldest}; "
            "the provider's events settle those it accepted. Then "
            f"`newsletter sends resolve {summary.id} --resend` (or `--drop`) for the rest",
            highlight=False,
        )


def _age(delta: timedelta) -> str:
    seconds = max(delta.total_seconds(), 0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@app.command("status")
@user_errors
def sends_status(send_id: int, as_json: JsonOption = False) -> None:
    """One send: its state, ledger counts, rate, time to go, errors."""
    row_id(send_id, "send")
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        summary = summarize_sends(session=session, send_id=send_id)[0]
    if as_json:
        print_json(summary.as_dict())
        return
    print_summary(summary)


@app.command("pause")
@user_errors
def sends_pause(send_id: int) -> None:
    """Stop claiming new batches; those already on the wire finish."""
    row_id(send_id, "send")
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        pause_send(send_id, session=session)
        audit.record(session, audit.cli_actor(), "send.pause", f"send {send_id}")
    out.print(f"send {send_id} paused; `newsletter sends resume {send_id}` continues it")


@app.command("resume")
@user_errors
def sends_resume(send_id: int) -> None:
    """Continue a paused send where it stopped."""
    row_id(send_id, "send")
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        send_row = resume_send(send_id, session=session)
        audit.record(session, audit.cli_actor(), "send.resume", f"send {send_id}")
    out.print(f"send {send_id} is {send_row.status} again; a worker carries on")


@app.command("cancel")
@user_errors
def sends_cancel(send_id: int) -> None:
    """Stop for good: deliveries not yet handed off are cancelled."""
    row_id(send_id, "send")
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        cancelled = cancel_send(send_id, session=session, now=utcnow())
        started = session.get_one(Send, send_id).started_at is not None
        detail = f"{counted(cancelled, 'delivery', 'deliveries')} cancelled"
        audit.record(session, audit.cli_actor(), "send.cancel", f"send {send_id}", detail)
    if not started:  # its readers were never listed: "0 deliveries will not be sent" misled
        out.print(f"send {send_id} cancelled before it started; nobody gets it")
        return
    out.print(
        f"send {send_id} cancelled; {counted(cancelled, 'delivery', 'deliveries')} will not be sent"
    )


@app.command("resolve")
@user_errors
def sends_resolve(
    send_id: int,
    resend: Annotated[
        bool, typer.Option("--resend", help="Queue the unknown deliveries again.")
    ] = False,
    drop: Annotated[bool, typer.Option("--drop", help="Give the unknown deliveries up.")] = False,
    now: Annotated[
        bool,
        typer.Option(
            "--now",
            help="Resend even rows younger than NEWSLETTER_RESOLVE_WAIT_SECONDS, whose "
            "provider events may still come.",
        ),
    ] = False,
) -> None:
    """Settle deliveries whose hand-off was ambiguous: resend them or drop them."""
    if resend == drop:
        raise NewsletterError(
            "choose --resend (some readers may get it twice) or --drop (some may never get it)"
        )
    row_id(send_id, "send")
    settings, engine = settings_and_engine()
    action = ResolveAction.RESEND if resend else ResolveAction.DROP
    wait = timedelta(seconds=0 if now else settings.NEWSLETTER_RESOLVE_WAIT_SECONDS)
    with session_scope(engine) as session:
        changed = resolve_unknown(send_id, action, session=session, now=utcnow(), wait=wait)
        detail = f"{changed} unknown deliveries: {action.value}"
        audit.record(session, audit.cli_actor(), "send.resolve", f"send {send_id}", detail)
    verb = "queued again" if resend else "dropped"
    out.print(f"send {send_id}: {changed} unknown deliveries {verb}")
