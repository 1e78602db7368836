"""Headless Chromium for previews and layout checks: Debian's `chromium`, driven by
Playwright (the optional `preview` extra). No browser is downloaded, and pages are loaded
with every network request refused, so a preview never fetches a remote image or pings a
tracker.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter.errors import ChromiumMissingError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Runs in the page: what a reader's phone would make of the email.
_INSPECT = """
() => {
  const root = document.documentElement;
  let smallest = null;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const text = walker.currentNode.textContent.trim();
    const element = walker.currentNode.parentElement;
    if (!text || !element) continue;
    const box = element.getBoundingClientRect();
    const style = getComputedStyle(element);
    if (box.width === 0 || box.height === 0 || style.visibility === 'hidden'
        || style.opacity === '0' || style.maxHeight === '0px') continue;  // preheader
    const size = parseFloat(style.fontSize);
    if (smallest === null || size < smallest.size) smallest = {size, text: text.slice(0, 60)};
  }
  return {
    scrollWidth: root.scrollWidth,
    viewportWidth: window.innerWidth,
    smallest,
    links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
    imagesWithoutAlt: [...document.querySelectorAll('img')]
      .filter(img => !(img.getAttribute('alt') || '').trim())
      .map(img => img.getAttribute('src')),
  };
}
"""


def find_chromium(configured: str = "") -> str:
    if configured:
        if Path(configured).is_file() or shutil.which(configured):
            return configured
        raise ChromiumMissingError(f"NEWSLETTER_CHROMIUM={configured!r}: no such program")
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise ChromiumMissingError(
        "headless Chromium not found: install it (Debian: `apt-get install chromium`) or set "
        "NEWSLETTER_CHROMIUM to its path"
    )


@dataclass(frozen=True)
class Layout:
    width: int
    scroll_width: int
    smallest_font_px: float
    smallest_text: str
    links: list[str]
    images_without_alt: list[str]

    @property
    def scrolls_sideways(self) -> bool:
        return self.scroll_width > self.width


class Browser:
    def __init__(self, browser: Any) -> None:
        self._browser = browser

    def _page(self, html: str, width: int) -> Any:
        page = self._browser.new_page(viewport={"width": width, "height": 900})
        page.route("**/*", lambda route: route.abort())  # nothing leaves the machine
        page.set_content(html, wait_until="load")
        return page

    def screenshot(self, html: str, width: int, path: Path) -> Path:
        page = self._page(html, width)
        try:
            page.screenshot(path=str(path), full_page=True)
        finally:
            page.close()
        return path

    def layout(self, html: str, width: int) -> Layout:
        page = self._page(html, width)
        try:
            found = page.evaluate(_INSPECT)
        finally:
            page.close()
        smallest = found["smallest"] or {"size": 0.0, "text": ""}
        return Layout(
            width=width,
            scroll_width=int(found["scrollWidth"]),
            smallest_font_px=float(smallest["size"]),
            smallest_text=smallest["text"],
            links=list(found["links"]),
            images_without_alt=list(found["imagesWithoutAlt"]),
        )


@contextmanager
def chromium(configured: str = "") -> Iterator[Browser]:
    executable = find_chromium(configured)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise ChromiumMissingError(
            "Playwright is not installed: install the preview extra "
            "(pip install 'briefing-newsletter[preview]')"
        ) from None

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield Browser(browser)
        finally:
            browser.close()
