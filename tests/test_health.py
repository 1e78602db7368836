"""What a supervisor, a load balancer and Prometheus ask the web process, through real HTTP:
`/healthz`, `/readyz` (with the database gone or never migrated) and `/metrics` (the
ledger's figures move when a send goes out through the sandbox)."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest
import sqlalchemy as sa
from starlette.requests import Request

from newsletter.db import migrate, migration_heads, session_scope
from newsletter.devtools.sandbox import event_for
from newsletter.sending.create import create_send
from newsletter.sending.ledger import claim_batch
from newsletter.sending.plan import start_due_sends
from newsletter.sending.worker import Worker
from newsletter.signup import apply_signups, check_signup, record_signup
from newsletter.web.limits import may_read_metrics, trusted_networks
from subscribers.models import utcnow
from subscribers.topics import add_topic
from tests.conftest import _admin_engine, _admin_url, serving, test_settings
from tests.ops_support import (
    blank_db_url,
    get,
    parse_metrics,
    scrape,
    stamp_as_migrated_by_a_newer_version,
    value,
)
from tests.workers_support import deliver_mail, seed_brief

__all__ = ["blank_db_url"]  # a fixture, used by name


def _serve(settings, **changes):
    return serving(test_settings(**{**settings.model_dump(), **changes}))


def test_healthz_answers_while_the_process_runs(web):
    url, _ = web
    status, body, headers = get(f"{url}/healthz")
    assert (status, body) == (200, "ok\n")
    assert headers["cache-control"] == "no-store"


def test_readyz_is_ready_on_a_migrated_database(web):
    url, _ = web
    assert get(f"{url}/readyz")[:2] == (200, "ready\n")


def test_readyz_is_503_on_a_database_that_was_never_migrated(blank_db_url):
    with serving(test_settings(DATABASE_URL=blank_db_url)) as url:
        status, body, _ = get(f"{url}/readyz")
        assert status == 503
        assert body == "not ready: the database schema is not current: run `newsletter init`\n"
        assert get(f"{url}/healthz")[0] == 200  # alive, just not ready


def test_readyz_on_a_database_a_newer_version_migrated_does_not_advise_init(web, engine):
    stamp_as_migrated_by_a_newer_version(engine)
    url, _ = web
    status, body, _ = get(f"{url}/readyz")
    assert (status, body) == (
        503,
        "not ready: the database was migrated by a newer version of newsletter\n",
    )


def test_readyz_says_a_process_running_when_an_upgrade_migrated_its_database_must_restart(
    settings, tmp_path
):
    """`git pull && newsletter init` beside a running `serve`: the database then matched
    the migrations on disk, and the process still running the earlier code said ready."""
    migrations = tmp_path / "migrations"
    shutil.copytree(settings.NEWSLETTER_MIGRATIONS_DIR, migrations)
    with _serve(settings, NEWSLETTER_MIGRATIONS_DIR=migrations) as url:
        assert get(f"{url}/readyz")[:2] == (200, "ready\n")
        [head] = migration_heads(migrations)
        (migrations / "versions" / "9001_next.py").write_text(  # the pull
            f"revision = '9001'\ndown_revision = '{head}'\nbranch_labels = None\n"
            "depends_on = None\n\n\ndef upgrade() -> None:\n    pass\n"
        )
        migrate(settings.DATABASE_URL, migrations)  # the `init`
        status, body, _ = get(f"{url}/readyz")
    assert (status, body) == (
        503,
        "not ready: the database was migrated after this process started: restart it\n",
    )


def test_readyz_is_503_once_the_database_is_gone(settings, db_url, tmp_path):
    if db_url.startswith("sqlite"):
        home = tmp_path / "data"
        home.mkdir()
        shutil.copyfile(db_url.removeprefix("sqlite:///"), home / "news.db")
        db_url = f"sqlite:///{home / 'news.db'}"
    with _serve(settings, DATABASE_URL=db_url) as url:
        if db_url.startswith("sqlite"):
            shutil.rmtree(home)  # before the app's first connection: no file to open
        else:
            assert get(f"{url}/readyz")[0] == 200
            admin = _admin_engine(_admin_url())
            with admin.connect() as connection:
                name = sa.make_url(db_url).database
                connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
            admin.dispose()
        status, body, _ = get(f"{url}/readyz")
        assert (status, body) == (503, "not ready: the database does not answer\n")
        assert "sqlite" not in body and "postgres" not in body  # no address to a stranger
        assert get(f"{url}/metrics")[0] == 503
        assert get(f"{url}/healthz")[0] == 200


def test_metrics_count_the_ledger_before_and_after_a_send_through_the_sandbox(web, engine, sandbox):
    url, settings = web
    slug = seed_brief(engine, 7)
    before = scrape(f"{url}/metrics")
    assert value(before, "newsletter_deliveries", status="sent") == 0
    with session_scope(engine) as session:
        create_send(slug, session=session, settings=settings)
    assert value(scrape(f"{url}/metrics"), "newsletter_sends", status="scheduled") == 1

    Worker.from_settings(settings).once()
    after = scrape(f"{url}/metrics")
    assert value(after, "newsletter_deliveries", status="sent") == 7
    assert value(after, "newsletter_deliveries", status="queued") == 0
    assert value(after, "newsletter_sends", status="finished") == 1
    assert value(after, "newsletter_due_deliveries") == 0
    assert len(sandbox.messages()) == 7


def test_metrics_count_provider_events_applied_and_their_duplicates(web, engine, sandbox):
    url, settings = web
    slug = seed_brief(engine, 3)
    with session_scope(engine) as session:
        create_send(slug, session=session, settings=settings)
    Worker.from_settings(settings).once()
    events = [event_for(message, "delivered") for message in sandbox.messages()]
    events.append(event_for(sandbox.messages()[0], "spamreport"))
    labels = {"provider": "sendgrid"}
    before = scrape(f"{url}/metrics")
    assert sandbox.post_events(f"{url}/webhooks/sendgrid", events) == 200
    assert sandbox.post_events(f"{url}/webhooks/sendgrid", events[:1]) == 200  # again
    after = scrape(f"{url}/metrics")

    def delta(name: str, **extra: str) -> float:
        return value(after, name, **labels, **extra) - value(before, name, **labels, **extra)

    assert delta("newsletter_events_applied_total", type="delivered") == 3
    assert delta("newsletter_events_applied_total", type="complained") == 1
    assert delta("newsletter_events_duplicate_total") == 1


def test_due_work_and_its_age_show_when_no_worker_runs(web, engine):
    url, settings = web
    slug = seed_brief(engine, 4)
    with session_scope(engine) as session:
        # Scheduled an hour ago (its clock then), and no worker has run since.
        an_hour_ago = utcnow() - timedelta(hours=1)
        create_send(slug, session=session, settings=settings, when=an_hour_ago, now=an_hour_ago)
    waiting = scrape(f"{url}/metrics")
    assert value(waiting, "newsletter_due_deliveries") == 0  # not even planned
    assert 3600 <= value(waiting, "newsletter_oldest_due_seconds") < 3700
    start_due_sends(engine, now=utcnow())
    planned = scrape(f"{url}/metrics")
    assert value(planned, "newsletter_due_deliveries") == 4
    assert value(planned, "newsletter_deliveries", status="queued") == 4
    assert 0 <= value(planned, "newsletter_oldest_due_seconds") < 60


def test_rows_in_a_worker_s_hands_show_as_claimed_not_queued(web, engine):
    url, settings = web
    slug = seed_brief(engine, 5)
    with session_scope(engine) as session:
        send_id = create_send(slug, session=session, settings=settings).id
    start_due_sends(engine, now=utcnow())
    claim = claim_batch(
        engine, send_id=send_id, worker_id="w", limit=3, lease=timedelta(minutes=5), now=utcnow()
    )
    assert claim is not None and claim.size == 3
    in_flight = scrape(f"{url}/metrics")
    assert value(in_flight, "newsletter_deliveries", status="claimed") == 3
    assert value(in_flight, "newsletter_deliveries", status="queued") == 2


def test_transactional_mail_waiting_is_counted_until_the_worker_sends_it(web, engine):
    url, settings = web
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
    form = check_signup(
        engine=engine,
        email="new@example.com",
        name="New",
        topics=["energy"],
        cadence="immediate",
        timezone="UTC",
    )
    record_signup(engine, form, ip="127.0.0.1", now=utcnow())
    apply_signups(engine, now=utcnow())  # the worker's first step: the confirmation is queued
    assert value(scrape(f"{url}/metrics"), "newsletter_transactional_mail_waiting") == 1
    deliver_mail(engine, settings)
    assert value(scrape(f"{url}/metrics"), "newsletter_transactional_mail_waiting") == 0


def test_metrics_speak_openmetrics_to_a_scraper_that_asks(web):
    url, _ = web
    status, body, headers = get(
        f"{url}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert status == 200 and headers["content-type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")
    status, body, headers = get(f"{url}/metrics")
    assert headers["content-type"].startswith("text/plain")
    assert parse_metrics(body)  # the classic text format, as Prometheus reads it


def test_metrics_are_refused_to_a_request_a_proxy_passed_on(web):
    """A proxy's request comes from loopback too; its X-Forwarded-For says it came from
    elsewhere. The list's size and the ledger's state are for the operator's Prometheus."""
    url, _ = web
    status, body, _ = get(f"{url}/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert status == 403 and "NEWSLETTER_METRICS_TOKEN" in body
    assert "newsletter_deliveries" not in body


def test_metrics_are_served_from_anywhere_with_the_token_and_refused_with_a_wrong_one(settings):
    token = "scrape-" + "k" * 30
    with _serve(settings, NEWSLETTER_METRICS_TOKEN=token) as url:
        far = {"X-Forwarded-For": "203.0.113.9"}
        status, body, _ = get(f"{url}/metrics", headers={**far, "Authorization": f"Bearer {token}"})
        assert status == 200 and "newsletter_deliveries" in body
        status, _, _ = get(f"{url}/metrics", headers={**far, "Authorization": f"Bearer {token}x"})
        assert status == 403


@pytest.mark.parametrize(
    ("peer", "header", "allowed"),
    [
        ("127.0.0.1", None, True),
        ("::1", None, True),
        ("203.0.113.9", None, False),
        ("10.0.0.5", None, False),
        ("testclient", None, False),
        ("127.0.0.1", ("forwarded", "for=203.0.113.9"), False),
        ("127.0.0.1", ("x-real-ip", "203.0.113.9"), False),
        ("203.0.113.9", ("authorization", "Bearer right-token"), True),
        ("203.0.113.9", ("authorization", "Bearer wrong-token"), False),
        ("203.0.113.9", ("authorization", "Bearer r\u00e9ght-token"), False),
    ],
)
def test_metrics_are_for_loopback_peers_or_the_bearer_of_the_token(peer, header, allowed):
    headers = [(header[0].encode(), header[1].encode())] if header else []
    request = Request({"type": "http", "client": (peer, 50000), "headers": headers})
    assert may_read_metrics(request, "right-token") is allowed


def test_a_loopback_peer_that_is_a_trusted_proxy_needs_the_token_for_metrics():
    """A proxy on this machine that adds no forwarding header (nginx's bare proxy_pass, an
    SSH tunnel) passes the internet's requests on from 127.0.0.1: listed as a proxy, it is
    no longer taken for Prometheus on this machine."""
    proxies = trusted_networks(["127.0.0.1"])
    bare = Request({"type": "http", "client": ("127.0.0.1", 50000), "headers": []})
    assert may_read_metrics(bare, "right-token", proxies) is False
    assert may_read_metrics(bare, "right-token") is True
    scrape = Request(
        {
            "type": "http",
            "client": ("127.0.0.1", 50000),
            "headers": [(b"authorization", b"Bearer right-token")],
        }
    )
    assert may_read_metrics(scrape, "right-token", proxies) is True
