"""The file part's filename, read strictly from its raw ``Content-Disposition`` header.

werkzeug's parser is lenient in ways that rewrite names: it drops backslashes it takes
for escapes (``..\\..\\win.ini`` becomes ``....win.ini``), ends a value early at a quote
some clients escape and others do not, turns ``%22`` into ``"``, and decodes
``filename*=`` with invalid bytes replaced. A filename that becomes a file's name must
mean one thing, so ambiguous ones are refused (400), never rewritten:

* ``filename="…"``: a ``\\`` (an escape to some clients, a Windows folder separator to
  others) or a quote (sent as ``\\"`` by some clients, ``%22`` by browsers and curl) is
  refused; anything else is taken as it is, then checked by ``chord.names``.
* ``filename*=UTF-8''…`` (RFC 5987/6266) wins over ``filename``; its percent-encoded bytes
  must be valid UTF-8; another charset is refused.
* RFC 2231 continuations (``filename*0=``) are refused: no client in use sends them.

The header itself arrives decoded as UTF-8 by werkzeug (invalid bytes there already fail
the multipart decoder with 400).
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from chord.names import InvalidName, decode_name, validate_name
from services.rest.errors import ApiError, bad_request

_KEY = re.compile(r"\s*([^\s=;]+)\s*=\s*")
_EXT_VALUE = re.compile(r"([A-Za-z0-9!#$%&+^_`{}~-]+)'[^']*'(.*)", re.DOTALL)
ADVICE = "; give the name in the form field 'name' instead"


def parameters(disposition: str) -> dict[str, str]:
    """The header's parameters, keys lowercased, values raw (a quoted string keeps its
    quotes and backslashes). A parameter given twice is refused."""
    _, _, rest = disposition.partition(";")
    found: dict[str, str] = {}
    position = 0
    while rest[position:].strip():
        match = _KEY.match(rest, position)
        if match is None:
            raise bad_request(f"malformed Content-Disposition header of a part: {disposition!r}")
        key, position = match[1].lower(), match.end()
        value, position = _value(rest, position, disposition)
        if key in found:
            raise bad_request(f"the Content-Disposition parameter {key!r} is given twice")
        found[key] = value
        position = _after_value(rest, position, disposition)
    return found


def _value(rest: str, position: int, disposition: str) -> tuple[str, int]:
    if not rest.startswith('"', position):
        end = rest.find(";", position)
        end = len(rest) if end < 0 else end
        return rest[position:end].rstrip(), end
    scan = position + 1
    while scan < len(rest):
        if rest[scan] == "\\":
            scan += 2  # an escaped character, whatever it is: the quote does not end here
        elif rest[scan] == '"':
            return rest[position : scan + 1], scan + 1
        else:
            scan += 1
    raise bad_request(f"unterminated quoted value in a part's Content-Disposition: {disposition!r}")


def _after_value(rest: str, position: int, disposition: str) -> int:
    tail = rest[position:].lstrip()
    if tail and not tail.startswith(";"):
        raise bad_request(f"malformed Content-Disposition header of a part: {disposition!r}")
    return len(rest) - len(tail) + 1


def _invalid(detail: str) -> ApiError:
    return bad_request(f"invalid file name: {detail}")


def filename_of(disposition: str) -> str:
    """The validated name a file part's filename stands for; 400 when ambiguous."""
    params = parameters(disposition)
    if any(re.fullmatch(r"filename\*\d+\*?", key) for key in params):
        raise _invalid("RFC 2231 continuations (filename*0=…) are not supported" + ADVICE)
    if "filename*" in params:
        return _extended(params["filename*"])
    raw = params.get("filename")
    if raw is None:
        raise bad_request("the file part has no filename; give the name in the form field 'name'")
    return _plain(raw)


def _plain(raw: str) -> str:
    quoted = len(raw) >= 2 and raw.startswith('"') and raw.endswith('"')
    text = raw[1:-1] if quoted else raw
    if "\\" in text:
        raise _invalid(
            "a multipart filename must not contain '\\': some clients send it as an escape, "
            "others as a Windows folder separator, so it cannot be read back reliably" + ADVICE
        )
    if '"' in text or "%22" in text:
        raise _invalid(
            "a multipart filename must not contain '\"': clients send it as \\\" or %22, "
            "so it cannot be read back reliably" + ADVICE
        )
    try:
        return validate_name(text)
    except InvalidName as exc:
        raise _invalid(str(exc)) from None


def _extended(raw: str) -> str:
    """``filename*=UTF-8''<percent-encoded bytes>``, decoded strictly."""
    match = _EXT_VALUE.fullmatch(raw.strip('"'))
    if match is None:
        raise _invalid(f"filename* must look like UTF-8''<percent-encoded name>, got {raw!r}")
    if match[1].lower() != "utf-8":
        raise _invalid(f"filename* must be UTF-8, not {match[1]!r}" + ADVICE)
    try:
        return decode_name(unquote_to_bytes(match[2]))
    except InvalidName as exc:
        raise _invalid(str(exc)) from None
