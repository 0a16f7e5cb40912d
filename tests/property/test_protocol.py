"""Random joins, crashes and maintenance steps on the simulator, with Zave's safety
invariants checked after every single operation, then convergence to Ideal.

A ring of m = 8 with successor lists of length r = 3. Each example applies up to 40
random operations, starting either from one created peer or from a stable base (an
Ideal ring of at least r + 1 peers, Zave's initialization). Crashes respect the
operating assumption (see ``Run.crash_allowed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import event, given, settings
from hypothesis import strategies as st

from chord.ids import Ring
from chord.invariants import ideal_violations, violations
from chord.node import ChordNode, JoinFailed, NodeState
from chord.sim.network import SimNetwork
from tests.support.assumptions import crash_allowed, principals

RING = Ring(8)
R = 3
MAX_OPS = 40
CONVERGENCE_ROUNDS = 200

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None)


def _address_pool(count: int) -> tuple[str, ...]:
    """Addresses with pairwise distinct IDs on RING, so a new peer never collides
    with any peer ever started (crashed ones included: others may still list them)."""
    pool: list[str] = []
    used: set[int] = set()
    n = 0
    while len(pool) < count:
        n += 1
        address = f"10.0.{n // 250}.{n % 250 + 1}:7000"
        ident = RING.hash(address)
        if ident not in used:
            used.add(ident)
            pool.append(address)
    return tuple(pool)


POOL = _address_pool(2 * MAX_OPS)

# Repeats weight the draw. "round" is one maintenance round of every member: random
# single steps alone rarely make r + 1 peers principal, so crashes would stay refused.
OPERATIONS = (
    "join",
    "stabilize",
    "crash",
    "join",
    "check_predecessor",
    "stabilize",
    "fix_next_finger",
    "join",
    "crash",
    "stabilize",
    "round",
    "crash",
)

# (operation, selector): the selector picks the member acted on, joined through or
# crashed, modulo however many candidates there are at that moment.
operation_lists = st.lists(
    st.tuples(st.sampled_from(OPERATIONS), st.integers(min_value=0, max_value=1000)),
    min_size=10,
    max_size=MAX_OPS,
)


def true_successor(ids: Sequence[int], key: int) -> int:
    """successor(key) computed straight from the member IDs."""
    return next((i for i in sorted(ids) if i >= key), min(ids))


@dataclass
class Run:
    """One simulated network plus a log of what happened, for failure messages."""

    net: SimNetwork = field(default_factory=lambda: SimNetwork(RING, successors=R))
    next_address: int = 0
    crashes: int = 0
    log: list[str] = field(default_factory=list)

    # ------------------------------------------------------------- operations
    def members(self) -> list[ChordNode]:
        return self.net.members()

    def describe(self, node: ChordNode) -> str:
        return f"{node.me.address}(id={node.me.id})"

    def create_first(self) -> None:
        node = self.net.add(POOL[0])
        self.next_address = 1
        node.create()
        self.log.append(f"create {self.describe(node)}")

    def join(self, pick: int) -> None:
        members = self.members()
        if self.next_address >= len(POOL) or not members:
            return
        seed = members[pick % len(members)]
        node = self.net.add(POOL[self.next_address])
        self.next_address += 1
        try:
            node.join(seed.me.address)
        except JoinFailed as exc:
            # Legitimate: the lookup named a predecessor that has crashed. A real peer
            # retries later; this one gives up (no member has heard of it).
            self.net.crash(node.me.address)
            self.log.append(f"join {self.describe(node)} via {self.describe(seed)}: {exc}")
            return
        self.log.append(f"join {self.describe(node)} via {self.describe(seed)}")

    def crash_allowed(self, victim: ChordNode) -> bool:
        """Zave's operating assumption (tests/support/assumptions.py explains both halves)."""
        return crash_allowed(self.members(), victim, R)

    def crash(self, pick: int) -> None:
        allowed = [m for m in self.members() if self.crash_allowed(m)]
        if allowed:
            victim = allowed[pick % len(allowed)]
            self.net.crash(victim.me.address)
            self.crashes += 1
            self.log.append(f"crash {self.describe(victim)}")

    def step(self, kind: str, pick: int) -> None:
        members = self.members()
        node = members[pick % len(members)]
        getattr(node, kind)()
        self.log.append(f"{kind} {self.describe(node)}")

    def apply(self, kind: str, pick: int) -> None:
        if kind == "join":
            self.join(pick)
        elif kind == "crash":
            self.crash(pick)
        elif kind == "round":
            self.net.run_maintenance_round()
            self.log.append("maintenance round")
        else:
            self.step(kind, pick)

    # ----------------------------------------------------------------- checks
    def states(self) -> list[NodeState]:
        return [node.state() for node in self.net.live_nodes()]

    def check_safety(self) -> None:
        problems = violations(self.states())
        assert not problems, self.report(problems)

    def ideal_problems(self) -> list[str]:
        return ideal_violations(self.states(), R)

    def converge(self) -> None:
        """Maintenance rounds only, safety checked after each, until Ideal."""
        for _ in range(CONVERGENCE_ROUNDS):
            if not self.ideal_problems():
                return
            self.net.run_maintenance_round()
            self.log.append("maintenance round")
            self.check_safety()
        assert not self.ideal_problems(), self.report(self.ideal_problems())

    def report(self, problems: Sequence[str]) -> str:
        lines = [*problems, "after:", *self.log, "states (id: pred, successors):"]
        for node in sorted(self.members(), key=lambda n: n.me.id):
            state = node.state()
            pred = state.predecessor.id if state.predecessor else None
            lines.append(f"  {state.me.id}: {pred}, {[s.id for s in state.successors]}")
        return "\n".join(lines)


def lookup_keys(ids: Sequence[int]) -> list[int]:
    """About 50 keys: a spread over the ring plus both sides of every member ID."""
    boundaries = {key % RING.size for i in ids for key in (i, i + 1)}
    return sorted({*range(0, RING.size, 8), *boundaries})


def check_quiet_network(run: Run, operations: Sequence[tuple[str, int]]) -> None:
    """No more joins or failures: Ideal within the bound, stays Ideal, and every
    lookup from every member finds the true successor."""
    run.converge()
    for _ in range(3):
        run.net.run_maintenance_round()
        run.check_safety()
        assert not run.ideal_problems(), run.report(run.ideal_problems())

    members = run.members()
    low = len(members) // 5 * 5
    event(f"{low}-{low + 4} members at the end, {min(run.crashes, 5)} crashes (5 = 5 or more)")
    ids = [m.me.id for m in members]
    by_id = {m.me.id: m.me for m in members}
    for member in members:
        for key in lookup_keys(ids):
            owner = member.lookup(key).owner
            assert owner == by_id[true_successor(ids, key)], (
                f"lookup({key}) from {member.me.id} gave {owner.id}\n{run.report([])}"
            )

    # Fingers are only an optimisation, but on an Ideal ring a full pass makes them exact.
    for member in members:
        member.fix_all_fingers()
        state = member.state()
        expected = tuple(by_id[true_successor(ids, start)] for start in state.finger_starts)
        assert state.fingers == expected, f"fingers of {member.me.id}\n{run.report([])}"


@PROPERTY_SETTINGS
@given(operation_lists)
def test_random_operations_from_one_peer(operations: list[tuple[str, int]]) -> None:
    run = Run()
    run.create_first()
    run.check_safety()
    for kind, pick in operations:
        run.apply(kind, pick)
        run.check_safety()
    check_quiet_network(run, operations)


@PROPERTY_SETTINGS
@given(st.integers(min_value=R + 2, max_value=R + 5), operation_lists)
def test_random_operations_from_stable_base(base: int, operations: list[tuple[str, int]]) -> None:
    """Zave's initialization: an Ideal ring of at least r + 1 peers, then churn."""
    run = Run()
    run.create_first()
    for pick in range(base - 1):
        run.join(pick)
    run.converge()
    run.log.append("--- stable base reached ---")
    for kind, pick in operations:
        run.apply(kind, pick)
        run.check_safety()
    check_quiet_network(run, operations)


def test_crash_refused_while_too_few_principals() -> None:
    """Found by test_random_operations_from_one_peer when crashes were only limited by
    "members > r + 1 and everyone keeps a live successor": five members, but only
    85 is principal. Crashing 85 anyway leaves the ring 61 -> 212 -> 137 -> 61,
    which skips 117 and 137 (OrderedRing broken). Zave's proof needs r + 1
    principals; below that no protocol step is at fault."""
    run = Run()
    run.create_first()  # 10.0.0.2 id 85
    for kind, pick in [
        ("join", 0),  # 10.0.0.3, id 137
        ("stabilize", 1),
        ("stabilize", 1),
        ("join", 1),  # 10.0.0.4, id 212, via 137
        ("stabilize", 0),
        ("join", 0),  # 10.0.0.5, id 61, via 85
        ("join", 0),  # 10.0.0.6, id 117, via 85
        ("stabilize", 1),
        ("stabilize", 3),
    ]:
        run.apply(kind, pick)
        run.check_safety()
    by_id = {m.me.id: m for m in run.members()}
    assert sorted(by_id) == [61, 85, 117, 137, 212], run.report([])
    hub = by_id[85]
    states = [m.state() for m in run.members()]
    assert principals(states) == {hub.me}, run.report([])
    # The weaker rule would allow the crash: enough members, everyone keeps a live link.
    assert len(states) > R + 1
    others = [s for s in states if s.me != hub.me]
    assert all(any(x != hub.me for x in s.successors) for s in others)
    # Zave's rule does not.
    assert not run.crash_allowed(hub)


def test_bootstrap_joins_keep_successor_lists_ordered() -> None:
    """Regression, found by test_random_operations_from_one_peer. While the ring is
    forming, 212 joins through the lone 85 (which does not list 137 yet), 61 joins
    through 212 and copies [85, 212]. 137 then stabilizes: 85's predecessor 61 lies
    in (137, 85), so 137 adopts 61's list: [61, 85, 212]. That list runs past 137
    itself (137 sits between 85 and 212), breaking OrderedSuccessorLists, until
    successor_list learned to drop entries that are not clockwise after the previous
    one and before ``me``."""
    run = Run()
    run.create_first()  # 10.0.0.2, id 85
    for kind, pick in [("join", 0), ("join", 0), ("join", 2)]:  # 137, 212 (via 85), 61 (via 212)
        run.apply(kind, pick)
        run.check_safety()
    assert sorted(m.me.id for m in run.members()) == [61, 85, 137, 212]
    for _ in range(3):
        for node in run.members():
            for kind in ("stabilize", "check_predecessor", "fix_next_finger"):
                run.step(kind, run.members().index(node))
                run.check_safety()
    run.converge()
