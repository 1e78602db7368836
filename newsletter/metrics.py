"""Every metric the processes expose, in Prometheus's text format (`prometheus-client`).

Two kinds, kept apart so nothing is counted twice:

* What a process *did* (counters and histograms, updated where it happens): provider
  hand-offs by outcome and their duration (`providers/metered.py`), provider requests by
  answer, with their latency, and retries (the SendGrid transport), provider events applied
  by type (`events.py`). Each process counts its own; Prometheus adds them up.
* What the database *holds* (`LedgerCollector`, read at scrape time): deliveries by status,
  sends by status, work that is due and how long the oldest has waited, transactional mail
  waiting. Only the web process reports these, so two workers never report one ledger
  twice.

The web process serves `/metrics`; a worker serves its own at NEWSLETTER_METRICS_PORT.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, start_http_server
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from newsletter.errors import ConfigurationError
from newsletter.models import (
    LIVE_BATCHES,
    Delivery,
    DeliveryBatch,
    DeliveryStatus,
    Send,
    SendStatus,
)
from newsletter.sending import ledger
from newsletter.sending.transactional import waiting_mail
from subscribers.models import utcnow

log = logging.getLogger("newsletter.metrics")

# A hand-off is one batch, retries and waits included: what NEWSLETTER_LEASE_SECONDS must
# outlast. One request is one HTTP call to the provider.
_HANDOFF_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

BATCHES = Counter(
    "newsletter_provider_batches",
    "Batches handed to the provider, by outcome (sent, failed, unknown, retry_later, "
    "account_refused).",
    ["transport", "outcome"],
)
RECIPIENTS = Counter(
    "newsletter_provider_recipients",
    "Recipients handed to the provider, by their own outcome.",
    ["transport", "outcome"],
)
HANDOFF_SECONDS = Histogram(
    "newsletter_provider_handoff_seconds",
    "Time to hand one batch to the provider, retries and their waits included.",
    ["transport"],
    buckets=_HANDOFF_BUCKETS,
)
REQUESTS = Counter(
    "newsletter_provider_requests",
    "HTTP requests to the provider, by answer: the status code, or no_answer when none "
    'came (refused, reset, timed out). 429s are code="429".',
    ["transport", "code"],
)
REQUEST_SECONDS = Histogram(
    "newsletter_provider_request_seconds",
    "Latency of one HTTP request to the provider.",
    ["transport"],
    buckets=_REQUEST_BUCKETS,
)
RETRIES = Counter(
    "newsletter_provider_retries",
    "Requests repeated after a 429, a 5xx or a connection failure, by what caused them.",
    ["transport", "reason"],
)
EVENTS = Counter(
    "newsletter_events_applied",
    "Provider events applied (duplicates not counted), by our event type.",
    ["provider", "type"],
)
EVENT_DUPLICATES = Counter(
    "newsletter_events_duplicate",
    "Provider events received again and ignored.",
    ["provider"],
)


@contextmanager
def provider_request(transport: str) -> Iterator[None]:
    """Time one provider request and count it by its answer: an exception that carries a
    `status_code` (the HTTP client's error for a 4xx/5xx) is that code; any other means
    no answer came. The exception goes on to the caller untouched."""
    started = time.perf_counter()
    code = "2xx"
    try:
        yield
    except Exception as exc:
        status = getattr(exc, "status_code", None)
        code = str(status) if status is not None else "no_answer"
        raise
    finally:
        REQUEST_SECONDS.labels(transport).observe(time.perf_counter() - started)
        REQUESTS.labels(transport, code).inc()


def provider_retry(transport: str, reason: str) -> None:
    RETRIES.labels(transport, reason).inc()


# --- what the database holds, read at scrape time ----------------------------------------


class LedgerCollector:
    """Gauges read from the database when Prometheus scrapes: always the truth, with no
    second set of books to drift from the ledger. Each scrape runs five grouped counts; the
    due-work query walks the claiming index of running sends only."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[Metric]:
        now = utcnow()
        with Session(self.engine) as session:
            deliveries = dict(
                session.execute(
                    sa.select(col(Delivery.status), sa.func.count()).group_by(col(Delivery.status))
                ).all()
            )
            sends = dict(
                session.execute(
                    sa.select(col(Send.status), sa.func.count()).group_by(col(Send.status))
                ).all()
            )
            # A claim writes no ledger row (it is recorded on its batch): rows in a
            # worker's hands are the live batches' sizes, still `queued` in the ledger.
            in_hand = cast(
                int,
                session.scalar(
                    sa.select(sa.func.coalesce(sa.func.sum(col(DeliveryBatch.size)), 0)).where(
                        col(DeliveryBatch.status).in_(LIVE_BATCHES)
                    )
                ),
            )
            due = session.execute(
                sa.select(sa.func.count(), sa.func.min(col(Delivery.not_before)))
                .join(Send, col(Send.id) == col(Delivery.send_id))
                .where(
                    col(Send.status) == SendStatus.RUNNING,
                    col(Delivery.status) == DeliveryStatus.QUEUED,
                    col(Delivery.not_before) <= now,
                )
            ).one()
            # Rows of live batches are still `queued` and due in the ledger: in hand, not
            # waiting (the claimed ones above).
            due_rows = max(0, cast(int, due[0] or 0) - in_hand)
            oldest_row = cast("datetime | None", due[1])
            oldest_send = session.scalar(
                sa.select(sa.func.min(col(Send.scheduled_at))).where(
                    col(Send.status) == SendStatus.SCHEDULED, col(Send.scheduled_at) <= now
                )
            )
            mail = waiting_mail(session)
        yield _by_label(
            "newsletter_deliveries",
            "Ledger rows by status, over every send.",
            "status",
            ledger.with_in_hand(deliveries, in_hand),
        )
        yield _by_label(
            "newsletter_sends",
            "Sends by status.",
            "status",
            {status.value: sends.get(status.value, 0) for status in SendStatus},
        )
        yield GaugeMetricFamily(
            "newsletter_due_deliveries",
            "Queued rows of running sends whose time has come: work a worker should be doing.",
            value=due_rows,
        )
        yield GaugeMetricFamily(
            "newsletter_oldest_due_seconds",
            "How long the oldest due work has waited: a queued row of a running send, or a "
            "send past its scheduled time that no worker has started. 0 when nothing is due.",
            value=_age(now, [oldest_row, oldest_send]),
        )
        yield GaugeMetricFamily(
            "newsletter_transactional_mail_waiting",
            "Confirmation and welcome emails queued or in hand, not yet sent.",
            value=mail,
        )


def _by_label(name: str, documentation: str, label: str, values: dict[str, int]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family


def _age(now: datetime, moments: list[datetime | None]) -> float:
    known = [moment for moment in moments if moment is not None]
    return max(0.0, (now - min(known)).total_seconds()) if known else 0.0


class _Exposition:
    """This process's counters, plus the database's gauges when an engine is given."""

    def __init__(self, engine: Engine | None) -> None:
        self._ledger = LedgerCollector(engine) if engine is not None else None

    def collect(self) -> Iterable[Metric]:
        yield from REGISTRY.collect()
        if self._ledger is not None:
            yield from self._ledger.collect()


def exposition(engine: Engine | None) -> Collector:
    return _Exposition(engine)


def render(collector: Collector, accept: str = "") -> tuple[bytes, str]:
    """The scrape's body and content type, in the format the scraper asked for."""
    encoder, content_type = choose_encoder(accept)
    return encoder(collector), content_type


def serve_worker_metrics(host: str, port: int) -> int:
    """The worker's own /metrics, from a daemon thread; returns the port (0 picks one)."""
    try:
        server, _thread = start_http_server(port, addr=host, registry=exposition(None))
    except OSError as exc:  # the port is taken, the address is not this machine's
        raise ConfigurationError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}",
            hint="choose another NEWSLETTER_METRICS_PORT, or unset it",
        ) from exc
    bound = int(server.server_port)
    log.info("metrics at http://%s:%s/metrics", host, bound)
    return bound
