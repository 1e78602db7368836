"""Storing briefs: topics resolved, the same file twice is a no-op, slugs never overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.briefs import add_brief, list_briefs, parse_brief, parse_brief_file
from newsletter.db import session_scope
from newsletter.errors import ConflictError
from subscribers.errors import UnknownTopicError
from subscribers.topics import add_topic

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def with_topics(engine):
    with session_scope(engine) as session:
        for slug in ("food", "trade", "shipping"):
            add_topic(slug, slug.title(), session=session)


def test_front_matter_topics_are_attached(engine, with_topics):
    with session_scope(engine) as session:
        added = add_brief(parse_brief_file(FIXTURES / "front-matter.md"), session=session)
    assert [t.slug for t in added.topics] == ["food", "trade"]


def test_staff_topics_replace_the_files_own(engine, with_topics):
    with session_scope(engine) as session:
        added = add_brief(
            parse_brief_file(FIXTURES / "front-matter.md"), session=session, topics=["shipping"]
        )
    assert [t.slug for t in added.topics] == ["shipping"]


def test_an_unknown_topic_refuses_the_brief_and_stores_nothing(engine, with_topics):
    with pytest.raises(UnknownTopicError, match="'ports'"), session_scope(engine) as session:
        add_brief(
            parse_brief_file(FIXTURES / "firm-layout.txt"),
            session=session,
            topics=["shipping", "ports"],
        )
    with session_scope(engine) as session:
        assert list_briefs(session=session) == []


def test_adding_the_same_file_twice_changes_nothing(engine, with_topics):
    parsed = parse_brief_file(FIXTURES / "firm-layout.txt")
    with session_scope(engine) as session:
        first = add_brief(parsed, session=session, topics=["shipping"])
    with session_scope(engine) as session:
        again = add_brief(parsed, session=session, topics=["shipping"])
        assert len(list_briefs(session=session)) == 1
    assert again.created is False and again.brief.id == first.brief.id


def test_new_content_under_a_drafts_slug_updates_that_draft(engine, with_topics):
    with session_scope(engine) as session:
        first = add_brief(
            parse_brief("1 May 2026\n\n## Same title\n\nFirst body.\n", source_name="a.txt"),
            session=session,
        )
    with session_scope(engine) as session:
        again = add_brief(
            parse_brief("1 May 2026\n\n## Same title\n\nSecond body.\n", source_name="b.txt"),
            session=session,
        )
        assert [b.body for b in list_briefs(session=session)] == ["Second body."]
    assert again.updated and again.brief.id == first.brief.id


def test_a_corrected_file_naming_no_topics_keeps_the_topics_staff_chose(engine, with_topics):
    """Re-uploaded with a typo fixed, the draft lost its console-chosen topics and went
    only to readers of every topic."""
    with session_scope(engine) as session:
        add_brief(parse_brief("1 May 2026\n\n## Title\n\nTypo hre.\n"), session=session)
    with session_scope(engine) as session:
        chosen = add_brief(
            parse_brief("1 May 2026\n\n## Title\n\nTypo hre.\n"),
            session=session,
            topics=["food", "trade"],
        )
        assert chosen.topics_changed
    with session_scope(engine) as session:
        again = add_brief(parse_brief("1 May 2026\n\n## Title\n\nTypo here.\n"), session=session)
    assert again.updated and [t.slug for t in again.topics] == ["food", "trade"]


def test_a_corrected_file_naming_topics_replaces_them(engine, with_topics):
    with session_scope(engine) as session:
        add_brief(parse_brief("1 May 2026\n\n## Title\n\nOne.\n"), session=session, topics=["food"])
    with session_scope(engine) as session:
        named = "---\ntitle: Title\ndate: 2026-05-01\ntopics: [shipping]\n---\n\nTwo.\n"
        again = add_brief(parse_brief(named), session=session)
    assert again.updated and [t.slug for t in again.topics] == ["shipping"]


def test_a_retitled_file_whose_new_slug_another_brief_has_is_refused(engine, with_topics):
    with session_scope(engine) as session:
        add_brief(
            parse_brief("1 May 2026\n\n## One\n\nBody.\n", source_name="one.txt"), session=session
        )
        add_brief(
            parse_brief("1 May 2026\n\n## Two\n\nBody.\n", source_name="two.txt"), session=session
        )
    with (
        pytest.raises(ConflictError, match="slug '2026-05-01-two', which brief 2 already has"),
        session_scope(engine) as session,
    ):
        add_brief(
            parse_brief("1 May 2026\n\n## Two\n\nBody!\n", source_name="one.txt"), session=session
        )
