"""File names as the REST API accepts them: validated, never rewritten.

A name is metadata (it is hashed to a ring key and stored in the index, never used as
a filesystem path), but clients do turn it into paths on download and the mount will
use '/' as a folder separator, so anything that could escape a folder or confuse a
terminal is refused up front rather than silently changed.
"""

from __future__ import annotations

import re

MAX_NAME_BYTES = 255  # the storage layer's limit too
# C0 controls, DEL and C1 controls: invisible in listings and dangerous in terminals.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class InvalidName(ValueError):
    """The name breaks one of the rules; ``str()`` is one sentence saying which."""


def validate_name(name: object) -> str:
    """Return ``name`` unchanged if it is an acceptable file name, else raise InvalidName."""
    if not isinstance(name, str):
        raise InvalidName(f"a file name must be a string, got {type(name).__name__}")
    if not name:
        raise InvalidName("a file name must not be empty")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates, e.g. from a JSON "\ud800"
        raise InvalidName("a file name must be valid Unicode (UTF-8)") from None
    if size > MAX_NAME_BYTES:
        raise InvalidName(f"a file name is at most {MAX_NAME_BYTES} UTF-8 bytes, got {size}")
    control = _CONTROL.search(name)
    if control is not None:
        code = ord(control.group())
        raise InvalidName(f"a file name must not contain control characters (U+{code:04X})")
    if "\\" in name:
        raise InvalidName("a file name must not contain '\\' (use '/' between folders)")
    if name.startswith("/"):
        raise InvalidName("a file name must not start with '/'")
    for segment in name.split("/"):
        if segment == "":
            raise InvalidName("a file name must not have an empty folder ('//' or a trailing '/')")
        if segment in (".", ".."):
            raise InvalidName(f"a file name must not have a '{segment}' segment")
    return name


def last_segment(name: str) -> str:
    """What a download is saved as: the part after the last '/'."""
    return name.rsplit("/", 1)[-1]
