"""Successor-list construction shared by join and stabilize."""

from __future__ import annotations

from collections.abc import Iterable

from chord.node_ref import NodeRef


def successor_list(me: NodeRef, chain: Iterable[NodeRef], length: int) -> tuple[NodeRef, ...]:
    """The first ``length`` distinct peers of ``chain``, stopping where it wraps to ``me``.

    ``chain`` is a walk clockwise from just after ``me`` (``[head] + head's list``).
    In a ring smaller than ``length + 1`` that walk comes back round to ``me``:
    everything from there on repeats, so it is cut. The result never contains
    ``me`` and has no duplicates (Zave's NoDuplicates invariant).
    """
    result: list[NodeRef] = []
    for node in chain:
        if node == me or len(result) == length:
            break
        if node not in result:
            result.append(node)
    return tuple(result)
