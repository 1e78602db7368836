"""`newsletter topics …` changes at the terminal, each written to the audit log as the
console writes the same change, with the terminal's user as the actor; on both databases.
(They once left no entry: a topic merged away at a terminal vanished without a trace.)"""

from __future__ import annotations

import json

import pytest
from sqlmodel import select
from typer.testing import CliRunner, Result

from newsletter.cli import app
from newsletter.db import session_scope
from newsletter.staff.audit import cli_actor
from newsletter.staff.models import AuditEntry
from subscribers.roster import add_subscriber


@pytest.fixture
def cli(topics, db_url, monkeypatch):
    """`newsletter …` in-process on a database holding japan, energy and food."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    runner = CliRunner()

    def run(*args: str) -> Result:
        result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result

    return run


def _entries(engine) -> list[tuple[str, str, str, str]]:
    with session_scope(engine) as session:
        return [
            (e.actor, e.action, e.target, e.detail)
            for e in session.exec(select(AuditEntry).order_by(AuditEntry.id))
        ]


def test_a_topic_added_at_the_terminal_is_audited_with_the_terminal_user_as_actor(cli, engine):
    cli("topics", "add", "ports", "--name", "Ports", "--keywords", "harbour,berth")
    assert _entries(engine) == [(cli_actor(), "topic.add", "topic ports", "Ports")]
    assert cli_actor().startswith("cli")


def test_a_topic_renamed_at_the_terminal_is_audited_under_its_old_slug(cli, engine):
    cli("topics", "rename", "energy", "energy-security", "--name", "Energy security")
    assert _entries(engine) == [
        (cli_actor(), "topic.rename", "topic energy", "now energy-security (Energy security)")
    ]


def test_a_topic_merged_at_the_terminal_is_audited_with_the_followers_it_moved(cli, engine):
    with session_scope(engine) as session:
        add_subscriber("ann@example.com", session=session, topics=["japan"])
    cli("topics", "merge", "japan", "--into", "energy")
    assert _entries(engine) == [
        (cli_actor(), "topic.merge", "topic japan", "into energy; 1 follower(s) moved")
    ]


def test_hiding_a_topic_at_the_terminal_and_offering_it_again_are_each_audited(cli, engine):
    cli("topics", "hide", "food")
    cli("topics", "hide", "food", "--offer")
    assert _entries(engine) == [
        (cli_actor(), "topic.hide", "topic food", ""),
        (cli_actor(), "topic.offer", "topic food", ""),
    ]


def test_a_topic_typed_by_its_name_at_the_terminal_is_audited_by_its_slug(cli, engine):
    """The CLI takes a topic's display name in any case; the log must not name one topic
    two ways ("topic Energy", "topic energy")."""
    cli("topics", "merge", "JAPAN", "--into", "Energy")
    assert _entries(engine) == [
        (cli_actor(), "topic.merge", "topic japan", "into energy; 0 follower(s) moved")
    ]


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (
            ["add", "ports", "--name", "Ports; «港»", "--keywords", "harbour,berth"],
            {"slug": "ports", "name": "Ports; «港»", "keywords": ["berth", "harbour"]},
        ),
        (
            ["rename", "food", "--name", "Food & farming"],
            {"slug": "food", "name": "Food & farming"},
        ),
        (["hide", "food"], {"slug": "food", "hidden": True}),
    ],
)
def test_a_topic_change_with_json_prints_one_document_of_the_topic_as_it_now_is(
    cli, words, expected
):
    document = json.loads(cli("topics", *words, "--json").stdout)
    assert {key: document[key] for key in expected} == expected


def test_a_merge_with_json_names_the_topic_that_remains_and_the_followers_moved(cli, engine):
    with session_scope(engine) as session:
        add_subscriber("ann@example.com", session=session, topics=["japan"])
    document = json.loads(cli("topics", "merge", "japan", "--into", "Energy", "--json").stdout)
    assert document["merged"] == "japan"
    assert document["into"]["slug"] == "energy"
    assert document["followers_moved"] == 1
