"""Zave's operating assumption for failures, shared by the property and simulator tests.

A peer may fail only if that leaves every member a live successor AND at least r + 1
*principal* members (skipped by no member's successor list). The first half is the
note's assumption; the second is the other half of the invariant behind Zave's proof
(the Coq proof of her protocol in uwplse/verdi calls the pair ``zave_invariant``).
While the ring is still forming, "more than r + 1 members" does not imply it, and a
crash can then leave a wrongly ordered ring: see
tests/property/test_protocol.py::test_crash_refused_while_too_few_principals.
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
