"""Iterative lookup, driven by the caller.

The caller asks one peer at a time for a single step and decides itself whom to
ask next, so no peer ever blocks a server thread on another peer's answer (the
ancestor's recursive lookups did, and froze the whole ring). Every step must make
strict progress towards the key, and the number of hops is capped, so a lookup
always ends: with an owner, or with :class:`LookupFailed`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from heapq import heappop, heappush

from chord.ids import Ring
from chord.node_ref import NodeRef
from chord.transport import PeerUnreachable, StepAnswer

AskStep = Callable[[NodeRef, int], StepAnswer]


class LookupFailed(Exception):
    """No live peer could route the key (every candidate dead, or the hop cap hit)."""


@dataclass(frozen=True)
class LookupResult:
    key: int
    owner: NodeRef
    successors: tuple[NodeRef, ...]  # owner first, then the peers after it
    predecessor: NodeRef  # the peer just before the key
    hops: int  # step RPCs answered by remote peers
    timeouts: int  # peers that were contacted and did not answer


def iterative_lookup(
    ring: Ring,
    key: int,
    start: Iterable[NodeRef],
    ask: AskStep,
    max_hops: int,
    local: NodeRef | None = None,
    on_dead: Callable[[NodeRef], None] | None = None,
    confirm: Callable[[NodeRef], bool] | None = None,
) -> LookupResult:
    """Find successor(key) starting from the peers in ``start``.

    ``ask(peer, key)`` performs one step (an RPC, or a local call when ``peer`` is
    ``local``, which is not counted as a hop). Candidates are kept in a pool and
    the one closest before the key is always asked next; when it is dead the next
    closest is tried, so one dead finger costs one timeout, not the lookup.

    With ``confirm`` (a liveness check), the owner named by the final answer is
    checked and, if dead, the next peer of its successor list is taken instead; each
    dead one counts as a timeout. Without it the owner is reported as named.
    """
    size = ring.size
    # A k-way merge of the candidate lists: the heap holds, for each answer received,
    # its best candidate not yet asked, keyed by clockwise distance to the key; popping
    # one queues its next sibling. The closest known peer is always asked next, at the
    # cost of ~2 heap pushes per hop rather than one per candidate.
    # ``seen`` holds the IDs ever queued, so no peer is queued or asked twice.
    heap: list[tuple[int, int, NodeRef, tuple[NodeRef, ...], int, int]] = []
    seen: set[int] = set()
    order = 0

    def queue_next(nodes: tuple[NodeRef, ...], index: int, limit: int) -> None:
        """Queue the first usable candidate of ``nodes`` from ``index`` on. Only strict
        progress is accepted: a candidate must lie strictly between the peer that named
        it and the key (``limit`` is that peer's distance), so no answer sends us back.
        A ``limit`` above the ring size means "no progress needed" (start peers)."""
        nonlocal order
        while index < len(nodes):
            node = nodes[index]
            index += 1
            distance = (key - node.id) % size
            if (0 < distance < limit or limit > size) and node.id not in seen:
                seen.add(node.id)
                order += 1
                heappush(heap, (distance, order, node, nodes, index, limit))
                return

    for node in start:  # not sorted by closeness, so each is queued on its own
        queue_next((node,), 0, size + 1)  # any start peer, even one sitting on the key
    hops = timeouts = 0
    local_id = local.id if local is not None else -1  # ints compare faster than refs
    # The fallback offered by the responder closest to the key: (its distance, it, list).
    fallback: tuple[int, NodeRef, tuple[NodeRef, ...]] | None = None

    def first_live(nodes: tuple[NodeRef, ...]) -> int | None:
        """Index of the first peer of ``nodes`` that answers (``confirm``), each dead one
        a timeout; without ``confirm`` the first is taken as named."""
        nonlocal timeouts
        if confirm is None:
            return 0
        live = next((i for i, n in enumerate(nodes) if n.id == local_id or confirm(n)), None)
        timeouts += len(nodes) if live is None else live
        return live

    def take_fallback() -> LookupResult | None:
        """Every peer known to lie between the responder and the key is dead: the live
        owner is the first live peer after the key in that responder's list."""
        assert fallback is not None
        _, responder, nodes = fallback
        live = first_live(nodes)
        if live is None:
            return None
        return LookupResult(key, nodes[live], nodes[live:], responder, hops, timeouts)

    while heap:
        # Peers farther from the key than the fallback's responder cannot know that
        # stretch of the ring better than it does: use the fallback before asking them.
        if fallback is not None and heap[0][0] >= fallback[0]:
            result = take_fallback()
            if result is not None:
                return result
            fallback = None  # all dead: keep looking further back
        remaining, _, peer, siblings, next_sibling, sibling_limit = heappop(heap)
        queue_next(siblings, next_sibling, sibling_limit)
        remote = peer.id != local_id
        if remote and hops + timeouts >= max_hops:
            raise LookupFailed(f"hop cap {max_hops} reached for key {key:x}")
        try:
            answer = ask(peer, key)
        except PeerUnreachable:
            timeouts += 1
            if on_dead is not None:
                on_dead(peer)
            continue
        if remote:
            hops += 1
        if answer.done and answer.nodes:
            # The responder's list may still name a peer that just died: take the first
            # one that answers, as a client about to use the owner would. Dead peers
            # skipped leave the live predecessor unchanged.
            live = first_live(answer.nodes)
            if live is None:
                # The peer just before the key may know live peers further on.
                before = answer.predecessor
                if before is not None and before != peer:
                    queue_next((before,), 0, size + 1)
                continue
            nodes = answer.nodes[live:]
            predecessor = answer.predecessor or peer
            return LookupResult(key, nodes[0], nodes, predecessor, hops, timeouts)
        if answer.fallback and (fallback is None or remaining < fallback[0]):
            fallback = (remaining, peer, answer.fallback)
        # A peer sitting on the key (distance 0) may send us anywhere but back to itself.
        queue_next(answer.nodes, 0, remaining or size)
    if fallback is not None:
        result = take_fallback()
        if result is not None:
            return result
    raise LookupFailed(f"no live peer could route key {key:x} ({timeouts} unreachable)")
