"""Fixtures: each test gets its own migrated database, on SQLite and, when
TEST_DATABASE_URL points at a PostgreSQL server, on PostgreSQL too.

Alembic migrates one template per database kind per run; each test then gets a copy
(a file copy on SQLite, `CREATE DATABASE … TEMPLATE` on PostgreSQL), so no test sees
another's rows and none pays for migrating.

Tests start from a clean environment: the project's own variables are removed from this
process before anything reads them, each test runs in its own empty working directory (so
no `.env` is found), settings are built with `env_file=None`, and subprocesses get an
environment built from nothing (`clean_env`), not a copy of the developer's shell.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import Engine, make_url

from newsletter.config import Settings, get_settings
from newsletter.db import make_engine, migrate, session_scope
from newsletter.devtools.sandbox import Sandbox
from newsletter.web.app import create_app
from subscribers.topics import add_topic

FIXTURES = Path(__file__).parent / "fixtures"
SANDBOX_KEY = "SG.test-sandbox-key"
BACKENDS = ["sqlite", "postgresql"]
# The developer's settings never reach a test: what the project reads from the environment.
_PROJECT_PREFIXES = ("NEWSLETTER_", "SENDGRID_", "SMTP_")
_PROJECT_NAMES = {"DATABASE_URL"}
# What a subprocess needs from the machine to run at all.
_PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def _is_project_variable(name: str) -> bool:
    return name.upper() in _PROJECT_NAMES or name.upper().startswith(_PROJECT_PREFIXES)


for _name in [name for name in os.environ if _is_project_variable(name)]:
    del os.environ[_name]


def clean_env(**variables: str) -> dict[str, str]:
    """An environment for a subprocess: the machine's basics, then exactly `variables`."""
    base = {name: os.environ[name] for name in _PASSED_THROUGH if name in os.environ}
    return {**base, **variables}


def test_settings(**overrides: object) -> Settings:
    """Settings from the defaults and `overrides` only: no environment, no `.env`."""
    return get_settings(env_file=None, **overrides)


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test in an empty directory: no stray `.env`, nothing written into the checkout."""
    monkeypatch.chdir(tmp_path)


def _admin_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL") or None


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _admin_engine(url: str) -> Engine:
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate(f"sqlite:///{path}", test_settings().NEWSLETTER_MIGRATIONS_DIR)
    make_engine(f"sqlite:///{path}").dispose()
    return path


@pytest.fixture(scope="session")
def postgres_template(run_id: str) -> Iterator[str]:
    admin = _admin_url()
    if admin is None:
        pytest.skip("PostgreSQL tests need TEST_DATABASE_URL (CI sets it)")
    name = f"nl_template_{run_id}"
    engine = _admin_engine(admin)
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    migrate(_with_database(admin, name), test_settings().NEWSLETTER_MIGRATIONS_DIR)
    yield name
    with engine.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for this test alone."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("postgres_template")
    admin = _admin_url()
    assert admin is not None
    name = f"nl_test_{uuid.uuid4().hex[:12]}"
    engine = _admin_engine(admin)
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _with_database(admin, name)
    with engine.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SANDBOX_KEY) as server:
        yield server


@pytest.fixture
def settings(db_url: str, sandbox: Sandbox) -> Settings:
    return test_settings(
        DATABASE_URL=db_url,
        SENDGRID_API_HOST=sandbox.url,
        SENDGRID_API_KEY=SANDBOX_KEY,
        SENDGRID_TIMEOUT_SECONDS=10,
        NEWSLETTER_BASE_URL="https://news.example.com",
        NEWSLETTER_SECRET_KEY="test-secret-key-that-is-long-enough-1234",
        NEWSLETTER_ENV="development",
        NEWSLETTER_MAX_RETRIES=1,
    )


@contextmanager
def serving(settings: Settings, **overrides: object) -> Iterator[tuple[str, Settings]]:
    """The web app on 127.0.0.1 in a thread; yields its URL and the settings it runs with
    (`overrides` applied, links in emails pointing at this server)."""
    # Bound here and handed to uvicorn: no window in which the port could be taken.
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    settings = test_settings(
        **{
            **settings.model_dump(),
            **overrides,
            # Links in emails point at this server, so a test (or a browser) can follow them.
            "NEWSLETTER_BASE_URL": f"http://127.0.0.1:{port}",
        }
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the web app did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", settings
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listening.close()


@pytest.fixture
def web(settings, sandbox):
    with serving(settings, SENDGRID_WEBHOOK_PUBLIC_KEY=sandbox.events.public_key) as running:
        yield running


@pytest.fixture
def topics(engine: Engine) -> Engine:
    """Three topics (japan, energy, food) in the test's database; returns its engine."""
    with session_scope(engine) as session:
        for slug in ("japan", "energy", "food"):
            add_topic(slug, slug.title(), session=session)
    return engine
