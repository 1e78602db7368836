"""`newsletter …`: the staff command line, one module per noun. Commands parse, call one
function and print; the functions are the same ones the web console and tests call."""

from __future__ import annotations

import typer

from newsletter.cli import (
    briefs,
    operations,
    reports,
    sends,
    setup,
    staff,
    subscribers,
    topics,
)

app = typer.Typer(
    help="Briefs in, emails out: the briefing newsletter pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
for command in (setup.init, setup.demo, setup.worker, setup.serve, setup.sandbox, sends.send):
    app.command()(command)
app.command()(operations.doctor)
app.command()(operations.backup)
app.add_typer(topics.app, name="topics")
app.add_typer(subscribers.app, name="subscribers")
app.add_typer(briefs.app, name="briefs")
sends.app.command("report")(reports.sends_report)
app.add_typer(sends.app, name="sends")
app.add_typer(reports.app, name="report")
app.add_typer(staff.app, name="staff")

__all__ = ["app"]
