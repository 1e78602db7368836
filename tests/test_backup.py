"""`newsletter backup FILE`: SQLite's online backup, restored as the README says (stop, copy
the file into place, start) into a database the `newsletter` commands work on."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.briefs import add_brief, parse_brief_file
from newsletter.db import make_engine, session_scope
from newsletter.db.backup import backup_database
from newsletter.errors import ConfigurationError
from newsletter.sending.create import create_send
from newsletter.sending.worker import Worker
from subscribers.models import Subscriber
from subscribers.roster import add_subscriber
from subscribers.topics import add_topic
from tests.conftest import SANDBOX_KEY, clean_env, test_settings

FIXTURES = Path(__file__).parent / "fixtures"
NAMES = ['Müller, Anna; "Annie"', "山田 太郎", "Zoë 🚀 <b>bold</b>"]


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    (tmp_path / "live").mkdir()
    path = tmp_path / "live" / "newsletter.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


def _cli(tmp_path: Path, url: str, sandbox_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        env=clean_env(
            DATABASE_URL=url,
            SENDGRID_API_HOST=sandbox_url,
            SENDGRID_API_KEY=SANDBOX_KEY,
            COLUMNS="200",
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_backup_restores_into_a_database_the_commands_work_on(sqlite_url, sandbox, tmp_path):
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
        for i, name in enumerate(NAMES):
            add_subscriber(f"reader{i}@example.com", name=name, topics=["energy"], session=session)
        slug = add_brief(
            parse_brief_file(FIXTURES / "firm-layout.txt"), session=session, topics=["energy"]
        ).brief.slug
    settings = test_settings(
        DATABASE_URL=sqlite_url, SENDGRID_API_HOST=sandbox.url, SENDGRID_API_KEY=SANDBOX_KEY
    )
    with session_scope(engine) as session:
        create_send(slug, session=session, settings=settings)
    Worker.from_settings(settings).once()
    engine.dispose()
    assert len(sandbox.messages()) == 3

    def run(url: str, *args: str) -> subprocess.CompletedProcess:
        result = _cli(tmp_path, url, sandbox.url, *args)
        assert result.returncode == 0, result.stderr
        return result

    copy = tmp_path / "backups" / "2026-06-10.db"
    copy.parent.mkdir()
    report = json.loads(run(sqlite_url, "backup", str(copy), "--json").stdout)
    assert report["target"] == str(copy) and report["revision"] and report["bytes"] > 0
    assert [p.name for p in copy.parent.iterdir()] == [copy.name]  # one file, no -wal

    # Restore: the live database is lost; the backup is copied into a new place.
    shutil.rmtree(Path(sqlite_url.removeprefix("sqlite:///")).parent)
    restored = tmp_path / "restored" / "newsletter.db"
    restored.parent.mkdir()
    shutil.copyfile(copy, restored)
    url = f"sqlite:///{restored}"

    listed = json.loads(run(url, "subscribers", "list", "--json").stdout)
    assert sorted(person["name"] for person in listed) == sorted(NAMES)
    status = json.loads(run(url, "sends", "status", "1", "--json").stdout)
    assert status["status"] == "finished" and status["counts"]["sent"] == 3
    run(url, "briefs", "add", str(FIXTURES / "front-matter.md"), "--topics", "energy")
    run(url, "send", "2", "--now")
    run(url, "worker", "--once")
    # The ledger came back too: the new brief reaches the three, the old one nobody again.
    assert len(sandbox.messages()) == 3 + 3


def test_a_backup_taken_while_a_writer_commits_is_one_consistent_moment(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
    stop = threading.Event()

    def write() -> None:  # ten subscribers per transaction, until told to stop
        n = 0
        while not stop.is_set():
            with session_scope(engine) as session:
                for _ in range(10):
                    add_subscriber(f"w{n}@example.com", topics=["energy"], session=session)
                    n += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        copies = []
        for i in range(3):
            copies.append(backup_database(sqlite_url, tmp_path / f"during-{i}.db").target)
    finally:
        stop.set()
        writer.join()
    engine.dispose()
    for copy in copies:
        with sqlite3.connect(copy) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            count = connection.execute("SELECT count(*) FROM subscriber").fetchone()[0]
        assert count % 10 == 0  # never half a transaction


def test_a_backup_never_overwrites_a_file_and_leaves_nothing_when_refused(sqlite_url, tmp_path):
    existing = tmp_path / "keep.db"
    existing.write_bytes(b"precious")
    with pytest.raises(ConfigurationError, match="never overwrites"):
        backup_database(sqlite_url, existing)
    assert existing.read_bytes() == b"precious"
    with pytest.raises(ConfigurationError, match="is not a directory"):
        backup_database(sqlite_url, tmp_path / "no-such-dir" / "b.db")
    with pytest.raises(ConfigurationError, match="no database at"):
        backup_database(f"sqlite:///{tmp_path / 'missing.db'}", tmp_path / "b.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.db", "live"]


def test_a_backup_of_postgresql_is_refused_in_one_line_pointing_to_pg_dump(tmp_path, sandbox):
    url = "postgresql+psycopg://newsletter:s3cret@db.internal:5432/newsletter"
    result = _cli(tmp_path, url, sandbox.url, "backup", "nightly.dump")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: `newsletter backup` copies SQLite databases; this one is PostgreSQL: use "
        "pg_dump: pg_dump -Fc -f nightly.dump 'postgresql://newsletter:***@db.internal:5432/"
        "newsletter'"
    ]
    assert not (tmp_path / "nightly.dump").exists()


def test_the_restored_copy_has_every_row(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
        session.execute(
            sa.insert(Subscriber),
            [{"email": f"bulk{i}@example.com", "name": f"Bulk {i}"} for i in range(5000)],
        )
    engine.dispose()
    copy = backup_database(sqlite_url, tmp_path / "bulk.db").target
    with sqlite3.connect(copy) as connection:
        assert connection.execute("SELECT count(*) FROM subscriber").fetchone() == (5000,)
