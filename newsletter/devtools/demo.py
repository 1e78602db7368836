"""`newsletter demo`: the whole pipeline, on the bundled examples, in a throwaway database.

It calls the same functions the commands call, in the order a new user would run them,
against a SendGrid sandbox started in this process, with the real `sendgrid` client.
"""

from __future__ import annotations

import csv
import secrets
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from newsletter.briefs import add_brief, parse_brief_file
from newsletter.cli.reports import print_send_report
from newsletter.config import get_settings
from newsletter.db import make_engine, migrate, session_scope
from newsletter.devtools.engagement import Engagement
from newsletter.devtools.local_web import serving
from newsletter.devtools.preview import write_preview
from newsletter.devtools.sandbox import Sandbox
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.reports import send_report
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher
from newsletter.sending.report import summarize_sends
from subscribers.roster import add_subscriber
from subscribers.topics import add_topic

# The Baltic example is in the firm's own layout, which names no topics; staff choose them.
DEMO_TOPICS = {"2026-06-03-baltic-grid.txt": ["energy-security", "europe"]}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def run_demo(workdir: Path, console: Console) -> None:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    api_key = f"SG.demo-{secrets.token_urlsafe(8)}"
    inbox = workdir / "inbox.sqlite3"
    with Sandbox(api_key, inbox_path=inbox) as sandbox:
        settings = get_settings(
            DATABASE_URL=f"sqlite:///{workdir / 'newsletter.db'}",
            SENDGRID_API_HOST=sandbox.url,
            SENDGRID_API_KEY=api_key,
            NEWSLETTER_ENV="development",
        )
        examples = settings.NEWSLETTER_EXAMPLES_DIR
        console.print(f"[bold]1. database[/bold] {settings.DATABASE_URL} (migrated with Alembic)")
        migrate(settings.DATABASE_URL, settings.NEWSLETTER_MIGRATIONS_DIR)
        engine = make_engine(settings.DATABASE_URL)

        with session_scope(engine) as session:
            for row in _rows(examples / "topics.csv"):
                add_topic(row["slug"], row["name"], row["keywords"].split(";"), session=session)
            people = _rows(examples / "subscribers.csv")
            for row in people:
                add_subscriber(
                    row["email"],
                    session=session,
                    name=row["name"],
                    topics=row["topics"].split(";"),
                    cadence=row["cadence"],
                    timezone=row["timezone"] or settings.NEWSLETTER_TIMEZONE,
                )
        console.print(f"[bold]2. list[/bold] topics and {len(people)} subscribers from {examples}")

        previews: list[Path] = []
        with session_scope(engine) as session:
            for path in sorted((examples / "briefs").iterdir()):
                added = add_brief(
                    parse_brief_file(path), session=session, topics=DEMO_TOPICS.get(path.name)
                )
                preview = write_preview(added.brief, added.topics, settings, workdir / "preview")
                previews += preview.files
                for warning in preview.warnings:
                    console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
                create_send(added.brief.slug, session=session, settings=settings)
                console.print(
                    f"[bold]3. brief[/bold] {added.brief.slug} → topics "
                    f"{', '.join(t.slug for t in added.topics)}",
                    highlight=False,
                )

        # The web app (its Event Webhook) in this process; the sandbox posts SendGrid's
        # signed events to it: processed and delivered for every message, then readers'
        # opens (some by Apple's privacy proxy) and clicks.
        web_settings = settings.model_copy(
            update={"SENDGRID_WEBHOOK_PUBLIC_KEY": sandbox.events.public_key}
        )
        with serving(web_settings) as web_url:
            sandbox.send_events_to(f"{web_url}/webhooks/sendgrid")
            transport = SendGridTransport.from_settings(settings)
            report = Dispatcher(engine, settings, transport).work_due()
            console.print(
                f"[bold]4. worker[/bold] started sends {report.started}, handed "
                f"{report.settled} deliveries to SendGrid (the sandbox at {sandbox.url})"
            )
            engagement = Engagement(open_rate=0.6, machine_rate=0.15, click_rate=0.35, seed=7)
            posted = _post_events(sandbox, engagement)
            console.print(
                f"[bold]5. events[/bold] the sandbox posted {posted} signed events to the "
                f"webhook at {web_url}/webhooks/sendgrid: delivered, then readers' opens "
                "(some by a privacy proxy, counted apart) and clicks over the next 36 hours"
            )

        table = Table("to", "subject", "delivery", title="What the sandbox accepted")
        for message in sorted(sandbox.messages(), key=lambda m: (m.subject, m.to)):
            table.add_row(
                ", ".join(message.to), message.subject, message.custom_args.get("delivery_id", "")
            )
        console.print(table)
        with session_scope(engine) as session:
            summaries = summarize_sends(session=session)
            for summary in summaries:
                console.print(
                    f"send {summary.id} ({summary.brief_slug}): {summary.status}, "
                    f"sent {summary.counts['sent']} of {summary.planned}",
                    highlight=False,
                )
            first = send_report(min(s.id for s in summaries), session=session)
        console.print(f"[bold]6. report[/bold] `newsletter sends report {first.send_id}`:")
        print_send_report(first, console)
        console.print("[bold]7. previews[/bold] (open the .html in a browser):")
        for path in previews:
            console.print(f"   {path.resolve()}", highlight=False)
    console.print(
        f"[bold]8. inbox[/bold] what the sandbox accepted is kept in {inbox}; to read each "
        f"message as its reader saw it, run\n   newsletter sandbox --api-key {api_key} "
        f"--inbox {inbox}\n   and open http://127.0.0.1:8025/",
        highlight=False,
    )


def _post_events(sandbox: Sandbox, engagement: Engagement, timeout: float = 60.0) -> int:
    """Queue the readers' opens and clicks, and wait until every event (delivered ones
    included) has reached the webhook; how many were posted."""
    poster = sandbox.state.events
    if poster is None:
        raise RuntimeError("the sandbox has no webhook to post to")
    sandbox.state.engage(engagement)
    deadline = time.monotonic() + timeout
    while (poster.waiting or poster.in_flight) and time.monotonic() < deadline:
        time.sleep(0.05)
    return poster.posted
