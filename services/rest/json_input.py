"""Reading a small JSON request body without letting its shape hurt the peer.

``json.loads`` recurses once per nesting level: a body of 1,000 nested brackets (3 KB)
raised RecursionError, which escaped as a 500 with a traceback in the log. A body with
chunked transfer encoding has no Content-Length to check up front. So the body is read
with a byte limit, its nesting is measured without recursion, and only then parsed;
every problem is a 4xx in the API's error shape.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import request

from services.rest.errors import ApiError, bad_request

MAX_DEPTH = 32  # a body names a file: {"filename": "..."} is depth 1
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def depth(text: str) -> int:
    """How deeply arrays and objects nest in ``text`` (strings skipped)."""
    deepest = level = 0
    for char in _STRINGS.sub('""', text):
        if char in "[{":
            level += 1
            deepest = max(deepest, level)
        elif char in "]}":
            level -= 1
    return deepest


def read_json(limit: int) -> Any:
    """The request's JSON value; 413 over ``limit`` bytes, 400 if it is not JSON (any
    UTF-8/16/32 encoding, as RFC 8259 allows) or nests deeper than MAX_DEPTH."""
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, f"a JSON body is at most {limit} bytes")
    try:
        text = raw.decode(json.detect_encoding(raw))
    except (UnicodeDecodeError, LookupError):
        raise bad_request("the body is not valid JSON text (UTF-8, UTF-16 or UTF-32)") from None
    if depth(text) > MAX_DEPTH:
        raise bad_request(f"the JSON body nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None
