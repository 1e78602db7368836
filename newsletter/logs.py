"""The processes' logs: one setup for `newsletter worker`, `python scheduler.py` and
`newsletter serve`.

A log line is for the operator at night: one line per event that matters (a send started,
finished or paused and why, a batch the provider refused, a dead worker's lease recovered,
provider events applied), each naming its send and batch. Routine chatter is kept out:
APScheduler logs two lines per tick (about 35,000 a day at the default five seconds), so
its loggers only speak from WARNING up.

`NEWSLETTER_LOG_FORMAT=json` writes one JSON object per line for a log collector, with the
ids as fields of their own (`send_id`, `batch_id`) besides the sentence.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from newsletter.config import LogFormat, Settings
from newsletter.fields import LINKS

# Loggers whose INFO lines are routine: APScheduler's every tick, Alembic's every readiness
# probe ("Context impl …").
# Held at WARNING even when NEWSLETTER_LOG_LEVEL=debug: the sendgrid client logs every
# request's headers, the API key among them, and its payload, every reader's address.
QUIET_LOGGERS = ("apscheduler", "alembic", "python_http_client")
# Probes a supervisor, a load balancer and Prometheus make every few seconds: their
# successful requests stay out of the access log.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# The ids a line may carry (`extra=ids(...)`), shown as JSON fields.
ID_FIELDS = ("send_id", "batch_id", "worker_id")
# What every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's message again, with terminal colours
}
HANDLER_NAME = "newsletter"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def ids(send_id: object = None, batch_id: object = None, **more: object) -> dict[str, object]:
    """`extra=` for a log call: the ids a log collector can filter on."""
    found: dict[str, object] = {"send_id": send_id, "batch_id": batch_id, **more}
    return {key: value for key, value in found.items() if value is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the ids given
    with `extra=`, and the traceback as one string when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False)


def not_a_tick_in_progress(record: logging.LogRecord) -> bool:
    """False for APScheduler's warning that a tick was skipped because the last one still
    runs: one tick at a time is the design (`max_instances=1`), and a long send would
    otherwise log it every NEWSLETTER_TICK_SECONDS."""
    return "maximum number of running instances reached" not in str(record.msg)


def not_a_probe(record: logging.LogRecord) -> bool:
    """False for uvicorn's access line of a successful probe (args: client, method, path,
    HTTP version, status)."""
    args = record.args
    if isinstance(args, tuple) and len(args) == 5:
        path, status = str(args[2]).split("?")[0], args[4]
        return not (path in PROBE_PATHS and isinstance(status, int) and status < 400)
    return True


# A reader's link token in a path (`fields.LINKS`) or in a subscribers-only archive link's
# `t`: either lets whoever holds it act as that reader, and neither expires (README
# "Security"), so no log keeps one. Matched anywhere in the path and in any case
# (`//Unsubscribe/…` is a 404, its token a token all the same), `t` however it is encoded.
_TOKEN_IN_PATH = re.compile(
    "(?i)(/(?:" + "|".join(re.escape(path) for path, _ in LINKS.values()) + ")/+)[^/?#]+"
)
_TOKEN_IN_QUERY = re.compile(r"(?i)([?&](?:t|%74)=)[^&#]*")
# The console's queries hold what staff typed: a searched address or name, a reader named
# for a preview. Their keys stay (which page, which filter); their values do not.
_CONSOLE_PATH = re.compile(r"(?i)^/+admin(?:/|$)")
_QUERY_VALUE = re.compile(r"((?:^|&)[^=&#]*=)[^&#]*")
_BARE_KEY = re.compile(r"(^|&)[^=&#]+(?=&|#|$)")  # `?ann@example.com`: a value all the same


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def loggable_path(path: str) -> str:
    """A request's path (and query) as a log may keep it: link tokens, and the values of
    a console page's query, replaced by `…`."""
    # Control characters escaped: a NUL or a line break from a request's path would
    # otherwise be written into the log as it came.
    path = _CONTROL.sub(lambda found: ascii(found.group())[1:-1], path)
    hidden = _TOKEN_IN_QUERY.sub(r"\1…", _TOKEN_IN_PATH.sub(r"\1…", path))
    base, mark, query = hidden.partition("?")
    if mark and _CONSOLE_PATH.match(base):
        return base + "?" + _BARE_KEY.sub(r"\1…", _QUERY_VALUE.sub(r"\1…", query))
    return hidden


def without_private_parts(record: logging.LogRecord) -> bool:
    """uvicorn's access line with its path as `loggable_path` has it (args: client,
    method, path, HTTP version, status). Never drops the line."""
    args = record.args
    if isinstance(args, tuple) and len(args) == 5:
        path = str(args[2])
        hidden = loggable_path(path)
        if hidden != path:
            record.args = (*args[:2], hidden, *args[3:])
    return True


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a line is logged, not the stream it was when
    logging was set up: a test harness (or a CLI runner) that swaps stderr and closes its
    copy must not leave the process logging into a closed file."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        """The stream is always the current stderr."""


def configure_logging(settings: Settings) -> None:
    """Route every logger (ours, uvicorn's, SQLAlchemy's) to stderr in the configured format.

    Replaces the handler it installed before, so calling it twice leaves one handler, not
    two copies of every line; handlers someone else installed (pytest's) stay.
    """
    handler = _StderrHandler()
    handler.set_name(HANDLER_NAME)
    if settings.NEWSLETTER_LOG_FORMAT is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.NEWSLETTER_LOG_LEVEL.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # uvicorn configures its own loggers only when given a log_config; `serve` gives none,
    # so its lines (startup, access log) come through this handler too.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    for name, quiet in (
        ("uvicorn.access", not_a_probe),
        ("uvicorn.access", without_private_parts),
        ("apscheduler.scheduler", not_a_tick_in_progress),
    ):
        if quiet not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(quiet)
