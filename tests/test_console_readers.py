"""The console's subscriber and topic pages through real HTTP, on both databases: find a
reader, open their history, change them (every change audited), import with a dry run
first, export, and the topics page. Visitors see nothing; a forged form changes nothing;
names from the world's data come back escaped."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import timedelta

import pytest
from markupsafe import escape
from sqlmodel import col, select

from newsletter.db import session_scope
from newsletter.models import MailKind, SignupRequest, TransactionalMail
from newsletter.providers.events import EventType
from newsletter.staff.models import AuditEntry
from newsletter.web.limits import CONSOLE_CSV_MAX_BYTES
from subscribers.models import Subscriber, SubscriberStatus, Topic, utcnow
from subscribers.roster import add_subscriber, followed_topics
from subscribers.status import Actor, change_status
from tests.console_support import (  # noqa: F401 - a fixture
    Client,
    cheap_passwords,
    csrf_of,
    make_editor,
)
from tests.readers_support import HOSTILE_NAME, add_readers, event, food_topics, send_brief

pytestmark = pytest.mark.usefixtures("cheap_passwords")


@pytest.fixture
def editor(web, engine):
    url, _ = web
    food_topics(engine)
    add_readers(engine, "ann@example.com", "bob@example.com")
    make_editor(engine)
    client = Client(url)
    assert client.sign_in().status == 303
    return client


def _person(engine, email: str) -> Subscriber:
    with session_scope(engine) as session:
        return session.exec(select(Subscriber).where(Subscriber.email == email)).one()


def _audit(engine) -> list[tuple[str, str]]:
    with session_scope(engine) as session:
        return [
            (e.action, e.target) for e in session.exec(select(AuditEntry).order_by(AuditEntry.id))
        ]


def _mail(engine) -> list[str]:
    with session_scope(engine) as session:
        return [m.kind for m in session.exec(select(TransactionalMail))]


def _set_status(engine, email: str, status: str) -> None:
    with session_scope(engine) as session:
        person = session.exec(select(Subscriber).where(Subscriber.email == email)).one()
        change_status(person, SubscriberStatus(status), actor=Actor.PROVIDER, session=session)


# --- who may see and change -------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/admin/subscribers",
        "/admin/subscribers/1",
        "/admin/subscribers/import",
        "/admin/subscribers/export.csv",
        "/admin/topics",
    ],
)
def test_a_signed_out_visitor_is_sent_to_sign_in_and_sees_no_reader(web, engine, path):
    food_topics(engine)
    add_readers(engine, "ann@example.com")
    answer = Client(web[0]).call(path)
    assert answer.status == 303 and answer.location.startswith("/admin/login")
    assert "ann@example.com" not in answer.body


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/admin/subscribers/{id}/unsubscribe", {}),
        ("/admin/subscribers/{id}/forget", {"confirmed": "yes"}),
        (
            "/admin/subscribers/{id}/edit",
            {"topics": "energy", "cadence": "weekly", "timezone": "UTC"},
        ),
    ],
)
def test_a_post_with_a_forged_csrf_token_changes_nothing(editor, engine, path, fields):
    before = _person(engine, "ann@example.com")
    answer = editor.call(path.format(id=before.id), {"csrf": "forged", **fields})
    after = _person(engine, "ann@example.com")
    assert answer.status == 403
    assert (after.status, after.email, after.cadence) == (
        before.status,
        before.email,
        before.cadence,
    )
    assert _audit(engine)[-1][0] == "staff.sign_in"


def test_a_topic_post_with_a_forged_csrf_token_changes_nothing(editor, engine):
    answer = editor.call("/admin/topics/food/hide", {"csrf": "forged", "hidden": "yes"})
    assert answer.status == 403
    with session_scope(engine) as session:
        assert session.exec(select(Topic).where(Topic.slug == "food")).one().hidden is False


# --- the list --------------------------------------------------------------------------


def _emails_on(body: str) -> list[str]:
    return re.findall(r'href="/admin/subscribers/\d+">([^<]+)</a>', body)


def test_search_finds_a_reader_by_part_of_the_address_or_the_name(editor, engine):
    with session_scope(engine) as session:
        add_subscriber("zed@example.org", session=session, name="Yamada 山田", topics=["energy"])
    assert _emails_on(editor.call("/admin/subscribers?q=BOB").body) == ["bob@example.com"]
    assert _emails_on(editor.call("/admin/subscribers?q=%E5%B1%B1%E7%94%B0").body) == [
        "zed@example.org"
    ]
    # A % is a character to find, not a wildcard.
    assert _emails_on(editor.call("/admin/subscribers?q=%25").body) == []


def test_filters_by_topic_status_cadence_combine(editor, engine):
    with session_scope(engine) as session:
        add_subscriber("cy@example.com", session=session, topics=["energy"], cadence="weekly")
        add_subscriber("dee@example.com", session=session, topics=["all"], cadence="weekly")
    _set_status(engine, "bob@example.com", "bounced")
    assert _emails_on(editor.call("/admin/subscribers?topic=energy").body) == [
        "cy@example.com",
        "dee@example.com",
    ]
    assert _emails_on(editor.call("/admin/subscribers?status=bounced").body) == ["bob@example.com"]
    assert _emails_on(editor.call("/admin/subscribers?cadence=weekly&topic=food").body) == [
        "dee@example.com"
    ]


def test_the_inactive_filter_lists_readers_who_neither_opened_nor_clicked(editor, engine, settings):
    send_id = send_brief(engine, settings)
    from tests.readers_support import active_since

    for email in ("ann@example.com", "bob@example.com"):
        active_since(engine, email, 200)
    event(engine, send_id, "ann@example.com", EventType.OPENED, utcnow() - timedelta(days=5))
    assert _emails_on(editor.call("/admin/subscribers?inactive=90").body) == ["bob@example.com"]


def test_search_ignores_the_case_of_any_alphabet_not_only_ascii(editor, engine):
    """On SQLite, `SØREN` found nobody: its lower() and LIKE fold ASCII only."""
    with session_scope(engine) as session:
        add_subscriber("s@example.com", session=session, name="Søren Ødegård", topics=["food"])
        add_subscriber("y@example.com", session=session, name="Юлия Élodie", topics=["food"])
    assert _emails_on(editor.call("/admin/subscribers?q=S%C3%98REN").body) == ["s@example.com"]
    assert _emails_on(editor.call("/admin/subscribers?q=%D0%AE%D0%9B%D0%98%D0%AF").body) == [
        "y@example.com"
    ]
    assert _emails_on(editor.call("/admin/subscribers?q=%C3%A9LODIE").body) == ["y@example.com"]


def test_paging_goes_on_after_the_last_address_shown_and_never_repeats_one(editor, engine):
    with session_scope(engine) as session:
        for n in range(120):
            add_subscriber(f"r{n:03}@example.net", session=session, topics=["food"])
    seen: list[str] = []
    path = "/admin/subscribers?q=example.net"
    while path:
        page = editor.call(path).body
        assert "122 readers" not in page and "120 readers match" in page
        seen += _emails_on(page)
        found = re.search(r'href="(/admin/subscribers\?[^"]+)" rel="next"', page)
        path = html.unescape(found.group(1)) if found else ""
    assert seen == [f"r{n:03}@example.net" for n in range(120)]


@pytest.mark.parametrize(
    "query",
    [
        "status=nonsense",
        "cadence=hourly",
        "inactive=7",
        "inactive=x",
        "inactive=0",
        "topic=nope",
        "q=" + "a" * 400,
        "q=a%00b",
        "after=a%00",
        "topic=%00",
    ],
)
def test_a_filter_that_cannot_be_asked_is_refused_in_words_not_a_500(editor, query):
    answer = editor.call(f"/admin/subscribers?{query}")
    assert answer.status == 400
    assert 'class="error"' in answer.body


@pytest.mark.parametrize("field", ["q", "status", "topic"])
def test_a_refused_search_is_not_echoed_back_nor_offered_as_a_csv(editor, field):
    """An over-long search came back whole in the form (and in the error) with a link to a
    CSV of it."""
    typed = "zq" * 3_000  # near what a request line may hold
    answer = editor.call(f"/admin/subscribers?{field}={typed}")
    assert answer.status == 400 and 'class="error"' in answer.body
    assert "zqzq" not in answer.body
    assert 'href="/admin/subscribers/export.csv"' in answer.body


# --- one reader ------------------------------------------------------------------------


def test_a_readers_page_shows_history_consent_deliveries_and_their_events(editor, engine, settings):
    send_id = send_brief(engine, settings, "Rice & <prices>")
    event(engine, send_id, "ann@example.com", EventType.OPENED, utcnow(), machine=True)
    event(
        engine, send_id, "ann@example.com", EventType.CLICKED, utcnow(), url="https://example.com/x"
    )
    _set_status(engine, "ann@example.com", "complained")
    page = editor.call(f"/admin/subscribers/{_person(engine, 'ann@example.com').id}").body
    assert "Rice &amp; &lt;prices&gt;" in page
    assert "opened (by a machine)" in page and "https://example.com/x" in page
    assert re.search(r"<td>active</td><td>complained</td><td>provider</td>", page)
    assert "Consent record" in page and "never (machine opens are not counted)" in page


def test_a_hostile_name_renders_escaped_on_the_list_and_the_readers_page(editor, engine):
    with session_scope(engine) as session:
        person = add_subscriber(
            "zoe@example.com", session=session, name=HOSTILE_NAME, topics=["food"]
        )
        reader_id = person.id
    escaped = str(escape(HOSTILE_NAME))  # what Jinja's autoescape writes
    for path in ("/admin/subscribers?q=zoe", f"/admin/subscribers/{reader_id}"):
        body = editor.call(path).body
        assert "<b>&amp;</b>" not in body
        assert escaped in body and "山田 🚀" in body


def test_no_such_reader_is_a_404_page_whatever_the_id(editor):
    for reader_id in ("999999", "99999999999999999999", "abc", "-1"):
        assert editor.call(f"/admin/subscribers/{reader_id}").status == 404


def test_editing_topics_cadence_and_timezone_is_saved_and_audited(editor, engine):
    person = _person(engine, "ann@example.com")
    page = editor.call(f"/admin/subscribers/{person.id}")
    answer = editor.call(
        f"/admin/subscribers/{person.id}/edit",
        [
            ("csrf", csrf_of(page.body)),
            ("topics", "energy"),
            ("topics", "food"),
            ("cadence", "weekly"),
            ("timezone", "Asia/Tokyo"),
        ],
    )
    assert answer.status == 303
    with session_scope(engine) as session:
        after = session.get(Subscriber, person.id)
        assert followed_topics(after, session=session) == ["energy", "food"]
        assert (after.cadence, after.timezone) == ("weekly", "Asia/Tokyo")
    assert _audit(engine)[-1] == ("subscriber.edit", f"subscriber {person.id}")


def test_a_readers_name_is_corrected_from_their_page_and_audited_without_it(editor, engine):
    person = _person(engine, "ann@example.com")
    page = editor.call(f"/admin/subscribers/{person.id}")
    fields = {"csrf": csrf_of(page.body), "topics": "food", "cadence": "immediate"}
    answer = editor.call(
        f"/admin/subscribers/{person.id}/edit",
        {**fields, "timezone": person.timezone, "name": HOSTILE_NAME},
    )
    assert answer.status == 303
    assert _person(engine, "ann@example.com").name == HOSTILE_NAME
    assert escape(HOSTILE_NAME) in editor.call(f"/admin/subscribers/{person.id}").body
    with session_scope(engine) as session:
        entry = session.exec(select(AuditEntry).order_by(col(AuditEntry.id).desc())).first()
    assert entry is not None
    assert (entry.action, entry.detail) == ("subscriber.edit", "name changed")


def test_saving_topics_keeps_a_name_whose_line_breaks_the_form_cannot_show(editor, engine):
    with session_scope(engine) as session:
        person = session.exec(select(Subscriber).where(Subscriber.email == "ann@example.com")).one()
        person.name = "Ann Lee\nHead of Research"
        session.add(person)
    person = _person(engine, "ann@example.com")
    page = editor.call(f"/admin/subscribers/{person.id}")
    sent_back = "Ann LeeHead of Research"  # what a browser's text field sends of it
    answer = editor.call(
        f"/admin/subscribers/{person.id}/edit",
        {
            "csrf": csrf_of(page.body),
            "topics": "energy",
            "cadence": "immediate",
            "timezone": person.timezone,
            "name": sent_back,
        },
    )
    assert answer.status == 303
    after = _person(engine, "ann@example.com")
    assert after.name == "Ann Lee\nHead of Research"
    assert after.all_topics is False


def test_an_edit_with_a_bad_timezone_is_refused_naming_it_and_changes_nothing(editor, engine):
    person = _person(engine, "ann@example.com")
    answer = editor.call(
        f"/admin/subscribers/{person.id}/edit",
        {
            "csrf": editor.csrf(f"/admin/subscribers/{person.id}"),
            "topics": "energy",
            "cadence": "weekly",
            "timezone": "Mars/Olympus",
        },
    )
    assert answer.status == 409 and "timezone" in answer.body
    assert _person(engine, "ann@example.com").cadence == "immediate"


def test_a_pending_readers_page_says_whether_a_confirmation_was_ever_queued(editor, engine):
    with session_scope(engine) as session:
        held = add_subscriber("held@example.com", session=session, status="pending")
    page = editor.call(f"/admin/subscribers/{held.id}").body
    assert "None: no confirmation was ever queued for this reader" in page
    answer = editor.call(
        f"/admin/subscribers/{held.id}/resubscribe",
        {"csrf": editor.csrf(f"/admin/subscribers/{held.id}")},
    )
    assert answer.status == 303
    page = editor.call(f"/admin/subscribers/{held.id}").body
    assert "no confirmation was ever queued" not in page
    assert re.search(r"<td>confirmation</td><td>[^<]+</td><td><span[^>]*>queued</span>", page)


def test_unsubscribe_then_resubscribe_queues_a_confirmation_and_both_are_audited(editor, engine):
    reader_id = _person(engine, "ann@example.com").id
    path = f"/admin/subscribers/{reader_id}"
    unmeant = editor.call(f"{path}/unsubscribe", {"csrf": editor.csrf(path)})
    assert unmeant.status == 409 and _person(engine, "ann@example.com").status == "active"
    answer = editor.call(f"{path}/unsubscribe", {"csrf": editor.csrf(path), "sure": "yes"})
    assert answer.status == 303
    answer = editor.call(f"{path}/resubscribe", {"csrf": editor.csrf(path)})
    assert answer.status == 303 and "notice=resubscribed" in answer.location
    assert _person(engine, "ann@example.com").status == "pending"
    assert _mail(engine) == [MailKind.CONFIRMATION]
    assert [a for a, _ in _audit(engine)][-2:] == [
        "subscriber.unsubscribe",
        "subscriber.resubscribe",
    ]


@pytest.mark.parametrize("status", ["complained", "bounced"])
def test_resubscribing_a_reader_whose_mailbox_said_no_is_refused_and_mails_nothing(
    editor, engine, status
):
    _set_status(engine, "ann@example.com", status)
    reader_id = _person(engine, "ann@example.com").id
    path = f"/admin/subscribers/{reader_id}"
    answer = editor.call(f"{path}/resubscribe", {"csrf": editor.csrf(path)})
    assert answer.status == 409
    assert f"is {status}" in answer.body
    assert _person(engine, "ann@example.com").status == status
    assert _mail(engine) == []


def test_forget_asks_first_and_only_the_confirmed_post_erases(editor, engine):
    reader_id = _person(engine, "ann@example.com").id
    path = f"/admin/subscribers/{reader_id}"
    confirm = editor.call(f"{path}/forget")
    assert confirm.status == 200 and "cannot be undone" in confirm.body
    unconfirmed = editor.call(f"{path}/forget", {"csrf": csrf_of(confirm.body)})
    assert unconfirmed.status == 303 and unconfirmed.location.endswith("/forget")
    assert _person(engine, "ann@example.com").status == "active"
    done = editor.call(f"{path}/forget", {"csrf": csrf_of(confirm.body), "confirmed": "yes"})
    assert done.status == 303
    with session_scope(engine) as session:
        assert session.get(Subscriber, reader_id).status == "forgotten"
    assert _audit(engine)[-1] == ("subscriber.forget", f"subscriber {reader_id}")
    assert editor.call(path).status == 404


# --- import and export -----------------------------------------------------------------

CSV = (
    "email,name,topics,cadence,timezone\n"
    'new@example.com,"Doe, Jane ""JD""",food,,\n'
    "not-an-address,Bad,food,,\n"
    "ann@example.com,Ann,energy,weekly,\n"
    "x@example.com,X,nosuchtopic,,\n"
)


def test_an_import_shows_the_dry_run_by_line_and_changes_nothing_until_applied(editor, engine):
    page = editor.upload(
        "/admin/subscribers/import",
        editor.csrf("/admin/subscribers/import"),
        "list.csv",
        CSV.encode(),
    )
    assert page.status == 200, page.body
    assert "nothing changed yet" in page.body
    assert re.search(r"<td>3</td><td>not-an-address</td><td>skipped</td>", page.body)
    assert re.search(
        r"<td>5</td><td>x@example.com</td><td>skipped</td><td>[^<]*nosuchtopic", page.body
    )
    assert re.search(r"<td>4</td><td>ann@example.com</td><td>updated</td>", page.body)
    with session_scope(engine) as session:
        assert (
            session.exec(select(Subscriber).where(Subscriber.email == "new@example.com")).first()
            is None
        )
    data = re.search(r'name="data" value="([^"]+)"', page.body).group(1)
    applied = editor.call(
        "/admin/subscribers/import/apply",
        {"csrf": csrf_of(page.body), "data": data, "filename": "list.csv"},
    )
    assert applied.status == 200 and "Imported list.csv" in applied.body
    assert _person(engine, "new@example.com").name == 'Doe, Jane "JD"'
    assert _person(engine, "ann@example.com").cadence == "weekly"
    assert _audit(engine)[-1] == ("subscriber.import", "list.csv")


def test_an_import_preview_names_the_readers_it_would_add(editor):
    """The preview said "2 | (empty) | added": staff could not see whom an import brings in
    before applying it."""
    page = editor.upload(
        "/admin/subscribers/import",
        editor.csrf("/admin/subscribers/import"),
        "list.csv",
        CSV.encode(),
    )
    assert re.search(r"<td>2</td><td>new@example.com</td><td>added</td>", page.body)


def test_an_import_of_many_names_fifty_added_readers_then_counts_the_rest_by_line(editor):
    rows = "".join(f"n{n}@example.com,N,food,,\n" for n in range(60))
    page = editor.upload(
        "/admin/subscribers/import",
        editor.csrf("/admin/subscribers/import"),
        "list.csv",
        ("email,name,topics,cadence,timezone\n" + rows).encode(),
    )
    assert page.body.count("</td><td>added</td>") == 51
    assert re.search(r"<td>51</td><td>n49@example.com</td><td>added</td>", page.body)
    assert "<td>52–61</td><td>10 more</td><td>added</td>" in page.body
    assert "n50@example.com" not in page.body


def test_an_import_requiring_confirmation_queues_one_per_new_reader_and_says_so(editor, engine):
    """The checkbox promised a confirmation, and none was ever queued: the readers stayed
    pending with nothing to confirm."""
    page = editor.upload(
        "/admin/subscribers/import",
        editor.csrf("/admin/subscribers/import"),
        "list.csv",
        CSV.encode(),
        {"require_confirmation": "yes"},
    )
    assert "1 new reader would be added as pending and sent a confirmation" in page.body
    assert _mail(engine) == []
    data = re.search(r'name="data" value="([^"]+)"', page.body).group(1)
    applied = editor.call(
        "/admin/subscribers/import/apply",
        {
            "csrf": csrf_of(page.body),
            "data": data,
            "filename": "list.csv",
            "require_confirmation": "yes",
        },
    )
    assert "1 new reader added as pending: a confirmation is queued" in applied.body
    assert (
        "as pending, until they confirm (see above for who is sent a confirmation)" in applied.body
    )
    assert _person(engine, "new@example.com").status == "pending"
    assert _mail(engine) == [MailKind.CONFIRMATION]


def test_an_upload_over_the_consoles_limit_is_refused_naming_the_limit(editor, engine):
    big = CSV.encode() + b"a@example.com,A,food,,\n" * (CONSOLE_CSV_MAX_BYTES // 20)
    assert len(big) < 2**20  # under the body limit: the import's own limit answers
    answer = editor.upload(
        "/admin/subscribers/import", editor.csrf("/admin/subscribers/import"), "big.csv", big
    )
    assert answer.status == 413
    assert "512 KB" in answer.body and "newsletter subscribers import" in answer.body


def test_an_apply_with_a_forged_token_imports_nothing(editor, engine):
    import base64

    answer = editor.call(
        "/admin/subscribers/import/apply",
        {"csrf": "forged", "data": base64.b64encode(CSV.encode()).decode(), "filename": "l.csv"},
    )
    assert answer.status == 403
    with session_scope(engine) as session:
        assert (
            session.exec(select(Subscriber).where(Subscriber.email == "new@example.com")).first()
            is None
        )


def test_export_downloads_the_list_in_the_import_format_and_is_audited(editor, engine):
    with session_scope(engine) as session:
        add_subscriber(
            "zoe@example.com", session=session, name="=cmd|' /C calc'!A0", topics=["food"]
        )
    answer = editor.call("/admin/subscribers/export.csv")
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = {row[0]: row for row in csv.reader(io.StringIO(answer.body.removeprefix("\ufeff")))}
    assert set(rows) == {"email", "ann@example.com", "bob@example.com", "zoe@example.com"}
    assert rows["zoe@example.com"][1].startswith("'=")
    assert _audit(engine)[-1][0] == "subscriber.export"


def test_a_downloaded_list_starts_with_a_byte_order_mark_so_excel_reads_it_as_utf8(editor):
    """Without the mark, Excel read the file in the machine's code page: 山田 and Zoë came
    out as mojibake."""
    answer = editor.call("/admin/subscribers/export.csv")
    assert answer.body.startswith("\ufeffemail,name,topics,")


def test_export_holds_the_readers_the_lists_filters_find_and_the_page_links_to_it(editor, engine):
    """Staff who narrowed the list to one topic and searched a name once got the whole list
    in the file."""
    add_readers(engine, "zoe@example.com", "zed@example.com", topics=("food",))
    page = editor.call("/admin/subscribers?topic=food&q=z").body
    link = re.search(r'href="(/admin/subscribers/export\.csv[^"]*)"', page).group(1)
    answer = editor.call(html.unescape(link))
    assert answer.status == 200
    rows = [row[0] for row in csv.reader(io.StringIO(answer.body))][1:]
    assert sorted(rows) == ["zed@example.com", "zoe@example.com"]
    assert _audit(engine)[-1] == ("subscriber.export", "a search; topic food")


def test_an_export_searched_by_address_keeps_the_address_out_of_the_audit_log(editor, engine):
    """The audit log names readers by id only; the search box once went into it as typed."""
    answer = editor.call("/admin/subscribers/export.csv?q=ann%40example.com")
    assert answer.status == 200 and "ann@example.com" in answer.body
    with session_scope(engine) as session:
        entries = session.exec(select(AuditEntry)).all()
    assert entries and not any("ann" in repr(entry.model_dump()) for entry in entries)


def test_export_refuses_a_filter_it_cannot_apply_in_one_line(editor):
    answer = editor.call("/admin/subscribers/export.csv?status=asleep")
    assert (answer.status, answer.body) == (400, "no status 'asleep'\n")


@pytest.mark.parametrize("days", ["0", "7", "x", "%EF%BC%91%EF%BC%92"])  # last: fullwidth 12
def test_export_refuses_an_inactivity_it_does_not_offer_rather_than_export_everyone(editor, days):
    answer = editor.call(f"/admin/subscribers/export.csv?inactive={days}")
    assert (answer.status, answer.body) == (400, "inactive: choose 30, 90, 180 or 365 days\n")


# --- topics ----------------------------------------------------------------------------


def _topic(engine, slug: str) -> Topic | None:
    with session_scope(engine) as session:
        return session.exec(select(Topic).where(Topic.slug == slug)).first()


def test_the_topics_page_counts_readers_who_follow_everything_beside_those_by_name(editor, engine):
    """The subscribers page's topic filter counts them (a brief reaches them); the topics
    page's counts by name once read as if nobody would get a brief on Energy."""
    add_readers(engine, "all@example.com", "every@example.com", topics=("all",))
    page = editor.call("/admin/topics").body
    row = page.split('id="topic-energy"')[1].split("</tr>")[0]
    assert "<td>0</td>" in row
    assert "besides them, 2 readers follow every topic" in page


def test_topics_can_be_added_renamed_given_keywords_and_merged_each_audited(editor, engine):
    csrf = editor.csrf("/admin/topics")
    assert (
        editor.call(
            "/admin/topics", {"csrf": csrf, "slug": "lng", "name": "LNG", "keywords": "gas, LNG"}
        ).status
        == 303
    )
    assert (
        editor.call("/admin/topics/lng/keywords", {"csrf": csrf, "keywords": "gas,tanker"}).status
        == 303
    )
    assert _topic(engine, "lng").keywords == "gas,tanker"
    assert (
        editor.call(
            "/admin/topics/energy/rename",
            {"csrf": csrf, "new_slug": "energy-security", "name": "Energy security"},
        ).status
        == 303
    )
    assert _topic(engine, "energy-security").name == "Energy security"
    assert (
        editor.call("/admin/topics/lng/merge", {"csrf": csrf, "into": "energy-security"}).status
        == 303
    )
    assert _topic(engine, "lng") is None
    assert [a for a, _ in _audit(engine)][-4:] == [
        "topic.add",
        "topic.keywords",
        "topic.rename",
        "topic.merge",
    ]


def test_a_bad_topic_change_is_refused_in_words(editor, engine):
    csrf = editor.csrf("/admin/topics")
    answer = editor.call("/admin/topics", {"csrf": csrf, "slug": "Bad Slug!", "name": "x"})
    assert answer.status == 400 and "topic slug" in answer.body
    answer = editor.call("/admin/topics/food/merge", {"csrf": csrf, "into": "food"})
    assert answer.status == 400 and "into itself" in answer.body


def test_a_hidden_topic_is_not_offered_publicly_but_keeps_its_followers(editor, engine, web):
    csrf = editor.csrf("/admin/topics")
    assert editor.call("/admin/topics/energy/hide", {"csrf": csrf, "hidden": "yes"}).status == 303
    with session_scope(engine) as session:
        add_subscriber("cy@example.com", session=session, topics=["energy", "food"])
    form = Client(web[0]).call("/subscribe").body
    assert 'value="food"' in form and 'value="energy"' not in form
    with session_scope(engine) as session:
        person = session.exec(select(Subscriber).where(Subscriber.email == "cy@example.com")).one()
        assert followed_topics(person, session=session) == ["energy", "food"]
    assert "Energy (hidden)" in editor.call("/admin/subscribers").body


def _hide_energy(engine) -> None:
    from subscribers.topics import set_hidden

    with session_scope(engine) as session:
        set_hidden("energy", True, session=session)


def test_a_reader_saving_preferences_keeps_a_hidden_topic_they_follow(web, engine):
    from tests.web_support import call, form_csrf, token

    url, settings = web
    food_topics(engine)
    with session_scope(engine) as session:
        reader_id = add_subscriber("cy@example.com", session=session, topics=["energy", "food"]).id
    _hide_energy(engine)
    page_url = f"{url}/preferences/{token(settings, reader_id)}"
    _, page, _ = call(page_url)
    assert 'value="food"' in page and 'value="energy"' not in page
    fields = [
        ("csrf", form_csrf(page)),
        ("topics", "food"),
        ("cadence", "weekly"),
        ("timezone", "UTC"),
    ]
    status, _, _ = call(page_url, data=fields)
    assert status == 200
    with session_scope(engine) as session:
        person = session.get(Subscriber, reader_id)
        assert (followed_topics(person, session=session), person.cadence) == (
            ["energy", "food"],
            "weekly",
        )


def test_a_sign_up_naming_a_hidden_topic_is_refused_as_not_offered(web, engine):
    from tests.web_support import subscribe

    url, _ = web
    food_topics(engine)
    _hide_energy(engine)
    status, body, _ = subscribe(
        url, email="new@example.com", topics=["energy"], cadence="immediate", timezone="UTC"
    )
    assert status == 400, body
    with session_scope(engine) as session:
        assert list(session.exec(select(SignupRequest))) == []


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/admin/topics", {"slug": "ok", "name": "bad\x00name"}),
        ("/admin/topics", {"slug": "ok", "name": "OK", "keywords": "a,b\x00c"}),
        ("/admin/topics/food/rename", {"new_slug": "", "name": "x\x00"}),
        ("/admin/topics/fo%00od/keywords", {"keywords": "rice"}),
        ("/admin/topics/food/merge", {"into": "en\x00ergy"}),
    ],
)
def test_a_control_character_in_a_topic_form_is_refused_in_words_not_a_500(
    editor, engine, path, fields
):
    answer = editor.call(path, {"csrf": editor.csrf("/admin/topics"), **fields})
    assert answer.status == 400 and 'class="error"' in answer.body
    assert _topic(engine, "ok") is None and _topic(engine, "food").name == "Food"


def test_an_unreadable_upload_is_named_as_staff_chose_it_not_by_a_server_folder(editor):
    page = editor.upload(
        "/admin/subscribers/import", editor.csrf("/admin/subscribers/import"), "empty.csv", b""
    )
    assert "empty.csv:1: the file is empty" in page.body
    assert "newsletter-import-" not in page.body and "/tmp/" not in page.body  # noqa: S108


def test_head_on_a_console_export_does_not_build_or_audit_it(editor, engine):
    """HEAD ran the GET: the whole export was built and logged for a file nobody got."""
    answer = editor.call("/admin/subscribers/export.csv", method="HEAD")
    assert answer.status == 405
    assert "subscriber.export" not in [action for action, _ in _audit(engine)]
