"""For whoever runs the web process: liveness, readiness and metrics.

`/healthz` says only that the process answers (a supervisor restarts it when it stops
answering); `/readyz` that it can do its work: the database answers and its migrations are
the ones this process's code was written for (a load balancer sends no readers to it
otherwise). `/metrics` is Prometheus's text
format: this process's counters and the ledger's gauges (`newsletter.metrics`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from newsletter import metrics
from newsletter.db import database_heads, require_current_schema
from newsletter.db.outage import outage_words
from newsletter.errors import ConfigurationError, NewerSchemaError
from newsletter.web.deps import Web
from newsletter.web.limits import may_read_metrics

log = logging.getLogger("newsletter.web")
router = APIRouter()
NOT_CACHED = {"Cache-Control": "no-store"}


@router.get("/healthz")
def healthz() -> PlainTextResponse:
    return PlainTextResponse("ok\n", headers=NOT_CACHED)


def readiness(engine: Engine, migrations_dir: Path, started_at_heads: tuple[str, ...]) -> str:
    """Why this process cannot serve now, or "" when it can. The details go to the log;
    the answer names the cause, not the database's address.

    The database is compared with the revisions the process started with, not with the
    migrations on disk: after `git pull && newsletter init` those match the database, and
    a `serve` still running the earlier code said it was ready."""
    try:
        heads = database_heads(engine)
        if set(heads) == set(started_at_heads):
            return ""
        require_current_schema(engine, migrations_dir)
    except SQLAlchemyError as exc:
        log.warning("not ready: the database does not answer: %s", outage_words(exc))
        return "the database does not answer"
    except NewerSchemaError as exc:  # `init` would be the wrong advice here
        log.warning("not ready: %s: %s", exc, exc.hint)
        return "the database was migrated by a newer version of newsletter"
    except ConfigurationError:
        log.warning("not ready: the database schema is not current; run `newsletter init`")
        return "the database schema is not current: run `newsletter init`"
    # Current for the migrations on disk, which are not this process's any more.
    log.warning(
        "not ready: the database was migrated after this process started (it started at "
        "%s; the database is now at %s); restart it",
        ", ".join(started_at_heads),
        ", ".join(heads),
    )
    return "the database was migrated after this process started: restart it"


@router.get("/readyz")
def readyz(web: Web) -> PlainTextResponse:
    reason = readiness(
        web.engine, Path(web.settings.NEWSLETTER_MIGRATIONS_DIR), web.started_at_heads
    )
    if reason:
        return PlainTextResponse(f"not ready: {reason}\n", status_code=503, headers=NOT_CACHED)
    return PlainTextResponse("ready\n", headers=NOT_CACHED)


@router.get("/metrics")
def prometheus(request: Request, web: Web) -> Response:
    token = web.settings.NEWSLETTER_METRICS_TOKEN.get_secret_value()
    if not may_read_metrics(request, token, web.trusted_proxies):
        return PlainTextResponse(
            "metrics are served to this machine, or with NEWSLETTER_METRICS_TOKEN\n",
            status_code=403,
            headers=NOT_CACHED,
        )
    try:
        body, content_type = metrics.render(
            metrics.exposition(web.engine), request.headers.get("accept", "")
        )
    except SQLAlchemyError as exc:
        log.warning("metrics: the database does not answer: %s", outage_words(exc))
        return PlainTextResponse(
            "the database does not answer\n", status_code=503, headers=NOT_CACHED
        )
    return Response(body, media_type=content_type, headers=NOT_CACHED)
