"""What the protocol core needs from the outside world: other peers and a clock.

The real adapter (``services.rpc.transport``) speaks gRPC with a deadline on every
call; the simulator's (``chord.sim.network``) calls other in-memory nodes directly.
Either way a peer that does not answer in time raises :class:`PeerUnreachable`
and is treated as dead by the caller, which is all Chord needs to know.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

from chord.node_ref import NodeRef
from chord.refusals import Refusal


class PeerUnreachable(Exception):
    """The peer did not answer (dead, timed out, not yet joined, or leaving)."""

    def __init__(self, peer: NodeRef, reason: str = "") -> None:
        super().__init__(f"{peer.address} unreachable{': ' + reason if reason else ''}")
        self.peer = peer
        self.reason = reason


class Refused(Exception):
    """A peer answered, and said no (bad identity, ID collision, ring mismatch, an
    advertised address that does not answer...): ``code`` says which
    (:class:`~chord.refusals.Refusal`), ``detail`` says it in words."""

    def __init__(self, code: Refusal | str, detail: str) -> None:
        super().__init__(detail)
        self.code = Refusal(code)
        self.detail = detail


class NotReady(Exception):
    """This peer is joining or leaving and must not be used for routing yet."""


class StepAnswer(NamedTuple):
    """One peer's answer to "who owns key?", from its own tables only.

    ``done``: ``nodes[0]`` owns the key and the rest are its successors. Either the
    responder is the key's predecessor (``nodes`` is its successor list and
    ``predecessor`` the responder), or the key lies in (its predecessor, itself]
    (``nodes[0]`` is the responder and ``predecessor`` its predecessor).

    Otherwise ``nodes`` are peers strictly between the responder and the key, closest
    to the key first, and ``predecessor`` is the responder's own predecessor if known
    (a caller that expected the responder to own the key learns who lies before it).
    """

    done: bool
    nodes: tuple[NodeRef, ...]
    predecessor: NodeRef | None = None
    # Not done, but the key falls inside the responder's successor list: the entries
    # from the owner on (its view, possibly stale): candidates for the owner, which a
    # verified lookup asks next, an unverified one only if every closer peer is dead.
    owners: tuple[NodeRef, ...] = ()
    # Not done, and the key lies beyond the responder's successor list: the members of
    # its one-hop table from the owner on. A sample of the ring, not a stretch of it
    # (the table may miss joiners, or whole runs of peers it has not heard of yet): each
    # is worth asking, but a dead one says nothing about who else lies there, so a
    # caller never treats the first live hint as the owner unless it says so itself.
    hints: tuple[NodeRef, ...] = ()


@dataclass(frozen=True)
class PeerState:
    """What a peer tells others about its neighbourhood (one RPC for stabilize)."""

    node: NodeRef
    predecessor: NodeRef | None
    successors: tuple[NodeRef, ...]


class Transport(Protocol):
    """Calls to other peers. Every method may raise :class:`PeerUnreachable`."""

    def find_successor_step(
        self, peer: NodeRef, key: int, exclude: frozenset[int] = frozenset(), /
    ) -> StepAnswer:
        """Ask ``peer`` for one step of the lookup of ``key``, offering none of the
        peers whose IDs are in ``exclude`` (the caller found them dead)."""
        ...

    def get_state(self, peer: NodeRef, caller: NodeRef | None = None) -> PeerState:
        """``peer``'s predecessor and successor list; ``caller``: who asks, when a ring
        member asks for its stabilize (a sign of life to ``peer`` if it is its
        predecessor)."""
        ...

    def join(self, peer: NodeRef, joiner: NodeRef, bits: int) -> tuple[NodeRef, ...]:
        """Ask ``peer`` to admit ``joiner`` as its successor; may raise :class:`Refused`."""
        ...

    def notify(self, peer: NodeRef, node: NodeRef) -> None:
        """Tell ``peer`` that ``node`` believes it is ``peer``'s predecessor."""
        ...

    def ping(self, peer: NodeRef) -> NodeRef:
        """Liveness check; returns the identity the peer claims."""
        ...

    def get_members(self, peer: NodeRef) -> tuple[tuple[NodeRef, float], ...]:
        """``peer``'s one-hop table: (member, seconds since it was last heard from)."""
        ...

    def leave(
        self,
        peer: NodeRef,
        leaving: NodeRef,
        predecessor: NodeRef | None,
        successors: tuple[NodeRef, ...],
    ) -> None:
        """Tell ``peer`` that ``leaving`` is leaving the ring gracefully."""
        ...


class Clock(Protocol):
    """Monotonic seconds. Real peers use the OS clock; the simulator a virtual one."""

    def now(self) -> float: ...
