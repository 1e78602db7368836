"""The sandbox's inbox: what it accepted, newest first, each message as its reader sees it
(their values filled), with the text part, headers and the raw request; kept in a file
across restarts. Mail goes in through the real `sendgrid` client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from sendgrid import SendGridAPIClient

from newsletter.devtools.inbox import PAGE_SIZE
from newsletter.devtools.sandbox import Sandbox
from newsletter.devtools.sandbox_input import MESSAGES_PAGE

KEY = "SG.inbox-test"


def _send(sandbox: Sandbox, subject: str, readers: list[tuple[str, str]]) -> None:
    body = {
        "from": {"email": "briefs@example.com", "name": "Briefings"},
        "subject": subject,
        "content": [
            {"type": "text/plain", "value": "Dear -name-, the brief."},
            {"type": "text/html", "value": "<p>Dear -name-, the brief.</p>"},
        ],
        "headers": {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        "personalizations": [
            {
                "to": [{"email": email}],
                "substitutions": {"-name-": name},
                "custom_args": {"delivery_id": email},
            }
            for email, name in readers
        ],
    }
    response = SendGridAPIClient(api_key=KEY, host=sandbox.url).client.mail.send.post(
        request_body=body
    )
    assert response.status_code == 202


def _get(url: str) -> tuple[str, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - local sandbox
        return response.read().decode(), dict(response.headers)


def test_the_inbox_lists_messages_newest_first(tmp_path):
    with Sandbox(KEY, inbox_path=tmp_path / "inbox.sqlite3") as sandbox:
        _send(sandbox, "First brief", [("ann@example.com", "Ann")])
        _send(sandbox, "Second brief", [("bob@example.com", "Bob")])
        page, headers = _get(f"{sandbox.url}/")
    assert page.index("Second brief") < page.index("First brief")
    assert "2 messages" in page and "default-src 'none'" in headers["Content-Security-Policy"]


def test_each_message_shows_as_its_reader_sees_it_with_text_headers_and_raw_request(tmp_path):
    with Sandbox(KEY, inbox_path=tmp_path / "inbox.sqlite3") as sandbox:
        _send(sandbox, "Rice", [("ann@example.com", "Ann"), ("zoe@example.com", "<b>Zoë</b>")])
        page, _ = _get(f"{sandbox.url}/inbox/2")
        html, headers = _get(f"{sandbox.url}/inbox/2/html")
    assert "Dear &lt;b&gt;Zoë&lt;/b&gt;, the brief." in page  # the text part, escaped
    assert "List-Unsubscribe-Post" in page and "custom_args.delivery_id" in page
    assert "&#34;personalizations&#34;" in page and "-name-" in page  # the raw request
    assert html == "<p>Dear <b>Zoë</b>, the brief.</p>"  # as SendGrid would fill it
    assert "sandbox" in headers["Content-Security-Policy"]


def test_messages_are_kept_across_a_restart(tmp_path):
    path = tmp_path / "inbox.sqlite3"
    with Sandbox(KEY, inbox_path=path) as sandbox:
        _send(sandbox, "Kept", [("ann@example.com", "Ann")])
    with Sandbox(KEY, inbox_path=path) as again:
        page, _ = _get(f"{again.url}/inbox")
        message, _ = _get(f"{again.url}/inbox/1")
    assert "Kept" in page and "Dear Ann, the brief." in message


def test_clearing_the_sandbox_empties_the_inbox(tmp_path):
    with Sandbox(KEY, inbox_path=tmp_path / "inbox.sqlite3") as sandbox:
        _send(sandbox, "Gone", [("ann@example.com", "Ann")])
        request = urllib.request.Request(f"{sandbox.url}/sandbox/messages", method="DELETE")  # noqa: S310
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310
        page, _ = _get(f"{sandbox.url}/")
        stats = json.loads(_get(f"{sandbox.url}/sandbox/stats")[0])
    assert "Gone" not in page and stats["personalizations"] == 0


def test_the_inbox_finds_the_messages_to_one_address_and_pages_back_to_older_ones(tmp_path):
    """After an import, thousands of confirmations: the newest 200 were all the page
    showed, and one reader's message could not be found."""
    with Sandbox(KEY, inbox_path=tmp_path / "inbox.sqlite3") as sandbox:
        _send(sandbox, "Earliest", [("Zoe.Lee@example.com", "Zoë")])
        _send(sandbox, "New", [(f"r{n}@example.com", "R") for n in range(PAGE_SIZE + 5)])
        found, _ = _get(f"{sandbox.url}/inbox?to=zoe.lee")
        first, _ = _get(f"{sandbox.url}/inbox")
        older = first.split('<a href="/inbox?before=')[1].split('"')[0]
        rest, _ = _get(f"{sandbox.url}/inbox?before={older}")
    assert "1 message to an address holding “zoe.lee”" in found and "Earliest" in found
    assert first.count("<tr><td>") == PAGE_SIZE and "Earliest" not in first
    assert rest.count("<tr><td>") == 6 and "Earliest" in rest


def test_the_inbox_search_folds_case_in_any_alphabet_and_odd_paging_is_the_first_page(
    tmp_path,
):
    """SQLite's lower() folds ASCII only; `before=²` passed isdigit() and then failed
    int(), and a 20-digit one overflowed SQLite: the page answered with a dropped
    connection and a traceback."""
    with Sandbox(KEY, inbox_path=tmp_path / "inbox.sqlite3") as sandbox:
        _send(sandbox, "Nordic", [("SØREN@example.dk", "Søren")])
        found, _ = _get(f"{sandbox.url}/inbox?to=s%C3%B8ren")
        pages = [
            _get(f"{sandbox.url}/inbox?before={odd}")[0]
            for odd in ("%C2%B2", "9" * 20, "-1", "", "%25")
        ]
    assert "1 message to an address holding “søren”" in found and "Nordic" in found
    assert all("Nordic" in page and "Older messages" not in page for page in pages)


def test_the_inbox_offers_older_messages_only_when_there_are_some(tmp_path):
    with Sandbox(KEY, inbox_path=tmp_path / "inbox.sqlite3") as sandbox:
        _send(sandbox, "Full page", [(f"r{n}@example.com", "R") for n in range(PAGE_SIZE)])
        page, _ = _get(f"{sandbox.url}/inbox")
    assert page.count("<tr><td>") == PAGE_SIZE and "Older messages" not in page


def _get_json(url: str) -> tuple[int, object, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the sandbox
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read()), dict(refused.headers)


def test_accepted_messages_come_a_page_at_a_time_with_a_link_to_the_next(tmp_path):
    """After a big send the whole list was tens of megabytes in one answer."""
    with Sandbox(KEY, inbox_path=tmp_path / "inbox.sqlite3") as sandbox:
        _send(sandbox, "Many", [(f"r{n}@example.com", "R") for n in range(MESSAGES_PAGE + 3)])
        status, first, headers = _get_json(f"{sandbox.url}/sandbox/messages")
        link = headers["Link"].split(">")[0].lstrip("<")
        _, rest, last_headers = _get_json(f"{sandbox.url}{link}")
    assert status == 200 and headers["X-Total-Count"] == str(MESSAGES_PAGE + 3)
    assert isinstance(first, list) and isinstance(rest, list)
    addresses = [m["to"] for m in first + rest]
    assert addresses == [[f"r{n}@example.com"] for n in range(MESSAGES_PAGE + 3)]
    assert "Link" not in last_headers


def test_a_page_size_out_of_range_is_refused_naming_the_parameter(tmp_path):
    with Sandbox(KEY, inbox_path=tmp_path / "inbox.sqlite3") as sandbox:
        answers = [
            _get_json(f"{sandbox.url}/sandbox/messages?{query}")
            for query in (
                "limit=1001",
                "limit=0",
                "offset=-1",
                "limit=%EF%BC%91",
                "offset=" + "9" * 13,
            )
        ]
    assert [status for status, _, _ in answers] == [400] * 5
    messages = [body["errors"][0]["message"] for _, body, _ in answers]  # type: ignore[index]
    assert messages[0].startswith("limit must be") and messages[2].startswith("offset must be")
