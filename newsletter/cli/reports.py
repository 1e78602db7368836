"""`newsletter sends report SEND`, `newsletter report topics` and `newsletter report list`:
what the briefs did, as tables for a person or one JSON document (`--json`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from newsletter.cli.common import (
    JsonOption,
    out,
    print_json,
    row_id,
    settings_and_engine,
    user_errors,
)
from newsletter.db import session_scope
from newsletter.errors import NewsletterError
from newsletter.reports import (
    ListGrowth,
    SendReport,
    TopicReport,
    list_growth,
    send_report,
    since_day,
    topics_report,
)
from newsletter.reports.growth import MAX_WEEKS
from subscribers.models import utcnow

app = typer.Typer(help="What the briefs did: topics read, the list's growth.", no_args_is_help=True)

_BARS = " ▁▂▃▄▅▆▇█"


def percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.1f}%"


def sparkline(values: list[int]) -> str:
    """One character per value, scaled to the largest: the shape of a day at a glance."""
    top = max(values, default=0)
    if not top:
        return "▁" * len(values)
    return "".join(_BARS[max(1, round(v / top * 8))] if v else "▁" for v in values)


@user_errors
def sends_report(send_id: int, as_json: JsonOption = False) -> None:
    """One send's readers: delivered, opened, clicked, bounced, unsubscribed, complained
    (unique readers, machine opens apart), its links, and opens over the first 48 hours."""
    row_id(send_id, "send")
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        report = send_report(send_id, session=session)
    if as_json:
        print_json(report.as_dict())
        return
    print_send_report(report)


def print_send_report(report: SendReport, console: Console = out) -> None:
    started = (
        f"started {report.started_at:%Y-%m-%d %H:%M} UTC" if report.started_at else "not started"
    )
    console.print(f"send {report.send_id} of {report.brief_slug} ({started})", highlight=False)
    console.print(f"subject: {report.subject}", highlight=False, markup=False)
    table = Table("readers", title="Unique readers")
    table.add_column("count", justify="right")
    table.add_column("rate", justify="right")
    rates = report.rates
    for kind, count in report.readers.items():
        table.add_row(kind, f"{count:,}", "" if kind == "delivered" else percent(rates[kind]))
    table.add_row("opened by a machine only", f"{report.machine_opened:,}", "", style="dim")
    console.print(table)
    console.print(
        f"opens by readers {report.opens:,}, by machines (Apple Mail Privacy Protection) "
        f"{report.machine_opens:,}; clicks {report.clicks:,}; click-to-open "
        f"{percent(rates['click_to_open'])}",
        highlight=False,
    )
    if report.links:
        links = Table(title="Links, most readers first")
        links.add_column("readers", justify="right")
        links.add_column("clicks", justify="right")
        links.add_column("link", overflow="fold")
        for link in report.links:
            links.add_row(f"{link.readers:,}", f"{link.clicks:,}", link.url)
        console.print(links)
    else:
        console.print("no clicks yet")
    hours = report.opens_by_hour
    console.print(f"opens, hour by hour over the first 48 hours (peak {max(hours):,} an hour):")
    console.print(f"  {sparkline(hours[:24])}  hours 0-23", highlight=False)
    console.print(f"  {sparkline(hours[24:])}  hours 24-47", highlight=False)


def parse_since(value: str | None, zone: str, *, now: datetime) -> datetime:
    """--since YYYY-MM-DD: midnight of that day in the firm's timezone; default 90 days ago."""
    try:
        return since_day(value, zone, now=now)
    except ValueError:
        raise NewsletterError(f"--since {str(value)[:40]!r}: write the day as YYYY-MM-DD") from None


@app.command("topics")
@user_errors
def report_topics(
    since: Annotated[
        str | None, typer.Option(help="YYYY-MM-DD, in the firm's timezone; default 90 days ago.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Per topic: sends since the day, delivered, readers who read, open and click rates."""
    settings, engine = settings_and_engine()
    start = parse_since(since, settings.NEWSLETTER_TIMEZONE, now=utcnow())
    with session_scope(engine) as session:
        report = topics_report(session=session, since=start)
    if as_json:
        print_json(report.as_dict())
        return
    print_topics(report)


def print_topics(report: TopicReport) -> None:
    table = Table("topic", title=f"Topics since {report.since:%Y-%m-%d %H:%M %Z}")
    for header in ("sends", "delivered", "readers", "open rate", "click rate"):
        table.add_column(header, justify="right")
    for row in report.topics:
        table.add_row(
            f"{row.name} ({row.slug})",
            f"{row.sends:,}",
            f"{row.delivered:,}",
            f"{row.readers:,}",
            percent(row.open_rate),
            percent(row.click_rate),
        )
    out.print(table)


@app.command("list")
@user_errors
def report_list(
    weeks: Annotated[int, typer.Option(help=f"How many weeks back (1 to {MAX_WEEKS}).")] = 12,
    as_json: JsonOption = False,
) -> None:
    """Per week: new readers, confirmed, unsubscribed, bounced, complained, net change."""
    if not 1 <= weeks <= MAX_WEEKS:
        raise NewsletterError(f"--weeks {weeks}: give 1 to {MAX_WEEKS}")
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        growth = list_growth(session=session, weeks=weeks)
    if as_json:
        print_json(growth.as_dict())
        return
    print_growth(growth)


def print_growth(growth: ListGrowth) -> None:
    table = Table(
        title="The list, week by week (Monday to Sunday, UTC)",
        caption="unsub.: unsubscribed; compl.: complained (reported as spam); forgotten: erased "
        "at their request; "
        "on list: pending, active or paused at the week's end",
    )
    table.add_column("week of", no_wrap=True)
    for header in (
        "new",
        "confirmed",
        "unsub.",
        "bounced",
        "compl.",
        "forgotten",
        "net",
        "on list",
    ):
        table.add_column(header, justify="right", no_wrap=True)
    for week in growth.weeks:
        table.add_row(
            week.week.isoformat(),
            f"{week.new:,}",
            f"{week.confirmed:,}",
            f"{week.unsubscribed:,}",
            f"{week.bounced:,}",
            f"{week.complained:,}",
            f"{week.forgotten:,}",
            f"{week.net:+,}",
            f"{week.listed:,}",
        )
    out.print(table)
