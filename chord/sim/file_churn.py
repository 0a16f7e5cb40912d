"""Files under churn in the simulator: a ring of real ChordNodes, each with the
replication core's Keeper over in-memory stores (chord.sim.files), clients writing,
overwriting and deleting, and ground truth to check them against.

``FileRing`` is the harness (shared by the seeded experiment below and the hypothesis
state machine in tests/sim/test_file_replication_state_machine.py). Failures follow the
operating assumption of k copies: at most k - 1 membership changes (crashes, joins,
leaves, restarts) before the ring has repaired every file again, crashes of at most
k - 1 adjacent peers at a time, partitions only of a settled ring, and no client writes
while one lasts (version numbers cannot order writes accepted on both sides).

Checked after every step (``problems``): the newest version any live peer holds of each
file is exactly the last acknowledged one (not lost, not resurrected after a delete, no
version nobody acknowledged), and a name never acknowledged is held nowhere. Once
failures stop (``converge``): one Ideal ring, and every file on exactly its k holders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chord.ids import Ring
from chord.invariants import ideal_violations
from chord.lookup import LookupFailed
from chord.merge import RingMerger
from chord.node import ChordNode, JoinFailed
from chord.placement import copies_wanted
from chord.sim.experiments import ExperimentResult, Progress, Row, _quiet
from chord.sim.files import SimCopy, SimFileClient, SimFiles, WriteFailed, content_hash
from chord.sim.network import SimNetwork
from chord.sim.rng import SimRandom
from chord.transport import PeerUnreachable

CONVERGENCE_ROUNDS = 80


@dataclass
class Tally:
    writes: int = 0
    acked: int = 0  # writes and overwrites acknowledged
    refused: int = 0  # conflicts, too few holders, failed lookups: not acknowledged
    deletes: int = 0  # deletes acknowledged
    crashes: int = 0
    joins: int = 0
    leaves: int = 0
    restarts: int = 0
    partitions: int = 0


@dataclass
class FileRing:
    net: SimNetwork
    rng: SimRandom
    k: int = 3
    files: SimFiles = field(init=False)
    client: SimFileClient = field(init=False)
    mergers: dict[str, RingMerger] = field(default_factory=dict)
    acked: dict[str, SimCopy] = field(default_factory=dict)  # last acknowledged state
    changes: int = 0  # membership changes since every file was last repaired
    failures: int = 0  # of which peers gone (crashed or left): copies lost since
    # From a partition until the rings have merged again after it healed: each side
    # still writes versions the other does not know of, so clients wait.
    partitioned: bool = False
    cut: bool = False  # the network is cut right now
    tally: Tally = field(default_factory=Tally)
    log: list[str] = field(default_factory=list)
    write_quorum: int | None = None

    def __post_init__(self) -> None:
        self.files = SimFiles(self.net, self.k)
        self.client = SimFileClient(self.files, self.write_quorum)
        for node in self.net.members():
            self.admit(node)

    @classmethod
    def ideal(
        cls, peers: int, seed: int, k: int = 3, successors: int = 5, bits: int = 16
    ) -> FileRing:
        rng = SimRandom(seed)
        net = SimNetwork(Ring(bits), successors=successors)
        net.build_ideal(net.random_addresses(peers, rng.fork(0)))
        return cls(net, rng.fork(1), k)

    def admit(self, node: ChordNode) -> None:
        self.mergers[node.me.address] = RingMerger(node)
        self.files.keeper(node)

    def members(self) -> list[ChordNode]:
        return sorted(self.net.members(), key=lambda n: n.me.id)

    # ---------------------------------------------------------------- rounds
    def ring_round(self) -> None:
        """Every member's stabilize, check_predecessor, one finger and a merge step."""
        self.net.run_maintenance_round()
        for node in self.net.members():
            self.mergers[node.me.address].step()

    def repair_round(self) -> None:
        self.files.run_round()

    def repair_one(self, pick: int) -> None:
        """One member's replication round alone (interleavings)."""
        members = self.members()
        self.files.keeper(members[pick % len(members)]).run_once()

    def round(self) -> None:
        self.ring_round()
        self.repair_round()
        self.note_settled()

    # ------------------------------------------------------------ membership
    def tolerance(self) -> int:
        """Failures the files survive before repair: one fewer than the smallest count
        of copies any file (or tombstone) has."""
        counts = [copies_wanted(c.replicas, self.k) for c in self.acked.values()]
        return min([self.k, *counts]) - 1

    def may_change(self, count: int = 1) -> bool:
        return not self.partitioned and self.changes + count <= self.tolerance()

    def ring_ideal(self) -> bool:
        states = [n.state() for n in self.net.live_nodes()]
        return not ideal_violations(states, self.net.successors)

    def join(self, pick: int) -> None:
        (address,) = self.net.random_addresses(1, self.rng)
        self._join(self.net.add(address), pick, "join")

    def _join(self, node: ChordNode, pick: int, kind: str) -> None:
        members = self.members()
        seed = members[pick % len(members)]
        try:
            node.join(seed.me.address)
        except (JoinFailed, PeerUnreachable):
            self.net.crash(node.me.address)  # gave up: no member heard of it
            return
        self.admit(node)
        self.changes += 1
        if kind == "join":
            self.tally.joins += 1
        else:
            self.tally.restarts += 1
        self.log.append(f"{kind} {node.me.id}")

    def restart(self, pick: int) -> bool:
        """A crashed address comes back with what its disk held."""
        gone = sorted(a for a in self.net.nodes if a not in self.net.alive)
        if not gone:
            return False
        self._join(self.net.add(gone[pick % len(gone)]), pick, "restart")
        return True

    def crash(self, pick: int, size: int) -> bool:
        """``size`` adjacent members fail at once (only on an Ideal ring, so every
        member keeps a live successor)."""
        members = self.members()
        if len(members) - size < self.k + 1 or not self.ring_ideal():
            return False
        first = pick % len(members)
        victims = [members[(first + i) % len(members)] for i in range(size)]
        for node in victims:
            self.net.crash(node.me.address)
        self.changes += size
        self.failures += size
        self.tally.crashes += size
        self.log.append(f"crash {[n.me.id for n in victims]}")
        return True

    def leave(self, pick: int) -> bool:
        members = self.members()
        if len(members) <= self.k + 1:
            return False
        node = members[pick % len(members)]
        node.leave()  # hands its primary range to its successor first
        self.net.crash(node.me.address)
        self.changes += 1
        self.failures += 1
        self.tally.leaves += 1
        self.log.append(f"leave {node.me.id}")
        return True

    def partition(self, pick: int, size: int) -> bool:
        """Cut an arc of ``size`` members off the rest (only from a settled ring)."""
        members = self.members()
        if self.partitioned or self.changes or not 0 < size < len(members):
            return False
        first = pick % len(members)
        arc = [members[(first + i) % len(members)].me.address for i in range(size)]
        rest = [n.me.address for n in members if n.me.address not in arc]
        self.net.partition(rest, arc)
        self.partitioned = self.cut = True
        self.tally.partitions += 1
        self.log.append(f"partition {len(rest)} | {len(arc)}")
        return True

    def heal(self) -> None:
        """The partition ends; no more changes until the ring has merged and repaired."""
        self.net.heal()
        self.cut = False
        self.changes = max(self.tolerance(), 1)
        self.log.append("heal")

    # --------------------------------------------------------------- clients
    def write(self, pick: int, name: str, overwrite: bool, replicas: int | None = None) -> str:
        """One upload through a member; what happened ("acked", or why not)."""
        members = self.members()
        entry = members[pick % len(members)]
        content = f"{name}/{self.tally.writes}".encode()
        self.tally.writes += 1
        try:
            copy = self.client.put(entry, name, content, overwrite=overwrite, replicas=replicas)
        except (WriteFailed, LookupFailed) as exc:
            self.tally.refused += 1
            self.log.append(f"write {name} via {entry.me.id}: {exc}")
            return type(exc).__name__ if isinstance(exc, LookupFailed) else exc.decision
        assert copy.sha256 == content_hash(content)
        self.acked[name] = copy
        self.tally.acked += 1
        self.log.append(f"write {name} v{copy.version} via {entry.me.id}: acked")
        return "acked"

    def delete(self, pick: int, name: str) -> str:
        members = self.members()
        entry = members[pick % len(members)]
        try:
            tombstone = self.client.delete(entry, name)
        except (WriteFailed, LookupFailed) as exc:
            self.log.append(f"delete {name} via {entry.me.id}: {exc}")
            return type(exc).__name__ if isinstance(exc, LookupFailed) else exc.decision
        self.acked[name] = tombstone
        self.tally.deletes += 1
        self.log.append(f"delete {name} v{tombstone.version} via {entry.me.id}: acked")
        return "acked"

    # ---------------------------------------------------------------- checks
    def names(self) -> list[str]:
        held = {name for store in self.files.stores.values() for name in store.copies}
        return sorted(held | set(self.acked))

    def problems(self) -> list[str]:
        """Acknowledged states lost or superseded by what nobody acknowledged."""
        found = []
        for name in self.names():
            top = self.files.newest_held(name)
            want = self.acked.get(name)
            if want is None:
                if top is not None:
                    found.append(f"{name}: v{top.version} held but never acknowledged")
                continue
            if top is None:
                found.append(f"{name}: acknowledged v{want.version} is held by no live peer")
            elif (top.version, top.sha256, top.deleted) != (
                want.version,
                want.sha256,
                want.deleted,
            ):
                found.append(
                    f"{name}: newest held v{top.version} deleted={top.deleted} differs from "
                    f"acknowledged v{want.version} deleted={want.deleted}"
                )
        return found

    def thin(self) -> list[str]:
        """Files with fewer live copies of their acknowledged state than the failures
        since they were last whole can explain: every acknowledged version starts on
        all its k holders (the write quorum is k), and only a crash or a leave may take
        a copy away; repair never drops one before its holders all have it."""
        found = []
        members = len(self.members())
        for name, want in sorted(self.acked.items()):
            copies = sum(
                1
                for c in self.files.holding(name).values()
                if (c.version, c.sha256, c.deleted) == (want.version, want.sha256, want.deleted)
            )
            floor = min(copies_wanted(want.replicas, self.k), members) - self.failures
            if copies < floor:
                found.append(f"{name} v{want.version}: {copies} live copies, at least {floor}")
        return found

    def misplaced(self) -> list[str]:
        return self.files.misplaced(self.names())

    def settled(self) -> bool:
        return not self.partitioned and self.ring_ideal() and not self.misplaced()

    def note_settled(self) -> None:
        if self.partitioned and not self.cut and self.ring_ideal():
            self.partitioned = False  # one ring again
            self.log.append("merged")
        if self.changes and self.settled():
            self.changes = self.failures = 0

    def converge(self, limit: int = CONVERGENCE_ROUNDS) -> int:
        """Rounds until settled (failures have stopped); AssertionError past ``limit``."""
        if self.cut:
            self.heal()
        for rounds in range(limit + 1):
            if self.settled():
                self.changes = self.failures = 0
                return rounds
            self.round()
        raise AssertionError(
            f"not settled after {limit} rounds: ideal ring {self.ring_ideal()}, "
            f"misplaced {self.misplaced()[:5]}"
        )

    def copies_of(self, name: str) -> int:
        top = self.files.newest_held(name)
        return 0 if top is None else copies_wanted(top.replicas, self.k)


# ------------------------------------------------------------------- experiment
NAMES = 24


def _step(ring: FileRing, rng: SimRandom) -> None:
    """One random event: mostly client operations, sometimes a failure or a change."""
    roll = rng.random()
    pick = rng.randrange(1 << 30)
    name = f"file-{rng.randrange(NAMES)}"
    if ring.partitioned:
        if ring.cut and roll < 0.25:
            ring.heal()
        return
    if roll < 0.45:
        ring.write(pick, name, overwrite=rng.random() < 0.5, replicas=rng.choice([None, 2, 4]))
    elif roll < 0.6:
        ring.delete(pick, name)
    elif roll < 0.68 and ring.may_change():
        ring.join(pick)
    elif roll < 0.76 and ring.may_change():
        ring.crash(pick, 1 + rng.randrange(ring.tolerance() - ring.changes))
    elif roll < 0.8 and ring.may_change():
        ring.leave(pick)
    elif roll < 0.84 and ring.may_change():
        ring.restart(pick)
    elif roll < 0.87:
        ring.partition(pick, 1 + rng.randrange(max(len(ring.members()) // 2, 1)))


def _run(peers: int, k: int, seed: int, steps: int) -> Row:
    ring = FileRing.ideal(peers, seed, k)
    rng = ring.rng.fork(2)
    lost_seen = thin_seen = 0
    for _ in range(steps):
        _step(ring, rng)
        ring.round()
        lost_seen += len(ring.problems())
        thin_seen += len(ring.thin())
    rounds = ring.converge()
    held = [ring.files.holding(n) for n in ring.names()]
    live = [n for n in ring.names() if not ring.acked[n].deleted]
    t = ring.tally
    return {
        "seed": seed,
        "peers_end": len(ring.members()),
        "writes": t.writes,
        "acked": t.acked,
        "refused": t.refused,
        "deletes": t.deletes,
        "crashes": t.crashes,
        "joins": t.joins,
        "leaves": t.leaves,
        "restarts": t.restarts,
        "partitions": t.partitions,
        "lost": lost_seen,
        "lost_end": len(ring.problems()),
        "thin": thin_seen,
        "files_live": len(live),
        "converge_rounds": rounds,
        "converged": not ring.misplaced(),
        "exact_k": all(
            len(h) == ring.copies_of(n) for n, h in zip(ring.names(), held, strict=True)
        ),
    }


def file_churn(
    peers: int = 12,
    k: int = 3,
    seeds: int = 5,
    seed: int = 1,
    steps: int = 400,
    progress: Progress = _quiet,
) -> ExperimentResult:
    """One row per seed: client operations and failures for ``steps`` rounds, then
    convergence; ``lost`` counts acknowledged states found missing after any step."""
    rows: list[Row] = []
    for offset in range(seeds):
        rows.append(_run(peers, k, seed + offset, steps))
        progress(f"file-churn: seed {seed + offset} done")
    params: dict[str, object] = {"peers": peers, "k": k, "seeds": seeds, "seed": seed}
    params["steps"] = steps
    return ExperimentResult("file-churn", params, rows)
