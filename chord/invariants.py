"""Zave's invariants over a snapshot of a network, and the Ideal state.

The checker sees what an omniscient observer sees: which peers are members (live
and joined) and each member's successor list and predecessor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from chord.ids import MAX_BITS, between
from chord.node_ref import NodeRef


class Snapshot(Protocol):
    """What the checks read of a peer (chord.node.NodeState has it all)."""

    @property
    def me(self) -> NodeRef: ...
    @property
    def predecessor(self) -> NodeRef | None: ...
    @property
    def successors(self) -> tuple[NodeRef, ...]: ...
    @property
    def joined(self) -> bool: ...


def _first_live(state: Snapshot, members: Mapping[NodeRef, Snapshot]) -> NodeRef | None:
    """The first listed successor that is a member; an empty list means the peer
    points at itself (a created peer that has not yet adopted anyone: Zave's
    single-peer ring, whose succList is all ``me``). ``None``: every entry is dead."""
    if not state.successors:
        return state.me
    return next((s for s in state.successors if s in members), None)


def violations(states: Iterable[Snapshot]) -> list[str]:
    """Every broken safety invariant, as sentences (empty list: all hold)."""
    members = {s.me: s for s in states if s.joined}
    problems: list[str] = []
    if not members:
        return problems
    for me, state in members.items():
        extended = [me, *state.successors]
        if len(set(extended)) != len(extended):
            problems.append(f"NoDuplicates: {me.address} lists {extended}")
        if not _cyclically_ordered(extended):
            problems.append(f"OrderedSuccessorLists: {me.address} lists {extended} out of order")
    succ = {me: _first_live(state, members) for me, state in members.items()}
    alone = [me for me, s in succ.items() if s is None]
    if alone and len(members) > 1:
        problems.append(f"a member has no live successor: {[m.address for m in alone]}")
        return problems
    cycles = _cycles({me: (s if s is not None else me) for me, s in succ.items()})
    if not cycles:
        problems.append("AtLeastOneRing: no cycle")
        return problems
    if len(cycles) > 1:
        problems.append(f"AtMostOneRing: {len(cycles)} rings")
    ring = set().union(*cycles)
    for node in ring:
        nxt = succ[node] or node
        inside = [x for x in ring if x not in (node, nxt) and between(node.id, x.id, nxt.id)]
        if nxt != node and inside:
            problems.append(f"OrderedRing: {inside[0].address} skipped by {node.address}")
    return problems


def _cyclically_ordered(nodes: list[NodeRef]) -> bool:
    """Every subsequence x, y, z satisfies between(x, y, z) exactly when the clockwise
    distances from the first node strictly increase (and never reach it again): an
    O(r) check equivalent to testing all O(r^3) triples. Distances are taken modulo
    2^160, which orders the IDs of any smaller ring the same way as modulo 2^m."""
    size = 1 << MAX_BITS
    first = nodes[0].id
    previous = 0
    for node in nodes[1:]:
        distance = (node.id - first) % size
        if distance <= previous:
            return False
        previous = distance
    return True


def _cycles(successor: Mapping[NodeRef, NodeRef]) -> list[set[NodeRef]]:
    """The distinct cycles of a functional graph (every non-cycle node reaches one:
    ConnectedAppendages holds by construction once each member has a live successor)."""
    found: list[set[NodeRef]] = []
    on_cycle: set[NodeRef] = set()
    for start in successor:
        path: list[NodeRef] = []
        seen: dict[NodeRef, int] = {}
        node = start
        while node not in seen and node not in on_cycle:
            seen[node] = len(path)
            path.append(node)
            node = successor[node]
        if node in seen:  # closed a new cycle
            cycle = set(path[seen[node] :])
            found.append(cycle)
            on_cycle |= cycle
    return found


def ideal_violations(states: Iterable[Snapshot], r: int) -> list[str]:
    """Differences from the Ideal state: exact successor lists and predecessors."""
    members = sorted((s for s in states if s.joined), key=lambda s: s.me.id)
    n = len(members)
    problems: list[str] = []
    for i, state in enumerate(members):
        expected = tuple(members[(i + k) % n].me for k in range(1, min(r, n - 1) + 1))
        if state.successors != expected:
            problems.append(
                f"{state.me.address}: successors {[s.address for s in state.successors]}"
                f" != {[s.address for s in expected]}"
            )
        want_pred = members[i - 1].me if n > 1 else None
        if state.predecessor != want_pred and not (
            n == 1 and state.predecessor in (None, state.me)
        ):
            got = state.predecessor.address if state.predecessor else None
            problems.append(
                f"{state.me.address}: predecessor {got} != {want_pred and want_pred.address}"
            )
    return problems
