"""Helpers for the operator's tests: plain HTTP, reading a Prometheus scrape, an empty
(unmigrated) database on each backend, and one a newer version migrated."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from tests.conftest import BACKENDS, scratch_postgres


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    """GET a local test server: (status, body, headers), for any status."""
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - local server
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """A scrape as {(sample name, labels): value}, read by prometheus-client's own parser."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(url: str) -> Samples:
    status, body, _ = get(url)
    assert status == 200, body
    return parse_metrics(body)


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when absent (a counter no one has touched yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(params=BACKENDS)
def blank_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database that exists but that `newsletter init` never touched."""
    if request.param == "sqlite":
        (tmp_path / "blank.db").touch()  # an empty file is an empty SQLite database
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    with scratch_postgres("nl_blank") as url:
        yield url


def stamp_as_migrated_by_a_newer_version(engine: Engine) -> None:
    """What a newer version's `newsletter init` leaves: a revision these migrations lack."""
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
