"""Briefs: a file parsed into a `ParsedBrief` (no database), then stored with its topics."""

from newsletter.briefs.parse import ParsedBrief, parse_brief, parse_brief_file, slugify
from newsletter.briefs.store import (
    AddedBrief,
    BriefListing,
    add_brief,
    add_brief_file,
    brief_topics,
    get_brief,
    list_brief_listings,
    list_briefs,
    published_between,
    published_briefs,
)

__all__ = [
    "AddedBrief",
    "BriefListing",
    "ParsedBrief",
    "add_brief",
    "add_brief_file",
    "brief_topics",
    "get_brief",
    "list_brief_listings",
    "list_briefs",
    "parse_brief",
    "parse_brief_file",
    "published_between",
    "published_briefs",
    "slugify",
]
