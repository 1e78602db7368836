"""What the sandbox takes in, and how it refuses the rest, in one place for every endpoint:

* a request body, read only as long as its Content-Length says, and never kept past its
  endpoint's limit (`body_limit`; a refused one is at most read and thrown away, see
  DRAIN_MAX_BYTES). The length was once trusted as sent: "abc" got no answer and a
  traceback, "-1" read until the client gave up, and any body was read whole into memory
  before anything was checked;
* JSON, read whatever its depth: nested too deep for Python's parser it raised a
  RecursionError, which is no ValueError, and the request got no answer at all;
* a control endpoint's fields (`PUT /sandbox/faults`, `POST /sandbox/engage`), each with
  one rule (`Rule`): a refusal names the first field at fault, in one message starting with
  its name, and the dataclass is never made.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import fields
from email.message import Message
from http import HTTPStatus
from io import BufferedIOBase
from typing import Any
from urllib.parse import parse_qs

# SendGrid's v3 API refuses a mail/send body over 20 MB ("Message size limit" in its
# getting-started guide; its Limitations page says 30 MB for the email, and the smaller one
# is the one a sender must keep to, so the 30 MB rule in mail_send_rules is not reached over
# HTTP). Counted in powers of ten, the stricter reading.
MAIL_SEND_MAX_BYTES = 20 * 1000 * 1000
# The sandbox's own endpoints take a few hundred bytes of JSON (the faults' longest, 1000
# refused addresses, is about 260 KB).
CONTROL_MAX_BYTES = 2**20
# A body declared past its limit, but no larger than this, is read to its end in pieces and
# thrown away after the refusal: the sendgrid client (http.client) sends the whole body
# before it reads an answer, and a server closing on unread bytes makes the client's TCP
# stack reset the connection, so it would see "connection reset", not the 413. 32 MiB
# covers the 30 MB email SendGrid's Limitations page allows. Larger, nothing is read.
DRAIN_MAX_BYTES = 32 * 2**20
DRAIN_SECONDS = 5.0
# A body that stops arriving for this long is answered 408 (read when a body is read, so a
# test may shorten it).
BODY_IDLE_SECONDS = 30.0
# A seed any RNG takes (random.Random would take any hashable, "abc" too).
MAX_SEED = 2**32 - 1

_PIECE = 64 * 2**10


class BodyRefusedError(Exception):
    """A request body the sandbox will not read, or could not: answered with `status`
    naming `field` (the header at fault), then the connection is closed, since what is left
    of the body cannot be told from a next request. `unread`: bytes of it still coming."""

    def __init__(self, status: HTTPStatus, field: str, message: str, unread: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.unread = unread


def body_limit(path: str) -> tuple[int, str]:
    """(most bytes a body to `path` may have, why), for its 413."""
    if path.rstrip("/") == "/v3/mail/send":
        return MAIL_SEND_MAX_BYTES, "SendGrid refuses a mail/send body over 20 MB"
    return CONTROL_MAX_BYTES, "the sandbox's own endpoints take 1 MiB at most"


def declared_length(headers: Message, path: str) -> int:
    """The body's length as its one Content-Length says it, within `path`'s limit;
    BodyRefusedError otherwise (a chunked body too: the sandbox reads none)."""
    if "Transfer-Encoding" in headers:
        raise BodyRefusedError(
            HTTPStatus.BAD_REQUEST,
            "Transfer-Encoding",
            "Transfer-Encoding is not taken: send the body with a Content-Length",
        )
    given = [value.strip() for value in headers.get_all("Content-Length") or []]
    if not given:
        raise BodyRefusedError(
            HTTPStatus.BAD_REQUEST,
            "Content-Length",
            "Content-Length is missing: a POST or PUT says how many bytes its body has",
        )
    text = given[0]
    if len(set(given)) > 1 or not (text.isascii() and text.isdigit()):
        raise BodyRefusedError(
            HTTPStatus.BAD_REQUEST,
            "Content-Length",
            "Content-Length must be one whole number of bytes, 0 or more",
        )
    # No int() of a thousand digits: past 15, it is past every limit anyway.
    length, (limit, why) = (int(text) if len(text) <= 15 else 10**15), body_limit(path)
    if length > limit:
        raise BodyRefusedError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "Content-Length",
            f"Content-Length must be {limit:,} bytes at most: {why}",
            unread=length,
        )
    return length


def read_body(
    rfile: BufferedIOBase, connection: socket.socket, headers: Message, path: str
) -> bytes:
    """The request's body, exactly as long as declared (`declared_length`); a body that
    stops short (the client closed) or stops arriving is refused too."""
    length = declared_length(headers, path)
    idle = connection.gettimeout()
    connection.settimeout(BODY_IDLE_SECONDS)
    try:
        raw = rfile.read(length)
    except TimeoutError:
        raise BodyRefusedError(
            HTTPStatus.REQUEST_TIMEOUT,
            "Content-Length",
            f"Content-Length is {length}, but the body stopped arriving for "
            f"{BODY_IDLE_SECONDS:g} seconds",
        ) from None
    finally:
        connection.settimeout(idle)
    if len(raw) < length:
        raise BodyRefusedError(
            HTTPStatus.BAD_REQUEST,
            "Content-Length",
            f"Content-Length is {length}, but the body ended after {len(raw)} bytes",
        )
    return raw


def drain(rfile: BufferedIOBase, connection: socket.socket, unread: int) -> None:
    """Read what is left of a refused body and keep none of it, so the client can read
    its answer (see DRAIN_MAX_BYTES): a piece at a time, for DRAIN_SECONDS at most."""
    if not 0 < unread <= DRAIN_MAX_BYTES:
        return
    deadline = time.monotonic() + DRAIN_SECONDS
    try:
        connection.settimeout(DRAIN_SECONDS)
        while unread > 0 and time.monotonic() < deadline:
            piece = rfile.read(min(unread, _PIECE))
            if not piece:
                return
            unread -= len(piece)
    except OSError:  # a timeout, or the client gone: the connection is closed anyway
        return


class NestedTooDeepError(ValueError):
    """JSON nested too deep for Python's parser."""


def read_json(raw: str | bytes) -> Any:
    """`json.loads`, with JSON nested too deep for Python's parser refused as a
    ValueError (NestedTooDeepError), like any other text it cannot read."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise NestedTooDeepError("JSON nested too deeply to read") from None


# --- a control endpoint's fields: one rule each -------------------------------------------


class FieldRefusedError(ValueError):
    """A value a control endpoint will not take: `field` names the one at fault (None: the
    body as a whole), the message what it must be, starting with the field's name."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field


# What a field's value passes, and what a refusal says it must be.
Rule = tuple[Callable[[Any], bool], str]


def number_rule(top: float, meaning: str) -> Rule:
    """A number from 0 to `top`: not a bool (True is an int), never NaN or infinite."""
    return (
        lambda value: (
            isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= top
        ),
        meaning,
    )


def whole_rule(top: int, meaning: str) -> Rule:
    """A whole number from 0 to `top`, not a bool."""
    return (
        lambda value: isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= top,
        meaning,
    )


def check_rules(made: object, rules: Mapping[str, Rule]) -> None:
    """FieldRefusedError for the first of `made`'s fields that breaks its rule."""
    for name, (valid, meaning) in rules.items():
        if not valid(getattr(made, name)):
            raise FieldRefusedError(name, f"{name} must be {meaning}")


def known_fields(data: Any, made: type[Any], whole: str, one: str) -> dict[str, Any]:
    """`data` as the keyword arguments of dataclass `made`, when it is a JSON object of its
    fields; FieldRefusedError naming the first unknown one otherwise. `whole` and `one`
    name the thing and one of its fields in a refusal ("the faults", "a fault field")."""
    known = sorted(f.name for f in fields(made))
    if not isinstance(data, dict):
        raise FieldRefusedError(
            None, f"{whole} must be a JSON object with fields {', '.join(known)}"
        )
    unknown = sorted(map(str, set(data) - set(known)))
    if unknown:
        others = ", ".join(unknown[1:4]) + (", …" if len(unknown) > 4 else "")
        nor = f" (nor {others})" if others else ""
        raise FieldRefusedError(
            unknown[0], f"{unknown[0]} is not {one}{nor}; they are {', '.join(known)}"
        )
    return data


def json_object(text: str | bytes, made: type[Any], whole: str, one: str) -> dict[str, Any]:
    """`known_fields` of a request's JSON body; text that is not JSON is refused as not
    a JSON object."""
    try:
        data = read_json(text)
    except ValueError:
        data = None
    return known_fields(data, made, whole, one)


# --- GET /sandbox/messages?offset=&limit= -------------------------------------------------

# Messages per answer unless `limit` says fewer or more.
MESSAGES_PAGE = 100
MAX_MESSAGES_PAGE = 1000


def message_page(query: str) -> tuple[int, int]:
    """(offset, limit) from `?offset=&limit=`; ValueError naming the parameter at fault."""
    given = parse_qs(query, keep_blank_values=True)
    offset = _whole(given.get("offset", ["0"])[-1])
    limit = _whole(given.get("limit", [str(MESSAGES_PAGE)])[-1])
    if offset is None:
        raise ValueError("offset must be a whole number: how many messages to skip")
    if limit is None or not 1 <= limit <= MAX_MESSAGES_PAGE:
        raise ValueError(f"limit must be a whole number from 1 to {MAX_MESSAGES_PAGE}")
    return offset, limit


def _whole(text: str) -> int | None:
    """A non-negative whole number of at most 12 ASCII digits, else None."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else None
