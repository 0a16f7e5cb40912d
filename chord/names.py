"""File names: the one set of rules every entry point applies (REST, WebDAV-to-come, the
menu, the mount, client.py, the storage engine and the peer-to-peer Store handler).

A name is metadata: it is hashed to a ring key and kept in an index, never used as a path
on a peer. But clients turn names into paths (a download saves the last segment, the mount
shows ``/`` as folders) and people read them in terminals and file managers, so anything
that could escape a folder, hide part of a name or make it display as another name is
refused with a sentence saying which character and why. Names are never rewritten: what is
accepted is stored exactly as given.

Pure standard library (``unicodedata``), so the client and the protocol core can share it.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_BYTES = 255  # also the storage index's limit
SEPARATOR = "/"

# Unicode general categories refused anywhere in a name, and why.
_REFUSED_CATEGORIES = {
    "Cc": "a control character: invisible in listings and able to drive a terminal",
    "Cf": "an invisible format character (bidi control, zero-width or BOM): it can make a "
    "name display as another one",
    "Zl": "a line separator: it breaks a name over lines",
    "Zp": "a paragraph separator: it breaks a name over lines",
}


class InvalidName(ValueError):
    """The name breaks one of the rules; ``str()`` is one sentence saying which and why."""


def describe(char: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``: how a refused character is named in messages."""
    code = f"U+{ord(char):04X}"
    label = unicodedata.name(char, "")
    return f"{code} {label}" if label else code


def validate_name(name: object) -> str:
    """Return ``name`` unchanged if it is an acceptable file name, else raise InvalidName.

    Rules: a non-empty string of valid Unicode, at most 255 bytes as UTF-8; no control,
    format (Cf) or line/paragraph separator characters; no ``\\``; ``/`` separates folders,
    so no leading ``/``, no empty segment, and no segment made only of dots and spaces
    (``.``, ``..``, ``...``, ``"  "``: folders every system treats specially or trims away).
    """
    if not isinstance(name, str):
        raise InvalidName(f"a file name must be a string, got {type(name).__name__}")
    _check_size(name)
    _check_characters(name)
    _check_segments(name)
    return name


def _check_size(name: str) -> None:
    if not name:
        raise InvalidName("a file name must not be empty")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates, e.g. from a JSON "\ud800"
        raise InvalidName("a file name must be valid Unicode (UTF-8)") from None
    if size > MAX_NAME_BYTES:
        raise InvalidName(f"a file name is at most {MAX_NAME_BYTES} UTF-8 bytes, got {size}")


def _check_characters(name: str) -> None:
    for char in name:
        why = _REFUSED_CATEGORIES.get(unicodedata.category(char))
        if why is not None:
            raise InvalidName(f"a file name must not contain {describe(char)}: {why}")
    if "\\" in name:
        raise InvalidName(
            "a file name must not contain '\\' (Windows reads it as a folder separator; "
            "use '/' between folders)"
        )


def _check_segments(name: str) -> None:
    if name.startswith(SEPARATOR):
        raise InvalidName("a file name must not start with '/' (names are relative)")
    for segment in name.split(SEPARATOR):
        if segment == "":
            raise InvalidName("a file name must not have an empty folder ('//' or a trailing '/')")
        if segment.strip(". ") == "":
            raise InvalidName(
                f"a file name must not have a segment made only of dots and spaces "
                f"({segment!r}): such folders escape, hide or vanish on most systems"
            )


def name_problem(name: object) -> str | None:
    """Why ``name`` is refused (one sentence), or None if it is acceptable."""
    try:
        validate_name(name)
    except InvalidName as exc:
        return str(exc)
    return None


def decode_name(raw: bytes) -> str:
    """A name received as bytes (a percent-decoded query, a form field), strictly UTF-8
    and then validated; invalid UTF-8 is refused, never replaced or kept as escapes."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidName(
            f"a file name must be valid UTF-8 (byte 0x{raw[exc.start]:02X} at {exc.start} is not)"
        ) from None
    return validate_name(text)


def last_segment(name: str) -> str:
    """What a download is saved as: the part after the last '/'."""
    return name.rsplit(SEPARATOR, 1)[-1]


def parent_folder(name: str) -> str:
    """The folder a name lies in: 'a/b/c' -> 'a/b', 'c' -> '' (the root)."""
    return name.rsplit(SEPARATOR, 1)[0] if SEPARATOR in name else ""


def enclosing_folders(name: str) -> list[str]:
    """Every folder a name lies in, innermost first, the root left out: 'a/b/c' ->
    ['a/b', 'a']. Folders exist in the ring only as these prefixes of names."""
    found = []
    while SEPARATOR in name:
        name = parent_folder(name)
        found.append(name)
    return found
