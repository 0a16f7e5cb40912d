"""A successor that refuses our notify (it cannot admit us, e.g. it cannot reach our
advertised address) must not make stabilize fail every round: the rest of the step
(successor list, liveness) goes on, and the refusal is not raised to the timer loop."""

from __future__ import annotations

from chord.node_ref import NodeRef
from chord.transport import PeerState, Refused
from tests.unit.sim_ring import ideal_sim_ring


def test_a_refused_notify_does_not_break_stabilize() -> None:
    net = ideal_sim_ring(4)
    node = net.members()[0]
    before = node.state().successors
    calls: list[NodeRef] = []

    def refuse(peer: NodeRef, me: NodeRef) -> None:
        calls.append(peer)
        raise Refused("unreachable-address", f"{me.address} does not answer")

    real_get_state = node.transport.get_state

    def forgetful(peer: NodeRef) -> PeerState:
        """The successor has not adopted us yet (else stabilize skips the notify)."""
        state = real_get_state(peer)
        return PeerState(state.node, None, state.successors)

    node.transport.notify = refuse  # type: ignore[method-assign]
    node.transport.get_state = forgetful  # type: ignore[method-assign]
    for _ in range(3):
        node.stabilize()
    assert calls == [before[0]] * 3  # asked every round, never raised
    assert node.state().successors == before


def test_no_notify_to_a_successor_that_already_names_us() -> None:
    """Rectify would change nothing there: stabilize saves the RPC."""
    net = ideal_sim_ring(4)
    node = net.members()[0]
    sent: list[NodeRef] = []
    node.transport.notify = lambda peer, me: sent.append(peer)  # type: ignore[method-assign]
    node.stabilize()
    assert sent == []
