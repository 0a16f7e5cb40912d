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

    def forgetful(peer: NodeRef, caller: NodeRef | None = None) -> PeerState:
        """The successor has not adopted us yet (else stabilize skips the notify)."""
        state = real_get_state(peer, caller)
        return PeerState(state.node, None, state.successors)

    node.transport.notify = refuse  # type: ignore[method-assign,assignment]
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
    node.transport.notify = lambda peer, me: sent.append(peer)  # type: ignore[method-assign,assignment]
    node.stabilize()
    assert sent == []


def test_a_predecessor_that_stabilizes_spares_the_ping() -> None:
    """A peer whose predecessor asked for its state since the last check knows it is
    alive: check_predecessor sends no Ping. One that stopped asking is pinged; a
    challenger always brings the Ping back (nobody can pin a dead predecessor by
    naming it)."""
    net = ideal_sim_ring(4)
    node = net.members()[1]
    predecessor = next(n for n in net.members() if n.me == node.state().predecessor)
    pings: list[NodeRef] = []
    real_ping = node.transport.ping

    def counting(peer: NodeRef) -> NodeRef:
        pings.append(peer)
        return real_ping(peer)

    node.transport.ping = counting  # type: ignore[method-assign]
    predecessor.stabilize()
    node.check_predecessor()
    assert pings == []
    node.check_predecessor()  # nothing heard since: asked
    assert pings == [predecessor.me]
    predecessor.stabilize()
    node._challenger = net.members()[2].me  # someone claims the place meanwhile
    node.check_predecessor()
    assert pings == [predecessor.me] * 2
