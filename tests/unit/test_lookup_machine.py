"""The lookup as a pure state machine (chord.lookup.LookupMachine), driven by hand:
one request at a time, replies and timeouts matched to their own request, a late
reply ignored, and the blocking driver taking exactly the same steps."""

from __future__ import annotations

import pytest

from chord.ids import Ring
from chord.lookup import LookupFailed, LookupMachine, iterative_lookup
from chord.node_ref import NodeRef
from chord.transport import PeerUnreachable, StepAnswer

RING = Ring(6)


def ref(ident: int) -> NodeRef:
    return NodeRef(ident, f"peer-{ident}")


def test_one_request_at_a_time_and_the_owner_at_the_end() -> None:
    machine = LookupMachine(RING, 40, [ref(10)], max_hops=10)
    first = machine.next_request()
    assert first is not None and first.peer == ref(10) and not first.local
    assert machine.next_request() is None  # waiting for its answer
    with pytest.raises(RuntimeError, match="not finished"):
        machine.outcome()
    assert machine.on_reply(first, StepAnswer(False, (ref(30), ref(20))))
    second = machine.next_request()
    assert second is not None and second.peer == ref(30)
    assert machine.on_reply(second, StepAnswer(True, (ref(45), ref(50))))
    assert machine.done and machine.next_request() is None
    result = machine.outcome()
    assert (result.owner, result.predecessor, result.hops) == (ref(45), ref(30), 2)


def test_a_reply_after_its_timeout_is_ignored() -> None:
    """30 is slow: its deadline passes, the lookup asks 20 instead, and 30's answer,
    arriving later, changes nothing (not even after the lookup ended)."""
    machine = LookupMachine(RING, 40, [ref(10)], max_hops=10)
    start = machine.next_request()
    assert start is not None
    machine.on_reply(start, StepAnswer(False, (ref(30), ref(20))))
    slow = machine.next_request()
    assert slow is not None and slow.peer == ref(30)
    assert machine.on_timeout(slow, "deadline exceeded")
    retry = machine.next_request()
    assert retry is not None and retry.peer == ref(20)
    assert retry.exclude == frozenset({30})  # named dead to the next responder
    assert not machine.on_reply(slow, StepAnswer(True, (ref(45),)))  # too late
    assert not machine.on_timeout(slow)
    assert machine.on_reply(retry, StepAnswer(True, (ref(41), ref(45))))
    assert not machine.on_reply(slow, StepAnswer(True, (ref(45),)))
    result = machine.outcome()
    assert (result.owner, result.timeouts, result.hops) == (ref(41), 1, 2)


def test_the_local_step_is_marked_and_not_a_hop() -> None:
    machine = LookupMachine(RING, 40, [ref(10)], max_hops=10, local=ref(10))
    request = machine.next_request()
    assert request is not None and request.local
    machine.on_reply(request, StepAnswer(True, (ref(41),)))
    assert machine.outcome().hops == 0


def test_failure_is_raised_by_outcome() -> None:
    machine = LookupMachine(RING, 40, [ref(30)], max_hops=10)
    request = machine.next_request()
    assert request is not None
    machine.on_timeout(request, "connection refused")
    assert machine.done
    with pytest.raises(LookupFailed, match="peer-30: connection refused"):
        machine.outcome()


def test_the_blocking_driver_asks_what_the_machine_asks() -> None:
    """The same answers, fed by hand and by iterative_lookup, give the same requests
    and the same result: a dead peer, a re-ask with exclusions, then the owner."""
    dead = {35}

    def answer(peer: NodeRef, key: int, exclude: frozenset[int] = frozenset()) -> StepAnswer:
        if peer.id in dead:
            raise PeerUnreachable(peer)
        if peer.id == 10:
            return StepAnswer(False, (ref(35), ref(20)))
        return StepAnswer(True, (ref(41), ref(45)))

    asked: list[tuple[int, frozenset[int]]] = []

    def recording(peer: NodeRef, key: int, exclude: frozenset[int] = frozenset()) -> StepAnswer:
        asked.append((peer.id, exclude))
        return answer(peer, key, exclude)

    driven = iterative_lookup(RING, 40, [ref(10)], recording, max_hops=10)
    machine = LookupMachine(RING, 40, [ref(10)], max_hops=10)
    by_hand: list[tuple[int, frozenset[int]]] = []
    while (request := machine.next_request()) is not None:
        by_hand.append((request.peer.id, request.exclude))
        try:
            machine.on_reply(request, answer(request.peer, request.key, request.exclude))
        except PeerUnreachable:
            machine.on_timeout(request)
    assert by_hand == asked == [(10, frozenset()), (35, frozenset()), (20, frozenset({35}))]
    assert machine.outcome() == driven
