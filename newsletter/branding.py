"""The firm's branding, set once in settings and shared by every email and page.

The accent colour is the firm's, but text in it must stay readable: where it would read
below 4.5:1 (WCAG AA for body text) on white it is darkened, and for dark mode a lighter
shade is derived that reads at 4.5:1 or better on the dark card. Button text is white,
which the darkened accent guarantees at 4.5:1 too.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.config import ArchiveVisibility, Settings

# The surfaces text sits on, light and dark (emails and pages share them).
LIGHT_SURFACES = ("#ffffff", "#f3f4f6")
DARK_SURFACES = ("#111318", "#1b1e25")
MINIMUM_CONTRAST = 4.5
# A little above the minimum: colours are rounded to whole bytes.
_TARGET = MINIMUM_CONTRAST + 0.1


def _rgb(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(min(255.0, max(0.0, c))):02x}" for c in rgb)


def luminance(colour: str) -> float:
    """WCAG 2 relative luminance of `#rrggbb`."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(first: str, second: str) -> float:
    """WCAG 2 contrast ratio, 1 to 21."""
    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _mix(colour: str, toward: str, share: float) -> str:
    a, b = _rgb(colour), _rgb(toward)
    return _hex(tuple(x + (y - x) * share for x, y in zip(a, b, strict=True)))  # type: ignore[arg-type]


def readable_on(colour: str, surfaces: tuple[str, ...], toward: str) -> str:
    """`colour`, moved toward `toward` (black or white) just far enough to read at 4.5:1
    on every one of `surfaces`."""
    for step in range(101):
        candidate = _mix(colour, toward, step / 100)
        if all(contrast(candidate, surface) >= _TARGET for surface in surfaces):
            return candidate
    return toward


@dataclass(frozen=True)
class Branding:
    name: str
    logo_url: str
    logo_width: int
    accent: str  # on light surfaces, and the button's background (white text on it)
    accent_dark: str  # on dark surfaces
    postal_address: str
    footer_line: str
    archive: ArchiveVisibility

    @classmethod
    def from_settings(cls, settings: Settings) -> Branding:
        accent = settings.NEWSLETTER_ACCENT_COLOR
        return cls(
            name=settings.NEWSLETTER_FIRM_NAME,
            logo_url=settings.NEWSLETTER_LOGO_URL,
            logo_width=settings.NEWSLETTER_LOGO_WIDTH,
            accent=readable_on(accent, LIGHT_SURFACES, "#000000"),
            accent_dark=readable_on(accent, DARK_SURFACES, "#ffffff"),
            postal_address=settings.NEWSLETTER_POSTAL_ADDRESS,
            footer_line=settings.NEWSLETTER_FOOTER_LINE,
            archive=settings.NEWSLETTER_ARCHIVE,
        )

    @property
    def archive_public(self) -> bool:
        return self.archive is ArchiveVisibility.PUBLIC

    def stylesheet(self) -> str:
        """The brand's colours as CSS custom properties (`/static/brand.css`): pages take
        every colour from the app's own stylesheets, never from an inline style."""
        return (
            f":root {{ --accent: {self.accent}; --button: {self.accent}; }}\n"
            f"@media (prefers-color-scheme: dark) {{ :root {{ --accent: {self.accent_dark}; }} }}\n"
        )
