"""Preview files: the email exactly as a sample reader would receive it, its web version,
and how it looks on a phone and on a desktop (PNG, headless Chromium)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.branding import Branding
from newsletter.config import Settings
from newsletter.devtools.browser import chromium
from newsletter.errors import ChromiumMissingError, NewsletterError
from newsletter.fields import fill, sample_values
from newsletter.models import Brief
from newsletter.render import RenderedEmail, render_brief, render_web
from subscribers.models import Topic

SCREEN_WIDTHS = (375, 640)  # an iPhone's width, and the email's own
STATIC = Path(__file__).resolve().parent.parent / "web" / "static"


def sample_html(rendered: RenderedEmail, settings: Settings) -> str:
    return fill(rendered.html, sample_values(settings.NEWSLETTER_BASE_URL))


@dataclass
class Preview:
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def write_preview(
    brief: Brief,
    topics: list[Topic],
    settings: Settings,
    out_dir: Path,
    *,
    screenshots: bool = True,
) -> Preview:
    """Write `<slug>.html`, `<slug>.txt`, `<slug>.web.html` and `<slug>-375.png`,
    `<slug>-640.png` into `out_dir`. Without Chromium the PNGs are skipped with a warning."""
    rendered = render_brief(brief, topics, settings)
    preview = Preview()
    values = sample_values(settings.NEWSLETTER_BASE_URL)
    html = fill(rendered.html, values)
    html_path = out_dir / f"{brief.slug}.html"
    text_path = out_dir / f"{brief.slug}.txt"
    web_path = out_dir / f"{brief.slug}.web.html"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        html_path.write_text(html, encoding="utf-8")
        text_path.write_text(
            f"Subject: {rendered.subject}\n\n{fill(rendered.text, values)}",
            encoding="utf-8",
        )
        web_path.write_text(render_web(brief, topics, settings, assets="static"), encoding="utf-8")
        # The web version's stylesheets beside it, as the app serves them, so it opens styled.
        static = out_dir / "static"
        static.mkdir(exist_ok=True)
        shutil.copyfile(STATIC / "site.css", static / "site.css")
        (static / "brand.css").write_text(Branding.from_settings(settings).stylesheet())
    except OSError as exc:
        problem = "it is a file, not a folder" if out_dir.is_file() else exc.strerror or exc
        raise NewsletterError(f"cannot write the preview into {out_dir}: {problem}") from None
    preview.files += [html_path, text_path, web_path]
    if not screenshots:
        return preview
    try:
        with chromium(settings.NEWSLETTER_CHROMIUM) as browser:
            for width in SCREEN_WIDTHS:
                path = out_dir / f"{brief.slug}-{width}.png"
                preview.files.append(browser.screenshot(html, width, path))
    except ChromiumMissingError as exc:
        preview.warnings.append(f"no screenshots: {exc}")
    return preview
