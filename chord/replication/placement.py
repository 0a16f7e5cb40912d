"""Which peers hold a file, from a lookup's answer, and when that answer is too stale
to act on."""

from __future__ import annotations

from chord.ids import between_right
from chord.lookup import LookupResult
from chord.node_ref import NodeRef
from chord.placement import holders_of


def holders_found(found: LookupResult, copies: int) -> tuple[NodeRef, ...]:
    """The key's holders from a lookup's answer: the owner and the next copies-1 peers.
    The answer is the successor list of the key's predecessor, and a successor list
    never names its own peer: in a ring of at most ``copies`` peers that predecessor is
    a holder too, and only it can be missing."""
    holders = holders_of(found.successors, copies)
    if len(holders) < copies:
        holders = holders_of((*found.successors, found.predecessor), copies)
    return holders


def answer_predates(me: NodeRef, holders: tuple[NodeRef, ...], wanted: int) -> bool:
    """A lookup's holders leave out this live peer although it is one of the key's k
    successors: the answer names fewer than k peers, or our ID lies between its owner
    and its last holder. The responder's successor list predates us (we just joined or
    restarted); dropping our copy now would only have it sent back a moment later."""
    if len(holders) < wanted:
        return True
    return len(holders) > 1 and between_right(holders[0].id, me.id, holders[-1].id)
