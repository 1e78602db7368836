"""Preview files: the email exactly as a sample reader would receive it."""

from __future__ import annotations

from pathlib import Path

from newsletter.config import Settings
from newsletter.models import Brief
from newsletter.render import fill, recipient_values, render_brief
from subscribers.models import Topic

SAMPLE_READER = {"name": "Sample Reader", "email": "reader@example.com"}


def write_preview(
    brief: Brief, topics: list[Topic], settings: Settings, out_dir: Path
) -> list[Path]:
    """Write `<slug>.html` and `<slug>.txt` into `out_dir`; returns their paths."""
    rendered = render_brief(brief, topics, settings)
    base = settings.NEWSLETTER_BASE_URL
    values = recipient_values(
        **SAMPLE_READER,
        unsubscribe_url=f"{base}/unsubscribe/preview",
        preferences_url=f"{base}/preferences/preview",
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / f"{brief.slug}.html"
    text_path = out_dir / f"{brief.slug}.txt"
    html_path.write_text(fill(rendered.html, values), encoding="utf-8")
    text_path.write_text(
        f"Subject: {rendered.subject}\n\n{fill(rendered.text, values)}", encoding="utf-8"
    )
    return [html_path, text_path]
