"""Importing the subscriber spreadsheet, on SQLite and PostgreSQL: every row accounted for,
good rows kept whatever the bad ones do, nothing resurrected, a second import a no-op."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa
from sqlmodel import select

from newsletter.db import session_scope
from subscribers.csvfile import CsvFileError, neutralize, unneutralize
from subscribers.errors import UnknownTopicError
from subscribers.exporter import export_subscribers
from subscribers.importer import import_subscribers
from subscribers.models import Subscriber, SubscriberTopic, Topic, utcnow
from subscribers.roster import add_subscriber, forget, get_subscriber, unsubscribe
from subscribers.topics import add_topic, resolve_topics
from tests.readers_support import HOSTILE_NAME

HEADER = "email,name,topics,cadence,timezone\n"


def _file(tmp_path, text, *, encoding="utf-8", name="list.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def _import(engine, path, **options):
    with session_scope(engine) as session:
        return import_subscribers(path, session=session, default_timezone="UTC", **options)


def _people(engine):
    with session_scope(engine) as session:
        rows = session.exec(select(Subscriber).order_by(Subscriber.email)).all()
        slugs = dict(session.exec(select(Topic.id, Topic.slug)).all())
        links = session.exec(select(SubscriberTopic)).all()
    follows: dict[int, list[str]] = {}
    for link in links:
        follows.setdefault(link.subscriber_id, []).append(slugs[link.topic_id])
    return {
        s.email: {
            "name": s.name,
            "status": s.status,
            "cadence": s.cadence,
            "timezone": s.timezone,
            "topics": ["all"] if s.all_topics else sorted(follows.get(s.id, [])),
        }
        for s in rows
    }


def test_good_rows_go_in_and_each_bad_row_is_reported_with_its_line_and_reason(topics, tmp_path):
    path = _file(
        tmp_path,
        HEADER
        + "aiko@example.com,Aiko,japan;energy,,Asia/Tokyo\n"
        + "not-an-address,Nobody,food,,\n"
        + "ben@example.com,Ben,ports,,\n"
        + "cleo@example.com,Cleo,food,,Mars/Olympus\n"
        + "dan@example.com,Dan,food,hourly,\n"
        + "eve@example.com,Eve,,,\n"
        + "fay@example.com,Fay,all,weekly,Europe/Paris\n",
    )
    report = _import(topics, path)
    assert report.counts() == {"added": 2, "updated": 0, "unchanged": 0, "skipped": 5, "merged": 0}
    assert list(report.added) == [2, 8]
    reasons = {note.line: note.detail for note in report.skipped}
    assert set(reasons) == {3, 4, 5, 6, 7}
    assert reasons[3].startswith("email 'not-an-address': An email address must have an @-sign")
    assert reasons[4] == "topics 'ports': unknown topic (known topics: energy, food, japan)"
    assert reasons[5].startswith("timezone 'Mars/Olympus': not an IANA timezone")
    assert reasons[6] == "cadence 'hourly': choose one of immediate, daily, weekly"
    assert reasons[7] == "topics '': name at least one topic, or 'all'"
    assert _people(topics) == {
        "aiko@example.com": {
            "name": "Aiko",
            "status": "active",
            "cadence": "immediate",
            "timezone": "Asia/Tokyo",
            "topics": ["energy", "japan"],
        },
        "fay@example.com": {
            "name": "Fay",
            "status": "active",
            "cadence": "weekly",
            "timezone": "Europe/Paris",
            "topics": ["all"],
        },
    }


def test_a_bom_crlf_line_endings_quoted_commas_and_non_latin_names_are_read_as_meant(
    topics, tmp_path
):
    text = (
        "\ufeffemail,name,topics,cadence,timezone\r\n"
        '"kim@example.com","Kim, Lee & Co",japan,,\r\n'
        "takaichi@example.com,高市早苗,japan,,Asia/Tokyo\r\n"
        "lee@example.kr,이재명,energy,,Asia/Seoul\r\n"
    )
    report = _import(topics, _file(tmp_path, text))
    assert report.counts()["added"] == 3 and not report.skipped
    people = _people(topics)
    assert people["kim@example.com"]["name"] == "Kim, Lee & Co"
    assert people["takaichi@example.com"]["name"] == "高市早苗"
    assert people["lee@example.kr"]["name"] == "이재명"


def test_a_spreadsheet_saved_with_semicolons_imports_as_one_with_commas(topics, tmp_path):
    """Excel where the comma is the decimal mark saves "CSV" with semicolons: the file was
    refused for having "no 'email' column" while its header plainly named one."""
    text = (
        "\ufeffEmail;Name;Topics;Cadence;Timezone\r\n"
        'kim@example.com;"Kim; Lee, & Co";"japan;energy";;Asia/Tokyo\r\n'
        "eva@example.de;Eva Müller;food;weekly;Europe/Berlin\r\n"
    )
    report = _import(topics, _file(tmp_path, text))
    assert report.counts()["added"] == 2 and not report.skipped
    people = _people(topics)
    assert people["kim@example.com"]["name"] == "Kim; Lee, & Co"
    assert people["kim@example.com"]["topics"] == ["energy", "japan"]
    assert people["eva@example.de"]["cadence"] == "weekly"


def test_a_tab_separated_sheet_imports_too(topics, tmp_path):
    report = _import(topics, _file(tmp_path, "email\tname\ttopics\nann@example.com\tAnn\tfood\n"))
    assert report.counts()["added"] == 1


def test_extra_columns_are_ignored_with_a_warning_naming_them(topics, tmp_path):
    path = _file(tmp_path, "email,topics,notes,source\nann@example.com,food,vip,fair\n")
    report = _import(topics, path)
    assert report.counts()["added"] == 1
    assert report.warnings == [
        f"{path}:1: column 'notes' is not one we import; ignored",
        f"{path}:1: column 'source' is not one we import; ignored",
    ]


def test_duplicate_rows_are_merged_into_one_subscriber_and_reported(topics, tmp_path):
    path = _file(
        tmp_path,
        HEADER
        + "ann@example.com,Ann,japan,,\n"
        + "bob@example.com,Bob,food,,\n"
        + "ANN@example.com,Ann Smith,energy,daily,\n",
    )
    report = _import(topics, path)
    assert report.counts() == {"added": 2, "updated": 0, "unchanged": 0, "skipped": 0, "merged": 1}
    [merged] = report.merged
    assert (merged.line, merged.detail) == (4, "same address as line 2; merged into it")
    ann = _people(topics)["ann@example.com"]
    assert ann["name"] == "Ann Smith" and ann["cadence"] == "daily"
    assert ann["topics"] == ["energy", "japan"]


def test_importing_the_same_file_again_changes_nothing(topics, tmp_path):
    path = _file(
        tmp_path,
        HEADER
        + "ann@example.com,Ann,japan,,\n"
        + "ann@example.com,,energy,,\n"
        + "bob@example.com,Bob,all,weekly,Asia/Tokyo\n",
    )
    _import(topics, path)
    before = _people(topics)
    again = _import(topics, path)
    assert again.counts() == {"added": 0, "updated": 0, "unchanged": 2, "skipped": 0, "merged": 1}
    assert _people(topics) == before


def test_a_changed_row_updates_the_subscriber_and_says_what_changed(topics, tmp_path):
    _import(topics, _file(tmp_path, HEADER + "ann@example.com,Ann,japan,,Asia/Tokyo\n"))
    report = _import(
        topics,
        _file(tmp_path, HEADER + "ann@example.com,Ann Lee,japan;food,daily,\n", name="b.csv"),
    )
    [note] = report.updated
    assert note.detail == (
        "name 'Ann' → 'Ann Lee'; cadence 'immediate' → 'daily'; topics japan → food;japan"
    )
    ann = _people(topics)["ann@example.com"]
    assert ann["timezone"] == "Asia/Tokyo"  # an empty cell keeps what was there


def test_an_import_never_resurrects_an_unsubscribed_address(topics, tmp_path):
    with session_scope(topics) as session:
        add_subscriber("ann@example.com", session=session, topics=["japan"])
        unsubscribe("ann@example.com", session=session, by="subscriber")
    report = _import(topics, _file(tmp_path, HEADER + "ann@example.com,Ann,japan,,\n"))
    [note] = report.skipped
    assert note.detail.startswith("unsubscribed by subscriber on ")
    assert note.detail.endswith("; an import never brings an address back")
    assert _people(topics)["ann@example.com"]["status"] == "unsubscribed"


def test_a_forgotten_address_cannot_be_imported_again(topics, tmp_path):
    with session_scope(topics) as session:
        add_subscriber("ann@example.com", session=session, name="Ann", topics=["japan"])
        forget("ann@example.com", session=session)
    report = _import(topics, _file(tmp_path, HEADER + "Ann@Example.com,Ann,japan,,\n"))
    [note] = report.skipped
    assert note.detail == "this address asked to be forgotten; it is suppressed for good"
    assert "ann@example.com" not in _people(topics)


def test_a_dry_run_reports_the_same_and_changes_nothing(topics, tmp_path):
    path = _file(tmp_path, HEADER + "ann@example.com,Ann,japan,,\nbad,,food,,\n")
    report = _import(topics, path, dry_run=True)
    assert report.dry_run
    assert report.counts() == {"added": 1, "updated": 0, "unchanged": 0, "skipped": 1, "merged": 0}
    assert _people(topics) == {}


def test_require_confirmation_adds_new_addresses_as_pending(topics, tmp_path):
    _import(
        topics, _file(tmp_path, HEADER + "ann@example.com,Ann,japan,,\n"), require_confirmation=True
    )
    assert _people(topics)["ann@example.com"]["status"] == "pending"


def test_imported_rows_carry_a_consent_record_naming_the_file(topics, tmp_path):
    _import(topics, _file(tmp_path, HEADER + "ann@example.com,Ann,japan,,\n", name="fair-2026.csv"))
    with session_scope(topics) as session:
        ann = get_subscriber("ann@example.com", session=session)
    assert ann.consent_source == "import:fair-2026.csv" and ann.consent_at is not None
    assert ann.status_changed_by == "import:fair-2026.csv"


def test_a_file_that_is_not_utf8_is_refused_whole_naming_the_line(topics, tmp_path):
    path = _file(
        tmp_path,
        HEADER + "ann@example.com,Ann,japan,,\nbob@example.com,Bjørn,food,,\n",
        encoding="latin-1",
    )
    with pytest.raises(CsvFileError) as caught:
        _import(topics, path)
    assert str(caught.value) == (
        f"{path}:3: not UTF-8 text (save the spreadsheet as 'CSV UTF-8'); nothing was imported"
    )
    assert _people(topics) == {}


def test_a_file_without_an_email_column_is_refused(topics, tmp_path):
    path = _file(tmp_path, "name,topics\nAnn,japan\n")
    with pytest.raises(CsvFileError, match=r"list.csv:1: no 'email' column in the header"):
        _import(topics, path)


def test_export_then_import_into_an_empty_list_round_trips(topics, tmp_path):
    path = _file(
        tmp_path,
        HEADER
        + 'ann@example.com,=HYPERLINK("x"),japan;food,daily,Asia/Tokyo\n'
        + "bob@example.com,Bob,all,,\n",
    )
    _import(topics, path)
    with session_scope(topics) as session:
        unsubscribe("bob@example.com", session=session)
        first = io.StringIO()
        export_subscribers(first, session=session)
    exported = _file(tmp_path, first.getvalue(), name="export.csv")
    assert "'=HYPERLINK" in first.getvalue()  # neutralized against formula injection

    before = _people(topics)
    with session_scope(topics) as session:  # empty the list, keep the topics
        session.execute(sa.delete(SubscriberTopic))
        session.execute(sa.delete(Subscriber))
    report = _import(topics, exported)
    assert report.counts()["added"] == 2 and not report.warnings
    assert _people(topics) == before  # bob is unsubscribed still, not mailed again
    again = _import(topics, exported)
    assert again.counts()["unchanged"] == 2


def test_an_export_with_its_byte_order_mark_imports_back_with_every_name_as_written(
    topics, tmp_path
):
    """The mark Excel needs must not cost our own import anything: a CJK name with an
    emoji, a comma, quotes and a line break comes back exactly."""
    with session_scope(topics) as session:
        add_subscriber("kim@example.com", session=session, name=HOSTILE_NAME, topics=["japan"])
    exported = tmp_path / "export.csv"
    with (
        exported.open("w", encoding="utf-8", newline="") as stream,  # as the CLI writes it
        session_scope(topics) as session,
    ):
        export_subscribers(stream, session=session, bom=True)
    assert exported.read_bytes().startswith(b"\xef\xbb\xbfemail,")
    before = _people(topics)
    with session_scope(topics) as session:
        session.execute(sa.delete(SubscriberTopic))
        session.execute(sa.delete(Subscriber))
    report = _import(topics, exported)
    assert report.counts()["added"] == 1 and not report.skipped and not report.warnings
    assert _people(topics) == before
    assert before["kim@example.com"]["name"] == HOSTILE_NAME


@pytest.mark.parametrize("cell", ["=1+1", "+cmd", "-2", "@SUM(A1)", "\tx", "plain", "'quoted"])
def test_neutralizing_a_cell_is_undone_by_import(cell):
    assert unneutralize(neutralize(cell)) == cell
    assert not neutralize(cell).startswith(("=", "+", "-", "@", "\t"))


def test_a_report_of_alternating_lines_names_the_first_ranges_then_counts_the_rest(
    topics, tmp_path
):
    """Every other row refused: the added lines made 172 KB of ranges for a person to read
    in a 50,000-row file. The JSON report keeps every range."""
    rows = "".join(
        f"r{n}@example.com,R,japan,,\n" if n % 2 == 0 else "not-an-address,X,japan,,\n"
        for n in range(50)
    )
    report = _import(topics, _file(tmp_path, HEADER + rows))
    assert report.lines_in_words("added") == (
        ", ".join(str(line) for line in range(2, 41, 2)) + " and 5 more lines"
    )
    assert report.as_dict()["added_lines"] == ", ".join(str(n) for n in range(2, 51, 2))
    assert report.lines_in_words("added", most=25) == report.as_dict()["added_lines"]


def test_a_row_with_more_cells_than_the_header_is_refused_saying_why(topics, tmp_path):
    """An unquoted comma in a name shifted every cell after it: the row was refused for an
    address that looked wrong ("email 'too'"), or imported with a name cut in two."""
    path = _file(
        tmp_path,
        HEADER
        + "ann@example.com,Doe, Ann,japan,,\n"
        + 'bo@example.com,"Doe, Bo",japan,,\n'
        + "cy@example.com,Cy,japan,,UTC,\n",  # one cell too many, if empty
    )
    report = _import(topics, path)
    why = "the header has 5 columns: a comma in a name or list? Put that cell in double quotes"
    assert [(n.line, n.detail) for n in report.skipped] == [
        (2, f"row '6 cells': {why} (\"Doe, Jane\")"),
        (4, f"row '6 cells': {why} (\"Doe, Jane\")"),
    ]
    assert sorted(_people(topics)) == ["bo@example.com"]


@pytest.mark.parametrize(
    ("separator", "advice"),
    [
        (";", 'a semicolon in a name or list? Put that cell in double quotes ("Doe; Jane")'),
        ("\t", "a tab in a name or list? Put that cell in double quotes"),
    ],
)
def test_a_row_with_too_many_cells_is_advised_about_the_files_own_separator(
    topics, tmp_path, separator, advice
):
    """A semicolon file was told to quote its commas, which split nothing there."""
    header = separator.join(("email", "name", "topics"))
    row = separator.join(("ann@example.com", "Doe", "Ann", "japan"))
    (note,) = _import(topics, _file(tmp_path, f"{header}\n{row}\n")).skipped
    assert note.detail == f"row '4 cells': the header has 3 columns: {advice}"


def test_the_too_many_cells_message_counts_a_headers_blank_columns_too(topics, tmp_path):
    path = _file(tmp_path, "email,name,,topics\nann@example.com,Doe, Ann,,japan\n")
    (note,) = _import(topics, path).skipped
    assert note.detail.startswith("row '5 cells': the header has 4 columns")


def test_a_topic_written_by_its_name_is_that_topic(topics, tmp_path):
    """The console shows names; "Energy Security" was skipped as an unknown topic while
    the topic `energy-security` stood in the list."""
    with session_scope(topics) as session:
        add_topic("energy-security", "Energy security", session=session)
    report = _import(
        topics, _file(tmp_path, "email,topics\nann@example.com,Energy Security;Japan\n")
    )
    assert report.counts()["added"] == 1, report.skipped
    assert _people(topics)["ann@example.com"]["topics"] == ["energy-security", "japan"]


def test_a_slug_is_its_own_topic_even_where_another_topic_is_named_so(topics, tmp_path):
    with session_scope(topics) as session:
        add_topic("asia", "Japan", session=session)  # a name that reads as another's slug
    report = _import(topics, _file(tmp_path, "email,topics\nann@example.com,japan\n"))
    assert report.counts()["added"] == 1
    assert _people(topics)["ann@example.com"]["topics"] == ["japan"]


def test_an_unknown_topic_names_the_slugs_not_every_way_to_write_them(topics, tmp_path):
    report = _import(topics, _file(tmp_path, "email,topics\nann@example.com,ports\n"))
    [note] = report.skipped
    assert note.detail == "topics 'ports': unknown topic (known topics: energy, food, japan)"


def test_a_brief_or_a_reader_may_name_a_topic_by_its_name(topics):
    with session_scope(topics) as session:
        add_topic("energy-security", "Energy security", session=session)
        chosen = resolve_topics(["Energy security", "energy-security", "JAPAN"], session=session)
    assert [topic.slug for topic in chosen] == ["energy-security", "japan"]


def test_adding_an_unknown_topic_written_in_words_is_advised_with_a_slug_the_command_takes(topics):
    with session_scope(topics) as session, pytest.raises(UnknownTopicError) as refused:
        resolve_topics(["Food security"], session=session)
    assert refused.value.hint == "add it first: `newsletter topics add food-security --name …`"


def test_a_header_naming_a_column_twice_is_refused_naming_both_places(topics, tmp_path):
    """Either `email` cell could be the reader's; the import guessed the last one."""
    path = _file(
        tmp_path,
        "email,name,topics,Email\n"
        + "aiko@example.com,Aiko,japan,same@example.com\n"
        + "ben@example.com,Ben,food,same@example.com\n",
    )
    with pytest.raises(CsvFileError) as refused:
        _import(topics, path)
    assert str(refused.value) == (
        f"{path}:1: the header has 2 'email' columns (columns 1, 4); keep one, so no row's "
        "cell is guessed at"
    )
    assert _people(topics) == {}


def test_blank_and_whitespace_only_lines_are_not_rows(topics, tmp_path):
    """Both passes (repeated addresses, then the rows) read lines through one check."""
    path = _file(
        tmp_path,
        HEADER
        + "aiko@example.com,Aiko,japan,,\n"
        + "\n"
        + " , ,\t, ,\n"
        + "AIKO@example.com,,food,,\n"
        + "ben@example.com,Ben,food\n",
    )
    report = _import(topics, path)
    assert report.counts() == {"added": 2, "updated": 0, "unchanged": 0, "skipped": 0, "merged": 1}
    assert _people(topics)["aiko@example.com"]["topics"] == ["food", "japan"]


def test_a_new_readers_times_are_the_moment_of_the_import_whatever_the_servers_zone(
    topics, tmp_path
):
    """The rows go in by the driver's fastest path, their times spelt by us: a time spelt
    without its offset would be read in the server's zone, nine hours off in Tokyo. The
    zone is the PostgreSQL session's; SQLite has none (its times are naive UTC text)."""
    path = _file(tmp_path, HEADER + "aiko@example.com,Aiko,japan,,\n")
    before = utcnow()
    with session_scope(topics) as session:
        if topics.dialect.name == "postgresql":
            session.execute(sa.text("SET LOCAL TIME ZONE 'Asia/Tokyo'"))
        import_subscribers(path, session=session, default_timezone="UTC")
    after = utcnow()
    with session_scope(topics) as session:
        aiko = get_subscriber("aiko@example.com", session=session)
        times = [aiko.created_at, aiko.updated_at, aiko.status_changed_at, aiko.consent_at]
    assert all(time is not None and before <= time <= after for time in times), times


def test_an_empty_topics_cell_keeps_a_listed_readers_topics_and_refuses_a_new_one(topics, tmp_path):
    """A file of addresses and names corrects names; every row of it used to be refused."""
    _import(topics, _file(tmp_path, HEADER + "aiko@example.com,Aiko,japan;food,,\n"))
    path = _file(
        tmp_path,
        "email,name\naiko@example.com,Aiko Tanaka\nnew@example.com,New Reader\n",
        name="names.csv",
    )
    report = _import(topics, path)
    assert report.counts() == {"added": 0, "updated": 1, "unchanged": 0, "skipped": 1, "merged": 0}
    assert report.updated[0].detail == "name 'Aiko' → 'Aiko Tanaka'"
    assert [(n.line, n.detail) for n in report.skipped] == [
        (3, "topics '': name at least one topic, or 'all'")
    ]
    assert _people(topics)["aiko@example.com"]["topics"] == ["food", "japan"]
    assert "new@example.com" not in _people(topics)


def test_repeated_addresses_are_merged_wherever_the_email_column_stands(topics, tmp_path):
    """The first pass reads the email cells alone, by the header's place for them."""
    path = _file(
        tmp_path,
        "name,topics,email\nAiko,japan,Aiko@example.com\nBen,food,ben@example.com\n"
        "Aiko T.,food,aiko@example.com\n",
    )
    report = _import(topics, path)
    assert report.counts() == {"added": 2, "updated": 0, "unchanged": 0, "skipped": 0, "merged": 1}
    assert _people(topics)["aiko@example.com"] == {
        "name": "Aiko T.",
        "status": "active",
        "cadence": "immediate",
        "timezone": "UTC",
        "topics": ["food", "japan"],
    }
