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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from chord.ids import Ring
from chord.membership import DEFAULT_TTL
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.placement import successor_index
from chord.sim.rng import SimRandom
from chord.transport import NotReady, PeerState, PeerUnreachable, StepAnswer


class VirtualClock:
    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance_to(self, moment: float) -> None:
        self._now = max(self._now, moment)

    def advance(self, seconds: float) -> None:
        self._now += seconds


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

    def __post_init__(self) -> None:
        self.transport = SimTransport(self)

    # ------------------------------------------------------------ membership
    def add(self, address: str) -> ChordNode:
        """A new, not yet joined peer at ``address`` (a restart if the address crashed)."""
        if address in self.alive:
            raise ValueError(f"{address} is already running")
        node = ChordNode(
            NodeRef.for_address(self.ring, address),
            self.ring,
            SimTransport(self, address) if self.sides else self.transport,
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
        node = self.network.target(peer, self.origin)
        try:
            return node.handle_step(key, exclude)
        except NotReady as exc:
            raise PeerUnreachable(peer, str(exc)) from exc

    def get_state(self, peer: NodeRef, caller: NodeRef | None = None) -> PeerState:
        node = self.network.target(peer, self.origin)
        try:
            return node.handle_state(caller)
        except NotReady as exc:
            raise PeerUnreachable(peer, str(exc)) from exc

    def join(self, peer: NodeRef, joiner: NodeRef, bits: int) -> tuple[NodeRef, ...]:
        node = self.network.target(peer, self.origin)
        try:
            return node.handle_join(joiner, bits)
        except NotReady as exc:
            raise PeerUnreachable(peer, str(exc)) from exc

    def notify(self, peer: NodeRef, node: NodeRef) -> None:
        target = self.network.target(peer, self.origin)
        try:
            target.handle_notify(node)
        except NotReady as exc:
            raise PeerUnreachable(peer, str(exc)) from exc

    def ping(self, peer: NodeRef) -> NodeRef:
        node = self.network.target(peer, self.origin)
        try:
            return node.handle_ping()
        except NotReady as exc:
            raise PeerUnreachable(peer, str(exc)) from exc

    def get_members(self, peer: NodeRef) -> tuple[tuple[NodeRef, float], ...]:
        node = self.network.target(peer, self.origin)
        try:
            return node.handle_members()
        except NotReady as exc:
            raise PeerUnreachable(peer, str(exc)) from exc

    def leave(
        self,
        peer: NodeRef,
        leaving: NodeRef,
        predecessor: NodeRef | None,
        successors: tuple[NodeRef, ...],
    ) -> None:
        self.network.target(peer, self.origin).handle_leave(leaving, predecessor, successors)
