"""What the briefs did: a send's numbers and links (`send.py`), topics over time
(`topics.py`), the list's growth per week (`growth.py`). Plain functions that take a
session and return dataclasses with `as_dict()`, for the CLI and the console alike. Every
aggregate is computed by the database; Python only shapes a few dozen rows."""

from newsletter.reports.growth import ListGrowth, WeekGrowth, list_growth
from newsletter.reports.send import LinkClicks, SendReport, send_report
from newsletter.reports.topics import TopicReport, TopicRow, since_day, topics_report

__all__ = [
    "LinkClicks",
    "ListGrowth",
    "SendReport",
    "TopicReport",
    "TopicRow",
    "WeekGrowth",
    "list_growth",
    "send_report",
    "since_day",
    "topics_report",
]
