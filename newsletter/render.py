"""A brief to an email: Jinja2 fills an MJML template, mjml-python turns it into HTML.

Rendering happens once per brief and template, never per subscriber. What differs per
recipient (name, address, links) is left in as tokens, one spelling per part, so each part
gets its own escaping: `%%nl:name:html%%` receives HTML-escaped text, `%%nl:name:text%%`
the plain text. SendGrid fills them as `substitutions`; local transports call `fill()`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import mjml
from markdown_it import MarkdownIt
from markupsafe import Markup
from mdit_py_plugins.footnote import footnote_plugin

from newsletter.config import Settings
from newsletter.errors import TemplateError
from newsletter.models import Brief
from subscribers.models import Topic

RECIPIENT_FIELDS = ("name", "email", "unsubscribe_url", "preferences_url")
# Only in the double opt-in email (issue 7's subscribe flow fills it).
CONFIRM_FIELD = "confirm_url"
PARTS = ("html", "text")
_TOKEN = re.compile(r"%%nl:([a-z_]+):(html|text)%%")

# Gmail clips a message whose HTML passes ~102 KB; the reader then sees "[Message clipped]"
# and, worse, loses the unsubscribe footer.
GMAIL_CLIP_BYTES = 102 * 1024


def token(name: str, part: str) -> str:
    return f"%%nl:{name}:{part}%%"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str  # with %%nl:…:html%% tokens
    text: str  # with %%nl:…:text%% tokens

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))

    def clipping(self) -> str:
        """Why Gmail would clip this email, or "" if it fits: `briefs add` warns with it,
        `send` refuses with it."""
        over = self.html_bytes - GMAIL_CLIP_BYTES
        if over <= 0:
            return ""
        return (
            f"the email's HTML is {self.html_bytes:,} bytes, {over:,} over Gmail's "
            f"{GMAIL_CLIP_BYTES:,}-byte clipping limit"
        )


def recipient_values(
    *,
    name: str,
    email: str,
    unsubscribe_url: str,
    preferences_url: str,
    confirm_url: str | None = None,
) -> dict[str, str]:
    """Token → value for one recipient, escaped for each part."""
    raw = {
        "name": name or "reader",
        "email": email,
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": preferences_url,
    }
    if confirm_url is not None:
        raw[CONFIRM_FIELD] = confirm_url
    values = {token(key, "text"): value for key, value in raw.items()}
    values.update(
        {token(key, "html"): html.escape(value, quote=True) for key, value in raw.items()}
    )
    return values


def fill(content: str, values: Mapping[str, str]) -> str:
    """Replace every token in one pass; a token with no value is an error, never sent."""

    def replace(match: re.Match[str]) -> str:
        try:
            return values[match.group(0)]
        except KeyError:
            raise TemplateError("(recipient values)", f"no value for {match.group(0)}") from None

    return _TOKEN.sub(replace, content)


@lru_cache(maxsize=8)
def _environment(templates_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("mjml.j2", "html.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # Raw HTML in a brief is shown as text: it would bypass the template's escaping and
    # could break the MJML around it.
    # Footnotes ([^1]) from mdit-py-plugins: analysts cite sources. In an email the
    # reference is a plain [1] rather than an in-page link, which Gmail and Outlook break.
    md = (
        MarkdownIt("commonmark", {"html": False, "typographer": False})
        .enable("table")
        .use(footnote_plugin)
    )
    md.add_render_rule("footnote_ref", _footnote_ref)
    md.add_render_rule("footnote_anchor", lambda *_: "")
    return md


def _footnote_ref(_renderer: object, tokens: list[Any], index: int, *_: object) -> str:
    return f'<sup class="footnote-ref">[{tokens[index].meta["id"] + 1}]</sup>'


def markdown_to_html(text: str) -> Markup:
    return Markup(_markdown().render(text))  # noqa: S704 - markdown-it escapes its input.


def markdown_inline_html(text: str) -> Markup:
    return Markup(_markdown().renderInline(text))  # noqa: S704 - markdown-it escapes its input.


_LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")
_HEADING_MARK = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)


def markdown_to_text(text: str) -> str:
    """Markdown reads well as plain text already; links become `words (url)`."""
    text = _LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})" if m.group(1) else m.group(2), text)
    text = _EMPHASIS.sub(r"\2", text)
    return _HEADING_MARK.sub("", text)


# Tokens as the templates see them: `{{ tokens.html.name }}`. Our own fixed ASCII text.
_TOKENS = {
    part: {
        name: Markup(token(name, part))  # noqa: S704
        for name in (*RECIPIENT_FIELDS, CONFIRM_FIELD)
    }
    for part in PARTS
}


def _sender_name(from_header: str) -> str:
    name, address = parseaddr(from_header)
    return name or address


def brief_context(brief: Brief, topics: list[Topic], settings: Settings) -> dict[str, object]:
    takeaways = [line for line in brief.takeaways.splitlines() if line.strip()]
    preheader = brief.preheader or (markdown_to_text(takeaways[0]) if takeaways else "")
    return {
        "subject": brief.title,
        "title": brief.title,
        "date": _day(brief.date),
        "preheader": preheader,
        "takeaways_html": [markdown_inline_html(item) for item in takeaways],
        "takeaways_text": [markdown_to_text(item) for item in takeaways],
        "body_html": markdown_to_html(brief.body),
        "body_text": markdown_to_text(brief.body),
        "signature_html": markdown_to_html(brief.signature) if brief.signature else "",
        "signature_text": markdown_to_text(brief.signature),
        "author": brief.author,
        "topics": [topic.name for topic in topics],
        "sender": _sender_name(settings.NEWSLETTER_FROM),
        "postal_address": settings.NEWSLETTER_POSTAL_ADDRESS,
        "web_url": f"{settings.NEWSLETTER_BASE_URL}/archive/{brief.slug}",
        "archive_url": f"{settings.NEWSLETTER_BASE_URL}/archive",
        "tokens": _TOKENS,
    }


def render_template(name: str, context: Mapping[str, object], templates_dir: Path) -> str:
    """One template through Jinja2; `.mjml.j2` results also through mjml-python."""
    environment = _environment(templates_dir)
    try:
        source = environment.get_template(name).render(**context)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(name, f"not found in {templates_dir}") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.name or name}:{exc.lineno}", exc.message or str(exc)) from exc
    except jinja2.UndefinedError as exc:
        raise TemplateError(name, str(exc)) from exc
    if not name.endswith(".mjml.j2"):
        return source
    try:
        return mjml.mjml2html(source, disable_comments=True)
    except ValueError as exc:
        raise TemplateError(
            name, f"MJML did not render ({exc}); check the template's tags"
        ) from exc


def render_brief(brief: Brief, topics: list[Topic], settings: Settings) -> RenderedEmail:
    context = brief_context(brief, topics, settings)
    templates = settings.NEWSLETTER_TEMPLATES_DIR
    return RenderedEmail(
        subject=brief.title,
        html=render_template("email/brief.mjml.j2", context, templates),
        text=render_template("email/brief.txt.j2", context, templates),
    )


def _day(value: date) -> str:
    return f"{value.day} {value:%B %Y}"


def render_digest(
    briefs: list[Brief], topics: list[Topic], settings: Settings, *, cadence: str, on: date
) -> RenderedEmail:
    """One email holding several briefs (title, takeaways, a link to each web version), for
    readers who chose a daily or weekly digest. Rendered once per distinct set of briefs."""
    base = settings.NEWSLETTER_BASE_URL
    title = f"Your {cadence} briefing: {len(briefs)} brief{'s' if len(briefs) != 1 else ''}"
    entries = []
    for brief in briefs:
        takeaways = [line for line in brief.takeaways.splitlines() if line.strip()]
        entries.append(
            {
                "title": brief.title,
                "date": _day(brief.date),
                "web_url": f"{base}/archive/{brief.slug}",
                "takeaways_html": [markdown_inline_html(item) for item in takeaways],
                "takeaways_text": [markdown_to_text(item) for item in takeaways],
            }
        )
    context = {
        "subject": title,
        "title": title,
        "date": _day(on),
        "preheader": " · ".join(brief.title for brief in briefs),
        "briefs": entries,
        "topics": [topic.name for topic in topics],
        "sender": _sender_name(settings.NEWSLETTER_FROM),
        "postal_address": settings.NEWSLETTER_POSTAL_ADDRESS,
        "web_url": f"{base}/archive",
        "tokens": _TOKENS,
    }
    templates = settings.NEWSLETTER_TEMPLATES_DIR
    return RenderedEmail(
        subject=title,
        html=render_template("email/digest.mjml.j2", context, templates),
        text=render_template("email/digest.txt.j2", context, templates),
    )


def _mail_context(settings: Settings, title: str, topics: list[Topic]) -> dict[str, object]:
    return {
        "subject": title,
        "title": title,
        "preheader": "",
        "topics": [topic.name for topic in topics],
        "sender": _sender_name(settings.NEWSLETTER_FROM),
        "postal_address": settings.NEWSLETTER_POSTAL_ADDRESS,
        "web_url": f"{settings.NEWSLETTER_BASE_URL}/archive",
        "tokens": _TOKENS,
    }


def render_confirmation(topics: list[Topic], settings: Settings) -> RenderedEmail:
    """The double opt-in email: one button, `%%nl:confirm_url:…%%` filled per recipient."""
    title = f"Please confirm your subscription to {_sender_name(settings.NEWSLETTER_FROM)}"
    context = _mail_context(settings, title, topics)
    context["preheader"] = "One click, and the briefs start arriving."
    templates = settings.NEWSLETTER_TEMPLATES_DIR
    return RenderedEmail(
        subject=title,
        html=render_template("email/confirmation.mjml.j2", context, templates),
        text=render_template("email/confirmation.txt.j2", context, templates),
    )


CADENCE_SENTENCES = {
    "immediate": "Each brief will arrive as soon as it is published.",
    "daily": "You will get one digest a day, at breakfast time where you are.",
    "weekly": "You will get one digest a week, on Monday morning where you are.",
}


def render_welcome(topics: list[Topic], cadence: str, settings: Settings) -> RenderedEmail:
    """Sent once a subscription is confirmed: what they will get, and how to change it."""
    title = f"Welcome to {_sender_name(settings.NEWSLETTER_FROM)}"
    context = _mail_context(settings, title, topics)
    context["cadence_sentence"] = CADENCE_SENTENCES.get(cadence, "")
    templates = settings.NEWSLETTER_TEMPLATES_DIR
    return RenderedEmail(
        subject=title,
        html=render_template("email/welcome.mjml.j2", context, templates),
        text=render_template("email/welcome.txt.j2", context, templates),
    )


def render_web(brief: Brief, topics: list[Topic], settings: Settings) -> str:
    """The brief as a web page (the archive's "view in browser" version): same content,
    no per-reader links, no tracking."""
    context = brief_context(brief, topics, settings)
    return render_template("web/brief.html.j2", context, settings.NEWSLETTER_TEMPLATES_DIR)
