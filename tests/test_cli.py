"""The command line end to end, as staff run it: real processes, a real database, the
sandbox over HTTP with the real `sendgrid` client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from typer.testing import CliRunner, Result

from newsletter.cli import app
from newsletter.cli.common import EX_CONFIG
from newsletter.db import BULK_ROWS, session_scope
from newsletter.staff.models import AuditEntry
from subscribers.roster import add_subscriber
from subscribers.topics import add_topic
from tests.conftest import SANDBOX_KEY, clean_env, sqlite_only
from tests.ops_support import stamp_as_migrated_by_a_newer_version

FIXTURES = Path(__file__).parent / "fixtures"


def _ok(result: Any) -> Any:
    code = getattr(result, "returncode", getattr(result, "exit_code", None))
    assert code == 0, result.stderr
    return result


@pytest.fixture
def listed(newsletter, engine):
    """Topics and four subscribers, three of them on shipping or trade (set up in-process)."""
    with session_scope(engine) as session:
        for slug in ("shipping", "trade", "food"):
            add_topic(slug, slug.title(), session=session)
        add_subscriber("ann@example.com", session=session, name="Ann", topics=["shipping"])
        add_subscriber("bob@example.com", session=session, topics=["trade", "food"])
        add_subscriber("cy@example.com", session=session, topics=["all"])
        add_subscriber("eve@example.com", session=session, topics=["food"])
    return newsletter


@pytest.fixture
def cli(listed, db_url, sandbox, monkeypatch):
    """The same commands in-process (fast), for checking what they print."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SENDGRID_API_HOST", sandbox.url)
    monkeypatch.setenv("SENDGRID_API_KEY", SANDBOX_KEY)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args), env={"COLUMNS": "200"})

    return run


def test_brief_file_to_sandbox_reaches_exactly_the_matching_subscribers(listed, sandbox):
    added = json.loads(
        _ok(
            listed(
                "briefs",
                "add",
                str(FIXTURES / "firm-layout.txt"),
                "--topics",
                "shipping,trade",
                "--json",
            )
        ).stdout
    )
    assert added["slug"] == "2026-04-14-port-congestion-returns-to-the-strait-of-malacca"
    scheduled = json.loads(_ok(listed("send", str(added["id"]), "--now", "--json")).stdout)
    assert scheduled["status"] == "scheduled"
    _ok(listed("worker", "--once"))
    recipients = sorted(a for m in sandbox.messages() for a in m.to)
    assert recipients == ["ann@example.com", "bob@example.com", "cy@example.com"]
    status = json.loads(_ok(listed("sends", "status", str(scheduled["id"]), "--json")).stdout)
    assert status["status"] == "finished"
    assert status["counts"]["sent"] == 3 and status["planned"] == 3


def test_running_the_worker_again_sends_nothing_twice(listed, sandbox):
    _ok(listed("briefs", "add", str(FIXTURES / "front-matter.md"), "--topics", "food"))
    _ok(listed("send", "2026-04-20-grain-corridors-what-the-new-tariff-schedule-changes", "--now"))
    _ok(listed("worker", "--once"))
    _ok(listed("worker", "--once"))
    assert sorted(a for m in sandbox.messages() for a in m.to) == [
        "bob@example.com",
        "cy@example.com",
        "eve@example.com",
    ]


def test_python_scheduler_py_is_the_same_worker(listed, sandbox):
    _ok(listed("briefs", "add", str(FIXTURES / "front-matter.md"), "--topics", "food"))
    _ok(listed("send", "1", "--now"))
    _ok(listed("--once", module="scheduler"))
    assert sorted(a for m in sandbox.messages() for a in m.to) == [
        "bob@example.com",
        "cy@example.com",
        "eve@example.com",
    ]


def test_a_brief_with_no_title_is_refused_in_one_line_naming_the_file(cli, tmp_path):
    bad = tmp_path / "untitled.md"
    bad.write_text("1 May 2026\n\nA paragraph where the title should be.\n")
    result = cli("briefs", "add", str(bad))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {bad}:3: no title: start the brief with a '## Title' heading or set 'title:' "
        "in front matter"
    ]
    assert json.loads(_ok(cli("briefs", "list", "--json")).stdout) == []


def test_an_unknown_topic_is_refused_in_one_line_and_nothing_is_stored(cli):
    result = cli("briefs", "add", str(FIXTURES / "firm-layout.txt"), "--topics", "ports")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: unknown topic 'ports' (known topics: food, shipping, trade): add it first: "
        "`newsletter topics add ports --name …`"
    )
    assert json.loads(_ok(cli("briefs", "list", "--json")).stdout) == []


def test_a_wrong_sendgrid_key_is_one_line_and_nothing_is_half_sent(listed, sandbox):
    _ok(listed("briefs", "add", str(FIXTURES / "firm-layout.txt"), "--topics", "shipping"))
    _ok(listed("send", "1", "--now"))
    result = listed("worker", "--once", env_changes={"SENDGRID_API_KEY": "SG.revoked"})
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1
    assert (
        "send 1 paused: the provider refused the account: 401: The provided authorization "
        "grant is invalid" in errors[0]
    )
    assert sandbox.messages() == []
    status = json.loads(_ok(listed("sends", "status", "1", "--json")).stdout)
    assert status["status"] == "paused" and status["counts"]["sent"] == 0
    assert status["counts"]["queued"] == status["planned"] == 2


def test_a_send_still_paused_is_said_again_by_every_cron_run(listed, sandbox):
    """Only the run that paused it said so: cron, which mails what a run prints, then fell
    silent while the send sat paused."""
    _ok(listed("briefs", "add", str(FIXTURES / "firm-layout.txt"), "--topics", "shipping"))
    _ok(listed("send", "1", "--now"))
    revoked = {"SENDGRID_API_KEY": "SG.revoked"}
    assert listed("worker", "--once", env_changes=revoked).returncode == 1
    later = _ok(listed("worker", "--once", env_changes=revoked))
    [line] = [line for line in later.stderr.splitlines() if "paused" in line]
    assert "send 1 is still paused: the provider refused the account" in line
    assert "`newsletter sends resume 1`" in line


def test_a_command_on_an_uninitialized_database_says_to_run_init(newsletter, tmp_path):
    (tmp_path / "empty.db").touch()  # a SQLite database with nothing in it
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    result = newsletter("briefs", "list", env_changes={"DATABASE_URL": empty})
    assert result.returncode == 1
    assert "is not set up or is out of date: run `newsletter init`" in result.stderr


@sqlite_only
@pytest.mark.parametrize(
    ("args", "code"), [(["sends", "list"], 1), (["worker", "--once"], EX_CONFIG)]
)
def test_a_mistyped_sqlite_path_is_refused_as_doctor_words_it_and_nothing_is_made(
    newsletter, tmp_path, args, code
):
    """Connecting made the folder and an empty database, then said "not set up … run
    `newsletter init`", which would have set up the typo."""
    typo = tmp_path / "typo" / "news.db"
    result = newsletter(*args, env_changes={"DATABASE_URL": f"sqlite:///{typo}"})
    assert result.returncode == code
    assert result.stderr == (
        f"error: no database at sqlite:///{typo}: run `newsletter init` (or fix the path)\n"
    )
    assert not typo.parent.exists()


@sqlite_only
def test_init_makes_the_sqlite_database_and_its_folders_where_there_were_none(newsletter, tmp_path):
    url = f"sqlite:///{tmp_path / 'new' / 'data' / 'news.db'}"
    _ok(newsletter("init", env_changes={"DATABASE_URL": url}))
    assert (tmp_path / "new" / "data" / "news.db").is_file()
    _ok(newsletter("sends", "list", env_changes={"DATABASE_URL": url}))


@sqlite_only
@pytest.mark.parametrize(
    ("args", "code"), [(["init"], 1), (["sends", "list"], 1), (["worker", "--once"], EX_CONFIG)]
)
def test_a_database_a_newer_version_migrated_is_refused_in_one_line_with_the_way_back(
    newsletter, engine, args, code
):
    """Not "run `newsletter init`" (which stopped in an Alembic traceback): install the
    version that migrated it, or restore the backup from before the upgrade."""
    stamp_as_migrated_by_a_newer_version(engine)
    result = newsletter(*args)
    assert result.returncode == code
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "was migrated by a newer version of newsletter (its revision 0099" in result.stderr
    assert "restore the backup taken before the upgrade" in result.stderr
    assert "newsletter init" not in result.stderr


@pytest.mark.parametrize("command", [("newsletter", "worker"), ("scheduler",)])
@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"DATABASE_URL": "nonsense"}, "error: DATABASE_URL cannot be read as a database URL"),
        (
            {"DATABASE_URL": "postgresql+psycopg://u@h:5432x/db"},
            "error: DATABASE_URL cannot be read as a database URL",
        ),
        ({"NEWSLETTER_BATCH_SIZE": "5000"}, "error: setting NEWSLETTER_BATCH_SIZE: Input should"),
    ],
)
def test_a_worker_refuses_bad_configuration_in_one_line_by_either_name(
    newsletter, command, changes, said
):
    """`python scheduler.py` is `newsletter worker`: the same refusal, never a traceback,
    and exit 78 (EX_CONFIG), which its systemd unit does not restart."""
    module, *args = command
    result = newsletter(*args, "--once", env_changes=changes, module=module)
    assert result.returncode == EX_CONFIG
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith(said)


def test_a_worker_on_a_database_never_migrated_exits_78_and_is_not_restarted(newsletter, tmp_path):
    (tmp_path / "empty.db").touch()
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    result = newsletter("worker", "--once", env_changes={"DATABASE_URL": empty})
    assert result.returncode == EX_CONFIG
    assert "run `newsletter init`" in result.stderr


@sqlite_only
@pytest.mark.parametrize(("args", "code"), [(["init"], 1), (["worker", "--once"], EX_CONFIG)])
def test_a_sqlite_path_whose_folder_cannot_be_made_is_refused_in_one_line_naming_it(
    newsletter, tmp_path, args, code
):
    """Here a file stands where the folder should be (that stops root too, unlike a
    read-only parent): a setting to fix (the worker: 78), not a PermissionError or
    FileExistsError traceback."""
    (tmp_path / "afile").write_text("")
    url = f"sqlite:///{tmp_path / 'afile' / 'news.db'}"
    result = newsletter(*args, env_changes={"DATABASE_URL": url})
    assert result.returncode == code
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error:") and str(tmp_path / "afile") in result.stderr


def test_a_worker_whose_database_does_not_answer_exits_1_and_is_restarted(newsletter):
    """A database still starting after a reboot: systemd restarts the worker until it
    answers (exit 1), unlike a setting to fix (78)."""
    down = "postgresql+psycopg://postgres@127.0.0.1:9/newsletter?connect_timeout=2"
    result = newsletter("worker", "--once", env_changes={"DATABASE_URL": down})
    assert result.returncode == 1
    assert result.stderr.startswith("error: database:") and "Traceback" not in result.stderr


def test_names_and_titles_that_look_like_markup_are_printed_as_written(cli, tmp_path):
    """Rich reads "[/b]" as a closing tag and raised on it: a reader's name, a topic's or a
    brief's title once made `subscribers list` print a traceback."""
    _ok(cli("topics", "add", "markup", "--name", "Tags [/bold] & [red]"))
    _ok(
        cli("subscribers", "add", "tag@example.com", "--name", "Ann [/red] x", "--topics", "markup")
    )
    brief = tmp_path / "tagged.md"
    brief.write_text(
        "---\ntitle: Prices [/b] up\ndate: 2026-06-01\ntopics: [markup]\n---\n\nBody.\n",
        encoding="utf-8",
    )
    added = _ok(cli("briefs", "add", str(brief)))
    assert "brief added: “Prices [/b] up”" in added.stderr
    assert "Ann [/red] x" in _ok(cli("subscribers", "list")).stdout
    assert "Tags [/bold] & [red]" in _ok(cli("topics", "list")).stdout
    assert "Prices [/b] up" in _ok(cli("briefs", "list")).stdout


def test_send_needs_now_or_at(cli):
    result = cli("send", "1")
    assert result.exit_code == 1
    assert "say when, once: --now, --at" in result.stderr


def test_json_output_is_one_document_and_nothing_else(cli):
    out = _ok(cli("subscribers", "list", "--topic", "food", "--json")).stdout
    assert [s["email"] for s in json.loads(out)] == [
        "bob@example.com",
        "cy@example.com",
        "eve@example.com",
    ]


def test_topics_and_subscribers_are_added_from_the_command_line(cli):
    _ok(cli("topics", "add", "ports", "--name", "Ports", "--keywords", "harbour,berth"))
    _ok(
        cli(
            "subscribers",
            "add",
            "Zoe@Example.com",
            "--name",
            "Zoë",
            "--topics",
            "ports",
            "--timezone",
            "Asia/Tokyo",
        )
    )
    topics = json.loads(_ok(cli("topics", "list", "--json")).stdout)
    assert {
        "slug": "ports",
        "name": "Ports",
        "description": "",
        "keywords": ["berth", "harbour"],
        "hidden": False,
    } in topics
    people = json.loads(_ok(cli("subscribers", "list", "--topic", "ports", "--json")).stdout)
    assert [p["email"] for p in people] == ["cy@example.com", "zoe@example.com"]  # cy: all topics
    assert people[1] == {
        "email": "zoe@example.com",
        "name": "Zoë",
        "status": "active",
        "cadence": "immediate",
        "timezone": "Asia/Tokyo",
        "topics": ["ports"],
    }


def test_staff_pause_resume_and_finish_a_send_from_the_command_line(cli, sandbox):
    _ok(cli("briefs", "add", str(FIXTURES / "firm-layout.txt"), "--topics", "shipping,trade"))
    _ok(cli("send", "1", "--now"))
    assert "paused" in _ok(cli("sends", "pause", "1")).stdout
    _ok(cli("worker", "--once"))
    assert sandbox.messages() == []
    # Paused before a worker planned it, so it waits for its time again.
    assert "send 1 is scheduled again" in _ok(cli("sends", "resume", "1")).stdout
    _ok(cli("worker", "--once"))
    assert json.loads(_ok(cli("sends", "status", "1", "--json")).stdout)["status"] == "finished"
    assert len(sandbox.messages()) == 3


def test_a_cancelled_send_sends_nothing_more(cli, sandbox):
    _ok(cli("briefs", "add", str(FIXTURES / "firm-layout.txt"), "--topics", "shipping,trade"))
    _ok(cli("send", "1", "--now"))
    # Never started, its readers were never listed: not "0 deliveries will not be sent".
    cancelled = _ok(cli("sends", "cancel", "1")).stdout
    assert "send 1 cancelled before it started; nobody gets it" in cancelled
    _ok(cli("worker", "--once"))
    assert sandbox.messages() == []
    result = cli("sends", "resume", "1")
    assert result.exit_code == 1
    assert "send 1 is cancelled; only a paused send can be resumed" in result.stderr


def test_a_foreground_send_into_a_log_prints_no_progress_bar_or_markup(listed, sandbox):
    """From cron or into a file, stderr held a literal `[progress.description]` and a bar."""
    _ok(listed("briefs", "add", str(FIXTURES / "firm-layout.txt"), "--topics", "shipping,trade"))
    result = _ok(listed("send", "1", "--now", "--foreground"))
    assert "[progress" not in result.stderr and "━" not in result.stderr
    assert "sent 3" in result.stdout or "3 sent" in result.stdout, result.stdout


def test_resolve_needs_exactly_one_of_resend_or_drop(cli):
    result = cli("sends", "resolve", "1")
    assert result.exit_code == 1
    assert "choose --resend" in result.stderr and "--drop" in result.stderr


def test_a_foreground_send_reports_its_outcome(cli, sandbox):
    _ok(cli("briefs", "add", str(FIXTURES / "firm-layout.txt"), "--topics", "shipping,trade"))
    result = json.loads(_ok(cli("send", "1", "--now", "--foreground", "--json")).stdout)
    assert result["status"] == "finished"
    assert result["counts"]["sent"] == 3 and len(sandbox.messages()) == 3


def test_import_reports_as_json_and_export_writes_the_same_format(cli, tmp_path):
    sheet = tmp_path / "people.csv"
    sheet.write_text(
        "email,name,topics,cadence,timezone\nzoe@example.com,Zoë,food,,\nnot-an-address,,food,,\n",
        encoding="utf-8",
    )
    dry = json.loads(_ok(cli("subscribers", "import", str(sheet), "--dry-run", "--json")).stdout)
    assert dry["dry_run"] and dry["counts"]["added"] == 1
    report = json.loads(_ok(cli("subscribers", "import", str(sheet), "--json")).stdout)
    assert report["counts"] == {
        "added": 1,
        "updated": 0,
        "unchanged": 0,
        "skipped": 1,
        "merged": 0,
    }
    assert report["skipped"][0]["line"] == 3
    exported = tmp_path / "out.csv"
    _ok(cli("subscribers", "export", str(exported)))
    lines = exported.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "email,name,topics,cadence,timezone,status,subscribed_at"
    assert any(line.startswith("zoe@example.com,Zoë,food,immediate,UTC,active,") for line in lines)


def test_an_export_to_a_file_has_a_byte_order_mark_for_excel_and_standard_output_none(
    cli, tmp_path
):
    """Excel reads a CSV as UTF-8 only after the mark; a pipe's next program would take it
    for part of the first column's name."""
    exported = tmp_path / "out.csv"
    _ok(cli("subscribers", "export", str(exported)))
    assert exported.read_bytes().startswith(b"\xef\xbb\xbfemail,name,")
    assert _ok(cli("subscribers", "export")).stdout.startswith("email,name,")


def test_an_import_prints_fifty_lines_of_each_kind_then_counts_the_rest(cli, tmp_path):
    """A file whose every other row was refused printed every skipped line: 124 KB of
    them on a terminal. `--json` keeps every one."""
    sheet = tmp_path / "people.csv"
    sheet.write_text(
        "email,name,topics\n"
        + "".join(
            f"r{n}@example.com,R,food\n" if n % 2 else f"bad{n},R,food\n" for n in range(120)
        ),
        encoding="utf-8",
    )
    text = _ok(cli("subscribers", "import", str(sheet))).stdout
    assert text.count("  skipped line ") == 50
    assert "  … and 10 more skipped (--json lists every one)" in text
    report = json.loads(_ok(cli("subscribers", "import", str(sheet), "--json")).stdout)
    assert len(report["skipped"]) == 60


def test_an_import_names_fifty_added_readers_then_counts_the_rest_by_line(cli, tmp_path):
    sheet = tmp_path / "people.csv"
    sheet.write_text(
        "email,name,topics\n" + "".join(f"n{n}@example.com,N,food\n" for n in range(60)),
        encoding="utf-8",
    )
    text = _ok(cli("subscribers", "import", str(sheet), "--dry-run")).stdout
    assert "  added line 2 n0@example.com" in text
    assert text.count("  added line ") == 50
    assert "  … and 10 more added, lines 52–61" in text


def test_an_import_lists_the_unchanged_lines_as_the_console_does(cli, tmp_path):
    sheet = tmp_path / "people.csv"
    sheet.write_text("email,name,topics\nzoe@example.com,Z,food\nyan@example.com,Y,food\n")
    _ok(cli("subscribers", "import", str(sheet)))
    assert "  unchanged, lines 2–3" in _ok(cli("subscribers", "import", str(sheet))).stdout


def test_forget_removes_the_person_from_listings_and_keeps_them_unmailable(cli):
    _ok(cli("subscribers", "forget", "ann@example.com"))
    people = json.loads(_ok(cli("subscribers", "list", "--json")).stdout)
    assert "ann@example.com" not in [p["email"] for p in people]
    result = cli("subscribers", "add", "ann@example.com", "--topics", "food")
    assert result.exit_code == 1 and "asked to be forgotten" in result.stderr


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_big_import_leaves_its_tables_vacuumed_for_the_first_send(cli, engine, tmp_path):
    """Left to autovacuum, the first send planned after a big import paid for marking every
    new row committed (see `vacuum_after_bulk_load`)."""
    sheet = tmp_path / "big.csv"
    lines = [f"reader{i}@example.com,Reader {i},food" for i in range(BULK_ROWS)]
    sheet.write_text("email,name,topics\n" + "\n".join(lines) + "\n", encoding="utf-8")
    _ok(cli("subscribers", "import", str(sheet)))
    with engine.connect() as connection:
        vacuumed = connection.exec_driver_sql(
            "SELECT relname FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL"
        ).scalars()
        assert set(vacuumed) == {"subscriber", "subscriber_topic"}


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_big_import_whose_vacuum_fails_still_reports_what_it_imported(
    cli, engine, db_url, tmp_path, monkeypatch
):
    """The rows are committed before the VACUUM: one that failed (here another session
    holds a lock it needs, and locks are waited for half a second) ended the command with
    exit 1 and no report, as if nothing had been imported."""
    separator = "&" if "?" in db_url else "?"
    monkeypatch.setenv("DATABASE_URL", f"{db_url}{separator}options=-c%20lock_timeout%3D500")
    sheet = tmp_path / "big.csv"
    lines = [f"reader{i}@example.com,Reader {i},food" for i in range(BULK_ROWS)]
    sheet.write_text("email,name,topics\n" + "\n".join(lines) + "\n", encoding="utf-8")
    with engine.connect() as holder, holder.begin():
        holder.exec_driver_sql("LOCK TABLE subscriber_topic IN SHARE UPDATE EXCLUSIVE MODE")
        result = cli("subscribers", "import", str(sheet))
    assert result.exit_code == 0, result.output
    assert f"{BULK_ROWS} added" in result.stdout
    assert "VACUUM (ANALYZE) after it failed" in result.stderr
    assert "Traceback" not in result.output


def test_listing_by_a_status_that_does_not_exist_is_refused_not_an_empty_list(cli):
    """`--status bogus` printed an empty table and exited 0: "nobody", when the word was
    wrong."""
    result = cli("subscribers", "list", "--status", "bogus")
    assert result.exit_code == 1 and "status" in result.stderr and "bogus" in result.stderr
    assert "Traceback" not in result.output


def test_a_table_piped_to_a_script_keeps_every_address_whole(newsletter, db_url, tmp_path):
    """At rich's default 80 columns, `subscribers list | …` printed "aiko@exampl…". Run
    without the fixture's COLUMNS, as a script's pipe would."""
    newsletter("topics", "add", "japan", "--name", "Japan")
    long = "a-rather-long-address-for-a-reader@research.subdomain.example.com"
    newsletter("subscribers", "add", long, "--name", "A Long Name, Ph.D.", "--topics", "japan")
    listed = subprocess.run(
        [sys.executable, "-m", "newsletter", "subscribers", "list"],
        env=clean_env(DATABASE_URL=db_url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0 and long in listed.stdout and "…" not in listed.stdout


def test_a_readers_name_is_edited_and_what_was_not_given_stays(cli, engine):
    name = 'O\'Brien, Seán; "Dr" <b>山田</b> 🎉'
    result = _ok(cli("subscribers", "edit", "ann@example.com", "--name", name, "--json"))
    assert json.loads(result.stdout) == {"email": "ann@example.com", "changes": ["name changed"]}
    with session_scope(engine) as session:
        [entry] = session.exec(select(AuditEntry).where(AuditEntry.action == "subscriber.edit"))
    assert entry.detail == "name changed"  # the log must name no one once they are forgotten
    people = json.loads(_ok(cli("subscribers", "list", "--json")).stdout)
    ann = next(p for p in people if p["email"] == "ann@example.com")
    assert (ann["name"], ann["topics"], ann["cadence"]) == (name, ["shipping"], "immediate")


def test_a_readers_topics_and_cadence_are_edited_from_the_command_line_and_audited(cli, engine):
    result = _ok(
        cli(
            "subscribers",
            "edit",
            "ANN@example.com",
            "--topics",
            "trade,Food",
            "--cadence",
            "weekly",
        )
    )
    assert result.stderr.strip() == (
        "ann@example.com: topics shipping → food;trade; cadence immediate → weekly"
    )
    people = json.loads(_ok(cli("subscribers", "list", "--json")).stdout)
    ann = next(p for p in people if p["email"] == "ann@example.com")
    assert (ann["name"], ann["topics"], ann["cadence"]) == ("Ann", ["food", "trade"], "weekly")
    with session_scope(engine) as session:
        [entry] = session.exec(select(AuditEntry).where(AuditEntry.action == "subscriber.edit"))
    assert entry.detail == "topics shipping → food;trade; cadence immediate → weekly"


def test_an_edit_with_one_bad_value_is_refused_in_one_line_and_changes_nothing(cli):
    result = cli(
        "subscribers", "edit", "ann@example.com", "--topics", "food", "--timezone", "Mars/Olympus"
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "timezone" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    people = json.loads(_ok(cli("subscribers", "list", "--json")).stdout)
    ann = next(p for p in people if p["email"] == "ann@example.com")
    assert (ann["topics"], ann["timezone"]) == (["shipping"], "UTC")
