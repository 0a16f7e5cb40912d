"""An in-memory network: every "RPC" is a direct call to another ChordNode.

A crashed peer stays in the address book but answers nothing, exactly like a
killed process whose port refuses connections. Deterministic by construction:
no threads, no wall clock, no randomness of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from chord.ids import Ring
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.transport import NotReady, PeerState, PeerUnreachable, StepAnswer

T = TypeVar("T")


class VirtualClock:
    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

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
    clock: VirtualClock = field(default_factory=VirtualClock)
    counters: Counters = field(default_factory=Counters)
    nodes: dict[str, ChordNode] = field(default_factory=dict)
    alive: set[str] = field(default_factory=set)

    def add(self, address: str) -> ChordNode:
        """A new, not yet joined peer at ``address``."""
        if address in self.alive:
            raise ValueError(f"{address} is already running")
        node = ChordNode(
            NodeRef.for_address(self.ring, address),
            self.ring,
            SimTransport(self),
            self.clock,
            successors=self.successors,
        )
        self.nodes[address] = node
        self.alive.add(address)
        return node

    def crash(self, address: str) -> None:
        self.alive.discard(address)

    def live_nodes(self) -> list[ChordNode]:
        return [self.nodes[a] for a in sorted(self.alive)]

    def members(self) -> list[ChordNode]:
        """Live peers that have joined."""
        return [node for node in self.live_nodes() if node.joined]

    def target(self, peer: NodeRef) -> ChordNode:
        self.counters.messages += 1
        node = self.nodes.get(peer.address)
        if node is None or peer.address not in self.alive:
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
    as the gRPC adapter turns it into UNAVAILABLE."""

    def __init__(self, network: SimNetwork) -> None:
        self.network = network

    def find_successor_step(self, peer: NodeRef, key: int) -> StepAnswer:
        node = self.network.target(peer)
        return _ready(peer, lambda: node.handle_step(key))

    def get_state(self, peer: NodeRef) -> PeerState:
        node = self.network.target(peer)
        return _ready(peer, node.handle_state)

    def join(self, peer: NodeRef, joiner: NodeRef, bits: int) -> tuple[NodeRef, ...]:
        node = self.network.target(peer)
        return _ready(peer, lambda: node.handle_join(joiner, bits))

    def notify(self, peer: NodeRef, node: NodeRef) -> None:
        target = self.network.target(peer)
        _ready(peer, lambda: target.handle_notify(node))

    def ping(self, peer: NodeRef) -> NodeRef:
        node = self.network.target(peer)
        return _ready(peer, node.handle_ping)

    def leave(
        self,
        peer: NodeRef,
        leaving: NodeRef,
        predecessor: NodeRef | None,
        successors: tuple[NodeRef, ...],
    ) -> None:
        node = self.network.target(peer)
        node.handle_leave(leaving, predecessor, successors)


def _ready(peer: NodeRef, call: Callable[[], T]) -> T:
    try:
        return call()
    except NotReady as exc:
        raise PeerUnreachable(peer, str(exc)) from exc
