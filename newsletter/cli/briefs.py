"""`newsletter briefs …`: brief files in; what a reader would see, before anyone does."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from newsletter.briefs import (
    BriefStatus,
    add_brief_file,
    brief_topics,
    delete_draft,
    get_brief,
    list_brief_listings,
)
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
from newsletter.db import session_scope
from newsletter.errors import NewsletterError
from newsletter.staff import audit
from subscribers.roster import normalize_email

app = typer.Typer(
    help="Brief files: add (or update a draft), list, preview, test-send, delete.",
    no_args_is_help=True,
)


@app.command("add")
@user_errors
def briefs_add(
    file: Path,
    topics: Annotated[
        str | None, typer.Option(help="Topic slugs a,b; overrides the file's.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Add a brief file, or update its draft when added again; prints its id and slug, and
    suggests topics when it names none."""
    settings, engine = settings_and_engine()
    with session_scope(engine) as session:
        added = add_brief_file(file, session=session, settings=settings, topics=split_list(topics))
        audit.record_added(session, audit.cli_actor(), added, str(file))
    if as_json:
        print_json(added.as_dict())
        return
    brief, slugs = added.brief, [t.slug for t in added.topics]
    verb = (
        "added"
        if added.created
        else "draft updated"
        if added.updated
        else "topics changed"
        if added.topics_changed
        else "already added"
    )
    out.print(f"{brief.id} {brief.slug}", highlight=False)
    err.print(f"brief {verb}: “{brief.title}” ({brief.date}), topics: {', '.join(slugs) or 'none'}")
    if added.clipping:
        warn(f"{added.clipping}; `send` will refuse it until it is shorter")
    if added.suggestions:
        err.print(
            "suggested topics, from the words that matched: "
            + "; ".join(s.describe() for s in added.suggestions),
            highlight=False,
        )
        err.print(
            f"confirm with: newsletter briefs add {file} --topics "
            + ",".join(s.topic.slug for s in added.suggestions),
            highlight=False,
        )
    elif not slugs:
        warn("no topics, so a send would reach no one; add it again with --topics a,b")


@app.command("test-send")
@user_errors
def briefs_test_send(
    brief: str,
    to: Annotated[str, typer.Option("--to", help="Where the test copy goes.")],
    name: Annotated[str, typer.Option(help="The name the copy greets.")] = "Test Reader",
) -> None:
    """Send one copy, marked [TEST], through the configured transport; no ledger, no send."""
    from newsletter.sending.testsend import send_test_copy

    settings, engine = settings_and_engine()
    address = normalize_email(to)  # refused before anything is recorded
    with session_scope(engine) as session:  # recorded first: a copy may leave even if it fails
        found = get_brief(brief, session=session)
        target = audit.brief_target(found)
        audit.record(session, audit.cli_actor(), "brief.test_send", target, address)
    with session_scope(engine) as session:
        result = send_test_copy(brief, to, session=session, settings=settings, name=name)
    err.print(f"test copy to {to}: {result}", highlight=False)


@app.command("list")
@user_errors
def briefs_list(
    status: Annotated[
        str | None,
        typer.Option(help="Only briefs in this state: " + ", ".join(BriefStatus) + "."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List briefs, newest first, with their status and when (UTC): last changed for a
    draft, due for a scheduled one, started for one sending, finished for the others."""
    if status is not None and status not in set(BriefStatus):
        raise NewsletterError(f"--status {status!r}: choose one of {', '.join(BriefStatus)}")
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        listings = list_brief_listings(
            session=session, status=BriefStatus(status) if status else None
        )
    if as_json:
        print_json([listing.as_dict() for listing in listings])
        return
    table = Table("id", "status", "when (UTC)", "date", "slug", "title", "topics")
    for listing in listings:
        brief, state = listing.brief, listing.state
        table.add_row(
            str(brief.id),
            state.status,
            f"{state.when:%Y-%m-%d %H:%M}" if state.when else "",
            brief.date.isoformat(),
            brief.slug,
            brief.title,
            ", ".join(listing.topics),
        )
    out.print(table)


@app.command("delete")
@user_errors
def briefs_delete(brief: str, as_json: JsonOption = False) -> None:
    """Remove a draft (by id or slug); a scheduled or sent brief is refused."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        found = get_brief(brief, session=session)
        target = audit.brief_target(found)
        delete_draft(found, session=session)
        audit.record(session, audit.cli_actor(), "brief.delete", target)
    if as_json:
        print_json({"id": found.id, "slug": found.slug, "deleted": True})
        return
    err.print(f"draft {found.id} {found.slug} deleted", highlight=False)


@app.command("preview")
@user_errors
def briefs_preview(
    brief: str,
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the files.")] = Path(
        "var/preview"
    ),
) -> None:
    """Write the email's HTML and text as a sample reader gets them, its web version, and
    screenshots at 375 and 640 px wide (with the `preview` extra and Chromium)."""
    from newsletter.devtools.preview import write_preview

    settings, engine = settings_and_engine()
    with session_scope(engine) as session:
        found = get_brief(brief, session=session)
        preview = write_preview(found, brief_topics(found, session=session), settings, out_dir)
    for path in preview.files:
        out.print(str(path), highlight=False)
    for warning in preview.warnings:
        warn(warning)
