"""What upkeep costs: maintenance messages per peer per second, fixed vs adaptive pacing.

``python -m devtools.sim upkeep`` runs N peers from the Ideal state for ``warmup`` and then
``duration`` simulated seconds (only the second part is counted: a steady state), each
peer running stabilize, check_predecessor and fix_fingers on the pacing of chord.pacing
(the policy services/peer/maintenance.py applies on the wall clock), with the real peers'
default intervals (0.5, 1.0 and 0.5 s) and the same speed-up when a handler finds work.
``backoff`` 1 is the fixed schedule the peers had before; 8 is the default now. With
``rate`` > 0, peers join and fail as Poisson processes (each at ``rate`` per second) and
lookups at 1 per second show that routing stays correct while upkeep speeds up around
the changes.

Counted: every RPC a maintenance step sends (the network's message counter, lookups'
own messages left out), divided by the peers and the seconds. Replication and ring-merge
checks are services-level steps with their own backoff and are not simulated here.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from heapq import heappop, heappush

from chord.ids import MAX_BITS
from chord.lookup import LookupFailed
from chord.node import ChordNode, JoinFailed
from chord.pacing import FINGER_SLACK, Pace
from chord.placement import successor_index
from chord.sim.experiments import (
    ExperimentResult,
    Progress,
    Row,
    _ideal_network,
    _mean,
    _quiet,
)
from chord.sim.network import SimNetwork
from chord.sim.rng import SimRandom
from chord.transport import PeerUnreachable

INTERVALS = (
    ("stabilize", 0.5, 1),
    ("check_predecessor", 1.0, 1),
    ("fix_fingers", 0.5, FINGER_SLACK),
)
UPKEEP_BACKOFFS = (1.0, 8.0)
UPKEEP_RATES = (0.0, 0.05)


@dataclass
class _Peer:
    node: ChordNode
    paces: list[Pace]
    timers: list[int] = field(default_factory=lambda: [0, 0, 0])  # live timer per step
    seen: int = -1  # node.changes after its last step


@dataclass
class _Upkeep:
    net: SimNetwork
    rng: SimRandom
    backoff: float
    peers: dict[str, _Peer] = field(default_factory=dict)
    member_ids: list[int] = field(default_factory=list)
    queue: list[tuple[float, int, str, str]] = field(default_factory=list)
    seq: int = 0
    maintenance_messages: int = 0

    def schedule(self, at: float, kind: str, address: str = "") -> int:
        self.seq += 1
        heappush(self.queue, (at, self.seq, kind, address))
        return self.seq

    def arm(self, peer: _Peer, index: int) -> None:
        """(Re)start step ``index``'s timer at its pace's due time; older timers lapse."""
        pace = peer.paces[index]
        peer.timers[index] = self.schedule(pace.due, f"step{index}", peer.node.me.address)

    def admit(self, node: ChordNode) -> None:
        now = self.net.clock.now()
        paces = [Pace.backing_off(base, self.backoff, slack) for _, base, slack in INTERVALS]
        peer = _Peer(node, paces)
        for index, pace in enumerate(paces):  # spread the first runs over one interval
            pace.due = now + self.rng.uniform(0, pace.base)
            self.arm(peer, index)
        node.hooks.on_change = lambda: self.speed_up(peer)  # as server.Peer wires it
        self.peers[node.me.address] = peer
        self.member_ids.insert(bisect_left(self.member_ids, node.me.id), node.me.id)

    def speed_up(self, peer: _Peer) -> None:
        """Every step of ``peer`` back to full speed (services/peer/maintenance.py's speed_up)."""
        now = self.net.clock.now()
        for index, pace in enumerate(peer.paces):
            if pace.current != pace.base or pace.due > now + pace.base:
                pace.reset(now)
                self.arm(peer, index)

    def step(self, address: str, index: int, timer: int) -> None:
        peer = self.peers.get(address)
        if peer is None or address not in self.net.alive or peer.timers[index] != timer:
            return  # crashed (its timers die with it), or a lapsed timer
        node, pace = peer.node, peer.paces[index]
        now = self.net.clock.now()
        before = self.net.counters.messages
        outcome = (node.stabilize, node.check_predecessor, node.fix_next_finger)[index]()
        self.maintenance_messages += self.net.counters.messages - before
        changed = node.changes != peer.seen
        peer.seen = node.changes
        if changed:  # every step back to full speed, as the real loop does
            self.speed_up(peer)
        if index == 2 and outcome is False and not changed:
            pace.again(now)  # within a finger pass, as services/peer/maintenance.py paces it
        else:
            pace.ran(now, worked=changed)
        self.arm(peer, index)

    def join(self) -> None:
        (address,) = self.net.random_addresses(1, self.rng)
        node = self.net.add(address)
        seed = self.peers[self.rng.choice(sorted(self.peers))].node
        try:
            node.join(seed.me.address)
        except (JoinFailed, PeerUnreachable):
            self.net.crash(address)
            return
        self.admit(node)

    def fail(self, successors: int) -> None:
        if len(self.peers) <= successors + 1:
            return
        address = self.rng.choice(sorted(self.peers))
        peer = self.peers.pop(address)
        self.member_ids.remove(peer.node.me.id)
        self.net.crash(address)

    def lookup(self) -> tuple[int, int, bool] | None:
        node = self.peers[self.rng.choice(sorted(self.peers))].node
        key = self.rng.getrandbits(MAX_BITS)
        try:
            found = node.lookup(key, confirm_owner=True)
        except LookupFailed:
            return None
        owner = self.member_ids[successor_index(self.member_ids, key)]
        return found.hops, found.timeouts, found.owner.id == owner


def _run(
    nodes: int,
    successors: int,
    seed: int,
    backoff: float,
    rate: float,
    duration: float,
    warmup: float,
) -> Row:
    rng = SimRandom(seed)
    net, initial = _ideal_network(nodes, successors, rng.fork(0))
    run = _Upkeep(net, rng.fork(1), backoff)
    for node in initial:
        run.admit(node)
    start = net.clock.now()
    end = start + warmup + duration
    counted_from = start + warmup
    if rate > 0:
        run.schedule(start + run.rng.expovariate(rate), "join")
        run.schedule(start + run.rng.expovariate(rate), "fail")
    run.schedule(start + 1.0, "lookup")
    paths: list[int] = []
    timeouts: list[int] = []
    failed = 0
    made = 0
    while run.queue and run.queue[0][0] <= end:
        moment, timer, kind, address = heappop(run.queue)
        net.clock.advance_to(moment)
        if kind.startswith("step"):
            if moment < counted_from:
                before = run.maintenance_messages
                run.step(address, int(kind[4:]), timer)
                run.maintenance_messages = before  # warm-up: not counted
            else:
                run.step(address, int(kind[4:]), timer)
        elif kind == "join":
            run.join()
            run.schedule(moment + run.rng.expovariate(rate), "join")
        elif kind == "fail":
            run.fail(successors)
            run.schedule(moment + run.rng.expovariate(rate), "fail")
        else:
            made += 1
            outcome = run.lookup()
            if outcome is None or not outcome[2]:
                failed += 1
            if outcome is not None:
                paths.append(outcome[0])
                timeouts.append(outcome[1])
            run.schedule(moment + 1.0, "lookup")
    return {
        "backoff": backoff,
        "rate": rate,
        "messages_per_peer_s": round(run.maintenance_messages / nodes / duration, 3),
        "lookups": made,
        "failed": failed,
        "mean_path": _mean(paths),
        "mean_timeouts": _mean(timeouts),
    }


def upkeep(
    nodes: int = 1000,
    successors: int = 8,
    seed: int = 1,
    backoffs: Sequence[float] = UPKEEP_BACKOFFS,
    rates: Sequence[float] = UPKEEP_RATES,
    duration: float = 120.0,
    warmup: float = 180.0,
    progress: Progress = _quiet,
) -> ExperimentResult:
    """One row per (rate, backoff): maintenance messages per peer per second, and the
    lookups made meanwhile (failed: no answer or the wrong owner)."""
    rows: list[Row] = []
    for rate in rates:
        for backoff in backoffs:
            rows.append(_run(nodes, successors, seed, backoff, rate, duration, warmup))
            progress(f"upkeep: rate {rate}/s, backoff {backoff:g} done")
    params = {"nodes": nodes, "successors": successors, "seed": seed,
              "backoffs": list(backoffs), "rates": list(rates), "duration": duration,
              "warmup": warmup}  # fmt: skip
    return ExperimentResult("upkeep", params, rows)
