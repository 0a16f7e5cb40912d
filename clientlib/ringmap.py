"""The ring's membership on the client side: who holds a name, without asking a peer.

``GET /members`` (or ``GET /ring``) lists every peer with its ID and REST address. A
client that read it once computes a file's key (SHA-1 of the name, as the ring does) and
sends its request straight to the key's owner, which answers a small file from its own
storage: one HTTP round trip instead of a request to any peer that then asks the
owner. The map only ever picks whom to ask: an owner that moved answers through the
ring's general path, so a stale map costs time, never a wrong answer.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RingMap:
    bits: int
    ids: tuple[int, ...]  # ascending
    apis: tuple[str, ...]  # REST "host:port" of the peer with the same index

    @classmethod
    def from_ring(cls, answer: Mapping[str, Any]) -> RingMap:
        """From the JSON of ``GET /members`` or ``GET /ring`` (peers the walk found not
        answering are left out)."""
        peers = sorted(
            (int(peer["id"], 16), str(peer["api"]))
            for peer in answer["peers"]
            if peer.get("reachable", True) and peer.get("api")
        )
        if not peers:
            raise ValueError("the ring answer lists no reachable peer")
        return cls(int(answer["bits"]), tuple(i for i, _ in peers), tuple(a for _, a in peers))

    def key(self, name: str) -> int:
        digest = hashlib.sha1(name.encode("utf-8")).digest()
        return int.from_bytes(digest, "big") % (1 << self.bits)

    def holders(self, name: str, copies: int = 3) -> Sequence[str]:
        """REST addresses of the name's owner and the peers after it."""
        first = bisect_left(self.ids, self.key(name)) % len(self.ids)
        count = min(copies, len(self.ids))
        return [self.apis[(first + k) % len(self.ids)] for k in range(count)]
