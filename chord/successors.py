"""Successor-list construction shared by join and stabilize."""

from __future__ import annotations

from collections.abc import Iterable

from chord.ids import between
from chord.node_ref import NodeRef


def successor_list(me: NodeRef, chain: Iterable[NodeRef], length: int) -> tuple[NodeRef, ...]:
    """The first ``length`` peers of ``chain`` that lie in clockwise order after ``me``.

    ``chain`` is a walk clockwise from just after ``me`` (``[head] + head's list``).
    In a ring smaller than ``length + 1`` that walk comes back round to ``me``, and
    while the ring is still forming, a list copied from another peer can run past
    ``me`` without naming it (that peer does not know us yet). An entry is kept only
    if it lies strictly between the last kept entry and ``me``; anything else is
    skipped. So the result never contains ``me``, has no duplicates (Zave's
    NoDuplicates) and is ordered (OrderedSuccessorLists) whatever ``chain`` holds.
    """
    result: list[NodeRef] = []
    previous = me
    for node in chain:
        if len(result) == length:
            break
        if between(previous.id, node.id, me.id):
            result.append(node)
            previous = node
    return tuple(result)
