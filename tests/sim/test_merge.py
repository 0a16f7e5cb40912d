"""Partition, heal, merge: deterministic runs in the simulator.

A ring is split into two sides that cannot reach each other; each side drops the other's
peers and settles into an Ideal ring of its own (plain Chord stops there, which the
control test shows). After healing, chord.merge's step (run by every peer each round,
as the maintenance loop runs it on a timer) must bring back exactly one Ideal ring, and
the local safety invariants (NoDuplicates, OrderedSuccessorLists) must hold after every
round on the way.
"""

from __future__ import annotations

import pytest

from chord.ids import Ring
from chord.invariants import ideal_violations, violations
from chord.merge import PeerMemory, RingMerger
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.sim.network import SimNetwork
from chord.sim.rng import SimRandom

MAX_ROUNDS = 300


class Partitioned:
    def __init__(self, count: int, r: int, seed: int, bits: int = 32) -> None:
        self.rng = SimRandom(seed)
        self.r = r
        self.net = SimNetwork(Ring(bits), successors=r)
        self.net.build_ideal(self.net.random_addresses(count, self.rng))
        self.mergers = {a: RingMerger(n) for a, n in self.net.nodes.items()}
        self.merging = True
        for _ in range(3):  # memories fill from the ideal views
            self.round()

    def states(self, addresses: list[str] | None = None) -> list[object]:
        chosen = addresses if addresses is not None else sorted(self.net.alive)
        return [self.net.nodes[a].state() for a in chosen]

    def round(self) -> None:
        self.net.run_maintenance_round()
        if self.merging:
            for node in self.net.members():
                self.mergers[node.me.address].step()
        local = [
            p
            for p in violations(self.net.nodes[a].state() for a in self.net.alive)
            if p.startswith(("NoDuplicates", "OrderedSuccessorLists"))
        ]
        assert not local, local

    def settle(self, *groups: list[str]) -> int:
        """Rounds until every group is an Ideal ring of its own."""
        for rounds in range(MAX_ROUNDS):
            if not any(ideal_violations(self.states(g), self.r) for g in groups):  # type: ignore[arg-type]
                return rounds
            self.round()
        problems = [ideal_violations(self.states(g), self.r)[:3] for g in groups]  # type: ignore[arg-type]
        raise AssertionError(f"not ideal after {MAX_ROUNDS} rounds: {problems}")

    def split(self, first: int) -> tuple[list[str], list[str]]:
        addresses = sorted(self.net.alive)
        self.rng.shuffle(addresses)
        return sorted(addresses[:first]), sorted(addresses[first:])

    def ring_count(self) -> int:
        text = " ".join(violations(self.states()))  # type: ignore[arg-type]
        if "AtMostOneRing" in text:
            return int(text.split("AtMostOneRing: ")[1].split()[0])
        return 1


CASES = [
    # (peers, successor list length r, size of the first side)
    (5, 4, 3),  # the netns test's shape: 3 hosts against 2
    (5, 8, 1),  # one peer cut off alone
    (12, 4, 6),
    (12, 3, 2),
    (30, 8, 11),
    (40, 5, 20),
]


@pytest.mark.parametrize(("count", "r", "first"), CASES)
@pytest.mark.parametrize("seed", range(8))
def test_two_rings_merge_into_one_after_healing(count: int, r: int, first: int, seed: int) -> None:
    run = Partitioned(count, r, seed)
    side_a, side_b = run.split(first)
    run.net.partition(side_a, side_b)
    if r >= count - 1:
        # Every peer lists every other: each side is sure to become a ring of its own.
        run.settle(side_a, side_b)
        assert run.ring_count() == 2
    else:
        # A side whose peers do not know one another (no list or finger entry, nor one
        # remembered) cannot find itself: it may end as several rings. Still split.
        for _ in range(60):
            run.round()
        assert run.ring_count() >= 2
    for side in (side_a, side_b):  # each side knows only its own peers
        for state in run.states(side):
            assert {s.address for s in state.successors} <= set(side)  # type: ignore[attr-defined]

    run.net.heal()
    rounds = run.settle(sorted(run.net.alive))
    assert run.ring_count() == 1
    assert rounds <= 4 * count + 20, f"merge took {rounds} rounds"
    assert sum(m.merges for m in run.mergers.values()) >= 1


@pytest.mark.parametrize("seed", range(4))
def test_without_merging_the_rings_stay_apart(seed: int) -> None:
    """The control: plain Chord (stabilize, fingers, check_predecessor) never merges."""
    run = Partitioned(12, 4, seed)
    side_a, side_b = run.split(5)
    run.net.partition(side_a, side_b)
    run.merging = False
    run.settle(side_a, side_b)
    run.net.heal()
    for _ in range(100):
        run.round()
    assert run.ring_count() == 2


@pytest.mark.parametrize("seed", range(6))
def test_a_restarted_seed_that_creates_a_ring_is_merged_back(seed: int) -> None:
    """The StatefulSet's chord-0 (or an EC2 guide's first peer) restarted as 'master':
    it forgets everything and creates a ring of one; the others remember it."""
    run = Partitioned(8, 4, seed)
    address = sorted(run.net.alive)[seed % 8]
    run.net.crash(address)
    others = sorted(a for a in run.net.alive)
    run.settle(others)
    run.net.alive.add(address)  # the same address comes back as a fresh process
    fresh = ChordNode(
        NodeRef.for_address(run.net.ring, address),
        run.net.ring,
        run.net.transport,
        run.net.clock,
        4,
    )
    run.net.nodes[address] = fresh
    run.mergers[address] = RingMerger(fresh)
    fresh.create()
    run.settle(sorted(run.net.alive))
    assert run.ring_count() == 1


def test_merge_inside_one_ring_changes_nothing() -> None:
    """A cross-join of a peer its own ring already routes to re-admits it where it is."""
    run = Partitioned(10, 4, seed=1)
    before = {a: n.state().successors for a, n in run.net.nodes.items()}
    node = run.net.nodes[sorted(run.net.alive)[0]]
    predecessor = node.state().predecessor
    assert predecessor is not None and node.merge_through(predecessor)
    run.round()
    assert {a: n.state().successors for a, n in run.net.nodes.items()} == before
    assert not ideal_violations(run.states(), 4)  # type: ignore[arg-type]
    assert all(not m.step().merged for m in run.mergers.values())


def test_peer_memory_is_bounded_and_rotates() -> None:
    ring = Ring(16)
    peers = [NodeRef.for_address(ring, f"10.0.0.{i}:7000") for i in range(6)]
    memory = PeerMemory(capacity=4)
    memory.remember(peers[:4])
    memory.remember(peers[1:4])  # peers[0] is now the stalest
    memory.remember(peers[4:5])
    assert peers[0] not in memory and len(memory) == 4
    first = memory.candidates(2)
    second = memory.candidates(2)
    assert set(first).isdisjoint(second) and len(first) == len(second) == 2
    assert memory.candidates(2, skip=first) == second  # rotation: the first two were skipped
    with pytest.raises(ValueError):
        PeerMemory(0)
