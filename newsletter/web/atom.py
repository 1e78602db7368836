"""The archive as an Atom feed (RFC 4287), built with ElementTree so every title, name and
excerpt is escaped as XML, whatever the brief holds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote
from xml.etree import ElementTree as ET

from newsletter.branding import Branding
from newsletter.briefs.archive import ArchiveEntry

ATOM = "http://www.w3.org/2005/Atom"
FEED_ENTRIES = 20


def _stamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _add(parent: ET.Element, tag: str, text: str = "", **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    if text:
        element.text = text
    return element


def atom_feed(
    brand: Branding,
    entries: list[ArchiveEntry],
    *,
    base_url: str,
    self_url: str,
    link: Callable[[str], str],
) -> bytes:
    """`link(path)` makes a site path into the reader's URL (it carries their token when
    the archive is for subscribers only)."""
    feed = ET.Element("feed", {"xmlns": ATOM})
    _add(feed, "title", f"{brand.name}: briefs")
    _add(feed, "id", f"{base_url}/archive")
    _add(feed, "link", rel="self", href=base_url + self_url)
    _add(feed, "link", rel="alternate", type="text/html", href=base_url + link("/archive"))
    newest = max((entry.published_at for entry in entries), default=datetime(2000, 1, 1))
    _add(feed, "updated", _stamp(newest))
    _add(_add(feed, "author"), "name", brand.name)
    for entry in entries:
        brief = entry.brief
        item = _add(feed, "entry")
        _add(item, "title", brief.title)
        # The id never changes, even if the archive's visibility (and so the link) does.
        path = f"/archive/{quote(brief.slug)}"
        _add(item, "id", base_url + path)
        _add(item, "link", rel="alternate", type="text/html", href=base_url + link(path))
        _add(item, "published", _stamp(entry.published_at))
        _add(item, "updated", _stamp(entry.published_at))
        _add(_add(item, "author"), "name", brief.author or brand.name)
        for topic in entry.topics:
            _add(item, "category", term=topic.slug, label=topic.name)
        _add(item, "summary", entry.excerpt)
    xml = ET.tostring(feed, encoding="unicode")
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + xml).encode("utf-8")
