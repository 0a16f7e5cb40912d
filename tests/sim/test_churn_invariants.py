"""Churn with Zave's safety invariants checked after every single event, and proof
that the check is live: a deliberately broken protocol is caught.

The churn experiment checks the invariants every ``check_every`` simulated seconds;
here the same event machinery (``experiments._Churn``) is driven one event at a
time with a check after each. Failures respect Zave's operating assumption
(tests/sim/assumptions.py): a peer whose crash would leave some member without a
live successor, or fewer than r + 1 principal members, does not fail then.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from heapq import heappop

import pytest

import chord.node
from chord.ids import MAX_BITS
from chord.invariants import ideal_violations, violations
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.placement import successor_index
from chord.sim import experiments as ex
from chord.sim.rng import SimRandom
from chord.successors import successor_list
from tests.support.assumptions import crash_allowed

FAST = (1.0, 3.0)  # stabilize every 1-3 s: many maintenance steps between churn events
PAPER = (15.0, 45.0)  # the paper's: 5-20 joins and failures per stabilization period


@dataclass
class ChurnRun:
    """One churn run on an Ideal start, advanced one event at a time."""

    nodes: int
    r: int
    rate: float
    seed: int
    stabilize_range: tuple[float, float]
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        rng = SimRandom(self.seed)
        self.net, initial = ex._ideal_network(self.nodes, self.r, rng.fork(0))
        # check_every is unused: this driver checks after every event itself.
        self.run = ex._Churn(self.net, rng.fork(1), self.rate, self.stabilize_range, 0.0)
        for node in initial:
            self.run.admit(node)
        for kind, interval in (("join", self.rate), ("fail", self.rate), ("lookup", 1.0)):
            self.run.schedule(self.run.rng.expovariate(interval), kind)
        self.run.check()

    def fail(self) -> None:
        run = self.run
        victim = run.members[run.rng.randrange(len(run.members))]
        if not crash_allowed(run.members, victim, self.r):
            self.counts["fail refused"] += 1
            return
        index = run.members.index(victim)
        run.members.pop(index)
        run.member_ids.pop(index)
        self.net.crash(victim.me.address)
        self.counts["crash"] += 1

    def step(self) -> None:
        run = self.run
        moment, _, kind, target = heappop(run.queue)
        self.net.clock.advance_to(moment)
        if kind == "maintain" and target is not None:
            run.maintain(target)
        elif kind == "join":
            before = len(run.members)
            run.join()
            self.counts["joined" if len(run.members) > before else "join gave up"] += 1
            run.schedule(run.rng.expovariate(self.rate), "join")
        elif kind == "fail":
            self.fail()
            run.schedule(run.rng.expovariate(self.rate), "fail")
        elif kind == "lookup":
            outcome = run.lookup()
            self.counts["lookup" if outcome is not None else "lookup failed"] += 1
            run.schedule(run.rng.expovariate(1.0), "lookup")
        self.counts[kind] += 1
        run.check()  # raises InvariantViolated

    def steps(self, events: int) -> None:
        for _ in range(events):
            self.step()

    def settle(self, max_rounds: int = 100) -> None:
        """No more joins or failures: maintenance rounds until Ideal, safe throughout."""
        members = self.run.members
        for _ in range(max_rounds):
            if not ideal_violations(states(members), self.r):
                break
            self.net.run_maintenance_round(members)
            self.run.check()
        problems = ideal_violations(states(members), self.r)
        assert not problems, f"not Ideal after {max_rounds} quiet rounds: {problems[:3]}"


def states(nodes: Iterable[ChordNode]) -> list[chord.node.NodeState]:
    return [node.state() for node in nodes]


@pytest.mark.parametrize(
    ("rate", "stabilize_range", "events"),
    [(0.2, FAST, 1500), (0.5, FAST, 1500), (0.2, PAPER, 800), (0.5, PAPER, 800)],
)
def test_invariants_hold_after_every_churn_event(
    rate: float, stabilize_range: tuple[float, float], events: int
) -> None:
    churn = ChurnRun(nodes=40, r=4, rate=rate, seed=7, stabilize_range=stabilize_range)
    churn.steps(events)
    # A lot happened: peers joined, crashed and were looked up all along.
    assert churn.counts["joined"] >= 10, churn.counts
    assert churn.counts["crash"] >= 10, churn.counts
    assert churn.counts["lookup"] >= 20, churn.counts

    # Then quiet: Ideal, and every lookup from every member finds the true owner.
    churn.settle()
    members = churn.run.members
    ids = [m.me.id for m in members]
    rng = SimRandom(1)
    keys = [rng.getrandbits(MAX_BITS) for _ in range(10)] + ids
    for member in members:
        for key in keys:
            assert member.lookup(key).owner.id == ids[successor_index(ids, key)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_invariants_hold_for_other_seeds(seed: int) -> None:
    ChurnRun(nodes=30, r=3, rate=0.4, seed=seed, stabilize_range=PAPER).steps(500)


def test_churn_experiment_with_frequent_checks() -> None:
    """The experiment itself, checking every simulated second (r = 20, the default:
    far more than the failures between two stabilizations)."""
    result = ex.churn(nodes=40, rates=[0.3], lookups=100, check_every=1.0)
    assert result.rows[0]["lookups"] == 100


def test_churn_experiment_respects_the_operating_assumption() -> None:
    ex.churn(nodes=40, successors=4, rates=[0.5], lookups=300, check_every=5)


# ----------------------------------------------------------- the check is live
def unwrapped_successor_list(
    me: NodeRef, chain: Iterable[NodeRef], length: int
) -> tuple[NodeRef, ...]:
    """The real list, then sorted by raw ID: wrap-around forgotten, the classic ring
    bug. Wrong exactly for the peers whose list crosses zero."""
    return tuple(sorted(successor_list(me, chain, length), key=lambda n: n.id))


def test_broken_successor_order_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    churn = ChurnRun(nodes=40, r=4, rate=0.2, seed=7, stabilize_range=FAST)
    churn.steps(50)  # the correct protocol first: nothing to report
    monkeypatch.setattr(chord.node, "successor_list", unwrapped_successor_list)
    with pytest.raises(ex.InvariantViolated, match="OrderedSuccessorLists"):
        churn.steps(1500)


def test_between_without_wrap_around_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference project's own bug class: an interval test that forgets the ring
    wraps at zero, in join, stabilize and rectify. successor_list (and the checker)
    keep the real one, so every list stays ordered and safety holds; but a peer that
    joins just past the highest ID is never adopted by its predecessor, and the
    network never becomes Ideal: the liveness check reports it."""
    churn = ChurnRun(nodes=40, r=4, rate=0.2, seed=7, stabilize_range=FAST)
    churn.steps(300)
    monkeypatch.setattr(chord.node, "between", lambda a, x, b: a < x < b)
    churn.steps(300)
    top = max(churn.run.member_ids)
    rng = SimRandom(0)
    while True:
        (address,) = churn.net.random_addresses(1, rng)
        if churn.net.ring.hash(address) > top:
            break
    joiner = churn.net.add(address)
    joiner.join(churn.run.members[0].me.address)
    churn.run.admit(joiner)
    with pytest.raises(AssertionError, match="not Ideal"):
        churn.settle()


def test_violations_name_the_broken_rule() -> None:
    """The checker on hand-made states: a list out of order, a duplicate."""
    churn = ChurnRun(nodes=10, r=3, rate=0.1, seed=1, stabilize_range=FAST)
    good = states(churn.run.members)
    assert violations(good) == []
    first, *rest = good
    reversed_list = type(first)(
        me=first.me,
        predecessor=first.predecessor,
        successors=tuple(reversed(first.successors)),
        fingers=first.fingers,
        finger_starts=first.finger_starts,
        joined=True,
        last_stabilized=None,
    )
    assert any("OrderedSuccessorLists" in p for p in violations([reversed_list, *rest]))
    duplicated = type(first)(
        me=first.me,
        predecessor=first.predecessor,
        successors=(first.successors[0], first.successors[0]),
        fingers=first.fingers,
        finger_starts=first.finger_starts,
        joined=True,
        last_stabilized=None,
    )
    assert any("NoDuplicates" in p for p in violations([duplicated, *rest]))
