"""The sandbox refuses what SendGrid's documentation says SendGrid refuses, through the real
`sendgrid` client, naming the field path (`personalizations.3.to.0.name`), so tests fail
where SendGrid would."""

from __future__ import annotations

import json

import pytest
from python_http_client.exceptions import BadRequestsError, PayloadTooLargeError
from sendgrid import SendGridAPIClient

from newsletter.devtools.mail_send_rules import RULES
from newsletter.devtools.sandbox import Sandbox

KEY = "SG.rules-test"


@pytest.fixture
def server():
    with Sandbox(KEY) as sandbox:
        yield sandbox


@pytest.fixture
def send(server):
    client = SendGridAPIClient(api_key=KEY, host=server.url)

    def post(**changes):
        body = {
            "from": {"email": "briefs@example.com", "name": "Briefings, Inc."},
            "subject": "Hello",
            "content": [
                {"type": "text/plain", "value": "Hi"},
                {"type": "text/html", "value": "<p>Hi</p>"},
            ],
            "personalizations": [{"to": [{"email": f"p{i}@example.com"}]} for i in range(5)],
            **changes,
        }
        try:
            client.send(body)
        except BadRequestsError as exc:
            return [(e["field"], e["message"]) for e in json.loads(exc.body)["errors"]]
        return []

    return post


def _people(count=5, **at_three):
    people = [{"to": [{"email": f"p{i}@example.com"}]} for i in range(count)]
    people[3] = {**people[3], **at_three}
    return people


def test_every_rule_names_where_sendgrid_documents_it():
    assert len(RULES) >= 10
    assert all(rule.source and rule.what and (rule.whole or rule.each) for rule in RULES)


@pytest.mark.parametrize("name", ["O'Brien, Pat", "Kim; Lee", "Line\nbreak", "Carriage\rreturn"])
def test_a_recipient_name_sendgrid_refuses_is_named_by_its_path(send, server, name):
    errors = send(personalizations=_people(to=[{"email": "p3@example.com", "name": name}]))
    assert [field for field, _ in errors] == ["personalizations.3.to.0.name"]
    assert server.messages() == []


def test_a_comma_in_the_senders_name_is_accepted(send):
    assert send() == []


@pytest.mark.parametrize("header", ["Reply-To", "subject", "DKIM-Signature", "x-sg-id"])
def test_reserved_headers_are_refused(send, header):
    errors = send(personalizations=_people(headers={header: "x"}))
    assert errors[0][0] == f"personalizations.3.headers.{header}"


def test_a_header_value_with_a_line_break_is_refused(send):
    errors = send(headers={"X-Note": "ok\r\nBcc: evil@example.com"})
    assert errors == [
        ("headers.X-Note", "Header values may not contain carriage returns or line feeds.")
    ]


def test_a_subject_on_two_lines_is_refused(send):
    assert send(subject="Hi\nBcc: evil@example.com")[0][0] == "subject"


@pytest.mark.parametrize(
    ("categories", "field"),
    [
        ([f"c{i}" for i in range(11)], "categories"),
        (["same", "same"], "categories"),
        (["日本"], "categories.0"),
        (["x" * 256], "categories.0"),
    ],
)
def test_categories_are_at_most_ten_unique_ascii_and_short(send, categories, field):
    assert [f for f, _ in send(categories=categories)] == [field]


def test_custom_args_must_be_strings_and_small(send):
    assert send(personalizations=_people(custom_args={"n": 1}))[0][0] == (
        "personalizations.3.custom_args.n"
    )
    big = {"a": "x" * 10_000}
    assert send(personalizations=_people(custom_args=big))[0][0] == "personalizations.3.custom_args"


def test_substitutions_are_limited_per_personalization(send):
    big = {f"-k{i}-": "x" * 1000 for i in range(11)}
    assert send(personalizations=_people(substitutions=big))[0][0] == (
        "personalizations.3.substitutions"
    )


def test_text_plain_must_come_first(send):
    content = [{"type": "text/html", "value": "<p>x</p>"}, {"type": "text/plain", "value": "x"}]
    assert send(content=content) == [
        (
            "content",
            "If present, text/plain must be first, followed by text/html, followed by any "
            "other content.",
        )
    ]


def test_the_same_address_in_two_personalizations_is_refused(send):
    people = _people(to=[{"email": "P1@example.com"}])
    assert [f for f, _ in send(personalizations=people)] == ["personalizations.3"]


def test_more_than_1000_recipients_across_personalizations_is_refused(send):
    people = [
        {"to": [{"email": f"a{i}@example.com"}], "cc": [{"email": f"b{i}@example.com"}]}
        for i in range(501)
    ]
    assert "personalizations" in [f for f, _ in send(personalizations=people)]


def test_an_email_over_30_mb_is_413(server):
    client = SendGridAPIClient(api_key=KEY, host=server.url)
    body = {
        "from": {"email": "briefs@example.com"},
        "subject": "Big",
        "content": [{"type": "text/html", "value": "x" * (30 * 1024 * 1024)}],
        "personalizations": [{"to": [{"email": "a@example.com"}]}],
    }
    with pytest.raises(PayloadTooLargeError):
        client.send(body)
    assert server.messages() == []


def _each_rule_one_by_one(body):
    """The per-personalization rules run one at a time: what the fast path must agree with."""
    from newsletter.devtools.mail_send_limits import Seen

    shared = body.get("custom_args") or {}
    seen = Seen(shared_args=shared)
    each = [rule.each for rule in RULES if rule.each is not None]
    return [
        problem
        for index, item in enumerate(body["personalizations"])
        for check in each
        for problem in check(f"personalizations.{index}", item, seen) or ()
    ]


def _personalization(i, **changes):
    item = {
        "to": [{"email": f"p{i}@example.com", "name": f"Reader {i}"}],
        "substitutions": {"-name-": f"Reader {i}"},
        "headers": {"List-Unsubscribe": f"<https://x/u/{i}>"},
        "custom_args": {"delivery_id": str(i)},
    }
    item.update(changes)
    return item


@pytest.mark.parametrize(
    "odd",
    [
        {},
        {"to": [{"email": "p1@example.com"}]},  # a duplicate address
        {"to": [{"email": "not-an-address"}]},
        {"to": [{"email": "a@example.com", "name": "A, B"}]},
        {"to": [{"email": "a@example.com", "name": "A\nB"}]},
        {"headers": {"Reply-To": "x@example.com"}},
        {"headers": {"X-A": "b\r\nc"}},
        {"headers": {"X-A": 1}},
        {"substitutions": {"-k-": "x" * 10_001}},
        {"substitutions": {"-k-": 3}},
        {"custom_args": {"a": "é" * 5_000}},
        {"custom_args": []},
        {"cc": [{"email": "c@example.com"}]},
        {"subject": "Own"},
    ],
)
def test_the_fast_path_says_fine_only_where_every_rule_does(odd):
    from newsletter.devtools.mail_send_fast import plainly_valid

    body = {
        "personalizations": [_personalization(i) for i in range(4)] + [_personalization(9, **odd)]
    }
    if plainly_valid(body["personalizations"], {}):
        assert _each_rule_one_by_one(body) == []
    assert plainly_valid(body["personalizations"], {}) == (odd == {})
