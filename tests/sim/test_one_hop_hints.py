"""The one-hop table's owner candidates are hints, never a stretch of the ring.

Under churn (``python -m devtools.sim churn --one-hop``, R = 0.4) lookups ended at the
wrong owner: a table named peers P (dead) and C after the key but not J, a live peer
that joined between the key and P and had not reached this table yet. The lookup found
P dead and asked C naming P dead, as it does along a successor list (whose stretch it
has seen); C's predecessor pointer was still P, so C took the key, and J's keys went to
C. A lookup may name dead peers only for a stretch some successor list showed it.
"""

from __future__ import annotations

from chord.ids import Ring, between
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.placement import successor_index
from chord.sim.network import SimNetwork

RING = Ring(16)


def _addresses(count: int, first: int = 0) -> list[str]:
    return [f"10.2.{n // 250}.{n % 250 + 1}:7000" for n in range(first, first + count)]


def _joiner_scenario() -> tuple[SimNetwork, ChordNode, int, NodeRef, tuple[NodeRef, ...]]:
    """A ring of 24 peers (r = 3), every table complete. Then J joins just before some
    peer P, and the peers before it stabilize (every successor list that should show J
    does), and P crashes before its successor C checks its predecessor: C still names
    P. A start peer S far from the key knows P and C from its table, but not J."""
    net = SimNetwork(RING, successors=3, one_hop=True)
    nodes = sorted(net.build_ideal(_addresses(24)), key=lambda n: n.me.id)
    a, p, c = nodes[10], nodes[11], nodes[12]
    joiner = next(
        address
        for address in _addresses(2000, first=1000)
        if between(a.me.id, RING.hash(address), p.me.id)
    )
    j = net.add(joiner)
    j.join(a.me.address)  # admitted by A; notifies P, which adopts J as its predecessor
    for before in nodes[10:7:-1]:  # A, then the peers whose lists reach J: they list it
        before.stabilize()
    net.crash(p.me.address)
    start = nodes[0]
    assert j.me not in start.membership and p.me in start.membership  # type: ignore[operator]
    assert c.state().predecessor == p.me  # C has not noticed P's death
    key = j.me.id  # in (A, J]: J's key
    return net, start, key, j.me, (p.me, c.me)


def test_a_hinted_owner_is_not_told_the_table_s_dead_peers() -> None:
    net, start, key, joiner, p_and_c = _joiner_scenario()
    answer = start.handle_step(key)  # the lookup's first, local step
    found = start.lookup(key, confirm_owner=True)
    assert found.owner == joiner, (found.owner.describe(RING), joiner.describe(RING))
    ids = sorted(n.me.id for n in net.members())
    assert found.owner.id == ids[successor_index(ids, key)]
    # The start peer's list does not reach the key: its table's candidates came as
    # hints (P, dead, then C), not as a stretch of a successor list.
    assert not answer.done and answer.owners == ()
    assert answer.hints[:2] == p_and_c


def test_every_key_of_the_joiner_from_every_live_peer() -> None:
    """Same scenario, keys spread over J's range, lookups from every live member:
    those whose successor lists reach the key, and those that ask their tables."""
    net, _, key, joiner, _ = _joiner_scenario()
    ids = sorted(n.me.id for n in net.members())
    predecessor = ids[ids.index(joiner.id) - 1]
    span = (joiner.id - predecessor) % RING.size
    keys = sorted({(predecessor + 1 + span * k // 8) % RING.size for k in range(8)} | {key})
    for node in net.members():
        for k in keys:
            found = node.lookup(k, forget_dead=False, confirm_owner=True)
            assert found.owner == joiner, (node.describe(), k)


def test_a_hinted_owner_behind_a_dead_peer_costs_one_more_hop() -> None:
    """The table names P (dead) and C for a key in (B, P]: C cannot vouch for the
    stretch before it, so the lookup asks B, the member the table names before the key,
    whose successor list shows P then C; C already answered, and is taken without a
    third hop."""
    net = SimNetwork(RING, successors=3, one_hop=True)
    nodes = sorted(net.build_ideal(_addresses(24)), key=lambda n: n.me.id)
    b, p, c = nodes[9], nodes[10], nodes[11]
    net.crash(p.me.address)
    found = nodes[0].lookup(p.me.id, confirm_owner=True)
    assert found.owner == c.me and found.predecessor == b.me
    assert (found.hops, found.timeouts) == (2, 1)
