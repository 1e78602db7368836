"""Briefs: a file parsed into a `ParsedBrief` (no database), then stored with its topics."""

from newsletter.briefs.lifecycle import (
    BriefState,
    BriefStatus,
    brief_state,
    brief_states,
    delete_draft,
    require_editable,
)
from newsletter.briefs.parse import ParsedBrief, parse_brief, parse_brief_file, slugify
from newsletter.briefs.store import (
    AddedBrief,
    BriefListing,
    add_brief,
    add_brief_file,
    brief_topics,
    change_topics,
    get_brief,
    list_brief_listings,
    list_briefs,
    published_between,
    published_briefs,
    suggested_topics,
    update_brief,
    with_checks,
)

__all__ = [
    "AddedBrief",
    "BriefListing",
    "BriefState",
    "BriefStatus",
    "ParsedBrief",
    "add_brief",
    "add_brief_file",
    "brief_state",
    "brief_states",
    "brief_topics",
    "change_topics",
    "delete_draft",
    "get_brief",
    "list_brief_listings",
    "list_briefs",
    "parse_brief",
    "parse_brief_file",
    "published_between",
    "published_briefs",
    "require_editable",
    "slugify",
    "suggested_topics",
    "update_brief",
    "with_checks",
]
