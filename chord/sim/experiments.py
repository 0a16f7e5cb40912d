"""The experiments of Stoica et al. (IEEE/ACM ToN 2003) on the real protocol core.

Each experiment returns an :class:`ExperimentResult` whose rows have fixed keys.
Everything random comes from one seed through :class:`SimRandom` streams forked
per sub-task, so the same seed and parameters give byte-identical output.

Path length is counted as in the paper: the nodes a lookup traverses after the
one that starts it, i.e. the step RPCs it sends (a key owned by the starting
peer's successor costs 0). Each contact of a dead peer is one timeout.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Protocol, TypeVar

from chord.ids import MAX_BITS, Ring
from chord.invariants import violations
from chord.lookup import LookupFailed
from chord.membership import DEFAULT_TTL
from chord.node import ChordNode, JoinFailed
from chord.placement import successor_index
from chord.sim.network import SimNetwork
from chord.sim.rng import SimRandom
from chord.transport import PeerUnreachable

Row = dict[str, float | int]
Progress = Callable[[str], None]
T = TypeVar("T")
R = TypeVar("R")


# How independent tasks are run: the built-in map, or a process pool's (the CLI's
# --workers). Tasks are fixed and each seeds its own stream: output is the same.
class MapTasks(Protocol):
    def __call__(self, function: Callable[[T], R], tasks: Sequence[T], /) -> Iterable[R]: ...


def _serial_map(function: Callable[[T], R], tasks: Sequence[T]) -> Iterable[R]:
    return map(function, tasks)


PATH_LENGTH_SIZES = tuple(2**k for k in range(3, 15))
FAIL_FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
LOAD_KEYS = tuple(100_000 * k for k in range(1, 11))
VIRTUAL_NODES = (1, 2, 5, 10, 20)
CHURN_RATES = (0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40)


class InvariantViolated(AssertionError):
    """A safety invariant of Zave's protocol failed during an experiment."""


@dataclass(frozen=True)
class ExperimentResult:
    experiment: str
    params: dict[str, object]
    rows: list[Row] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(
            {"experiment": self.experiment, "params": self.params, "rows": self.rows},
            separators=(", ", ": "),
        )


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _mean(values: Sequence[int] | Sequence[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def _quiet(message: str) -> None:
    pass


def _ideal_network(
    nodes: int,
    successors: int,
    rng: SimRandom,
    bits: int = MAX_BITS,
    one_hop: bool = False,
    membership_ttl: float = DEFAULT_TTL,
) -> tuple[SimNetwork, list[ChordNode]]:
    net = SimNetwork(
        Ring(bits), successors=successors, one_hop=one_hop, membership_ttl=membership_ttl
    )
    return net, net.build_ideal(net.random_addresses(nodes, rng))


# ---------------------------------------------------------------- path length
# Each size's lookups are cut into at most this many tasks (each rebuilds the ring, so
# not more), of at least PATH_MIN_CHUNK lookups. Fixed, so results do not depend on
# how many workers run them.
PATH_MAX_TASKS = 4
PATH_MIN_CHUNK = 50_000


def _path_length_chunk(task: tuple[int, int, int, int, int]) -> list[int]:
    """Hop counts of ``lookups`` lookups on the ideal ring of ``size`` peers (one task)."""
    size, successors, seed, chunk, lookups = task
    _, nodes = _ideal_network(size, successors, SimRandom(seed).fork(size))
    rng = SimRandom(seed).fork(size).fork(chunk + 1)
    histogram = [0] * 64
    for _ in range(lookups):
        histogram[nodes[rng.randrange(size)].lookup(rng.getrandbits(MAX_BITS)).hops] += 1
    return histogram


def path_length(
    sizes: Sequence[int] = PATH_LENGTH_SIZES,
    successors: int = 8,
    seed: int = 1,
    lookups_per_node: int = 100,
    progress: Progress = _quiet,
    map_tasks: MapTasks = _serial_map,
) -> ExperimentResult:
    """N peers in the ideal state, 100·N lookups of random keys from random peers."""
    tasks = []
    for size in sizes:
        total = lookups_per_node * size
        chunks = max(1, min(PATH_MAX_TASKS, total // PATH_MIN_CHUNK))
        for chunk in range(chunks):
            tasks.append(
                (size, successors, seed, chunk, total // chunks + (chunk < total % chunks))
            )
    histograms: dict[int, list[int]] = {size: [0] * 64 for size in sizes}
    for task, histogram in zip(tasks, map_tasks(_path_length_chunk, tasks), strict=True):
        merged = histograms[task[0]]
        for length, count in enumerate(histogram):
            merged[length] += count
        progress(f"path-length: {task[0]} peers, chunk {task[3]} done")
    rows: list[Row] = []
    for size in sizes:
        lengths = [h for h, count in enumerate(histograms[size]) for _ in range(count)]
        rows.append({
            "nodes": size,
            "mean": _mean(lengths),
            "p1": percentile(lengths, 1),
            "p99": percentile(lengths, 99),
        })  # fmt: skip
    params = {"sizes": list(sizes), "successors": successors, "seed": seed,
              "lookups_per_node": lookups_per_node}  # fmt: skip
    return ExperimentResult("path-length", params, rows)


# ------------------------------------------------------------------- failures
def _failures_task(task: tuple[int, int, int, int, float, int, bool]) -> Row:
    nodes, successors, seed, index, fraction, lookups, one_hop = task
    rng = SimRandom(seed)
    net, all_nodes = _ideal_network(nodes, successors, rng.fork(0), one_hop=one_hop)
    crash_rng = rng.fork(index + 1)
    net.crash_fraction(fraction, crash_rng)
    live = [n for n in all_nodes if n.me.address in net.alive]
    live_ids = [n.me.id for n in live]
    paths: list[int] = []
    timeouts: list[int] = []
    failed = 0
    for _ in range(lookups):
        start = live[crash_rng.randrange(len(live))]
        key = crash_rng.getrandbits(MAX_BITS)
        try:
            found = start.lookup(key, forget_dead=False, confirm_owner=True)
        except LookupFailed:
            failed += 1
            continue
        paths.append(found.hops)
        timeouts.append(found.timeouts)
        if found.owner.id != live_ids[successor_index(live_ids, key)]:
            failed += 1
    paths.sort()
    timeouts.sort()
    return {
        "fail_fraction": fraction,
        "mean_path": _mean(paths),
        "path_p1": percentile(paths, 1) if paths else 0,
        "path_p99": percentile(paths, 99) if paths else 0,
        "mean_timeouts": _mean(timeouts),
        "timeouts_p1": percentile(timeouts, 1) if timeouts else 0,
        "timeouts_p99": percentile(timeouts, 99) if timeouts else 0,
        "failed": failed,
        "lookups": lookups,
    }


def failures(
    nodes: int = 1000,
    successors: int = 20,
    seed: int = 1,
    fractions: Sequence[float] = FAIL_FRACTIONS,
    lookups: int = 10_000,
    progress: Progress = _quiet,
    map_tasks: MapTasks = _serial_map,
    one_hop: bool = False,
) -> ExperimentResult:
    """A stable ring, stabilization stopped, a fraction p of peers failing at once,
    then lookups of random keys from random live peers. A lookup fails unless it
    returns the key's true live successor. Nothing is repaired during the lookups:
    peers do not even forget the dead fingers they run into. Each lookup confirms
    the owner it is given (a client would contact it) and falls back past dead ones."""
    tasks = [(nodes, successors, seed, i, p, lookups, one_hop) for i, p in enumerate(fractions)]
    rows = []
    for row in map_tasks(_failures_task, tasks):
        rows.append(row)
        progress(f"failures: p={row['fail_fraction']} done")
    params = {"nodes": nodes, "successors": successors, "seed": seed,
              "fractions": list(fractions), "lookups": lookups, "one_hop": one_hop}  # fmt: skip
    return ExperimentResult("failures", params, rows)


# --------------------------------------------------------------- load balance
def load_balance(
    nodes: int = 10_000,
    seed: int = 1,
    key_counts: Sequence[int] = LOAD_KEYS,
    virtual_nodes: Sequence[int] = VIRTUAL_NODES,
    virtual_keys: int = 1_000_000,
    progress: Progress = _quiet,
) -> ExperimentResult:
    """Keys per real peer under consistent hashing: first for a growing number of
    keys, then with v virtual peers per real peer (IDs SHA-1 of "address#i")."""
    ring = Ring(MAX_BITS)
    rng = SimRandom(seed)
    addresses = SimNetwork(ring).random_addresses(nodes, rng.fork(0))
    rows: list[Row] = []
    plan = [(count, 1) for count in key_counts] + [(virtual_keys, v) for v in virtual_nodes]
    for index, (keys, virtual) in enumerate(plan):
        points = sorted(
            (ring.hash(address if virtual == 1 else f"{address}#{i}"), real)
            for real, address in enumerate(addresses)
            for i in range(virtual)
        )
        ids = [ident for ident, _ in points]
        owner = [real for _, real in points]
        counts = [0] * nodes
        key_rng = rng.fork(index + 1)
        for _ in range(keys):
            counts[owner[successor_index(ids, key_rng.getrandbits(MAX_BITS))]] += 1
        counts.sort()
        rows.append({
            "keys": keys,
            "virtual_nodes": virtual,
            "mean": _mean(counts),
            "p1": percentile(counts, 1),
            "p99": percentile(counts, 99),
            "max": counts[-1],
        })  # fmt: skip
        progress(f"load-balance: {keys} keys, v={virtual} done")
    params = {"nodes": nodes, "seed": seed, "key_counts": list(key_counts),
              "virtual_nodes": list(virtual_nodes), "virtual_keys": virtual_keys}  # fmt: skip
    return ExperimentResult("load-balance", params, rows)


# ---------------------------------------------------------------------- churn
@dataclass
class _Churn:
    """One churn run: an event queue over virtual time driving the real nodes."""

    net: SimNetwork
    rng: SimRandom
    rate: float
    stabilize_range: tuple[float, float]
    check_every: float
    graceful: bool = False
    members: list[ChordNode] = field(default_factory=list)
    member_ids: list[int] = field(default_factory=list)
    queue: list[tuple[float, int, str, ChordNode | None]] = field(default_factory=list)
    seq: int = 0

    def schedule(self, delay: float, kind: str, node: ChordNode | None = None) -> None:
        self.seq += 1
        heappush(self.queue, (self.net.clock.now() + delay, self.seq, kind, node))

    def admit(self, node: ChordNode) -> None:
        position = bisect_left(self.member_ids, node.me.id)
        self.member_ids.insert(position, node.me.id)
        self.members.insert(position, node)
        self.schedule(self.rng.uniform(*self.stabilize_range), "maintain", node)

    def maintain(self, node: ChordNode) -> None:
        if node.me.address not in self.net.alive:
            return  # crashed: its timer dies with it
        node.stabilize()
        node.check_predecessor()
        node.fix_next_finger()
        node.exchange_members()  # one-hop table (nothing without one)
        self.schedule(self.rng.uniform(*self.stabilize_range), "maintain", node)

    def join(self) -> None:
        (address,) = self.net.random_addresses(1, self.rng)
        node = self.net.add(address)
        seed = self.members[self.rng.randrange(len(self.members))]
        try:
            node.join(seed.me.address)
        except (JoinFailed, PeerUnreachable):
            self.net.crash(address)  # gave up; a real peer would retry with a new seed
            return
        self.admit(node)

    def fail(self) -> None:
        """A peer departs: by failing, with no goodbye, as in the paper, or (graceful)
        by leaving, telling its neighbours first. A failing victim is drawn among peers
        whose failure keeps the operating assumption of the note: no member may be left
        without a live successor (a few redraws, else no failure now)."""
        for _ in range(8):
            index = self.rng.randrange(len(self.members))
            if self.graceful or self._failure_is_survivable(index):
                node = self.members.pop(index)
                self.member_ids.pop(index)
                if self.graceful:
                    node.leave()
                self.net.crash(node.me.address)
                return

    def _failure_is_survivable(self, index: int) -> bool:
        victim = self.members[index].me
        alive = self.net.alive
        for back in range(1, self.net.successors + 1):  # only these can list the victim
            peer = self.members[index - back]
            if peer.me == victim:
                break
            listed = peer.state().successors
            if victim in listed and not any(s != victim and s.address in alive for s in listed):
                return False
        return True

    def lookup(self) -> tuple[int, int, bool] | None:
        node = self.members[self.rng.randrange(len(self.members))]
        key = self.rng.getrandbits(MAX_BITS)
        try:
            found = node.lookup(key, confirm_owner=True)
        except LookupFailed:
            return None
        true_owner = self.member_ids[successor_index(self.member_ids, key)]
        return found.hops, found.timeouts, found.owner.id == true_owner

    def check(self) -> None:
        problems = violations([n.state() for n in self.members])
        if problems:
            raise InvariantViolated(
                f"t={self.net.clock.now():.1f}s rate={self.rate}: {problems[:3]}"
            )


def _run_churn(
    run: _Churn, rate: float, successors: int, check_every: float, lookups: int
) -> tuple[list[int], list[int], int, int]:
    """Play ``run``'s events until ``lookups`` lookups were made: the lookups' path
    lengths and timeouts, how many failed, how many were made."""
    net = run.net
    paths: list[int] = []
    timeouts: list[int] = []
    failed = made = 0
    while made < lookups:
        moment, _, kind, target = heappop(run.queue)
        net.clock.advance_to(moment)
        if kind == "maintain" and target is not None:
            run.maintain(target)
        elif kind == "join":
            run.join()
            run.schedule(run.rng.expovariate(rate), "join")
        elif kind == "fail":
            if len(run.members) > successors + 1:
                run.fail()
            run.schedule(run.rng.expovariate(rate), "fail")
        elif kind == "check":
            run.check()
            run.schedule(check_every, "check")
        elif kind == "lookup":
            made += 1
            outcome = run.lookup()
            if outcome is None:
                failed += 1
            else:
                paths.append(outcome[0])
                timeouts.append(outcome[1])
                failed += not outcome[2]
            run.schedule(run.rng.expovariate(1.0), "lookup")
    return paths, timeouts, failed, made


def churn(
    nodes: int = 1000,
    successors: int = 20,
    seed: int = 1,
    rates: Sequence[float] = CHURN_RATES,
    lookups: int = 10_000,
    stabilize_range: tuple[float, float] = (15.0, 45.0),
    check_every: float = 100.0,
    graceful: bool = False,
    progress: Progress = _quiet,
    one_hop: bool = False,
) -> ExperimentResult:
    """Peers join and fail (``graceful``: leave) as Poisson processes at ``rate`` per
    second each, every
    peer stabilizes at uniform random intervals, and lookups arrive at 1 per second
    until ``lookups`` have been made. Zave's invariants are checked every
    ``check_every`` simulated seconds; a violation aborts with InvariantViolated."""
    rows: list[Row] = []
    for index, rate in enumerate(rates):
        rng = SimRandom(seed).fork(index)
        # A one-hop entry lives as long as ~20 stabilization periods without news: real
        # peers stabilize every 0.5 s and keep entries 120 s; here a period is 15-45 s.
        ttl = 20 * sum(stabilize_range) / 2
        net, initial = _ideal_network(
            nodes, successors, rng.fork(0), one_hop=one_hop, membership_ttl=ttl
        )
        run = _Churn(net, rng.fork(1), rate, stabilize_range, check_every, graceful)
        for node in initial:
            run.admit(node)
        for kind, interval in (("join", rate), ("fail", rate), ("lookup", 1.0)):
            run.schedule(run.rng.expovariate(interval), kind)
        run.schedule(check_every, "check")
        paths, timeouts, failed, made = _run_churn(run, rate, successors, check_every, lookups)
        run.check()
        paths.sort()
        rows.append({
            "rate": rate,
            "mean_path": _mean(paths),
            "path_p1": percentile(paths, 1) if paths else 0,
            "path_p99": percentile(paths, 99) if paths else 0,
            "mean_timeouts": _mean(timeouts),
            "failed": failed,
            "lookups": made,
        })  # fmt: skip
        progress(f"churn: rate {rate}/s done at t={net.clock.now():.0f}s, {len(run.members)} peers")
    params = {"nodes": nodes, "successors": successors, "seed": seed, "rates": list(rates),
              "lookups": lookups, "stabilize_range": list(stabilize_range),
              "check_every": check_every, "graceful": graceful, "one_hop": one_hop}  # fmt: skip
    return ExperimentResult("churn", params, rows)
