"""The processes and the setup: `init`, `demo`, `worker`, `serve`, `sandbox`."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.common import err, process_errors, settings_and_engine, user_errors
from newsletter.config import PLACEHOLDER_SECRET, get_settings
from newsletter.db import make_engine, migrate
from newsletter.errors import ConfigurationError
from newsletter.heap import freeze_for_good
from newsletter.logs import configure_logging


@user_errors
def init() -> None:
    """Create or migrate the database."""
    settings = get_settings()
    migrate(settings.DATABASE_URL, settings.NEWSLETTER_MIGRATIONS_DIR)
    url = make_engine(settings.DATABASE_URL).url.render_as_string(hide_password=True)
    err.print(f"database ready: {url}")


@user_errors
def demo(
    workdir: Annotated[
        Path, typer.Option(help="Where the demo's database and previews go.")
    ] = Path("var/demo"),
) -> None:
    """The whole pipeline on the bundled examples, through a local SendGrid sandbox."""
    from rich.console import Console

    from newsletter.devtools.demo import run_demo

    # Its own console: the demo's lines are styled (the CLI's own print people's text plain).
    run_demo(workdir, Console(soft_wrap=True))


@process_errors
def worker(
    once: Annotated[bool, typer.Option("--once", help="Do all due work, then exit.")] = False,
) -> None:
    """The worker: sends what is due, on a clock (same as `python scheduler.py`)."""
    import scheduler

    settings, _ = settings_and_engine()
    configure_logging(settings)
    if once:
        scheduler.run_once(settings)
    else:
        scheduler.run(settings)


@process_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """The reader's pages and the SendGrid webhook at POST /webhooks/sendgrid."""
    import uvicorn

    from newsletter.web.app import create_app, listens_on_loopback_only, server_config

    settings, _ = settings_and_engine()
    secret = settings.NEWSLETTER_SECRET_KEY.get_secret_value()
    if secret == PLACEHOLDER_SECRET and not listens_on_loopback_only(host):
        raise ConfigurationError(
            f"NEWSLETTER_SECRET_KEY is still the placeholder, and --host {host} may face the "
            "network: anyone could sign links and forms",
            hint="set it to a random value (python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'), or serve on 127.0.0.1 to try things out",
        )
    configure_logging(settings)
    app = create_app(settings)
    freeze_for_good()  # newsletter/heap.py: the webhook's posts run a third faster
    uvicorn.Server(server_config(app, host, port, own_logging=True)).run()


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
    inbox: Annotated[
        Path, typer.Option(help="SQLite file that keeps accepted messages across restarts.")
    ] = Path("var/sandbox/inbox.sqlite3"),
    webhook_url: Annotated[
        str | None,
        typer.Option(
            help="Post signed processed/delivered events for accepted mail here, as SendGrid "
            "does (e.g. http://127.0.0.1:8000/webhooks/sendgrid)."
        ),
    ] = None,
    events_delay: Annotated[
        float, typer.Option(help="Seconds between accepting mail and posting its events.")
    ] = 0.0,
    webhook_key: Annotated[
        Path,
        typer.Option(
            help="File that keeps the key events are signed with (made on first use), so "
            "the SENDGRID_WEBHOOK_PUBLIC_KEY given to the web app holds across restarts."
        ),
    ] = Path("var/sandbox/webhook-key.pem"),
) -> None:
    """A local SendGrid v3 stand-in: accepts mail/send, keeps it, sends nothing."""
    from newsletter.devtools.sandbox import Faults, Sandbox

    key = api_key or get_settings().SENDGRID_API_KEY.get_secret_value()
    if not key:
        raise ConfigurationError("give the sandbox a key to accept: --api-key or SENDGRID_API_KEY")
    try:
        injected = Faults.from_json(faults) if faults else None
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"--faults: {exc}") from exc
    server = Sandbox(
        key,
        port=port,
        verbose=not quiet,
        keep_messages=keep_messages,
        faults=injected,
        inbox_path=inbox,
        webhook_key=webhook_key if webhook_url else None,  # signs nothing without one
    )
    err.print(
        f"SendGrid sandbox on {server.url}: set SENDGRID_API_HOST={server.url}\n"
        f"inbox: {server.url}/ (kept in {inbox}); as JSON: {server.url}/sandbox/messages, "
        f"counts: {server.url}/sandbox/stats",
        highlight=False,
    )
    if webhook_url:
        server.send_events_to(webhook_url, delay=events_delay)
        err.print(
            f"events for accepted mail go to {webhook_url}, signed: set "
            f"SENDGRID_WEBHOOK_PUBLIC_KEY={server.events.public_key} where the web app runs "
            f"(its key is kept in {webhook_key}: the same at the next start)",
            soft_wrap=True,
        )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
