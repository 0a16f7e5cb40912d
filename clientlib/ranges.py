"""Byte ranges: splitting a download into pieces and the HTTP ``Range`` headers.

Ranges here are half-open ``(start, stop)`` pairs; HTTP's are inclusive, so the header
helpers convert.
"""

from __future__ import annotations

import re

KIB = 1024
MIB = 1024 * KIB

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


def split_range(start: int, stop: int, chunk: int) -> list[tuple[int, int]]:
    """``[start, stop)`` cut into consecutive pieces of ``chunk`` bytes (the last shorter)."""
    if chunk <= 0:
        raise ValueError(f"chunk must be positive, got {chunk}")
    return [(offset, min(offset + chunk, stop)) for offset in range(start, stop, chunk)]


def chunk_size(
    remaining: int, workers: int, minimum: int = 256 * KIB, maximum: int = 4 * MIB
) -> int:
    """Piece size for ``workers`` concurrent fetches: about four pieces per worker so a slow
    holder delays little, never so small that requests dominate, never so big that the
    in-order write-behind buffer (a few pieces per worker) grows large."""
    wanted = -(-remaining // (max(1, workers) * 4))  # ceiling division
    return max(minimum, min(maximum, wanted))


def range_header(start: int, stop: int | None = None) -> str:
    """``Range`` value for ``[start, stop)``, or from ``start`` to the end."""
    return f"bytes={start}-" if stop is None else f"bytes={start}-{stop - 1}"


def parse_content_range(value: str) -> tuple[int, int, int | None]:
    """``bytes a-b/size`` -> ``(a, b + 1, size or None)``; ValueError if malformed."""
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        raise ValueError(f"bad Content-Range {value!r}")
    first, last, total = match.groups()
    start, stop = int(first), int(last) + 1
    if stop <= start:
        raise ValueError(f"bad Content-Range {value!r}")
    return start, stop, None if total == "*" else int(total)
