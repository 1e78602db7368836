"""`newsletter topics …`: what briefs are about and readers follow. Each change is audited
by newsletter/readers/topic_changes.py, as the console's are, with the terminal's user as
the actor."""

from __future__ import annotations

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
from newsletter.errors import NewsletterError
from newsletter.readers import topic_changes
from newsletter.staff import audit
from subscribers.topics import list_topics

app = typer.Typer(help="The topics briefs are about and subscribers follow.", no_args_is_help=True)


@app.command("add")
@user_errors
def topics_add(
    slug: str,
    name: Annotated[str, typer.Option("--name", help="Shown to subscribers.")],
    keywords: Annotated[str, typer.Option(help="Comma-separated words that suggest it.")] = "",
    description: Annotated[str, typer.Option(help="One line for the preference page.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Add a topic."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        topic = topic_changes.add(
            slug,
            name,
            split_list(keywords) or [],
            session=session,
            actor=audit.cli_actor(),
            description=description,
        )
        document = topic.as_dict()
    if as_json:
        print_json(document)
        return
    err.print(f"topic {topic.slug!r} added")


@app.command("rename")
@user_errors
def topics_rename(
    slug: str,
    new_slug: Annotated[str | None, typer.Argument(help="The new slug, if it changes.")] = None,
    name: Annotated[str | None, typer.Option(help="A new display name.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Rename a topic; everyone who follows it still does."""
    if new_slug is None and name is None:
        raise NewsletterError("say what changes: a NEW_SLUG argument, --name, or both")
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        topic = topic_changes.rename(
            slug, new_slug, session=session, actor=audit.cli_actor(), name=name
        )
        document = topic.as_dict()
    if as_json:
        print_json(document)
        return
    err.print(f"topic {slug!r} is now {topic.slug!r} ({topic.name})")


@app.command("merge")
@user_errors
def topics_merge(
    source: str,
    into: Annotated[str, typer.Option("--into", help="The topic that remains.")],
    as_json: JsonOption = False,
) -> None:
    """Fold one topic into another: its followers and briefs move, it goes."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        merged = topic_changes.merge(source, into, session=session, actor=audit.cli_actor())
        remains = merged.into.as_dict()
    if as_json:
        print_json({"merged": merged.source, "into": remains, "followers_moved": merged.moved})
        return
    err.print(f"topic {source!r} merged into {into!r}; {merged.moved} follower(s) moved")


@app.command("hide")
@user_errors
def topics_hide(
    slug: str,
    offer: Annotated[
        bool, typer.Option("--offer", help="Offer it on the public forms again.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Stop offering a topic on the subscribe and preference pages; its followers keep it."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        topic = topic_changes.hide(slug, not offer, session=session, actor=audit.cli_actor())
        document = topic.as_dict()
    if as_json:
        print_json(document)
        return
    state = "hidden from the public forms" if topic.hidden else "offered on the public forms"
    err.print(f"topic {topic.slug!r} is {state}; its followers keep it")


@app.command("list")
@user_errors
def topics_list(as_json: JsonOption = False) -> None:
    """List topics."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        topics = [topic.as_dict() for topic in list_topics(session=session)]
    if as_json:
        print_json(topics)
        return
    table = Table("slug", "name", "keywords", "description", "offered")
    for topic in topics:
        table.add_row(
            topic["slug"],
            topic["name"],
            ", ".join(topic["keywords"]),
            topic["description"],
            "no (hidden)" if topic["hidden"] else "yes",
        )
    out.print(table)
