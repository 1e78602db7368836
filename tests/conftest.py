"""Fixtures: each test gets its own migrated database, on SQLite and, when
TEST_DATABASE_URL points at a PostgreSQL server, on PostgreSQL too.

Alembic migrates one template per database kind per run (per pytest-xdist worker, under
`-n`: the worker's id is in the template's name and its files are under the worker's own
temporary folder); each test then gets a copy (a file copy on SQLite, `CREATE DATABASE …
TEMPLATE` on PostgreSQL), so no test sees another's rows and none pays for migrating. On
PostgreSQL the next copy is made, and the last one dropped, on a background thread while a
test runs: still a fresh copy for each test, without waiting for the server.

Tests start from a clean environment: the project's own variables are removed from this
process before anything reads them, each test runs in its own empty working directory (so
no `.env` is found), settings are built with `env_file=None`, and subprocesses get an
environment built from nothing (`clean_env`), not a copy of the developer's shell.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from newsletter.config import Settings, get_settings
from newsletter.db import make_engine, migrate, session_scope
from newsletter.devtools.local_web import serving
from newsletter.devtools.sandbox import Sandbox
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
# Nor a terminal's size: a pytest-xdist worker starts with COLUMNS=80 and LINES=24, which
# the CLI's console would take as its fixed width when imported. Tests that print tables
# give COLUMNS themselves.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


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


def _xdist_worker() -> str:
    """This process's pytest-xdist worker ("gw0", "gw1", …), or "main" without `-n`."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def run_id() -> str:
    """Unique to this run and this xdist worker: what the worker's own databases are named by."""
    return f"{_xdist_worker()}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate(f"sqlite:///{path}", test_settings().NEWSLETTER_MIGRATIONS_DIR)
    make_engine(f"sqlite:///{path}").dispose()
    return path


class _PostgresCopies:
    """Fresh copies of one template database for the tests of this process, made one ahead
    and dropped on a background thread: a test gets a copy no other test has touched,
    without waiting for the server to make it, nor to drop the one before."""

    def __init__(self, admin: str, template: str) -> None:
        self._admin = admin
        self._engine = _admin_engine(admin)
        self._template = template
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-copies")
        self._lock = threading.Lock()
        self._next: Future[str] | None = None
        self._drops: list[Future[None]] = []

    def _execute(self, sql: str) -> None:
        with self._engine.connect() as connection:
            connection.exec_driver_sql(sql)

    def _create(self) -> str:
        name = f"nl_test_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        return name

    def _drop(self, name: str) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def take(self) -> str:
        """A copy of the template for one test alone (its name); starts making the next."""
        with self._lock:
            ready = self._next or self._background.submit(self._create)
            self._next = self._background.submit(self._create)
        return ready.result()

    def url(self, name: str) -> str:
        return _with_database(self._admin, name)

    def give_back(self, name: str) -> None:
        """Drop `name` (the test is over), in the background."""
        self._drops.append(self._background.submit(self._drop, name))

    def close(self) -> None:
        """Drop the copy made ahead; a drop that failed fails the session's teardown."""
        with self._lock:
            ahead, self._next = self._next, None
        self._background.shutdown(wait=True)
        try:
            if ahead is not None and ahead.exception() is None:
                self._drop(ahead.result())
            for drop in self._drops:
                drop.result()
        finally:
            self._engine.dispose()


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


@pytest.fixture(scope="session")
def postgres_copies(postgres_template: str) -> Iterator[_PostgresCopies]:
    admin = _admin_url()
    assert admin is not None  # postgres_template skipped otherwise
    copies = _PostgresCopies(admin, postgres_template)
    yield copies
    copies.close()


# For a test whose subject never reaches SQL that differs by dialect (a file refused before
# it is read, a header, a page's markup): one database is enough.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for this test alone."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    copies: _PostgresCopies = request.getfixturevalue("postgres_copies")
    name = copies.take()
    try:
        yield copies.url(name)
    finally:
        copies.give_back(name)


@contextmanager
def scratch_postgres(prefix: str, *, template: str | None = None) -> Iterator[str]:
    """A database of its own on TEST_DATABASE_URL's server (a copy of `template`, or
    empty), dropped afterwards."""
    admin = _admin_url()
    if admin is None:
        pytest.skip("PostgreSQL tests need TEST_DATABASE_URL (CI sets it)")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    copy_of = f' TEMPLATE "{template}"' if template else ""
    engine = _admin_engine(admin)
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"{copy_of}')
    try:
        yield _with_database(admin, name)
    finally:
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


def start_web(settings: Settings):
    """The app for `settings` under uvicorn on 127.0.0.1, as `newsletter serve` runs it;
    a context manager yielding its URL."""
    return serving(settings)


def web_settings(settings: Settings, sandbox: Sandbox, **overrides: object) -> Settings:
    """The web fixture's settings: webhooks signed by the sandbox's key."""
    return test_settings(
        **{
            **settings.model_dump(),
            "SENDGRID_WEBHOOK_PUBLIC_KEY": sandbox.events.public_key,
            **overrides,
        }
    )


@contextmanager
def serve_app(settings: Settings, **overrides: object) -> Iterator[tuple[str, Settings]]:
    """The web app on 127.0.0.1 in a thread, for `settings` with `overrides`; yields its URL
    and the settings it runs with (links in emails pointing at this server)."""
    changed = test_settings(**{**settings.model_dump(), **overrides})
    with serving(changed) as url:
        yield url, test_settings(**{**changed.model_dump(), "NEWSLETTER_BASE_URL": url})


@pytest.fixture
def web(settings, sandbox):
    with serve_app(settings, SENDGRID_WEBHOOK_PUBLIC_KEY=sandbox.events.public_key) as running:
        yield running


@pytest.fixture
def topics(engine: Engine) -> Engine:
    """Three topics (japan, energy, food) in the test's database; returns its engine."""
    with session_scope(engine) as session:
        for slug in ("japan", "energy", "food"):
            add_topic(slug, slug.title(), session=session)
    return engine


# A `newsletter` process may use this much address space at most: a regression that reads
# a device or expands a YAML bomb fails (MemoryError) instead of taking the machine down.
CLI_MEMORY_CAP = 2 * 2**30


def _capped_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CLI_MEMORY_CAP, CLI_MEMORY_CAP))


@pytest.fixture
def newsletter(db_url, sandbox, tmp_path):
    """Run `newsletter ARGS…` in a fresh process; returns the CompletedProcess.
    `memory_capped=True` caps its address space (CLI_MEMORY_CAP; Chromium needs more)."""
    env = clean_env(
        DATABASE_URL=db_url,
        SENDGRID_API_HOST=sandbox.url,
        SENDGRID_API_KEY=SANDBOX_KEY,
        NEWSLETTER_BASE_URL="https://news.example.com",
        COLUMNS="200",
    )

    def run(
        *args: str,
        env_changes: dict[str, str] | None = None,
        module: str = "newsletter",
        timeout: float = 120,
        memory_capped: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            env={**env, **(env_changes or {})},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            preexec_fn=_capped_memory if memory_capped else None,
        )

    return run
