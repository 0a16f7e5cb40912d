"""Running the protocol until it is quiet yields exactly the Ideal state that
``SimNetwork.build_ideal`` installs directly (the experiments' fast path to large
rings rests on this).

Over the same seeded addresses, one network is built by the protocol (create, joins
through random members, maintenance rounds until Ideal, then a full finger pass on
every peer), another by ``build_ideal``. Every peer's predecessor, successor list
and finger table must be identical in both.
"""

from __future__ import annotations

import pytest

from chord.ids import Ring
from chord.invariants import ideal_violations, violations
from chord.node import NodeState
from chord.sim.network import SimNetwork
from chord.sim.rng import SimRandom

MAX_ROUNDS = 400  # measured: joins all at once need about N rounds


def snapshot(net: SimNetwork) -> dict[str, NodeState]:
    return {node.me.address: node.state() for node in net.members()}


def build_by_protocol(
    addresses: list[str],
    r: int,
    rng: SimRandom,
    joins_per_round: int | None,
    check_safety: bool = True,
) -> SimNetwork:
    """``joins_per_round``: a maintenance round after every that many joins, or
    ``None`` for all joins first (each new peer then finds a ring that does not yet
    know most of the others). ``check_safety``: Zave's invariants after every join
    and round (an O(N^2) check: off for the largest rings, which tests/sim's churn
    and state-machine tests cover at small N)."""
    net = SimNetwork(Ring(), successors=r)
    net.add(addresses[0]).create()
    for count, address in enumerate(addresses[1:], start=1):
        members = net.members()
        net.add(address).join(members[rng.randrange(len(members))].me.address)
        if joins_per_round is not None and count % joins_per_round == 0:
            net.run_maintenance_round()
        if check_safety:
            assert violations([n.state() for n in net.members()]) == []
    for _ in range(MAX_ROUNDS):
        if not ideal_violations(snapshot(net).values(), r):
            break
        net.run_maintenance_round()
        if check_safety:
            assert violations([n.state() for n in net.members()]) == []
    assert ideal_violations(snapshot(net).values(), r) == []
    for node in net.members():
        node.fix_all_fingers()
    return net


def build_directly(addresses: list[str], r: int) -> SimNetwork:
    net = SimNetwork(Ring(), successors=r)
    net.build_ideal(addresses)
    return net


# All joins first at N = 200 takes about N rounds (2 s): once, with r = 3.
@pytest.mark.parametrize(
    ("n", "r", "joins_per_round"),
    [
        *((n, r, per) for n in (10, 50) for r in (3, 8) for per in (None, 1, 4)),
        (200, 3, 4),
        (200, 8, 4),
        (200, 3, None),
    ],
)
def test_protocol_until_quiet_equals_build_ideal(
    n: int, r: int, joins_per_round: int | None
) -> None:
    rng = SimRandom(1000 * n + r)
    addresses = SimNetwork(Ring()).random_addresses(n, rng.fork(0))
    net = build_by_protocol(addresses, r, rng.fork(1), joins_per_round, check_safety=n <= 50)
    by_protocol = snapshot(net)
    direct = snapshot(build_directly(addresses, r))

    assert set(by_protocol) == set(direct) == set(addresses)
    for address in addresses:
        got, want = by_protocol[address], direct[address]
        assert got.me == want.me
        assert got.predecessor == want.predecessor, address
        assert got.successors == want.successors, address
        assert got.finger_starts == want.finger_starts
        assert got.fingers == want.fingers, address
        assert got.joined and want.joined
    # build_ideal's lists are what ideal_violations calls Ideal, and have r entries.
    assert ideal_violations(direct.values(), r) == []
    assert all(len(s.successors) == min(r, n - 1) for s in direct.values())


def test_build_ideal_fingers_are_true_successors() -> None:
    """build_ideal itself, against a brute-force successor over the sorted IDs."""
    net = SimNetwork(Ring(), successors=4)
    nodes = net.build_ideal(net.random_addresses(40, SimRandom(5)))
    ids = sorted(node.me.id for node in nodes)
    by_id = {node.me.id: node.me for node in nodes}
    for node in nodes:
        state = node.state()
        for start, finger in zip(state.finger_starts, state.fingers, strict=True):
            owner = next((i for i in ids if i >= start), ids[0])
            assert finger == by_id[owner]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_tiny_rings_agree_too(n: int) -> None:
    """Fewer peers than the successor list is long: lists are shorter, and a single
    peer has no successor and no predecessor either way."""
    addresses = SimNetwork(Ring()).random_addresses(n, SimRandom(n))
    by_protocol = snapshot(build_by_protocol(addresses, 3, SimRandom(0), None))
    direct = snapshot(build_directly(addresses, 3))
    for address in addresses:
        got, want = by_protocol[address], direct[address]
        assert (got.predecessor, got.successors, got.fingers) == (
            want.predecessor,
            want.successors,
            want.fingers,
        )


def test_lookups_agree_between_the_two_builds() -> None:
    """Same tables, same routes: every lookup has the same owner and hop count."""
    addresses = SimNetwork(Ring()).random_addresses(60, SimRandom(77))
    nets = [build_by_protocol(addresses, 4, SimRandom(1), 4), build_directly(addresses, 4)]
    rng = SimRandom(3)
    for _ in range(300):
        start = addresses[rng.randrange(len(addresses))]
        key = rng.getrandbits(160)
        results = [net.nodes[start].lookup(key) for net in nets]
        assert results[0].owner == results[1].owner
        assert results[0].hops == results[1].hops
