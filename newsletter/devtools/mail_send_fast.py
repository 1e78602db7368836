"""A quick proof that a request of the usual shape breaks none of the per-personalization
rules (`mail_send_rules.py`), in a few C-level passes over all personalizations at once.

The sandbox's own speed is the ceiling of every benchmark, and checking 1000
personalizations one rule at a time costs three times parsing them. Requests of the usual
shape (one `to` each, string maps of substitutions, headers and custom_args) are proved
here; anything else, or anything this cannot prove, goes through the rules one by one,
which then name what is wrong. So this may only ever say "fine" where the rules would.
"""

from __future__ import annotations

import re
from itertools import chain
from typing import Any

from newsletter.devtools.mail_send_limits import (
    _FIELD_NAME,
    _LINE_BREAK,
    ADDRESS,
    MAX_CUSTOM_ARGS_BYTES,
    MAX_RECIPIENTS,
    MAX_SUBSTITUTIONS_BYTES,
    RESERVED_HEADERS,
)

_USUAL_KEYS = frozenset({"to", "substitutions", "headers", "custom_args"})
_PERSON_KEYS = frozenset({"email", "name"})
_NAME_BREAKS = re.compile(r"[,;\r\n]")


def _string_maps(items: list[dict[str, Any]], key: str) -> list[dict[str, str]] | None:
    """Each item's `key` as a map of strings ({} when absent); None if any is not one."""
    maps = [item.get(key, {}) for item in items]
    if not set(map(type, maps)) <= {dict}:
        return None
    values = chain.from_iterable(m.values() for m in maps)
    keys = chain.from_iterable(maps)
    if not set(map(type, values)) <= {str} or not set(map(type, keys)) <= {str}:
        return None
    return maps


def _largest(maps: list[dict[str, str]]) -> int:
    """The most characters any one map holds (keys and values)."""
    return max((sum(map(len, m)) + sum(map(len, m.values())) for m in maps), default=0)


def plainly_valid(items: list[Any], shared_args: dict[str, Any]) -> bool:
    """True only when every per-personalization rule would find nothing."""
    if len(items) > MAX_RECIPIENTS:
        return False
    if not all(type(i) is dict and i.keys() <= _USUAL_KEYS for i in items):
        return False
    tos = [item.get("to") for item in items]
    if not all(type(to) is list and len(to) == 1 for to in tos):
        return False
    people = [to[0] for to in tos]
    if not all(type(p) is dict and p.keys() <= _PERSON_KEYS for p in people):
        return False
    emails = [p.get("email") for p in people]
    names = [p.get("name", "") for p in people]
    if not set(map(type, emails)) <= {str} or not set(map(type, names)) <= {str}:
        return False
    addresses = [e.strip().lower() for e in emails]
    if len(set(addresses)) != len(addresses) or not all(map(ADDRESS.match, addresses)):
        return False
    if _NAME_BREAKS.search("".join(names)):
        return False
    headers = _string_maps(items, "headers")
    substitutions = _string_maps(items, "substitutions")
    custom_args = _string_maps(items, "custom_args")
    if headers is None or substitutions is None or custom_args is None:
        return False
    header_names = set().union(*headers)
    if any(n.lower() in RESERVED_HEADERS or not _FIELD_NAME.match(n) for n in header_names):
        return False
    if _LINE_BREAK.search("".join(chain.from_iterable(h.values() for h in headers))):
        return False
    # Bytes are at most 4 per character: bounds well inside the limits need no exact count.
    if _largest(substitutions) * 4 > MAX_SUBSTITUTIONS_BYTES:
        return False
    shared = sum(len(str(k)) + len(str(v)) for k, v in shared_args.items())
    return (shared + _largest(custom_args)) * 4 < MAX_CUSTOM_ARGS_BYTES
