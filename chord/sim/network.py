"""An in-memory network: every "RPC" is a direct call to another ChordNode.

A crashed peer stays in the address book but answers nothing, exactly like a
killed process whose port refuses connections. Deterministic by construction:
no threads, no wall clock, and randomness only from a seeded SimRandom passed in.

Two ways to a starting ring:

* the protocol: ``add(address).create()`` / ``.join(seed)`` then maintenance rounds
  until quiet (exact: what real peers do; cost grows with N and rounds);
* ``build_ideal(addresses)``: every peer gets the exact predecessor, successor list
  and finger table directly (fast, for 10^3-10^4 peers). tests/sim shows the two
  agree for a few hundred peers.

Messages are delivered at once by default (the paper's experiments measure hops and
timeouts, not time). With a :class:`~chord.sim.scheduler.Latency`, every message
takes its own random delay on the virtual clock and operations run as events of
``scheduler``: ``start`` runs a peer operation (join, stabilize...) whose calls wait
for their replies while other events run, and ``start_lookup`` drives a lookup's
state machine by message events, so replies arrive late and out of order and
concurrent operations interleave.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from chord.ids import Ring
from chord.lookup import LookupFailed, LookupMachine, LookupResult, StepRequest
from chord.membership import DEFAULT_TTL
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.placement import successor_index
from chord.sim.rng import SimRandom
from chord.sim.scheduler import DEFAULT_TIMEOUT, Latency, Scheduler, VirtualClock
from chord.transport import NotReady, PeerState, PeerUnreachable, StepAnswer

__all__ = ["CallerCrashed", "Counters", "SimNetwork", "SimTransport", "VirtualClock"]

T = TypeVar("T")
# Operations that may be stacked, each running inside the previous one's wait for a
# reply: one more is put off until the innermost ends. Waits nest (the inner operation
# must end before the outer one reads its reply), so without a bound operations
# started during waits would keep postponing the ones below them.
MAX_STACKED_OPERATIONS = 2
LookupDone = Callable[[LookupResult | LookupFailed], None]


class CallerCrashed(Exception):
    """The peer whose operation waited for a reply crashed meanwhile: the operation
    ends there (a killed process does not go on sending)."""


@dataclass
class Counters:
    messages: int = 0
    timeouts: int = 0  # each contact of a dead (or not yet joined) peer


@dataclass
class SimNetwork:
    ring: Ring
    successors: int = 8
    one_hop: bool = False  # peers keep the one-hop table (chord.membership)
    membership_ttl: float = DEFAULT_TTL  # its entries' lifetime without news, seconds
    clock: VirtualClock = field(default_factory=VirtualClock)
    counters: Counters = field(default_factory=Counters)
    nodes: dict[str, ChordNode] = field(default_factory=dict)
    alive: set[str] = field(default_factory=set)
    # address -> side of a network partition; peers on different sides cannot reach each
    # other. Empty: no partition. Addresses not listed are on side 0.
    sides: dict[str, int] = field(default_factory=dict)
    # None: every message is delivered at once (the default, and the paper's setting).
    latency: Latency | None = None

    def __post_init__(self) -> None:
        self.transport = SimTransport(self)
        self.scheduler = Scheduler(self.clock)
        self.busy: set[str] = set()  # peers in the middle of an operation (``start``)
        # Operations that came due while their peer was busy, run when it is done.
        self.deferred: dict[str, list[Callable[[], None]]] = {}
        # Operations that came due with MAX_STACKED_OPERATIONS running, run when one ends.
        self.postponed: list[Callable[[], None]] = []

    # ------------------------------------------------------------ membership
    def add(self, address: str) -> ChordNode:
        """A new, not yet joined peer at ``address`` (a restart if the address crashed)."""
        if address in self.alive:
            raise ValueError(f"{address} is already running")
        node = ChordNode(
            NodeRef.for_address(self.ring, address),
            self.ring,
            SimTransport(self, address) if self.sides or self.latency else self.transport,
            self.clock,
            successors=self.successors,
            one_hop=self.one_hop,
            membership_ttl=self.membership_ttl,
        )
        self.nodes[address] = node
        self.alive.add(address)
        return node

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the network: peers in different groups (unlisted ones: the first
        group's side) no longer reach each other, like hosts on separate links."""
        self.sides = {a: side for side, group in enumerate(groups) for a in group}
        for address, node in self.nodes.items():
            node.transport = SimTransport(self, address)

    def heal(self) -> None:
        self.sides = {}

    def crash(self, address: str) -> None:
        self.alive.discard(address)

    def crash_fraction(self, fraction: float, rng: SimRandom) -> list[ChordNode]:
        """Crash ``round(fraction * members)`` members at once, chosen at random."""
        members = self.members()
        victims = rng.sample(members, round(fraction * len(members)))
        for node in victims:
            self.crash(node.me.address)
        return victims

    def random_addresses(self, count: int, rng: SimRandom) -> list[str]:
        """Fresh addresses whose IDs collide neither with each other nor with any peer's."""
        taken = {node.me.id for node in self.nodes.values()}
        addresses: list[str] = []
        while len(addresses) < count:
            raw = rng.getrandbits(40)
            address = f"10.{raw >> 32 & 255}.{raw >> 24 & 255}.{raw >> 16 & 255}:{raw & 0xFFFF}"
            ident = self.ring.hash(address)
            if ident not in taken and address not in self.nodes:
                taken.add(ident)
                addresses.append(address)
        return addresses

    def build_ideal(self, addresses: Iterable[str]) -> list[ChordNode]:
        """Peers at ``addresses`` in the Ideal state, without running the protocol."""
        nodes = sorted((self.add(a) for a in addresses), key=lambda n: n.me.id)
        ids = [n.me.id for n in nodes]
        count = len(nodes)
        r = min(self.successors, count - 1)
        for i, node in enumerate(nodes):
            successors = tuple(nodes[(i + k) % count].me for k in range(1, r + 1))
            fingers = tuple(
                nodes[successor_index(ids, start)].me for start in node.state().finger_starts
            )
            predecessor = nodes[i - 1].me if count > 1 else None
            node.bootstrap(predecessor, successors, fingers)
        if self.one_hop:
            entries = [(n.me, 0.0) for n in nodes]
            for node in nodes:
                assert node.membership is not None
                node.membership.merge(entries, self.clock.now())
        return nodes

    # ------------------------------------------------------------ observation
    def live_nodes(self) -> list[ChordNode]:
        return [self.nodes[a] for a in sorted(self.alive)]

    def members(self) -> list[ChordNode]:
        """Live peers that have joined, in address order (deterministic)."""
        return [node for node in self.live_nodes() if node.joined]

    def target(self, peer: NodeRef, origin: str | None = None) -> ChordNode:
        self.counters.messages += 1
        node = self.nodes.get(peer.address)
        if (
            node is None
            or peer.address not in self.alive
            or (node.me is not peer and node.me != peer)
            or (
                self.sides
                and origin is not None
                and self.sides.get(origin, 0) != self.sides.get(peer.address, 0)
            )
        ):
            self.counters.timeouts += 1
            raise PeerUnreachable(peer, "no answer")
        return node

    # ------------------------------------------------------------ with latency
    def call(self, peer: NodeRef, origin: str | None, handle: Callable[[ChordNode], T]) -> T:
        """One request/reply: ``handle`` runs on ``peer``'s node when the request
        arrives. With latency, the caller waits on the virtual clock (other events run
        meanwhile) and a reply later than the timeout is no answer."""
        if self.latency is None:
            return self._deliver(peer, origin, handle)
        # The deadline is measured on the message's own delays: an operation that ran
        # inside our wait (see chord.sim.scheduler) may hold the clock past them, which
        # makes us late to read the reply, not the reply late.
        latency = self.latency
        there = latency.draw()
        self.scheduler.run_until(self.clock.now() + there)
        try:
            answer = self._deliver(peer, origin, handle)
        except PeerUnreachable:
            self._wait(origin, self.clock.now() + latency.timeout - there)
            raise
        back = latency.draw()
        if there + back > latency.timeout:
            self._wait(origin, self.clock.now() + latency.timeout - there)
            raise PeerUnreachable(peer, "timed out")
        self._wait(origin, self.clock.now() + back)
        return answer

    def _deliver(self, peer: NodeRef, origin: str | None, handle: Callable[[ChordNode], T]) -> T:
        node = self.target(peer, origin)
        try:
            return handle(node)
        except NotReady as exc:
            raise PeerUnreachable(peer, str(exc)) from exc

    def _wait(self, origin: str | None, moment: float) -> None:
        self.scheduler.run_until(moment)
        if origin is not None and origin not in self.alive:
            raise CallerCrashed(origin)

    def start(self, node: ChordNode, operation: Callable[[], object], delay: float = 0.0) -> None:
        """Run ``operation`` (a peer operation of ``node`` that may call others) as an
        event ``delay`` seconds from now. A peer runs one operation at a time, as a
        real peer's maintenance loop does: one due while another waits for a reply
        is run when that one ends. Dropped if the peer crashed before or during it."""

        def run() -> None:
            address = node.me.address
            if address not in self.alive or self.nodes.get(address) is not node:
                return
            if address in self.busy:
                self.deferred.setdefault(address, []).append(run)
                return
            if self.scheduler.depth > MAX_STACKED_OPERATIONS:
                self.postponed.append(run)
                return
            self.busy.add(address)
            try:
                operation()
            except CallerCrashed:
                pass
            finally:
                self.busy.discard(address)
                waiting = [*self.deferred.pop(address, ()), *self.postponed]
                self.postponed.clear()
                for later in waiting:
                    self.scheduler.after(0.0, later)

        self.scheduler.after(delay, run)

    def start_lookup(
        self,
        node: ChordNode,
        key: int,
        on_done: LookupDone,
        *,
        confirm_owner: bool = False,
        forget_dead: bool = True,
    ) -> LookupMachine:
        """Look ``key`` up from ``node`` by message events (see :class:`_EventLookup`);
        ``on_done`` gets the result, or the LookupFailed, when it ends."""
        machine = node.start_lookup(key, confirm_owner=confirm_owner)
        _EventLookup(self, node, machine, on_done, forget_dead).pump()
        return machine

    def send(
        self,
        origin: str,
        peer: NodeRef,
        handle: Callable[[ChordNode], T],
        on_reply: Callable[[T], None],
        on_timeout: Callable[[str], None],
    ) -> None:
        """A request as events: delivered after one delay, its reply after another;
        ``on_timeout`` is called at the deadline whether or not the reply came (the
        caller ignores whichever comes second)."""
        latency = self.latency
        timeout = latency.timeout if latency is not None else DEFAULT_TIMEOUT
        there = latency.draw() if latency is not None else 0.0
        scheduler = self.scheduler

        def deliver() -> None:
            try:
                answer = self._deliver(peer, origin, handle)
            except PeerUnreachable:
                return  # silence: the deadline speaks
            back = latency.draw() if latency is not None else 0.0
            scheduler.after(back, lambda: on_reply(answer))

        scheduler.after(there, deliver)
        scheduler.after(timeout, lambda: on_timeout("no answer"))

    def run_maintenance_round(self, order: Iterable[ChordNode] | None = None) -> None:
        """Every live member runs stabilize, check_predecessor and one finger fix."""
        for node in list(order if order is not None else self.members()):
            if node.me.address in self.alive and node.joined:
                node.stabilize()
                node.check_predecessor()
                node.fix_next_finger()


class SimTransport:
    """The Transport protocol over a SimNetwork. NotReady becomes PeerUnreachable,
    as the gRPC adapter turns it into UNAVAILABLE. ``origin``: the calling peer's
    address, which a partition may cut off (None: an observer, never cut off)."""

    def __init__(self, network: SimNetwork, origin: str | None = None) -> None:
        self.network = network
        self.origin = origin

    def find_successor_step(
        self, peer: NodeRef, key: int, exclude: frozenset[int] = frozenset(), /
    ) -> StepAnswer:
        network = self.network
        if network.latency is None:  # the experiments' hot path: no closure, no events
            node = network.target(peer, self.origin)
            try:
                return node.handle_step(key, exclude)
            except NotReady as exc:
                raise PeerUnreachable(peer, str(exc)) from exc
        return network.call(peer, self.origin, lambda node: node.handle_step(key, exclude))

    def get_state(self, peer: NodeRef, caller: NodeRef | None = None) -> PeerState:
        return self.network.call(peer, self.origin, lambda node: node.handle_state(caller))

    def join(self, peer: NodeRef, joiner: NodeRef, bits: int) -> tuple[NodeRef, ...]:
        return self.network.call(peer, self.origin, lambda node: node.handle_join(joiner, bits))

    def notify(self, peer: NodeRef, node: NodeRef) -> None:
        self.network.call(peer, self.origin, lambda target: target.handle_notify(node))

    def ping(self, peer: NodeRef) -> NodeRef:
        return self.network.call(peer, self.origin, ChordNode.handle_ping)

    def get_members(self, peer: NodeRef) -> tuple[tuple[NodeRef, float], ...]:
        return self.network.call(peer, self.origin, ChordNode.handle_members)

    def leave(
        self,
        peer: NodeRef,
        leaving: NodeRef,
        predecessor: NodeRef | None,
        successors: tuple[NodeRef, ...],
    ) -> None:
        self.network.call(
            peer, self.origin, lambda node: node.handle_leave(leaving, predecessor, successors)
        )


class _EventLookup:
    """A lookup's state machine driven by message events: each remote step is a
    request delivered after a random delay, whose reply comes after another, racing
    its deadline; a reply that loses the race is ignored by the machine. Steps the
    peer answers itself (``local``) take no time. Many such lookups, and the peers'
    own operations, may be in flight at once."""

    def __init__(
        self,
        net: SimNetwork,
        node: ChordNode,
        machine: LookupMachine,
        on_done: LookupDone,
        forget_dead: bool,
    ) -> None:
        self.net = net
        self.node = node
        self.machine = machine
        self.on_done = on_done
        self.forget_dead = forget_dead

    def alive(self) -> bool:
        address = self.node.me.address
        return address in self.net.alive and self.net.nodes.get(address) is self.node

    def pump(self) -> None:
        """Send the machine's next request, answering local ones at once; report the
        outcome once it is done."""
        machine, node = self.machine, self.node
        while (request := machine.next_request()) is not None:
            if not request.local:
                self.send(request)
                return
            machine.on_reply(request, node.handle_step(request.key, request.exclude))
        try:
            outcome: LookupResult | LookupFailed = machine.outcome()
        except LookupFailed as exc:
            outcome = exc
        self.on_done(outcome)

    def send(self, request: StepRequest) -> None:
        key, exclude = request.key, request.exclude
        self.net.send(
            self.node.me.address,
            request.peer,
            lambda target: target.handle_step(key, exclude),
            lambda answer: self.replied(request, answer),
            lambda reason: self.timed_out(request, reason),
        )

    def replied(self, request: StepRequest, answer: StepAnswer) -> None:
        if self.alive() and self.machine.on_reply(request, answer):
            self.node.step_answered(request.peer)
            self.pump()

    def timed_out(self, request: StepRequest, reason: str) -> None:
        if self.alive() and self.machine.on_timeout(request, reason):
            if self.forget_dead:
                self.node.step_unanswered(request.peer)
            self.pump()
