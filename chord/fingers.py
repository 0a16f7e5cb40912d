"""The finger table: routing shortcuts. Correctness never rests on it (the note's rule:
successor lists carry correctness, fingers only make lookups short)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import NamedTuple, TypeAlias

from chord.ids import Ring, between_right
from chord.node_ref import NodeRef


class FingerTable:
    """``m`` entries; entry ``i`` should be successor(me + 2**i), or None if unknown.

    An immutable value: ``fill``, ``forget`` and ``with_entries`` return a new table
    (or this one, if nothing changes). The node swaps its table whole, so a reader
    that took one reference sees one consistent table, with the ``version`` that
    belongs to exactly those entries (chord.node's routing index relies on it).
    """

    __slots__ = ("_entries", "me", "ring", "starts", "version")

    def __init__(self, ring: Ring, me: NodeRef) -> None:
        """The empty table (every entry unknown)."""
        self.ring = ring
        self.me = me
        self.starts: tuple[int, ...] = tuple(ring.finger_start(me.id, i) for i in range(ring.bits))
        self._entries: tuple[NodeRef | None, ...] = (None,) * ring.bits
        self.version = 0  # grows with every change: ChordNode.changes counts it

    def _with(self, entries: tuple[NodeRef | None, ...]) -> FingerTable:
        """A new table with ``entries`` and the next version (this one if unchanged)."""
        if entries == self._entries:
            return self
        table = FingerTable.__new__(FingerTable)
        table.ring, table.me, table.starts = self.ring, self.me, self.starts
        table._entries = entries
        table.version = self.version + 1
        return table

    def entries(self) -> tuple[NodeRef | None, ...]:
        return self._entries

    def fill(
        self, index: int, owner: NodeRef, owner_predecessor: NodeRef
    ) -> tuple[FingerTable, int]:
        """The table that records ``owner`` as the owner of ``starts[index]``, and the
        next index to refresh.

        Every following finger whose start also lies in (owner_predecessor, owner]
        has the same successor, so it is filled too: a full refresh costs one lookup
        per *distinct* finger (about log2 N) instead of m.
        """
        bits = self.ring.bits
        entries = list(self._entries)
        i = index
        while True:
            entries[i] = owner
            i += 1
            if i == bits or not between_right(owner_predecessor.id, self.starts[i], owner.id):
                return self._with(tuple(entries)), i % bits

    def forget(self, peer: NodeRef) -> FingerTable:
        """The table without a peer found dead or gone; lookups fall back to other entries."""
        if peer not in self._entries:
            return self
        return self._with(tuple(None if entry == peer else entry for entry in self._entries))

    def with_entries(self, entries: Iterable[NodeRef | None]) -> FingerTable:
        """A whole table installed at once (the simulator's ideal start)."""
        table = tuple(entries)
        if len(table) != self.ring.bits:
            raise ValueError(f"a finger table has {self.ring.bits} entries, got {len(table)}")
        return self._with(table)

    def closest_preceding(
        self, key: int, extra: Iterable[NodeRef], limit: int
    ) -> tuple[NodeRef, ...]:
        """Up to ``limit`` known peers strictly in (me, key), closest to ``key`` first."""
        index = RoutingIndex(self.ring, self.me, tuple(extra), self._entries)
        return index.closest_preceding(key, limit)


class KeyPredecessor(NamedTuple):
    """The routing peer is the key's immediate predecessor: ``owners`` is its successor
    list, the owner first."""

    owners: tuple[NodeRef, ...]


class Forward(NamedTuple):
    """The key lies further: ``closer`` are known peers strictly between the routing
    peer and the key, nearest the key first; ``beyond``, if the key falls deeper
    inside the successor list, the entries from its owner on (owner candidates)."""

    closer: tuple[NodeRef, ...]
    beyond: tuple[NodeRef, ...] = ()


# One routing decision (RoutingIndex.route).
Route: TypeAlias = KeyPredecessor | Forward


class RoutingIndex:
    """Every peer one node knows (fingers and successors), sorted by clockwise distance
    from it, so a routing step is two binary searches instead of a scan of m fingers.
    Rebuilt only when the successor list or the finger table changes."""

    __slots__ = ("distances", "me", "nodes", "size", "successor_distances", "successors")

    def __init__(
        self,
        ring: Ring,
        me: NodeRef,
        successors: tuple[NodeRef, ...],
        fingers: Iterable[NodeRef | None],
    ) -> None:
        self.me = me
        self.size = ring.size
        self.successors = successors
        # Successor lists are ordered (Zave's OrderedSuccessorLists), so these ascend.
        self.successor_distances = [(s.id - me.id) % self.size for s in successors]
        known: dict[NodeRef, int] = {}
        previous = None
        for node in (*fingers, *successors):
            # Fingers come in long runs of the same peer: skip repeats cheaply.
            if node is not previous and node is not None and node != me:
                known[node] = (node.id - me.id) % self.size
            previous = node
        self.nodes = sorted(known, key=known.__getitem__)
        self.distances = [known[node] for node in self.nodes]

    def route(self, key: int, limit: int, exclude: frozenset[int] = frozenset()) -> Route:
        """One routing decision for ``key``, ignoring the peers in ``exclude`` (the
        caller found them dead).

        :class:`KeyPredecessor` when the key lies in (me, successor]: this peer is the
        key's predecessor. Otherwise :class:`Forward`: up to ``limit`` known peers
        strictly in (me, key), closest to the key first, and, if the key falls deeper
        inside the successor list, the entries from its owner on. Strictness
        is what the ancestor got wrong: a peer outside the open interval can hand the
        key straight back and loop forever.

        Only the key's immediate predecessor names the owner: an answer read from a
        deeper list entry would be as stale as that entry (a joiner reaches the r-th
        list behind it only after r stabilizations), so deeper entries are offered as
        candidates and as owner candidates, which the owner itself must confirm (a
        verified lookup asks them), never as the answer. With ``exclude``, "immediate"
        means among the peers the caller has not found dead.
        """
        if exclude:
            return self._without(exclude).route(key, limit)
        distance = (key - self.me.id) % self.size
        beyond: tuple[NodeRef, ...] = ()
        if distance:  # a key equal to our own ID is routed like any key we do not hold
            i = bisect_left(self.successor_distances, distance)
            if i == 0 and self.successors:
                return KeyPredecessor(self.successors)
            if i < len(self.successors):
                beyond = self.successors[i:]
        return Forward(self._closer(distance, limit), beyond)

    def _without(self, exclude: frozenset[int]) -> RoutingIndex:
        """This index minus the excluded peers (built per request: exclusions are rare,
        only after a caller met dead peers)."""
        index = RoutingIndex.__new__(RoutingIndex)
        index.me, index.size = self.me, self.size
        kept = [i for i, s in enumerate(self.successors) if s.id not in exclude]
        index.successors = tuple(self.successors[i] for i in kept)
        index.successor_distances = [self.successor_distances[i] for i in kept]
        kept = [i for i, n in enumerate(self.nodes) if n.id not in exclude]
        index.nodes = [self.nodes[i] for i in kept]
        index.distances = [self.distances[i] for i in kept]
        return index

    def closest_preceding(self, key: int, limit: int) -> tuple[NodeRef, ...]:
        """Up to ``limit`` known peers strictly in (me, key), closest to ``key`` first."""
        return self._closer((key - self.me.id) % self.size, limit)

    def _closer(self, distance: int, limit: int) -> tuple[NodeRef, ...]:
        """The ``limit`` known peers nearest before a key at ``distance`` clockwise from
        us, nearest first; distance 0 (our own ID) means all the way round."""
        end = bisect_left(self.distances, distance or self.size)
        return tuple(reversed(self.nodes[max(0, end - limit) : end]))
