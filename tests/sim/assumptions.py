"""Zave's operating assumption for failures, shared by the simulator tests.

The same rule as ``Run.crash_allowed`` in tests/property/test_protocol.py (which
explains where each half comes from), written over a plain list of members and an
explicit successor-list length so that it fits any SimNetwork, not only that
file's Ring(8), r = 3 setup.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from chord.ids import between
from chord.node import ChordNode, NodeState
from chord.node_ref import NodeRef


def principals(states: Sequence[NodeState]) -> set[NodeRef]:
    """Members that no member's extended successor list [me] + succList skips over."""
    members = {state.me for state in states if state.joined}
    skipped: set[NodeRef] = set()
    for state in states:
        if not state.joined:
            continue
        for x, y in pairwise([state.me, *state.successors]):
            skipped |= {v for v in members if between(x.id, v.id, y.id)}
    return members - skipped


def crash_allowed(members: Sequence[ChordNode], victim: ChordNode, r: int) -> bool:
    """May ``victim`` fail now? Only if there are more than r + 1 members, every other
    member keeps a live entry in its successor list, and at least r + 1 members stay
    principal."""
    if len(members) <= r + 1:
        return False
    after = [m.state() for m in members if m is not victim]
    live = {state.me for state in after}
    for state in after:
        # An empty list means "I am alone": the peer points at itself, still live.
        if state.successors and not any(s in live for s in state.successors):
            return False
    return len(principals(after)) >= r + 1
