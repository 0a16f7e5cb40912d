"""Merging rings after a network partition heals.

Plain Chord never re-merges: once each side of a partition has dropped the other side's
peers as dead, both sides are consistent rings of their own and stabilize, which only
ever asks successors, has no reason to look across. Here each peer

1. **remembers** the peers it has known (successors, predecessor, fingers: a bounded
   set, oldest-seen evicted first), so peers dropped as dead stay known for a while;
2. periodically asks a few of them, and its own successor, to **look up its own ID**
   (an iterative lookup started at that peer: their ring's routing, not ours). If the
   owner returned is not this peer, that ring does not contain it: another ring (a
   healed partition), or this peer hangs off a ring as an appendage;
3. then **cross-joins** (:meth:`chord.node.ChordNode.merge_through`): it is admitted by
   its predecessor in that ring exactly as a joining peer is (the predecessor checks its
   identity and hands over its successor list), but without leaving its own ring: its
   successor list becomes the nearest peers of both lists, its predecessor the closer of
   the two, and it notifies its successor in the other ring, whose predecessor then
   adopts it at the next stabilize.

Why that is safe and converges (Zave's invariants, chord/invariants.py):

- Only pointers to peers that just answered are adopted (the admitting predecessor, and
  the list it sent); the merged successor list is built by ``successor_list`` from a
  list sorted by distance, so NoDuplicates and OrderedSuccessorLists hold.
- Every pointer change moves a successor or predecessor *closer* (strictly between the
  peer and its old one). Each side was an ordered ring, so a peer's new successor can
  skip only peers of the other side, never of its own: no ring that winds twice around
  the identifier circle can appear, and after the first cross-join one side's cycle
  hangs into the other's. Stabilize then pulls peers in through predecessor pointers,
  as for concurrent joins; a peer left hanging in the wrong place (an appendage whose
  entry point is not its successor) finds out at its next check, because the ring
  does not route its ID to it, and cross-joins at its right place.
- A cross-join inside one ring is harmless: it re-admits the peer where it already is.

The protocol logic is here and in ChordNode; services/peer/maintenance.py runs
:meth:`RingMerger.step` on a timer (``merge_interval``), the simulator runs it in rounds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chord.lookup import LookupFailed, LookupResult, iterative_lookup
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.transport import Refused, StepAnswer

MEMORY_SIZE = 64  # peers remembered; ~r + log2(N) are in view at any time
PROBES_PER_STEP = 2  # remembered peers asked per step (plus our own successor)


class PeerMemory:
    """Peers this node has known, bounded: when full, the one not seen for the most
    steps is forgotten. ``candidates`` hands them out in rotation."""

    def __init__(self, capacity: int = MEMORY_SIZE) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._last_seen: dict[NodeRef, int] = {}  # insertion order = rotation order
        self._tick = 0

    def __len__(self) -> int:
        return len(self._last_seen)

    def __contains__(self, peer: object) -> bool:
        return peer in self._last_seen

    def peers(self) -> tuple[NodeRef, ...]:
        return tuple(self._last_seen)

    def remember(self, peers: Iterable[NodeRef]) -> None:
        self._tick += 1
        for peer in peers:
            if peer in self._last_seen:
                self._last_seen[peer] = self._tick  # refreshed, keeps its rotation place
                continue
            if len(self._last_seen) >= self.capacity:
                stalest = min(self._last_seen, key=self._last_seen.__getitem__)
                del self._last_seen[stalest]
            self._last_seen[peer] = self._tick

    def forget(self, peer: NodeRef) -> None:
        self._last_seen.pop(peer, None)

    def candidates(self, count: int, skip: Iterable[NodeRef] = ()) -> list[NodeRef]:
        """Up to ``count`` peers not in ``skip``, taken from the front of the rotation
        and moved to its back, so every remembered peer gets its turn."""
        skipped = set(skip)
        chosen = [p for p in self._last_seen if p not in skipped][:count]
        for peer in chosen:
            self._last_seen[peer] = self._last_seen.pop(peer)
        return chosen


@dataclass(frozen=True)
class MergeReport:
    """What one step did: the peers asked, and the cross-join it made (if any)."""

    asked: tuple[NodeRef, ...]
    outside: NodeRef | None = None  # a peer whose ring does not route our ID to us
    merged_through: NodeRef | None = None  # our predecessor in that ring, which admitted us
    refused: str | None = None  # that ring refused us (e.g. another m)
    # ``outside`` is our own successor: we hang off our ring (an appendage, e.g. just
    # after joining), rather than a remembered peer being in another ring.
    from_successor: bool = False

    @property
    def merged(self) -> bool:
        return self.merged_through is not None


class RingMerger:
    def __init__(
        self,
        node: ChordNode,
        memory: PeerMemory | None = None,
        probes: int = PROBES_PER_STEP,
    ) -> None:
        self.node = node
        self.memory = memory if memory is not None else PeerMemory()
        self.probes = probes
        self.merges = 0

    def observe(self) -> None:
        """Remember every peer in the node's current view."""
        state = self.node.state()
        view = [*state.successors, *(f for f in state.fingers if f is not None)]
        if state.predecessor is not None:
            view.append(state.predecessor)
        self.memory.remember(p for p in view if p != self.node.me)

    def step(self) -> MergeReport:
        """Check our place from our successor and a few remembered peers; cross-join the
        first ring found that does not route our ID to us (at most one per step)."""
        node = self.node
        if not node.joined:
            return MergeReport(())
        self.observe()
        state = node.state()
        me = node.me
        # Fingers are not skipped: after a short partition a finger may still name a peer
        # of the other side (fix_fingers refreshes one entry at a time), and that peer is
        # exactly the one whose ring can tell us we are missing from it.
        neighbours = {*state.successors}
        if state.predecessor is not None:
            neighbours.add(state.predecessor)
        successor = state.successor
        starts = [] if successor == me else [successor]
        starts += self.memory.candidates(self.probes, skip=neighbours | {me})
        asked: list[NodeRef] = []
        for start in starts:
            asked.append(start)
            found = self._locate_me_from(start)
            if found is None or found.owner == me:
                continue
            try:
                admitted = node.merge_through(found.predecessor)
            except Refused as exc:
                return MergeReport(
                    tuple(asked),
                    start,
                    refused=f"{exc.code}: {exc.detail}",
                    from_successor=start == successor,
                )
            if admitted:
                self.merges += 1
                return MergeReport(
                    tuple(asked),
                    start,
                    merged_through=found.predecessor,
                    from_successor=start == successor,
                )
        return MergeReport(tuple(asked))

    def _locate_me_from(self, start: NodeRef) -> LookupResult | None:
        """Who ``start``'s ring says owns our ID (None: it could not say)."""
        node = self.node
        try:
            found = iterative_lookup(
                node.ring, node.me.id, [start], self._ask, node.max_hops, local=node.me
            )
        except LookupFailed:
            return None
        return found

    def _ask(self, peer: NodeRef, key: int, exclude: frozenset[int] = frozenset(), /) -> StepAnswer:
        # Our own tables must not answer for the other ring: a step that reaches us
        # means that ring routes to us after all, so stop there with us as the owner.
        node = self.node
        if peer == node.me:
            return StepAnswer(True, (node.me, *node.state().successors), node.me)
        return node.transport.find_successor_step(peer, key, exclude)
