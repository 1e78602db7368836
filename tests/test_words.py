"""Counts and durations as staff read them on the console and at the command line."""

from __future__ import annotations

import pytest

from newsletter.words import counted, duration


def test_one_is_singular_and_thousands_are_separated():
    assert (counted(1, "reader"), counted(2000, "reader")) == ("1 reader", "2,000 readers")


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0.2, "1 second"),
        (45, "45 seconds"),
        (433, "7 minutes"),
        (5400, "90 minutes"),
        (9000, "2 hours"),
    ],
)
def test_a_time_to_go_reads_in_the_unit_a_person_would_say(seconds, words):
    """ "about 433 s to go" is not how staff read a wait."""
    assert duration(seconds) == words
