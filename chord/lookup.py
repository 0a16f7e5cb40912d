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

from chord.ids import Ring, between
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
) -> LookupResult:
    """Find successor(key) starting from the peers in ``start``.

    ``ask(peer, key)`` performs one step (an RPC, or a local call when ``peer`` is
    ``local``, which is not counted as a hop). Candidates are kept in a pool and
    the one closest before the key is always asked next; when it is dead the next
    closest is tried, so one dead finger costs one timeout, not the lookup.
    """
    pool: dict[NodeRef, int] = {}
    for node in start:
        pool.setdefault(node, ring.distance(node.id, key))
    tried: set[NodeRef] = set()
    hops = timeouts = 0
    while pool:
        peer = min(pool, key=pool.__getitem__)
        del pool[peer]
        tried.add(peer)
        if peer != local and hops + timeouts >= max_hops:
            raise LookupFailed(f"hop cap {max_hops} reached for key {key:x}")
        try:
            answer = ask(peer, key)
        except PeerUnreachable:
            timeouts += 1
            if on_dead is not None:
                on_dead(peer)
            continue
        if peer != local:
            hops += 1
        if answer.done and answer.nodes:
            predecessor = answer.predecessor or peer
            return LookupResult(key, answer.nodes[0], answer.nodes, predecessor, hops, timeouts)
        for node in answer.nodes:
            # Only strict progress is accepted: a candidate must lie between the
            # peer that named it and the key, so no answer can send us backwards.
            if node not in tried and between(peer.id, node.id, key):
                pool.setdefault(node, ring.distance(node.id, key))
    raise LookupFailed(f"no live peer could route key {key:x} ({timeouts} unreachable)")
