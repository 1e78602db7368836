"""Header safety in one place: what every transport is handed, whoever built the batch."""

from __future__ import annotations

import pytest

from newsletter.links import list_id_for
from newsletter.providers.base import Batch, Recipient
from newsletter.providers.headers import categories, display_name, header_value


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("O'Brien, Pat", "O'Brien Pat"),
        ("Kim; Lee", "Kim Lee"),
        ("Line\nbreak", "Line break"),
        ("Evil\r\nBcc: x@example.com", "Evil Bcc: x@example.com"),
        ('Quote "Q" <q@example.com>', "Quote Q q@example.com"),
        ("Tab\there", "Tab here"),
        ("高市早苗 🦊", "高市早苗 🦊"),
        (",;", ""),
        ("x" * 300, "x" * 100),
    ],
)
def test_a_display_name_loses_what_a_to_header_cannot_carry(name, shown):
    assert display_name(name) == shown


def test_a_header_value_never_carries_a_line_break_or_control_character():
    assert header_value("Brief\r\nBcc: x@example.com\x00") == "Brief Bcc: x@example.com"
    assert header_value("Plain subject") == "Plain subject"


def test_categories_are_ascii_unique_and_at_most_ten():
    labels = ["2026-06-10-日本", "energy", "energy", *(f"t{i}" for i in range(20))]
    safe = categories(labels)
    assert safe[:2] == ["2026-06-10-ri-ben", "energy"]
    assert len(safe) == 10 and all(c.isascii() for c in safe)


def test_every_batch_is_header_safe_however_it_was_built():
    recipient = Recipient(
        1, "a@example.com", "Ann,\nB", {"%%nl:name:text%%": "Ann,\nB"}, {"X-Note": "a\r\nb"}
    )
    batch = Batch(1, "Subject\r\nBcc: x@example.com", "h", "t", [recipient], ["日本"])
    assert batch.subject == "Subject Bcc: x@example.com"
    assert batch.categories == ["ri-ben"]
    assert recipient.name == "Ann B" and recipient.headers == {"X-Note": "a b"}
    assert recipient.values["%%nl:name:text%%"] == "Ann,\nB"  # the body keeps it as written


def test_a_recipient_changed_after_it_was_made_is_header_safe_too():
    plain = Recipient(1, "a@example.com", "Ann", {}, {})
    changed = plain._replace(name="Ann\r\nBcc: x@example.com", headers={"X-Note": "a\r\nb"})
    assert changed.name == "Ann Bcc: x@example.com" and changed.headers == {"X-Note": "a b"}


def test_a_recipient_made_from_a_sequence_is_header_safe_too():
    assert Recipient._make([2, "b@example.com\r\n", "Bo", {}, {}]).email == "b@example.com"


def test_list_id_comes_from_the_sender():
    assert list_id_for("Briefings <briefs@example.com>") == '"Briefings" <briefings.example.com>'
    assert list_id_for("briefs@example.com") == "<newsletter.example.com>"
