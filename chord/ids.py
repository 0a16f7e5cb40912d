"""Identifiers on the ring and the one interval helper everything else uses.

A ring has ``2**m`` identifiers. A peer's identifier is SHA-1 of its advertised
``host:port`` reduced modulo ``2**m`` (for the default m = 160 that is the whole
digest); a file's key is SHA-1 of its name, reduced the same way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

MAX_BITS = 160  # SHA-1 digest size
HEX_DIGITS = MAX_BITS // 4  # IDs are always shown as 40 hex chars, whatever m is
_HEX_CHARS = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Ring:
    """The identifier space of one ring: ``bits`` = m."""

    bits: int = MAX_BITS

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= MAX_BITS:
            raise ValueError(f"ring bits must be in 1..{MAX_BITS}, got {self.bits}")

    @property
    def size(self) -> int:
        return 1 << self.bits

    def hash(self, text: str) -> int:
        """SHA-1 of ``text`` (UTF-8) reduced to this ring."""
        digest = hashlib.sha1(text.encode("utf-8")).digest()
        return int.from_bytes(digest, "big") % self.size

    def distance(self, a: int, b: int) -> int:
        """Clockwise distance from ``a`` to ``b``, in ``[0, size)``."""
        return (b - a) % self.size

    def finger_start(self, node_id: int, index: int) -> int:
        """Start of finger ``index`` (0-based): ``node_id + 2**index``."""
        return (node_id + (1 << index)) % self.size

    def short(self, ident: int) -> str:
        """Up to 8 leading hex digits of the ID at this ring's width, for logs and tables."""
        width = (self.bits + 3) // 4
        return format(ident, f"0{width}x")[:8]


def between(a: int, x: int, b: int) -> bool:
    """``x`` in the open interval ``(a, b)`` walking clockwise, wrap-around included.

    ``(a, a)`` is the whole ring except ``a`` itself: with a single peer every
    other identifier lies strictly between it and itself.
    """
    if a < b:
        return a < x < b
    if a > b:
        return x > a or x < b
    return x != a


def between_right(a: int, x: int, b: int) -> bool:
    """``x`` in the half-open interval ``(a, b]``; ``(a, a]`` is the whole ring."""
    return x == b or between(a, x, b)


def to_hex(ident: int) -> str:
    """The wire and JSON form of an identifier: 40 lowercase hex digits."""
    return format(ident, f"0{HEX_DIGITS}x")


def from_hex(text: str) -> int:
    """Parse a 40-hex-digit identifier; raises ``ValueError`` on anything else."""
    if len(text) != HEX_DIGITS:
        raise ValueError(f"identifier must be {HEX_DIGITS} hex digits, got {len(text)} characters")
    # Check the characters ourselves: int(text, 16) also accepts a sign, a "0x"
    # prefix, underscores and surrounding whitespace ("-000…1" would parse as -1).
    if not set(text) <= _HEX_CHARS:
        if set(text) <= _HEX_CHARS | set("ABCDEF"):
            raise ValueError("identifier must be lowercase hex")
        raise ValueError(f"identifier is not hexadecimal: {text!r}")
    return int(text, 16)
