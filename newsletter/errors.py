"""The project's one error tree. Every surface (CLI, web, worker) catches the root and
shows its message; nothing else is caught as "the user's fault".

    NewsletterError                 something a person can fix (root; subscribers/errors.py)
    ├── SubscriberError             a subscriber or topic field, an unknown topic …
    │   ├── UnknownTopicError
    │   ├── InvalidSubscriberError  names the field and the value
    │   ├── SubscriberNotFoundError
    │   ├── TopicExistsError
    │   └── CsvFileError            a subscriber file that cannot be read at all
    ├── BriefError                  a brief file: names the file and line
    ├── TemplateError               a template (or a brief inside it) that does not render
    ├── NotFoundError               a brief or send named that does not exist
    ├── ConflictError               the request contradicts what the database holds
    ├── ConfigurationError          a setting, database or migration state to fix first
    │   └── NewerSchemaError        a database migrated by a newer version of this code
    ├── WebhookRejectedError        a provider post that is not from the provider, or not now
    └── ChromiumMissingError        no headless Chromium for screenshots

The root lives in `subscribers/errors.py` because `subscribers/` may not import this
package. `hint` carries the next step for a person at a terminal ("see `newsletter sends
list`"); the CLI prints it after the message, web pages leave it out.
"""

from __future__ import annotations

from pathlib import Path

from subscribers.errors import (
    InvalidSubscriberError,
    NewsletterError,
    SubscriberError,
    SubscriberNotFoundError,
    TopicExistsError,
    UnknownTopicError,
)

__all__ = [
    "BriefError",
    "ChromiumMissingError",
    "ConfigurationError",
    "ConflictError",
    "InvalidSubscriberError",
    "NewerSchemaError",
    "NewsletterError",
    "NotFoundError",
    "SubscriberError",
    "SubscriberNotFoundError",
    "TemplateError",
    "TopicExistsError",
    "UnknownTopicError",
    "WebhookRejectedError",
]


class BriefError(NewsletterError):
    """A brief file that cannot be understood."""

    def __init__(self, path: Path | str, reason: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        if line is None:
            where = self.path
        elif self.path:
            where = f"{self.path}:{line}"
        else:  # text from the console's editor has no file name: "line 3: …", not ":3: …"
            where = f"line {line}"
        super().__init__(f"{where}: {reason}" if where else reason)


class TemplateError(NewsletterError):
    """A template (or a brief's body inside it) that does not render."""

    def __init__(self, template: str, reason: str) -> None:
        self.template = template
        self.reason = reason
        super().__init__(f"template {template}: {reason}")


class NotFoundError(NewsletterError):
    """A brief or send named by a person does not exist."""


class ConflictError(NewsletterError):
    """The request contradicts what the database already holds."""


class ConfigurationError(NewsletterError):
    """A setting, the database or its migrations must be fixed before anything runs."""


class NewerSchemaError(ConfigurationError):
    """The database names a migration this code does not have: a newer version migrated
    it. `newsletter init` cannot help (Alembic cannot go down from a step it cannot read),
    and this code must not write to a schema it does not know."""

    def __init__(self, database: str, revision: str, newest: str) -> None:
        self.revision = revision
        self.newest = newest
        super().__init__(
            f"the database {database} was migrated by a newer version of newsletter "
            f"(its revision {revision}; this version knows up to {newest})",
            hint="install the version that migrated it, or restore the backup taken before "
            "the upgrade",
        )


class WebhookRejectedError(NewsletterError):
    """Not from the provider, or not now: nothing in it is applied."""


class ChromiumMissingError(NewsletterError):
    """No headless Chromium to take screenshots with."""
