"""A stored brief written back as a file (Markdown with front matter), for the console's
editor: parsing the result gives the same brief back (tested), so editing a brief that
came in the firm's own layout loses nothing."""

from __future__ import annotations

from datetime import date

import yaml

from newsletter.briefs.parse import slugify
from newsletter.models import Brief
from subscribers.models import Topic

NEW_BRIEF = """\
---
title: ""
date: {today}
topics: []
author: ""
preheader: ""
---

### Key takeaways

- The first point a reader should take away.

The body, in Markdown: paragraphs, **emphasis**, [links](https://example.com), lists,
quotes, tables and footnotes[^1].

[^1]: A source.
"""


def new_brief_source(today: date) -> str:
    return NEW_BRIEF.format(today=today.isoformat())


def brief_source(brief: Brief, topics: list[Topic]) -> str:
    meta: dict[str, object] = {
        "title": brief.title,
        "date": brief.date.isoformat(),
        "topics": [topic.slug for topic in topics],
    }
    if brief.author:
        meta["author"] = brief.author
    if brief.preheader:
        meta["preheader"] = brief.preheader
    if brief.slug != slugify(f"{brief.date:%Y-%m-%d}-{slugify(brief.title)}"):
        meta["slug"] = brief.slug  # chosen by hand; a draft's derived slug follows its title
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False, width=1000)
    parts = [f"---\n{front}---\n"]
    takeaways = [line for line in brief.takeaways.splitlines() if line.strip()]
    if takeaways:
        parts.append("### Key takeaways\n\n" + "\n".join(f"- {item}" for item in takeaways) + "\n")
    parts.append(brief.body.strip() + "\n")
    if brief.signature.strip():
        parts.append("---\n\n" + brief.signature.strip() + "\n")
    return "\n".join(parts)
