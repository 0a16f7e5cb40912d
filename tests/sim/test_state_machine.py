"""A hypothesis state machine over the simulator: joins, crashes (within Zave's
operating assumption), single maintenance steps and lookups in any order, with the
safety invariants checked after every step, and convergence to Ideal plus correct
lookups from every member once the churn stops.

Ring(16) with successor lists of r = 3. Fresh addresses come from a SimRandom
seeded by hypothesis; every other choice is a hypothesis integer.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from chord.ids import Ring
from chord.invariants import ideal_violations, violations
from chord.lookup import LookupFailed
from chord.node import ChordNode, JoinFailed, NodeState
from chord.placement import successor_index
from chord.sim.network import SimNetwork
from chord.sim.rng import SimRandom
from tests.support.assumptions import crash_allowed

RING = Ring(16)
R = 3
CONVERGENCE_ROUNDS = 200

picks = st.integers(min_value=0, max_value=10_000)
keys = st.integers(min_value=0, max_value=RING.size - 1)


class ChordMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.net = SimNetwork(RING, successors=R)
        self.rng = SimRandom(0)
        self.log: list[str] = []
        self.safe = True

    # ------------------------------------------------------------- helpers
    def members(self) -> list[ChordNode]:
        return self.net.members()

    def states(self) -> list[NodeState]:
        return [node.state() for node in self.net.live_nodes()]

    def is_ideal(self) -> bool:
        return not ideal_violations(self.states(), R)

    def add_joined(self, through: ChordNode) -> None:
        (address,) = self.net.random_addresses(1, self.rng)
        node = self.net.add(address)
        try:
            node.join(through.me.address)
        except JoinFailed as exc:
            # Legitimate while a predecessor-to-be has crashed unnoticed: a real peer
            # retries later; this one gives up and no member has heard of it.
            self.net.crash(address)
            self.log.append(f"join {node.me.id} via {through.me.id} failed: {exc}")
            return
        self.log.append(f"join {node.me.id} via {through.me.id}")

    def converge(self) -> None:
        for _ in range(CONVERGENCE_ROUNDS):
            if self.is_ideal():
                return
            self.net.run_maintenance_round()
            self.check_safety()
        problems = ideal_violations(self.states(), R)
        assert not problems, self.report(problems)

    def report(self, problems: list[str]) -> str:
        lines = [*problems, "after:", *self.log, "states (id: pred, successors):"]
        for state in sorted(self.states(), key=lambda s: s.me.id):
            pred = state.predecessor.id if state.predecessor else None
            lines.append(f"  {state.me.id}: {pred}, {[s.id for s in state.successors]}")
        return "\n".join(lines)

    # --------------------------------------------------------------- rules
    @initialize(seed=st.integers(min_value=0, max_value=2**32), base=st.integers(1, 3 * R + 1))
    def start(self, seed: int, base: int) -> None:
        """One created peer, or (Zave's initialization) a stable base built by the
        protocol: ``base`` peers joined and converged to Ideal."""
        self.rng = SimRandom(seed)
        (address,) = self.net.random_addresses(1, self.rng)
        self.net.add(address).create()
        self.log.append(f"create {self.net.nodes[address].me.id}")
        for _ in range(base - 1):
            members = self.members()
            self.add_joined(members[self.rng.randrange(len(members))])
        self.converge()
        self.log.append("--- start ---")

    @rule(pick=picks)
    def join(self, pick: int) -> None:
        members = self.members()
        self.add_joined(members[pick % len(members)])

    @precondition(lambda self: len(self.members()) > R + 1)
    @rule(pick=picks)
    def crash(self, pick: int) -> None:
        members = self.members()
        allowed = [m for m in members if crash_allowed(members, m, R)]
        if allowed:
            victim = allowed[pick % len(allowed)]
            self.net.crash(victim.me.address)
            self.log.append(f"crash {victim.me.id}")

    @rule(kind=st.sampled_from(["stabilize", "check_predecessor", "fix_next_finger"]), pick=picks)
    def maintenance_step(self, kind: str, pick: int) -> None:
        """One maintenance step of one member."""
        members = self.members()
        node = members[pick % len(members)]
        getattr(node, kind)()
        self.log.append(f"{kind} {node.me.id}")

    @rule()
    def maintenance_round(self) -> None:
        """Every member once: random single steps alone rarely make r + 1 peers
        principal, so crashes would mostly stay refused."""
        self.net.run_maintenance_round()
        self.log.append("maintenance round")

    @rule(pick=picks, key=keys, confirm=st.booleans())
    def lookup(self, pick: int, key: int, confirm: bool) -> None:
        members = self.members()
        node = members[pick % len(members)]
        ideal = self.is_ideal()
        self.log.append(f"lookup {key} from {node.me.id} (confirm={confirm})")
        try:
            found = node.lookup(key, confirm_owner=confirm)
        except LookupFailed:
            # Possible while tables are stale; never on an Ideal network.
            assert not ideal, self.report([f"lookup {key} failed on an Ideal network"])
            return
        # The hop cap bounds every lookup: no loop can run on.
        assert found.hops + found.timeouts <= node.max_hops + len(found.successors)
        if ideal:
            ids = sorted(m.me.id for m in members)
            expected = ids[successor_index(ids, key)]
            assert found.owner.id == expected, self.report([f"lookup {key} -> {found.owner.id}"])

    # ----------------------------------------------------------- invariants
    @invariant()
    def safety(self) -> None:
        self.check_safety()

    def check_safety(self) -> None:
        problems = violations(self.states())
        if problems:
            self.safe = False
        assert not problems, self.report(problems)

    def teardown(self) -> None:
        """The churn stops: Ideal within the bound, and every lookup from every member
        finds the true successor of the key (a spread of keys plus both sides of every
        member's ID). Skipped once the safety check has failed, not to bury that report."""
        if not self.safe or not self.members():
            return
        self.converge()
        members = self.members()
        ids = sorted(m.me.id for m in members)
        probe = {k % RING.size for i in ids for k in (i - 1, i, i + 1)}
        probe |= set(range(0, RING.size, RING.size // 16))
        for member in members:
            for key in sorted(probe):
                owner = member.lookup(key).owner
                expected = ids[successor_index(ids, key)]
                assert owner.id == expected, self.report(
                    [f"quiet: lookup {key} from {member.me.id} gave {owner.id}"]
                )


ChordMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
)
TestChordStateMachine = ChordMachine.TestCase
