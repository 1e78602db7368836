"""One exception root; the CLI turns any of these into one clear line and a non-zero exit.

Each subclass carries what a user needs to act: the file and line, the field, or the
provider's own words.
"""

from __future__ import annotations

from pathlib import Path


class NewsletterError(Exception):
    """Something the user can fix; `str()` is the message to show them."""


class BriefError(NewsletterError):
    """A brief file that cannot be understood."""

    def __init__(self, path: Path | str, reason: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


class TemplateError(NewsletterError):
    """A template (or a brief's body inside it) that does not render."""

    def __init__(self, template: str, reason: str) -> None:
        self.template = template
        self.reason = reason
        super().__init__(f"template {template}: {reason}")


class NotFoundError(NewsletterError):
    """A brief, send, topic or subscriber named on the command line does not exist."""


class ConflictError(NewsletterError):
    """The request contradicts what the database already holds."""
