"""What the browser tests measure on a page, in headless Chromium (Debian's `chromium`,
through Playwright): sideways scrolling, Content-Security-Policy violations, and axe-core's
accessibility findings.

axe-core comes from the npm registry (`.ci/run` and `make axe` install it under
`var/node/`, ignored by git). It is evaluated through the DevTools protocol, which the
page's own CSP does not govern, so the page is measured under its real policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "var" / "node" / "node_modules" / "axe-core" / "axe.min.js"
# Where the page screenshots go (README: "Screenshots").
SCREENSHOTS = ROOT / "var" / "screenshots"
# axe-core's two worst impact levels: what a reader with a screen reader, a keyboard or low
# vision cannot get past.
SERIOUS = ("serious", "critical")

_LISTEN = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(
  `${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`));
"""


@lru_cache(maxsize=1)
def axe_source() -> str:
    if not AXE.is_file():
        raise RuntimeError(
            f"axe-core is not installed at {AXE}: run `make axe` "
            "(npm install --prefix var/node axe-core@4.10)"
        )
    return AXE.read_text(encoding="utf-8")


@dataclass
class Findings:
    width: int
    scroll_width: int = 0
    csp: list[str] = field(default_factory=list)
    axe: list[str] = field(default_factory=list)
    text: str = ""

    @property
    def scrolls_sideways(self) -> bool:
        return self.scroll_width > self.width


def watch(page: Any) -> list[str]:
    """Start collecting the CSP violations Chromium reports on `page`'s console; call
    before navigating. Returns the list it fills."""
    messages: list[str] = []
    page.on(
        "console",
        lambda message: (
            messages.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.add_init_script(_LISTEN)
    return messages


def only_loopback(page: Any) -> None:
    """Nothing leaves the machine: requests anywhere but 127.0.0.1 are refused."""
    page.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(("http://127.0.0.1", "data:"))
            else route.abort()
        ),
    )


def measure(page: Any, width: int, console: list[str]) -> Findings:
    """Measure the page as it stands."""
    page.evaluate(axe_source())
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ': ' + n.failureSummary)}))"
    )
    findings = Findings(width=width)
    findings.scroll_width = int(page.evaluate("document.documentElement.scrollWidth"))
    findings.csp = [*console, *page.evaluate("window.__cspViolations || []")]
    findings.axe = [
        f"{item['impact']} {item['id']}: {item['help']} ({'; '.join(item['nodes'])})"
        for item in result
        if item["impact"] in SERIOUS
    ]
    findings.text = page.inner_text("body")
    return findings
