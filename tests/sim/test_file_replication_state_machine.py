"""A hypothesis state machine over files in the simulator: clients write, overwrite
and delete while peers join, leave, crash (at most k - 1 adjacent, within the copies'
tolerance before repair) and restart, the network splits and heals, and single
replication rounds run in any order (chord.sim.file_churn.FileRing).

After every step: the newest version any live peer holds of each file is exactly the
last acknowledged one (no acknowledged write lost, nothing resurrected after a delete,
nothing nobody acknowledged). Once failures stop: one Ideal ring and every file on
exactly its k holders.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from chord.sim.file_churn import FileRing

K = 3
NAMES = [f"f{i}" for i in range(4)]

picks = st.integers(min_value=0, max_value=10_000)
names = st.sampled_from(NAMES)


class FileReplicationMachine(RuleBasedStateMachine):
    ring: FileRing

    @initialize(seed=st.integers(min_value=0, max_value=2**32), peers=st.integers(K + 2, 9))
    def start(self, seed: int, peers: int) -> None:
        """A settled ring already holding every name once (so that every run has files
        to lose)."""
        self.ring = FileRing.ideal(peers, seed, K, successors=K + 2)
        for index, name in enumerate(NAMES):
            assert self.ring.write(index, name, overwrite=False) == "acked"

    def report(self, problems: list[str]) -> str:
        return "\n".join([*problems, "after:", *self.ring.log])

    # --------------------------------------------------------------- clients
    @precondition(lambda self: not self.ring.partitioned)
    @rule(pick=picks, name=names, overwrite=st.booleans(), replicas=st.sampled_from([None, 4, 2]))
    def write(self, pick: int, name: str, overwrite: bool, replicas: int | None) -> None:
        self.ring.write(pick, name, overwrite, replicas)

    @precondition(lambda self: not self.ring.partitioned)
    @rule(pick=picks, name=names)
    def delete(self, pick: int, name: str) -> None:
        self.ring.delete(pick, name)

    # ------------------------------------------------------------ membership
    @precondition(lambda self: self.ring.may_change())
    @rule(pick=picks, rounds=st.integers(0, 3))
    def join(self, pick: int, rounds: int) -> None:
        """A peer joins, and the ring stabilizes ``rounds`` times (no file repair)."""
        self.ring.join(pick)
        for _ in range(rounds):
            self.ring.ring_round()

    @precondition(lambda self: self.ring.may_change())
    @rule(pick=picks, size=st.integers(1, K - 1))
    def crash(self, pick: int, size: int) -> None:
        if self.ring.may_change(size):
            self.ring.crash(pick, size)

    @precondition(lambda self: self.ring.may_change())
    @rule(pick=picks)
    def leave(self, pick: int) -> None:
        self.ring.leave(pick)

    @precondition(lambda self: self.ring.may_change())
    @rule(pick=picks)
    def restart(self, pick: int) -> None:
        self.ring.restart(pick)

    @precondition(lambda self: not self.ring.partitioned and not self.ring.changes)
    @rule(pick=picks, size=st.integers(1, 4))
    def partition(self, pick: int, size: int) -> None:
        self.ring.partition(pick, size)

    @precondition(lambda self: self.ring.cut)
    @rule()
    def heal(self) -> None:
        self.ring.heal()

    # ---------------------------------------------------------------- upkeep
    @rule()
    def ring_round(self) -> None:
        self.ring.ring_round()
        self.ring.note_settled()

    @rule(pick=picks)
    def repair_one(self, pick: int) -> None:
        """One member's replication round alone."""
        self.ring.repair_one(pick)
        self.ring.note_settled()

    @rule()
    def round(self) -> None:
        self.ring.round()

    # ------------------------------------------------------------ invariants
    @invariant()
    def nothing_lost_or_resurrected(self) -> None:
        problems = self.ring.problems()
        assert not problems, self.report(problems)

    @invariant()
    def copies_only_lost_to_failures(self) -> None:
        problems = self.ring.thin()
        assert not problems, self.report(problems)

    def teardown(self) -> None:
        """Failures stop: the ring settles, every file on exactly its k holders, and
        still the acknowledged state."""
        if not hasattr(self, "ring"):
            return
        self.ring.converge()
        problems = self.ring.problems() + self.ring.misplaced()
        assert not problems, self.report(problems)


FileReplicationMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
)
TestFileReplicationStateMachine = FileReplicationMachine.TestCase
