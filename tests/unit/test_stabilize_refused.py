"""A successor that refuses our notify (it cannot admit us, e.g. it cannot reach our
advertised address) must not make stabilize fail every round: the rest of the step
(successor list, liveness) goes on, and the refusal is not raised to the timer loop."""

from __future__ import annotations

from chord.node_ref import NodeRef
from chord.transport import Refused
from tests.unit.sim_ring import ideal_sim_ring


def test_a_refused_notify_does_not_break_stabilize() -> None:
    net = ideal_sim_ring(4)
    node = net.members()[0]
    before = node.state().successors
    calls: list[NodeRef] = []

    def refuse(peer: NodeRef, me: NodeRef) -> None:
        calls.append(peer)
        raise Refused("unreachable-address", f"{me.address} does not answer")

    node.transport.notify = refuse  # type: ignore[method-assign]
    for _ in range(3):
        node.stabilize()
    assert calls == [before[0]] * 3  # asked every round, never raised
    assert node.state().successors == before
