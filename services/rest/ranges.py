"""HTTP Range for downloads: one byte range (RFC 9110 §14), parsed against the size.

The contract answers a malformed header with 400 rather than ignoring it (which the
RFC allows): a client that sends a broken Range surely wants to know, and silently
sending the whole file would be a surprise on a multi-GiB file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPEC = re.compile(r"\s*([0-9]*)\s*-\s*([0-9]*)\s*")  # ASCII digits only
# A byte position has at most this many digits (10^19 bytes is beyond any file here).
# Longer numbers are refused before int() sees them: Python refuses to convert more
# than 4300 digits (a ValueError that used to escape as a 500) and slows down below that.
MAX_DIGITS = 19


class BadRange(ValueError):
    """The header is not one well-formed byte range (400)."""


class Unsatisfiable(ValueError):
    """A well-formed range that selects no byte of the file (416)."""


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # exclusive

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """None: no Range header (send everything). Else the one range it selects, clamped
    to the file; raises BadRange or Unsatisfiable."""
    if header is None:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        raise BadRange(f"Range must look like 'bytes=START-END', got {header!r}")
    if "," in spec:
        raise BadRange("only one byte range per request is supported")
    match = _SPEC.fullmatch(spec)
    if match is None or match.group(1) == match.group(2) == "":
        raise BadRange(f"Range must look like 'bytes=START-END', got {header!r}")
    first, last = match.groups()
    if max(len(first), len(last)) > MAX_DIGITS:
        raise BadRange(f"a Range position has at most {MAX_DIGITS} digits")
    if first == "":  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(f"the last {suffix} bytes of a {size}-byte file select nothing")
        return ByteRange(max(0, size - suffix), size)
    start = int(first)
    if last != "" and int(last) < start:
        raise BadRange(f"Range end {last} is before its start {start}")
    if start >= size:
        raise Unsatisfiable(f"Range starts at byte {start} but the file has {size} bytes")
    end = size if last == "" else min(size, int(last) + 1)
    return ByteRange(start, end)
