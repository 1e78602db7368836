"""The schema comes from Alembic, and the migrations match the models exactly."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import main as alembic_cli
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlmodel import SQLModel, select

import newsletter.models  # noqa: F401 - registers every table
from newsletter.briefs.archive import archive_page
from newsletter.db import migrate, require_current_schema, schema_is_current, session_scope
from newsletter.db.migrations import alembic_config
from newsletter.errors import NewerSchemaError
from newsletter.models import Send
from newsletter.sending.controls import cancel_send
from newsletter.sending.create import create_send
from newsletter.sending.plan import start_due_sends
from subscribers.models import utcnow
from tests.conftest import test_settings
from tests.ops_support import stamp_as_migrated_by_a_newer_version
from tests.workers_support import seed_brief

HOUR = timedelta(hours=1)


def test_migrations_leave_no_difference_from_the_models(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_a_migrated_database_is_current(engine):
    assert schema_is_current(engine, test_settings().NEWSLETTER_MIGRATIONS_DIR)


def test_migrating_twice_changes_nothing(db_url, engine):
    migrate(db_url, test_settings().NEWSLETTER_MIGRATIONS_DIR)
    assert schema_is_current(engine, test_settings().NEWSLETTER_MIGRATIONS_DIR)


def test_a_database_a_newer_version_migrated_is_refused_naming_its_revision_and_ours(
    db_url, engine
):
    """Not "run `newsletter init`": init cannot go back from a step it cannot read."""
    migrations_dir = test_settings().NEWSLETTER_MIGRATIONS_DIR
    ours = ScriptDirectory.from_config(alembic_config(db_url, migrations_dir)).get_current_head()
    stamp_as_migrated_by_a_newer_version(engine)
    with pytest.raises(NewerSchemaError) as refused:
        require_current_schema(engine, migrations_dir)
    assert (refused.value.revision, refused.value.newest) == ("0099", ours)
    assert "restore the backup taken before the upgrade" in refused.value.hint


def test_migrating_a_database_a_newer_version_migrated_is_refused_and_changes_nothing(
    db_url, engine
):
    stamp_as_migrated_by_a_newer_version(engine)
    with pytest.raises(NewerSchemaError, match="migrated by a newer version"):
        migrate(db_url, test_settings().NEWSLETTER_MIGRATIONS_DIR)
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_heads() == ("0099",)


def test_a_database_with_reader_token_sends_cannot_go_back_to_code_that_cannot_fill_them(
    db_url, engine, settings
):
    """Downgrading below 0015 with a scheduled send rendered for reader tokens would let the
    earlier code mail dead unsubscribe links: refused until that send is over. The refusal
    comes after the steps above 0015 have run, and undoes them: on SQLite each step was
    once committed alone, so a refused downgrade left the database at 0015 with its
    tallies dropped, neither where it was nor where it was asked to go."""
    slug = seed_brief(engine, 2)
    with session_scope(engine) as session:
        send_id = create_send(slug, session=session, settings=settings, when=utcnow() + HOUR).id
    before = _schema(engine)
    config = alembic_config(db_url, settings.NEWSLETTER_MIGRATIONS_DIR)
    with pytest.raises(CommandError, match="1 send"):
        command.downgrade(config, "0012")
    assert _schema(engine) == before
    assert schema_is_current(engine, settings.NEWSLETTER_MIGRATIONS_DIR)
    with session_scope(engine) as session:
        cancel_send(send_id, session=session, now=utcnow())
    command.downgrade(config, "0012")
    assert not schema_is_current(engine, settings.NEWSLETTER_MIGRATIONS_DIR)


def test_alembic_refuses_such_a_downgrade_in_one_line_naming_why(
    db_url, engine, settings, tmp_path, monkeypatch, capsys
):
    """The README's way back is `alembic downgrade`: the refusal is its one FAILED line,
    not a traceback."""
    slug = seed_brief(engine, 1)
    with session_scope(engine) as session:
        create_send(slug, session=session, settings=settings, when=utcnow() + HOUR)
    ini = tmp_path / "alembic.ini"  # the checkout's, with its folder spelled out
    ini.write_text(f"[alembic]\nscript_location = {settings.NEWSLETTER_MIGRATIONS_DIR}\n")
    monkeypatch.setenv("DATABASE_URL", db_url)
    with pytest.raises(SystemExit) as exited:
        alembic_cli(argv=["-c", str(ini), "downgrade", "0012"])
    assert exited.value.code != 0
    out = capsys.readouterr().out
    assert out.startswith("FAILED: ") and out.count("\n") == 1
    assert "1 send(s) not over" in out and "nothing was changed" in out
    assert schema_is_current(engine, settings.NEWSLETTER_MIGRATIONS_DIR)


def _schema(engine) -> object:
    """The revision and every table, column, index and key, as the database itself says."""
    with engine.connect() as connection:
        revision = MigrationContext.configure(connection).get_current_heads()
        if engine.dialect.name == "sqlite":  # its own words: AUTOINCREMENT (0022) included
            listed = sa.text("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
            return revision, connection.execute(listed).all()
        inspector = sa.inspect(connection)
        return revision, {
            table: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                inspector.get_pk_constraint(table),
                inspector.get_indexes(table),
                inspector.get_foreign_keys(table),
            )
            for table in inspector.get_table_names()
        }


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_subscriber_pages_keep_room_for_in_place_digest_updates(engine):
    with engine.connect() as connection:
        options = connection.execute(
            sa.text("SELECT reloptions FROM pg_class WHERE relname = 'subscriber'")
        ).scalar_one()
    assert "fillfactor=70" in (options or [])


def test_dropping_the_follow_links_foreign_keys_keeps_every_link_and_can_go_back(
    db_url, engine, settings
):
    """0019 rebuilds `subscriber_topic` on SQLite: every link survives it, both ways; a
    link to a topic that is gone does not stop the way back."""
    slug = seed_brief(engine, 5)  # five readers following the brief's topic
    assert slug
    follows = "SELECT subscriber_id, topic_id FROM subscriber_topic ORDER BY 1, 2"
    with engine.connect() as connection:
        before = connection.execute(sa.text(follows)).all()
    assert len(before) == 5
    with engine.begin() as connection:  # what a merge beside an import could leave
        connection.execute(sa.text("INSERT INTO subscriber_topic VALUES (1, 9999)"))
    config = alembic_config(db_url, settings.NEWSLETTER_MIGRATIONS_DIR)
    command.downgrade(config, "0018")
    with engine.connect() as connection:
        assert connection.execute(sa.text(follows)).all() == before
        keys = sa.inspect(connection).get_foreign_keys("subscriber_topic")
    assert {key["referred_table"] for key in keys} == {"subscriber", "topic"}
    command.upgrade(config, "head")
    with engine.connect() as connection:
        assert connection.execute(sa.text(follows)).all() == before
        assert sa.inspect(connection).get_foreign_keys("subscriber_topic") == []
    assert schema_is_current(engine, settings.NEWSLETTER_MIGRATIONS_DIR)


def test_going_back_below_the_digest_window_column_keeps_every_readers_story(
    db_url, engine, settings
):
    """0020's downgrade drops a column of `subscriber`: on SQLite a rebuild of the table
    would cascade to every reader's status history."""
    seed_brief(engine, 3)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO subscriber_status_change (subscriber_id, at, old_status, "
                "new_status, by) SELECT id, :at, 'active', 'unsubscribed', 'subscriber' "
                "FROM subscriber"
            ),
            {"at": utcnow()},
        )
    story = "SELECT subscriber_id, new_status FROM subscriber_status_change ORDER BY 1"
    _survives_going_back(db_url, engine, settings, story, to="0019", rows=3)


def test_going_back_far_keeps_every_follow_link(db_url, engine, settings):
    """Below 0014 `topic` is rebuilt on SQLite; its old rows' DROP must not cascade to the
    links (foreign keys are off while migrating)."""
    seed_brief(engine, 4)
    follows = "SELECT subscriber_id, topic_id FROM subscriber_topic ORDER BY 1, 2"
    _survives_going_back(db_url, engine, settings, follows, to="0011", rows=4)


def _survives_going_back(db_url, engine, settings, query: str, *, to: str, rows: int) -> None:
    """`query`'s `rows` rows are the same after a downgrade `to` and after the way back."""
    with engine.connect() as connection:
        before = connection.execute(sa.text(query)).all()
    assert len(before) == rows
    config = alembic_config(db_url, settings.NEWSLETTER_MIGRATIONS_DIR)
    command.downgrade(config, to)
    with engine.connect() as connection:
        assert connection.execute(sa.text(query)).all() == before
    command.upgrade(config, "head")
    with engine.connect() as connection:
        assert connection.execute(sa.text(query)).all() == before
    assert schema_is_current(engine, settings.NEWSLETTER_MIGRATIONS_DIR)


def test_a_brief_sent_before_0021_stays_published_when_its_send_started(db_url, engine, settings):
    slug = seed_brief(engine, 2)
    with session_scope(engine) as session:
        create_send(slug, session=session, settings=settings)
    assert start_due_sends(engine, now=utcnow() + HOUR)
    config = alembic_config(db_url, settings.NEWSLETTER_MIGRATIONS_DIR)
    command.downgrade(config, "0020")
    command.upgrade(config, "head")
    with session_scope(engine) as session:
        [entry] = archive_page(session=session, now=utcnow() + 2 * HOUR).entries
        started = session.exec(select(Send.started_at)).one()
    assert (entry.brief.slug, entry.published_at) == (slug, started)


def test_making_sqlite_ids_never_reused_keeps_every_brief_send_and_ledger_row(
    db_url, engine, settings
):
    """Revision 0022 copies `brief` and `send` into tables declared AUTOINCREMENT (SQLite
    cannot change that in place), and back on the way down: nothing may be lost or
    renumbered, and a send's ledger must still point at it."""
    slug = seed_brief(engine, 3)
    with session_scope(engine) as session:
        create_send(slug, session=session, settings=settings)
    assert start_due_sends(engine, now=utcnow() + HOUR)
    query = (
        "SELECT b.id, b.slug, s.id, s.status, count(d.id) FROM brief b JOIN send s "
        "ON s.brief_id = b.id JOIN delivery d ON d.send_id = s.id GROUP BY b.id, b.slug, "
        "s.id, s.status"
    )
    with engine.connect() as connection:
        before = connection.execute(sa.text(query)).all()
    assert before and before[0][-1] == 3
    config = alembic_config(db_url, settings.NEWSLETTER_MIGRATIONS_DIR)
    command.downgrade(config, "0021")
    with engine.connect() as connection:
        assert connection.execute(sa.text(query)).all() == before
    command.upgrade(config, "head")
    with engine.connect() as connection:
        assert connection.execute(sa.text(query)).all() == before
        if engine.dialect.name == "sqlite":
            schema = connection.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE name IN ('brief', 'send')")
            ).scalars()
            assert all("AUTOINCREMENT" in table for table in schema)
            problems = connection.execute(sa.text("PRAGMA foreign_key_check")).all()
            assert problems == []
    assert schema_is_current(engine, settings.NEWSLETTER_MIGRATIONS_DIR)
