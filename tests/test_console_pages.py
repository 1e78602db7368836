"""The console's pages through real HTTP: upload and edit drafts, preview, test-send to
staff only, the confirm step's figures and warnings, scheduling in the firm's zone, and the
send controls, each written to the audit log."""

from __future__ import annotations

import ast
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

import newsletter
from newsletter.briefs import add_brief, brief_topics, parse_brief, parse_brief_file
from newsletter.briefs.source import brief_source
from newsletter.db import session_scope
from newsletter.models import Brief, Delivery, MailKind, MailStatus, Send, TransactionalMail
from newsletter.providers.base import Batch, BatchResult, Outcome
from newsletter.providers.memory import MemoryTransport
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.sending.dispatcher import Dispatcher
from newsletter.sending.plan import start_due_sends
from newsletter.sending.transactional import queue_mail, queue_test_copy, send_queued_mail
from newsletter.staff.audit import ACTION_WORDS, recent, record
from newsletter.web.console.routes.sends import ACTIONS as SEND_ACTIONS
from subscribers.models import SubscriberStatus as S
from subscribers.models import utcnow
from subscribers.roster import add_subscriber, get_subscriber
from subscribers.status import Actor, change_status
from subscribers.topics import add_topic
from tests.console_support import (  # noqa: F401 - a fixture
    EDITOR,
    Client,
    cheap_passwords,
    csrf_of,
    make_editor,
)

pytestmark = pytest.mark.usefixtures("cheap_passwords")
FIXTURES = Path(__file__).parent / "fixtures"
BRIEF = "---\ntitle: {title}\ndate: 2026-06-10\ntopics: [food]\n---\n\nRice rose again.\n"


@pytest.fixture
def editor(web, engine):
    url, _ = web
    with session_scope(engine) as session:
        add_topic("food", "Food", session=session)
        add_subscriber("ann@example.com", session=session, name="Ann", topics=["food"])
        add_subscriber("dan@example.com", session=session, topics=["food"], cadence="daily")
    make_editor(engine)
    client = Client(url)
    assert client.sign_in().status == 303
    return client


def _write(editor, title="Rice prices") -> str:
    answer = editor.call(
        "/admin/briefs/write", {"csrf": editor.csrf(), "source": BRIEF.format(title=title)}
    )
    assert answer.status == 303, answer.body
    return answer.location.split("?")[0]


def _schedule(editor, brief_path, **fields):
    page = editor.call(brief_path)
    return editor.call(f"{brief_path}/schedule", {"csrf": csrf_of(page.body), **fields})


def _sends(engine):
    with session_scope(engine) as session:
        return list(session.exec(select(Send).order_by(Send.id)))


def _actions(engine):
    with session_scope(engine) as session:
        return [entry.action for entry in recent(session)]


def _finish(engine, settings):
    Dispatcher(engine, settings, SendGridTransport.from_settings(settings)).work_due()


def test_an_uploaded_file_becomes_a_draft_and_a_bad_one_is_refused_naming_the_line(editor, engine):
    bad = editor.upload(
        "/admin/briefs/upload",
        editor.csrf("/admin/briefs/new"),
        "bad.txt",
        b"1 May 2026\n\nNo heading here.\n",
    )
    assert bad.status == 400 and "bad.txt:3: no title" in bad.body
    good = editor.upload(
        "/admin/briefs/upload",
        editor.csrf("/admin/briefs/new"),
        "rice.md",
        BRIEF.format(title="Rice 🍚 <b>prices</b>").encode(),
    )
    assert good.status == 303
    page = editor.call(good.location)
    assert "Rice 🍚 &lt;b&gt;prices&lt;/b&gt;" in page.body and "status-draft" in page.body


def test_the_preview_is_the_readers_email_under_its_own_policy_light_and_dark(editor):
    brief = _write(editor)
    light = editor.call(f"{brief}/email?reader=ann@example.com")
    dark = editor.call(f"{brief}/email?reader=ann@example.com&dark=1")
    assert "You receive this email as ann@example.com" in light.body
    policy = light.headers["content-security-policy"]
    assert "sandbox" in policy and "script-src" not in policy and "frame-ancestors 'self'" in policy
    assert "prefers-color-scheme: dark" in light.body and "@media all" in dark.body
    page = editor.call(f"{brief}?reader=nobody@example.com")
    assert "no reader nobody@example.com: the sample reader instead" in page.body
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_previewing_as_a_reader_of_none_of_its_topics_says_they_would_not_get_it(editor, engine):
    """The preview showed the email "as" a reader a send would pass by, and said nothing."""
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
        add_subscriber("eve@example.com", session=session, topics=["energy"])
    page = editor.call(f"{_write(editor)}?reader=eve@example.com")
    assert (
        '<p class="warning">This reader would not get this brief: they follow none of its '
        "topics (Food)." in page.body
    )


@pytest.mark.parametrize(
    ("status", "words"),
    [("unsubscribed", "they unsubscribed"), ("bounced", "their address bounced")],
)
def test_previewing_as_a_reader_no_brief_goes_to_says_why_they_would_not_get_it(
    editor, engine, status, words
):
    with session_scope(engine) as session:
        person = get_subscriber("ann@example.com", session=session)
        change_status(person, S(status), actor=Actor.PROVIDER, session=session)
    page = editor.call(f"{_write(editor)}?reader=ann@example.com")
    assert f'<p class="warning">This reader would not get this brief: {words}.' in page.body


@pytest.mark.parametrize("reader", ["ann@example.com", "all@example.com", "nobody@example.com"])
def test_previewing_as_a_reader_who_would_get_it_or_as_the_sample_warns_of_nothing(
    editor, engine, reader
):
    with session_scope(engine) as session:
        add_subscriber("all@example.com", session=session, topics=["all"])
    page = editor.call(f"{_write(editor)}?reader={reader}")
    assert "would not get this brief" not in page.body


def test_a_test_copy_is_queued_for_the_worker_and_only_for_staff(editor, engine):
    brief = _write(editor)
    refused = editor.call(
        f"{brief}/test-send", {"csrf": editor.csrf(brief), "to": "stranger@example.com"}
    )
    assert refused.status == 400 and "staff accounts only" in refused.body
    queued = editor.call(f"{brief}/test-send", {"csrf": editor.csrf(brief), "to": EDITOR})
    assert queued.status == 303 and queued.location.endswith("notice=test_queued")
    with session_scope(engine) as session:
        [mail] = session.exec(select(TransactionalMail)).all()
    assert (mail.kind, mail.to_email, mail.status) == (MailKind.TEST_COPY, EDITOR, "queued")
    assert "brief.test_send" in _actions(engine)


def test_the_confirm_step_says_who_it_reaches_and_schedules_only_when_confirmed(editor, engine):
    brief = _write(editor)
    confirm = _schedule(editor, brief, mode="now")
    assert (
        "It reaches <strong>1</strong> reader now and <strong>1</strong> through digests."
        in confirm.body
    )
    assert "under Gmail" in confirm.body and "second send" not in confirm.body
    assert _sends(engine) == []
    done = editor.call(
        f"{brief}/schedule", {"csrf": csrf_of(confirm.body), "mode": "now", "confirmed": "yes"}
    )
    assert done.status == 303 and done.location == "/admin/sends/1?notice=scheduled"
    [send] = _sends(engine)
    assert send.status == "scheduled"
    assert _actions(engine)[0] == "brief.schedule"


def test_a_time_in_a_zone_and_each_readers_local_time_are_scheduled_as_asked(editor, engine):
    first, second = _write(editor, "One"), _write(editor, "Two")
    _schedule(editor, first, mode="at", at="2099-01-02T07:00", zone="Asia/Tokyo", confirmed="yes")
    _schedule(editor, second, mode="local", local_time="07:30", confirmed="yes")
    at, local = _sends(engine)
    assert at.scheduled_at == datetime(2099, 1, 1, 22, 0, tzinfo=UTC)
    assert local.local_time == "07:30"
    # Waiting for its time: the page says when, not "Time to go —".
    progress = json.loads(editor.call("/admin/sends/1/progress.json").body)
    assert progress["words"]["eta"] == "next readers due 2099-01-01 22:00 UTC"
    wrong = _schedule(editor, first, mode="at", at="tomorrow", zone="UTC")
    assert wrong.status == 400


def test_a_time_in_the_past_is_refused_at_the_confirm_step(editor, engine):
    """The confirm step showed "at 2020-01-01 07:00 UTC" and a Schedule button."""
    brief = _write(editor)
    past = _schedule(editor, brief, mode="at", at="2020-01-01T07:00", zone="UTC")
    assert past.status == 400 and "is in the past" in past.body
    assert "Schedule it" not in past.body and _sends(engine) == []


def test_the_confirm_step_gives_a_zones_time_in_utc_too(editor, engine):
    brief = _write(editor)
    confirm = _schedule(editor, brief, mode="at", at="2099-01-02T07:00", zone="Asia/Tokyo")
    assert "at 2099-01-02 07:00 Asia/Tokyo (2099-01-01 22:00 UTC)" in confirm.body


def test_a_second_send_is_warned_about_and_needs_saying_so(editor, engine, web):
    _, settings = web
    brief = _write(editor)
    _schedule(editor, brief, mode="now", confirmed="yes")
    _finish(engine, settings)
    assert '<h2 id="schedule-h">Send it again</h2>' in editor.call(brief).body
    confirm = _schedule(editor, brief, mode="now")
    assert "This would be a second send." in confirm.body
    assert "<strong>1</strong> readers now" not in confirm.body  # Ann has it already
    unticked = _schedule(editor, brief, mode="now", confirmed="yes")
    assert "Tick this to send it a second time" in unticked.body
    assert len(_sends(engine)) == 1


def test_a_brief_gmail_would_clip_cannot_be_scheduled(editor, engine):
    long = (
        "---\ntitle: Long\ndate: 2026-06-10\ntopics: [food]\n---\n\n"
        + ("A sentence of a very long brief that goes on. " * 40 + "\n\n") * 60
    )
    answer = editor.call("/admin/briefs/write", {"csrf": editor.csrf(), "source": long})
    brief = answer.location.split("?")[0]
    confirm = _schedule(editor, brief, mode="now")
    assert "clipping limit" in confirm.body and "Schedule it" not in confirm.body


def test_a_draft_is_edited_in_the_console_and_a_sent_one_is_refused(editor, engine, web):
    _, settings = web
    brief = _write(editor, "Rice prics")
    source = editor.call(f"{brief}/edit")
    assert "title: Rice prics" in source.body
    edited = editor.call(
        f"{brief}/edit", {"csrf": csrf_of(source.body), "source": BRIEF.format(title="Rice prices")}
    )
    assert edited.status == 303
    with session_scope(engine) as session:
        assert [b.title for b in session.exec(select(Brief))] == ["Rice prices"]
    _schedule(editor, brief, mode="now", confirmed="yes")
    _finish(engine, settings)
    refused = editor.call(
        f"{brief}/edit", {"csrf": editor.csrf(brief), "source": BRIEF.format(title="Changed")}
    )
    assert refused.status == 400 and "a sent brief cannot change" in refused.body
    deleted = editor.call(f"{brief}/delete", {"csrf": editor.csrf(brief), "sure": "yes"})
    assert deleted.status == 409


def test_a_draft_is_deleted_from_the_console(editor, engine):
    brief = _write(editor)
    answer = editor.call(f"{brief}/delete", {"csrf": editor.csrf(brief), "sure": "yes"})
    assert answer.status == 303 and answer.location == "/admin/briefs?notice=deleted"
    with session_scope(engine) as session:
        assert session.exec(select(Brief)).all() == []
    assert _actions(engine)[0] == "brief.delete"


def test_a_send_is_paused_resumed_and_cancelled_from_its_page(editor, engine):
    brief = _write(editor)
    _schedule(editor, brief, mode="at", at="2099-01-02T07:00", zone="UTC", confirmed="yes")
    for action, status in (("pause", "paused"), ("resume", "scheduled"), ("cancel", "cancelled")):
        fields = {"csrf": editor.csrf("/admin/sends/1"), "sure": "yes"}
        answer = editor.call(f"/admin/sends/1/{action}", fields)
        assert answer.status == 303, answer.body
        progress = json.loads(editor.call("/admin/sends/1/progress.json").body)
        assert progress["status"] == status
        assert progress["words"]["error"] == "none"  # a pause by staff is no error
    again = editor.call("/admin/sends/1/resume", {"csrf": editor.csrf("/admin/sends/1")})
    assert again.status == 409 and "only a paused send can be resumed" in again.body
    assert _actions(engine)[:3] == ["send.cancel", "send.resume", "send.pause"]
    assert "status-draft" in editor.call(brief).body  # cancelled before it started


def test_the_sends_page_shows_progress_in_words(editor, engine, web):
    _, settings = web
    brief = _write(editor)
    _schedule(editor, brief, mode="now", confirmed="yes")
    _finish(engine, settings)
    page = editor.call("/admin/sends/1")
    assert re.search(r"1 of 1 settled \(1 sent, 0 failed, 0 unknown, 0 waiting\)", page.body)
    progress = json.loads(editor.call("/admin/sends/1/progress.json").body)
    assert progress["done"] is True and progress["words"]["error"] == "none"


def test_the_dashboard_shows_the_list_and_the_last_sends(editor, engine, web):
    _, settings = web
    _schedule(editor, _write(editor), mode="now", confirmed="yes")
    _finish(engine, settings)
    page = editor.call("/admin/")
    assert '<strong class="big">2</strong> active readers' in page.body
    assert "<strong>+2</strong> over 30 days (2 became active, 0 stopped being active)" in page.body
    assert 'href="/admin/sends/1"' in page.body


def test_the_dashboards_change_over_30_days_is_the_change_in_active_readers(editor, engine):
    """Readers who joined and left within the window once counted only as leaving: a list
    that grew by two said it shrank."""
    with session_scope(engine) as session:
        for n in range(4):
            add_subscriber(f"new{n}@example.com", session=session, topics=["food"])
        for n, wanted in ((0, S.UNSUBSCRIBED), (1, S.COMPLAINED)):
            person = get_subscriber(f"new{n}@example.com", session=session)
            change_status(person, wanted, actor=Actor.PROVIDER, session=session)
    page = editor.call("/admin/").body
    # The editor fixture's two readers and two of the four new ones are active.
    assert '<strong class="big">4</strong> active readers' in page
    assert "<strong>+4</strong> over 30 days (6 became active, 2 stopped being active)" in page


def test_the_dashboard_says_whether_confirmations_are_going_out(editor, engine):
    """After an import asking readers to confirm, staff had no way to see the emails go,
    or a provider refusing them, short of the worker's log."""
    now = utcnow()
    with session_scope(engine) as session:
        pending = add_subscriber(
            "p@example.com", session=session, topics=["food"], status="pending"
        )
        rows = [
            (MailStatus.QUEUED, now - timedelta(minutes=5), ""),
            (MailStatus.QUEUED, now, ""),
            (MailStatus.SENT, now - timedelta(hours=1), ""),
            (MailStatus.SENT, now - timedelta(days=2), ""),  # older than a day: not counted
            (MailStatus.FAILED, now - timedelta(hours=2), "400: older words"),
            (MailStatus.FAILED, now - timedelta(hours=1), "400: to.email: <not> valid"),
            (MailStatus.SKIPPED, now, ""),
        ]
        for status, due, error in rows:
            session.add(
                TransactionalMail(
                    kind=MailKind.CONFIRMATION,
                    subscriber_id=pending.id,
                    status=status,
                    not_before=due,
                    error=error,
                )
            )
    page = editor.call("/admin/").body
    assert "<strong>2</strong> waiting for the worker (the longest since " in page
    assert "in the last 24 hours 1 sent, 2 failed." in page
    assert ">1 reader has not confirmed yet</a>" in page
    assert "The last failure: 400: to.email: &lt;not&gt; valid" in page


def test_the_dashboard_counts_a_backlog_sent_today_and_not_staffs_test_copies(editor, engine, web):
    """Settling left a message's queue time in place: confirmations queued before a
    worker's two-day outage and sent today counted for none of the day's mail. A failing
    test copy is staff's, not readers' mail failing."""
    _, settings = web
    long_ago = utcnow() - timedelta(days=2)
    with session_scope(engine) as session:
        pending = add_subscriber(
            "p@example.com", session=session, topics=["food"], status="pending"
        )
        queue_mail(session, MailKind.CONFIRMATION, pending.id, now=long_ago)
        brief = add_brief(
            parse_brief_file(FIXTURES / "firm-layout.txt"), session=session, topics=["food"]
        ).brief
        queue_test_copy(session, brief.id, "staff@example.com", "Staff", now=long_ago)

    def refuse_test_copies(batch: Batch) -> BatchResult:
        if batch.test:
            return BatchResult(Outcome.FAILED, error="400: a test copy refused")
        return BatchResult(Outcome.SENT, message_id="m")

    transport = MemoryTransport(answer=refuse_test_copies)
    report = send_queued_mail(engine, settings, transport, now=utcnow())
    assert (report.sent, report.failed) == (1, 1)
    page = editor.call("/admin/").body
    assert "<strong>0</strong> waiting for the worker;" in page
    assert "in the last 24 hours 1 sent, 0 failed." in page
    assert "test copy refused" not in page


def test_the_editors_text_gives_the_same_brief_back(engine):
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
    from newsletter.briefs import add_brief

    with session_scope(engine) as session:
        stored = add_brief(
            parse_brief_file(FIXTURES / "firm-layout.txt"), session=session, topics=["energy"]
        ).brief
        text = brief_source(stored, brief_topics(stored, session=session))
    again = parse_brief(text)
    for name in ("title", "date", "author", "body", "signature", "slug"):
        assert getattr(again, name) == getattr(stored, name), name
    assert "\n".join(again.takeaways) == stored.takeaways and again.topics == ["energy"]


def test_unknown_deliveries_are_resolved_from_the_send_page(editor, engine, web):
    _, settings = web
    _schedule(editor, _write(editor), mode="now", confirmed="yes")
    _finish(engine, settings)
    with session_scope(engine) as session:  # as a worker that died mid-request leaves them
        session.execute(sa.update(Delivery).values(status="unknown"))
    page = editor.call("/admin/sends/1")
    assert "1 delivery is unknown" in page.body
    refused = editor.call("/admin/sends/1/resolve", {"csrf": csrf_of(page.body)})
    assert refused.status == 409 and "choose resend" in refused.body
    done = editor.call("/admin/sends/1/resolve", {"csrf": csrf_of(page.body), "how": "drop"})
    assert done.status == 303 and done.location.endswith("notice=resolved")
    with session_scope(engine) as session:
        assert session.scalar(sa.select(Delivery.status)) == "skipped"
    assert _actions(engine)[0] == "send.resolve"


@pytest.mark.parametrize(
    "path",
    [
        "/admin/briefs/99999999999999999999",
        "/admin/briefs/99999999999999999999/email",
        "/admin/sends/99999999999999999999",
        "/admin/sends/99999999999999999999/progress.json",
    ],
)
def test_an_id_past_64_bits_is_a_404_not_a_500(editor, path):
    assert editor.call(path).status == 404


def test_the_audit_log_says_what_staff_did_in_words_not_codes(editor, engine):
    """It showed `send.cancel` and `staff.sign_in`: codes a developer reads, not staff."""
    with session_scope(engine) as session:
        record(session, EDITOR, "send.cancel", "send 1", "3 deliveries cancelled")
    page = editor.call("/admin/audit").body
    assert "<td>Cancelled a send</td><td>send 1</td>" in page
    assert "<td>Signed in</td>" in page
    assert "send.cancel" not in page and "staff.sign_in" not in page


def test_every_action_the_code_records_has_words_in_the_audit_log():
    """A new action code shipped without words would show staff a code again: every code
    spelt in the source (`"topic.merge"`, and `send.<action>` for the console's send
    actions) must be in ACTION_WORDS."""
    code = re.compile(r"^(staff|brief|send|subscriber|topic)\.[a-z_]+$")
    spelt = {
        node.value
        for path in Path(newsletter.__file__).parent.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and code.match(node.value)
        and not node.value.endswith((".html", ".id"))  # templates and foreign keys
    }
    spelt |= {f"send.{action}" for action in SEND_ACTIONS}
    assert len(spelt) > 20
    assert spelt - set(ACTION_WORDS) == set()


def test_an_action_the_log_has_no_words_for_is_shown_as_its_code(editor, engine):
    with session_scope(engine) as session:
        record(session, EDITOR, "brief.archive", "brief 1")
    assert "<td>brief.archive</td><td>brief 1</td>" in editor.call("/admin/audit").body


@pytest.mark.parametrize(
    "before", ["99999999999999999999999", "9223372036854775808", "abc", "1.5", "%C2%B2"]
)
def test_an_audit_page_mark_that_names_no_entry_is_a_404_page_not_a_500(editor, before):
    answer = editor.call(f"/admin/audit?before={before}")
    assert answer.status == 404 and "<html" in answer.body.lower()


@pytest.mark.parametrize(
    "path",
    [
        "/admin/briefs/99999999999999999999/schedule",
        "/admin/briefs/99999999999999999999/topics",
        "/admin/briefs/99999999999999999999/delete",
        "/admin/briefs/99999999999999999999/test-send",
        "/admin/sends/99999999999999999999/pause",
        "/admin/sends/99999999999999999999/cancel",
    ],
)
def test_a_form_posted_to_an_id_past_64_bits_is_a_404(editor, path):
    assert editor.call(path, {"csrf": editor.csrf()}).status == 404


@pytest.mark.parametrize("path", ["/admin/briefs/abc", "/admin/sends/abc", "/admin/briefs/1x/edit"])
def test_an_id_that_is_not_a_number_is_a_page_that_does_not_exist(editor, path):
    """It answered 422 with FastAPI's `{"detail": [{"type": "int_parsing", …}]}`."""
    answer = editor.call(path)
    assert answer.status == 404 and "No such page" in answer.body and '"detail"' not in answer.body


def test_a_console_address_that_does_not_exist_is_the_consoles_own_page(editor):
    """It answered `{"detail": "Not Found"}`, and the not-found pages the console did draw
    had lost its navigation and the Sign out button."""
    for path in ("/admin/nope", "/admin/briefs/abc"):
        answer = editor.call(path)
        assert answer.status == 404 and "No such page" in answer.body, path
        assert 'aria-label="Console"' in answer.body and "Sign out" in answer.body, path


def test_a_form_field_past_its_length_is_named_on_a_page(editor):
    brief = _write(editor)
    page = editor.call(brief)
    answer = editor.call(f"{brief}/schedule", {"csrf": csrf_of(page.body), "zone": "z" * 65})
    assert answer.status == 400 and "<strong>zone</strong>" in answer.body
    assert "Nothing was changed" in answer.body and '"detail"' not in answer.body


def test_a_day_past_the_end_of_its_month_is_refused_by_line_and_the_text_kept(editor):
    """`date: 2026-11-31` answered 500 "Something went wrong", and the typed brief was gone."""
    source = "---\ntitle: Rice prices\ndate: 2026-11-31\n---\n\nThe harvest came in late.\n"
    answer = editor.call("/admin/briefs/write", {"csrf": editor.csrf(), "source": source})
    assert answer.status == 400, answer.body
    assert "line 3: front matter date &#39;2026-11-31&#39; is not a date" in answer.body
    assert "The harvest came in late." in answer.body


def test_the_editors_text_is_refused_by_line_not_by_an_empty_file_name(editor):
    answer = editor.call(
        "/admin/briefs/write", {"csrf": editor.csrf(), "source": "---\ntitle: [\n---\n\nBody.\n"}
    )
    assert answer.status == 400 and "line 2: front matter is not valid YAML" in answer.body
    assert ":2: front matter" not in answer.body


def test_a_time_the_clocks_skip_is_refused_at_the_confirm_step(editor, engine):
    brief = _write(editor)
    answer = _schedule(editor, brief, mode="at", at="2099-03-29T01:30", zone="Europe/London")
    assert answer.status == 400 and "does not exist in Europe/London" in answer.body
    assert _sends(engine) == []


def test_a_brief_sent_at_readers_local_time_says_when_it_reaches_the_archive(editor, engine):
    """Its page linked to the archive at once, and the link was a 404 until the first
    readers were due."""
    brief = _write(editor)
    _schedule(editor, brief, mode="local", local_time="07:00", confirmed="yes")
    start_due_sends(engine, now=utcnow())
    page = editor.call(brief).body
    assert "In the archive from " in page and 'href="/archive/' not in page


def test_deleting_a_draft_asks_to_be_meant(editor, engine):
    """One click, just under "Edit the draft", deleted it for good."""
    brief = _write(editor)
    assert 'name="sure" value="yes" required' in editor.call(brief).body
    answer = editor.call(f"{brief}/delete", {"csrf": editor.csrf(brief)})
    assert answer.status == 409 and "Yes, delete it" in answer.body
    with session_scope(engine) as session:
        assert [b.title for b in session.exec(select(Brief))] == ["Rice prices"]


def test_cancelling_a_send_asks_to_be_meant(editor, engine):
    """One click cancelled it for good."""
    brief = _write(editor)
    _schedule(editor, brief, mode="at", at="2099-01-02T07:00", zone="UTC", confirmed="yes")
    page = editor.call("/admin/sends/1").body
    assert 'name="sure" value="yes" required' in page
    answer = editor.call("/admin/sends/1/cancel", {"csrf": editor.csrf("/admin/sends/1")})
    assert answer.status == 409 and "Yes, cancel it" in answer.body
    assert _sends(engine)[0].status == "scheduled"
