"""Reading a request's parameters: the file name (query or JSON body) and upload options."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import request

from chord.names import InvalidName, decode_name, validate_name
from services.rest.errors import ApiError, bad_request
from services.rest.json_input import read_json

MAX_JSON_BYTES = 64 << 10  # a JSON body only ever names a file
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def checked_name(name: object) -> str:
    try:
        return validate_name(name)
    except InvalidName as exc:
        raise bad_request(f"invalid file name: {exc}") from None


def strict_query() -> None:
    """Refuse a query string whose percent-decoded keys or values are not UTF-8 (400,
    naming the byte). werkzeug keeps such escapes as literal text (``?name=%C0%AE`` would
    be the name ``%C0%AE``); run before every route, so ``request.args`` can be trusted."""
    for key, value in query_pairs(request.query_string):
        text = _utf8(key, "a query parameter's name")
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            if text == "name":
                try:
                    decode_name(value)
                except InvalidName as exc:
                    raise bad_request(f"invalid file name: {exc}") from None
            _utf8(value, f"the query parameter {text!r}")


def query_pairs(query: bytes) -> list[tuple[bytes, bytes]]:
    """``a=1&b=%C0`` as percent-decoded bytes (``+`` is a space), without decoding text:
    urllib's parse_qsl would decode them (as ASCII, for bytes) before we can check them."""
    pairs = []
    for item in query.split(b"&"):
        if item:
            key, _, value = item.partition(b"=")
            pairs.append((_unquote(key), _unquote(value)))
    return pairs


def _unquote(raw: bytes) -> bytes:
    return unquote_to_bytes(raw.replace(b"+", b" "))


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(
            f"{what} must be valid UTF-8 (byte 0x{raw[exc.start]:02X} at {exc.start} is not)"
        ) from None


def json_body() -> dict[str, Any]:
    """The request's JSON object; 415 if it is not JSON, 400 if it is not an object."""
    if not request.is_json:
        raise ApiError(415, "send the parameters as JSON (Content-Type: application/json)")
    if (request.content_length or 0) > MAX_JSON_BYTES:
        raise ApiError(413, f"a JSON body is at most {MAX_JSON_BYTES} bytes")
    body = read_json(MAX_JSON_BYTES)  # bounded, depth-checked: never a 500 (json_input)
    if not isinstance(body, dict):
        raise bad_request('the body must be a JSON object such as {"filename": "report.pdf"}')
    return body


def name_param() -> str:
    """The file name from ``?name=`` or, on POST, from ``{"filename"}`` / ``{"name"}``."""
    if "name" in request.args:
        return checked_name(request.args["name"])
    if request.method != "POST":
        raise bad_request("give the file name as the query parameter 'name'")
    body = json_body()
    given = [body[key] for key in ("filename", "name") if key in body]
    if not given:
        raise bad_request('the JSON body needs "filename" (the file name)')
    if len(given) == 2 and given[0] != given[1]:
        raise bad_request('"filename" and "name" disagree; give one of them')
    return checked_name(given[0])


def parse_bool(text: str, what: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise bad_request(f"{what} must be true/false, 1/0 or yes/no, got {text!r}")


def parse_replicas(text: str, most: int) -> int | None:
    """A file's own number of copies, or None for ``default`` (the current version's
    count on an overwrite, else the ring's k): a client can then give every option ahead
    of the bytes, so they stream without a spool copy, without choosing a count."""
    value = text.strip()
    if value.lower() == "default":
        return None
    if not re.fullmatch(r"[0-9]{1,4}", value) or not 1 <= int(value) <= most:
        raise bad_request(f"replicas must be 'default' or an integer in 1..{most}, got {text!r}")
    return int(value)
