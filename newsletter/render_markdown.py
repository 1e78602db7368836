"""A brief's Markdown (CommonMark, markdown-it-py) as HTML for the email or for the web
version, and as plain text; the three read the same token stream.

The email and the web page differ where their readers' software does: an email's images
carry a `width` attribute and an inline `max-width` (Outlook for Windows and Gmail with
non-Google accounts ignore `<style>` rules; a 1,200 px chart made the page 1,256 px wide on
a phone; `width:100%` rather than `max-width:100%` alone, since inside a table only a
percentage width lets the image shrink), and its tables inline styles that keep headers
from breaking mid-word. The web page may use no inline style at all (its
Content-Security-Policy refuses them) and shows an image only from an origin the firm
allows; any other is a link to it, never loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from html import escape
from typing import Any, Literal
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup
from mdit_py_plugins.footnote import footnote_plugin

from newsletter.render_text import WIDTH, tokens_to_text

Target = Literal["email", "web"]
# The email's content column: 640 px wide, 24 px padding either side.
EMAIL_CONTENT_PX = 592
_EMAIL_TABLE = 'style="border-collapse:collapse;word-break:normal;overflow-wrap:normal;"'
_EMAIL_CELL = (
    'style="border:1px solid #d1d5db;padding:4px 8px;text-align:left;vertical-align:top;'
    'word-break:normal;overflow-wrap:normal;hyphens:manual;"'
)


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # Raw HTML in a brief is shown as text: it would bypass the template's escaping and
    # could break the MJML around it.
    # Footnotes ([^1]) from mdit-py-plugins: analysts cite sources. In an email the
    # reference is a plain [1] rather than an in-page link, which Gmail and Outlook break.
    # A bare https:// address is a link (staff paste them; it was plain text, so a reader's
    # client might not link it and the report's links never counted it). Only with its
    # scheme: "example.com" in a sentence stays words.
    md = (
        MarkdownIt("commonmark", {"html": False, "typographer": False, "linkify": True})
        .enable(["table", "linkify"])
        .use(footnote_plugin)
    )
    if md.linkify is not None:  # set when linkify-it-py is installed (a dependency)
        md.linkify.set({"fuzzy_link": False, "fuzzy_email": False, "fuzzy_ip": False})
        # Nor "//host/path" (it goes nowhere from a mail client) or ftp: (no reader's).
        md.linkify.add("//", None).add("ftp:", None)
    md.add_render_rule("footnote_ref", _footnote_ref)
    md.add_render_rule("footnote_anchor", lambda *_: "")
    md.add_render_rule("image", _image)
    for tag in ("table_open", "table_close", "th_open", "td_open"):
        md.add_render_rule(tag, _table_part)
    return md


def _footnote_ref(_renderer: object, tokens: list[Token], index: int, *_: object) -> str:
    return f'<sup class="footnote-ref">[{tokens[index].meta["id"] + 1}]</sup>'


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _image(
    _renderer: object, tokens: list[Token], index: int, _options: object, env: dict[str, Any]
) -> str:
    token = tokens[index]
    src = escape(str(token.attrGet("src") or ""), quote=True)
    alt = escape("".join(child.content for child in token.children or []), quote=True)
    if env.get("target") == "web":
        if _origin(str(token.attrGet("src") or "")) in env.get("image_origins", ()):
            return f'<img src="{src}" alt="{alt}" loading="lazy">'
        return f'<a class="image-link" href="{src}">Image: {alt}</a>'
    return (
        f'<img src="{src}" alt="{alt}" width="{EMAIL_CONTENT_PX}" '
        f'style="display:block;width:100%;max-width:{EMAIL_CONTENT_PX}px;height:auto;border:0;">'
    )


def _table_part(
    renderer: Any, tokens: list[Token], index: int, options: Any, env: dict[str, Any]
) -> str:
    token = tokens[index]
    email = env.get("target") != "web"
    if token.type == "table_open":
        wrapper = '<div style="overflow-x:auto;">' if email else '<div class="table-scroll">'
        return wrapper + (f"<table {_EMAIL_TABLE}>\n" if email else "<table>\n")
    if token.type == "table_close":
        return "</table>\n</div>\n"
    if email:
        return f"<{token.tag} {_EMAIL_CELL}>"
    return str(renderer.renderToken(tokens, index, options, env))


def _as_signature(tokens: Sequence[Token]) -> list[Token]:
    """A signature's lines as written: headings as paragraphs (`## Name` is a name, not a
    section of the page), and each line break kept. Written one item to a line (a name, a
    role, the firm), CommonMark ran them into one line: "Li Wei Senior Analyst, China"."""
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.type = token.type.replace("heading", "paragraph")
            token.tag = "p"
        for child in token.children or []:
            if child.type == "softbreak":
                child.type, child.tag = "hardbreak", "br"
    return list(tokens)


def markdown_to_html(
    text: str,
    *,
    target: Target = "email",
    image_origins: Sequence[str] = (),
    signature: bool = False,
) -> Markup:
    md = _markdown()
    env = {"target": target, "image_origins": tuple(image_origins)}
    tokens = md.parse(text, env)
    if signature:
        tokens = _as_signature(tokens)
    return Markup(md.renderer.render(tokens, md.options, env))  # noqa: S704 - markdown-it escapes.


def markdown_inline_html(text: str) -> Markup:
    return Markup(_markdown().renderInline(text))  # noqa: S704 - markdown-it escapes its input.


def markdown_to_text(
    text: str, *, signature: bool = False, compact: bool = False, width: int = WIDTH
) -> str:
    """Plain text from the same tokens (see `render_text`), wrapped at `width`."""
    tokens = _markdown().parse(text, {})
    return tokens_to_text(_as_signature(tokens) if signature else tokens, width, compact=compact)


def markdown_to_line(text: str) -> str:
    """One line of plain words, emphasis marks dropped: an excerpt, a preheader."""
    return " ".join(tokens_to_text(_markdown().parse(text, {}), 100_000, marks=False).split())
