"""Reports: which topics readers read and how the list grew (a chart), and each send's
numbers, links and first two days of opens (a chart). The same report functions the CLI
prints (`newsletter/reports/`); the charts are SVG drawn on the server (`charts.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from newsletter.db import fits_row_id, session_scope
from newsletter.errors import NotFoundError
from newsletter.reports import (
    ListGrowth,
    SendReport,
    list_growth,
    send_report,
    since_day,
    topics_report,
)
from newsletter.sending.report import summarize_sends
from newsletter.web.console.charts import Chart, bar_chart, line_chart
from newsletter.web.console.deps import ROUTER_GUARD, ConsoleDep, StaffUser
from subscribers.models import utcnow

router = APIRouter(prefix="/admin/reports", dependencies=ROUTER_GUARD)
RECENT_SENDS = 20


def growth_chart(growth: ListGrowth) -> Chart:
    weeks = growth.weeks
    return line_chart(
        "Readers on the list at the end of each week",
        f"From {weeks[0].listed:,} to {weeks[-1].listed:,} readers over {len(weeks)} weeks.",
        [f"{week.week:%d %b}" for week in weeks],
        [week.listed for week in weeks],
    )


def hours_chart(report: SendReport) -> Chart:
    hours = report.opens_by_hour
    peak = max(range(len(hours)), key=hours.__getitem__) if any(hours) else 0
    return bar_chart(
        "Opens by readers, hour by hour over the first 48 hours",
        f"{sum(hours):,} opens in the first 48 hours; the most, {hours[peak]:,}, in hour {peak}.",
        [f"h{hour}" for hour in range(len(hours))],
        hours,
    )


def _since(value: str, zone: str) -> tuple[datetime, str]:
    """The day asked for (midnight, the firm's zone), or 90 days ago and words naming the
    field and the form it takes: a day it could not read was replaced by the default in
    the box, so the table looked like an answer to what was typed."""
    now = utcnow()
    try:
        return since_day(value or None, zone, now=now), ""
    except ValueError:
        example = now.astimezone(ZoneInfo(zone)).date().isoformat()
        return since_day(None, zone, now=now), (
            f"Sends since {value[:40]!r}: write the day as YYYY-MM-DD, e.g. {example}; "
            "the table shows the last 90 days instead."
        )


@router.get("")
def reports(
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    # Longer than a day, so that what was typed comes back in the box with the page's
    # own words, not as a bare "at most 10 characters".
    since: Annotated[str, Query(max_length=100)] = "",
) -> HTMLResponse:
    since = since.strip()
    start, error = _since(since, console.settings.NEWSLETTER_TIMEZONE)
    with session_scope(console.engine) as session:
        topics = topics_report(session=session, since=start)
        growth = list_growth(session=session, weeks=12)
        sends = summarize_sends(session=session)[:RECENT_SENDS]
    return console.page(
        request,
        "reports.html",
        staff,
        status=400 if error else 200,
        topics=topics,
        since=since if error else start.date().isoformat(),  # the box: as typed if refused
        start=start.date().isoformat(),  # the day the table counts from
        growth=growth,
        growth_chart=growth_chart(growth),
        sends=sends,
        error=error,
    )


@router.get("/sends/{send_id}")
def send_page(
    send_id: int, request: Request, console: ConsoleDep, staff: StaffUser
) -> HTMLResponse:
    if not fits_row_id(send_id):
        return console.page(request, "not_found.html", staff, 404, what="send")
    try:
        with session_scope(console.engine) as session:
            report = send_report(send_id, session=session)
    except NotFoundError:
        return console.page(request, "not_found.html", staff, 404, what="send")
    return console.page(
        request, "report_send.html", staff, report=report, hours_chart=hours_chart(report)
    )
