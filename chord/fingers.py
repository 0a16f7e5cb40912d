"""The finger table: routing shortcuts. Correctness never rests on it (the note's rule:
successor lists carry correctness, fingers only make lookups short)."""

from __future__ import annotations

from collections.abc import Iterable

from chord.ids import Ring, between, between_right
from chord.node_ref import NodeRef


class FingerTable:
    """``m`` entries; entry ``i`` should be successor(me + 2**i), or None if unknown."""

    def __init__(self, ring: Ring, me: NodeRef) -> None:
        self.ring = ring
        self.me = me
        self.starts: tuple[int, ...] = tuple(ring.finger_start(me.id, i) for i in range(ring.bits))
        self._entries: list[NodeRef | None] = [None] * ring.bits

    def entries(self) -> tuple[NodeRef | None, ...]:
        return tuple(self._entries)

    def fill(self, index: int, owner: NodeRef, owner_predecessor: NodeRef) -> int:
        """Record that ``owner`` owns ``starts[index]``; returns the next index to refresh.

        Every following finger whose start also lies in (owner_predecessor, owner]
        has the same successor, so it is filled too: a full refresh costs one lookup
        per *distinct* finger (about log2 N) instead of m.
        """
        bits = self.ring.bits
        i = index
        while True:
            self._entries[i] = owner
            i += 1
            if i == bits or not between_right(owner_predecessor.id, self.starts[i], owner.id):
                return i % bits

    def forget(self, peer: NodeRef) -> None:
        """Drop a peer found dead or gone; lookups fall back to other entries."""
        self._entries = [None if entry == peer else entry for entry in self._entries]

    def closest_preceding(
        self, key: int, extra: Iterable[NodeRef], limit: int
    ) -> tuple[NodeRef, ...]:
        """Up to ``limit`` known peers strictly in (me, key), closest to ``key`` first.

        Strictness is what the ancestor got wrong: a peer outside the open interval
        can hand the key straight back and loop forever.
        """
        seen: set[NodeRef] = set()
        candidates: list[NodeRef] = []
        for node in (*self._entries, *extra):
            if node is None or node in seen or not between(self.me.id, node.id, key):
                continue
            seen.add(node)
            candidates.append(node)
        candidates.sort(key=lambda node: self.ring.distance(node.id, key))
        return tuple(candidates[:limit])
