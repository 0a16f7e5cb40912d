"""Where keys live: successor(key) and the peers after it.

Pure functions over a sorted list of peer IDs, shared by the storage layer's
replica placement, the simulator's ground truth and the load-balance experiment.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from chord.node_ref import NodeRef


def successor_index(sorted_ids: Sequence[int], key: int) -> int:
    """Index in ``sorted_ids`` of successor(key): the first ID >= key, wrapping to 0."""
    if not sorted_ids:
        raise ValueError("an empty ring owns nothing")
    i = bisect_left(sorted_ids, key)
    return i if i < len(sorted_ids) else 0


def replica_indexes(sorted_ids: Sequence[int], key: int, copies: int) -> list[int]:
    """successor(key) and the next ``copies - 1`` distinct peers (fewer in a small ring)."""
    first = successor_index(sorted_ids, key)
    count = min(copies, len(sorted_ids))
    return [(first + k) % len(sorted_ids) for k in range(count)]


def holders_of(owner_and_successors: Sequence[NodeRef], copies: int) -> tuple[NodeRef, ...]:
    """The peers that hold a key: its owner and the next ``copies - 1`` distinct peers,
    from a lookup's answer (owner first, then its successors as the responder knows them).
    Fewer in a ring of fewer peers."""
    holders: list[NodeRef] = []
    for node in owner_and_successors:
        if node not in holders:
            holders.append(node)
            if len(holders) == copies:
                break
    return tuple(holders)


def copies_wanted(recorded: int, default: int) -> int:
    """How many holders a file version has: the count its writer chose, or the ring's
    default for versions stored before per-file counts (recorded as 0)."""
    return recorded or default
