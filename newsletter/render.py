"""A brief to an email: Jinja2 fills an MJML template, mjml-python turns it into HTML.

Rendering happens once per brief and template, never per subscriber. What differs per
recipient (name, address, the token ending each of the reader's links) is left in as
tokens (`newsletter/fields.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import jinja2
import mjml
from markupsafe import Markup

from newsletter.branding import Branding
from newsletter.config import ArchiveVisibility, Settings
from newsletter.errors import TemplateError
from newsletter.fields import PARTS, template_tokens, token
from newsletter.models import Brief
from newsletter.render_markdown import (
    markdown_inline_html,
    markdown_to_html,
    markdown_to_line,
    markdown_to_text,
)
from newsletter.render_text import display_width, wrap
from subscribers.models import Cadence, Topic

# Gmail clips a message whose HTML passes ~102 KB; the reader then sees "[Message clipped]"
# and, worse, loses the unsubscribe footer.
GMAIL_CLIP_BYTES = 102 * 1024


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


def _wrap_filter(text: str, width: int = 72) -> str:
    return "\n".join(wrap(str(text), width))


def _heading_filter(text: str, char: str = "=") -> str:
    """A title wrapped, and underlined as wide as its widest line."""
    lines = wrap(str(text))
    return "\n".join([*lines, char * max(display_width(line) for line in lines)])


@lru_cache(maxsize=8)
def _environment(templates_dir: Path) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("mjml.j2", "html.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["wrap72"] = _wrap_filter
    environment.filters["heading"] = _heading_filter
    return environment


@lru_cache(maxsize=8)
def page_environment(templates_dir: Path) -> jinja2.Environment:
    """The web pages' templates (`templates/web/`), autoescaped: the app's pages and each
    brief's web version share `_page.html`, the firm's header and footer."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(templates_dir) / "web")),
        autoescape=True,
    )


# Padding after the preheader, so an inbox's one-line snippet ends with it instead of
# running on into the masthead: invisible joiners and spaces, as mail clients expect.
_PREHEADER_PADDING = Markup("&#847;&zwnj;&nbsp;" * 90)  # noqa: S704 - fixed text


def day_in_words(value: date) -> str:
    return f"{value.day} {value:%B %Y}"


def archive_links(settings: Settings, slug: str = "") -> dict[str, str] | None:
    """The "View in browser" (or archive) URL per part, or None when there is no archive.
    For subscribers only, each reader's URL carries their own archive token."""
    if settings.NEWSLETTER_ARCHIVE is ArchiveVisibility.OFF:
        return None
    url = f"{settings.NEWSLETTER_BASE_URL}/archive" + (f"/{quote(slug)}" if slug else "")
    if settings.NEWSLETTER_ARCHIVE is ArchiveVisibility.PUBLIC:
        return {part: url for part in PARTS}
    return {part: f"{url}?t={token('archive_token', part)}" for part in PARTS}


def _common(settings: Settings, title: str, topics: list[Topic]) -> dict[str, object]:
    brand = Branding.from_settings(settings)
    return {
        "subject": title,
        "title": title,
        "preheader": "",
        "preheader_padding": _PREHEADER_PADDING,
        "topics": [topic.name for topic in topics],
        # Whose topics the footer names: a brief's or a digest's (one email for every
        # reader it matched, so "you follow" all of them is untrue for most) unless a
        # confirmation or welcome names the reader's own.
        "topics_yours": False,
        "brand": brand,
        "sender": brand.name,
        "postal_address": brand.postal_address,
        "web_url": archive_links(settings),
        "archive_url": archive_links(settings),
        "list_links": True,  # unsubscribe and preferences (not before a reader confirmed)
        "tokens": template_tokens(settings.NEWSLETTER_BASE_URL),
    }


def _takeaways(brief: Brief) -> list[str]:
    return [line for line in brief.takeaways.splitlines() if line.strip()]


def brief_context(brief: Brief, topics: list[Topic], settings: Settings) -> dict[str, object]:
    takeaways = _takeaways(brief)
    context = _common(settings, brief.title, topics)
    context.update(
        {
            "date": day_in_words(brief.date),
            "preheader": brief.preheader or (markdown_to_line(takeaways[0]) if takeaways else ""),
            "takeaways_html": [markdown_inline_html(item) for item in takeaways],
            "takeaways_text": [markdown_to_text(item, width=68) for item in takeaways],
            "body_html": markdown_to_html(brief.body),
            "body_text": markdown_to_text(brief.body),
            "signature_html": markdown_to_html(brief.signature, signature=True)
            if brief.signature
            else "",
            "signature_text": markdown_to_text(brief.signature, signature=True, compact=True),
            "author": brief.author,
            "web_url": archive_links(settings, brief.slug),
        }
    )
    return context


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


def render_digest(
    briefs: list[Brief], topics: list[Topic], settings: Settings, *, cadence: str, on: date
) -> RenderedEmail:
    """One email holding several briefs (title, takeaways, a link to each web version), for
    readers who chose a daily or weekly digest. Rendered once per distinct set of briefs.
    Cadence `immediate` is a closing digest (sending/digests.py), to readers who left daily
    or weekly digests (which, it does not know): titled as their last, not as a daily one."""
    count = f"{len(briefs)} brief{'s' if len(briefs) != 1 else ''}"
    closing = cadence == Cadence.IMMEDIATE
    title = f"Your last digest: {count}" if closing else f"Your {cadence} briefing: {count}"
    entries = []
    for brief in briefs:
        takeaways = _takeaways(brief)
        entries.append(
            {
                "title": brief.title,
                "date": day_in_words(brief.date),
                "author": brief.author,
                "web_url": archive_links(settings, brief.slug),
                "takeaways_html": [markdown_inline_html(item) for item in takeaways],
                "takeaways_text": [markdown_to_text(item, width=68) for item in takeaways],
            }
        )
    context = _common(settings, title, topics)
    context.update({"date": day_in_words(on), "preheader": " · ".join(b.title for b in briefs)})
    context["briefs"] = entries
    context["intro"] = (
        "What came out since your last digest. From now on, each brief comes on its own as it "
        "is published."
        if closing
        else ""
    )
    templates = settings.NEWSLETTER_TEMPLATES_DIR
    return RenderedEmail(
        subject=title,
        html=render_template("email/digest.mjml.j2", context, templates),
        text=render_template("email/digest.txt.j2", context, templates),
    )


def render_confirmation(
    topics: list[Topic], settings: Settings, *, every_topic: bool = False
) -> RenderedEmail:
    """The double opt-in email: one button, its link ending in each recipient's confirm token.
    Its "View in browser" leads to the archive, and only when that is public: a reader
    who has not confirmed has no way into a subscribers-only one yet."""
    brand = Branding.from_settings(settings)
    title = f"Please confirm your subscription to {brand.name}"
    context = _common(settings, title, topics)
    context["topics_yours"] = True
    context["every_topic"] = every_topic  # a reader of everything: no list, "every topic"
    context["preheader"] = "One click, and the briefs start arriving."
    context["list_links"] = False
    if not brand.archive_public:
        context["web_url"] = context["archive_url"] = None
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


def render_welcome(
    topics: list[Topic], cadence: str, settings: Settings, *, every_topic: bool = False
) -> RenderedEmail:
    """Sent once a subscription is confirmed: what they will get, and how to change it."""
    title = f"Welcome to {Branding.from_settings(settings).name}"
    context = _common(settings, title, topics)
    context["topics_yours"] = True
    context["every_topic"] = every_topic
    context["cadence_sentence"] = CADENCE_SENTENCES.get(cadence, "")
    context["preheader"] = "What you will receive, and how to change it."
    templates = settings.NEWSLETTER_TEMPLATES_DIR
    return RenderedEmail(
        subject=title,
        html=render_template("email/welcome.mjml.j2", context, templates),
        text=render_template("email/welcome.txt.j2", context, templates),
    )


def render_web(
    brief: Brief,
    topics: list[Topic],
    settings: Settings,
    *,
    archive_query: str = "",
    assets: str = "/static",
) -> str:
    """The brief as a web page (the archive's "view in browser" version): same content,
    no per-reader links, no tracking, no inline style (the page's CSP allows none), and
    images only from the origins the firm allows. `archive_query` (`?t=…`) keeps a reader
    of a subscribers-only archive inside it."""
    context = brief_context(brief, topics, settings)
    context["body_html"] = markdown_to_html(
        brief.body, target="web", image_origins=settings.image_origins
    )
    context["signature_html"] = (
        markdown_to_html(brief.signature, target="web", signature=True) if brief.signature else ""
    )
    context["archive_query"] = archive_query
    context["assets"] = assets  # where site.css and brand.css are: the app's /static
    context["topic_links"] = [(topic.slug, topic.name) for topic in topics]
    return (
        page_environment(settings.NEWSLETTER_TEMPLATES_DIR)
        .get_template("brief.html")
        .render(**context)
    )
