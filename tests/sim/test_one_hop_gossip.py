"""Pull gossip of the one-hop table spreads news epidemically.

Every peer pulled from the member at position k of its table in its k-th round, so
peers that started together (the simulator's ideal ring, or a ring whose peers were
launched at once) all pulled from the same member, round after round: news reached
a table only when that member happened to have it. Under churn (N = 1000, R = 0.4)
each table missed about 600 live peers after 25 minutes. Now each peer follows its
own pseudo-random order (SHA-1 of its address and round), and news of a joiner
reaches every table in O(log N) rounds.
"""

from __future__ import annotations

from chord.ids import Ring
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.sim.network import SimNetwork

RING = Ring(32)
PEERS = 64


def _ring() -> tuple[SimNetwork, list[ChordNode]]:
    net = SimNetwork(RING, successors=4, one_hop=True)
    addresses = [f"10.3.0.{n + 1}:7000" for n in range(PEERS)]
    return net, sorted(net.build_ideal(addresses), key=lambda n: n.me.id)


def test_peers_do_not_all_pull_from_the_same_member() -> None:
    net, nodes = _ring()
    pulled: list[NodeRef] = []
    get_members = net.transport.get_members

    def record(peer: NodeRef) -> tuple[tuple[NodeRef, float], ...]:
        pulled.append(peer)
        return get_members(peer)

    net.transport.get_members = record  # type: ignore[method-assign]
    for _ in range(3):
        pulled.clear()
        for node in nodes:
            node.exchange_members()
        assert len(set(pulled)) >= PEERS // 2, len(set(pulled))


def test_a_joiner_reaches_every_table_in_a_few_rounds() -> None:
    net, nodes = _ring()
    joiner = net.add("10.3.1.1:7000")
    joiner.join(nodes[0].me.address)
    rounds = 0
    while not all(joiner.me in node.membership for node in nodes):  # type: ignore[operator]
        rounds += 1
        assert rounds <= 12, "log2(64) + ln(64) ~ 10 rounds for random pulls"
        for node in nodes:
            node.exchange_members()
