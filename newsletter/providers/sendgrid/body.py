"""What goes over the wire to SendGrid, and what the client may say about it in a log.

The `sendgrid` package's HTTP client (python_http_client) writes each request's headers
and payload into debug messages. `logs.QUIET_LOGGERS` keeps its logger at WARNING, so the
lines never appear; the values here make sure that, were the logger let through by some
other program's logging setup, the lines would carry neither the API key nor a reader.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# What our requests say they carry. The client serializes a body it is given as an object
# with `json.dumps`, and sends the `.encode("utf-8")` of any other unless the request's
# Content-Type is exactly `application/json`; naming the charset (as SendGrid's own C#
# client does) lets the transport serialize each request itself, with orjson: 0.24 µs a
# reader against json.dumps's 3.0, which was the largest single cost of a hand-off in Python.
CONTENT_TYPE = "application/json; charset=utf-8"


class RequestBody(bytes):
    """A request's JSON as UTF-8 bytes, which say only their size when made into text.

    python_http_client sends `request_body.encode("utf-8")` for a request whose Content-Type
    is not exactly `application/json`: bytes that are their own encoding go out as orjson
    made them, one copy instead of four (text, then bytes again: 0.7 ms of a 1,000-recipient
    request). The client also formats every payload into a debug message before it asks
    whether anyone listens (`'PAYLOAD: {data}'.format(...)`): the repr of 500 KB, 2.2 ms a
    request. Were its logger ever let through (`logs.QUIET_LOGGERS` holds it at WARNING),
    the line would say the size, not every reader's address.
    """

    __slots__ = ()

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        if encoding.lower().replace("-", "") != "utf8":
            raise ValueError(f"a request body is UTF-8, not {encoding}")
        return self

    def __str__(self) -> str:
        return f"<{len(self):,} bytes of JSON>"

    __repr__ = __str__


def encode_body(body: dict[str, Any]) -> RequestBody:
    """A request body as JSON (UTF-8, not \\u-escaped: CJK names cost a third)."""
    try:
        return RequestBody(orjson.dumps(body))
    except orjson.JSONEncodeError:
        # Text orjson will not encode (half a surrogate pair): json escapes it, and SendGrid
        # answers with its words for that recipient instead of the batch never leaving.
        return RequestBody(json.dumps(body).encode("ascii"))


class _Secret(str):
    """A header value that is itself when sent and `***` when shown."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


def masked(value: str) -> str:
    """`value` as the client's HEADERS debug line shows it: masked (http.client encodes the
    real text when it sends the header)."""
    return _Secret(value)
