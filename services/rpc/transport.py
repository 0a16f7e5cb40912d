"""The Transport protocol over gRPC: one channel per peer address, reused; a
deadline on every call; failures mapped to PeerUnreachable / Refused."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import grpc

from chord.ids import Ring, to_hex
from chord.node_ref import NodeRef
from chord.transport import PeerState, PeerUnreachable, Refused, StepAnswer
from proto import chord_pb2 as pb
from proto import chord_pb2_grpc as pb_grpc
from services.rpc.convert import BadReference, ref_from_pb, ref_to_pb, refs_from_pb
from services.rpc.refusals import refusal_of_error
from services.rpc.security import RingSecurity

T = TypeVar("T")

# Keepalive: a connection whose peer went silent without closing it (a network
# partition, a host gone) is closed after KEEPALIVE_MS + KEEPALIVE_TIMEOUT_MS (gRPC also
# sets TCP_USER_TIMEOUT from the timeout). Without it the channel keeps the dead TCP
# connection, whose retransmissions back off exponentially: measured in the netns
# partition test, peers saw each other again only ~25 s after a 30 s partition healed,
# against ~1 s with keepalive. Servers accept such pings (grpc_server.SERVER_OPTIONS).
KEEPALIVE_MS = 5000
KEEPALIVE_TIMEOUT_MS = 2000

# A restarted peer must be reachable again within about a second, not after
# gRPC's default exponential backoff (up to two minutes).
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 0),  # retrying is the protocol's decision, not the channel's
    ("grpc.keepalive_time_ms", KEEPALIVE_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]

EMPTY = pb.Empty()

BUSY_RETRY_S = 0.01  # first pause before asking a peer that answered RESOURCE_EXHAUSTED again


ChannelWrapper = Callable[[grpc.Channel, str], grpc.Channel]


class ChannelPool:
    """One channel and stub per address, created on first use and reused. ``security``
    decides how each channel authenticates this peer (ring secret, mutual TLS); ``wrap``
    (channel, address) -> channel adds client interceptors (fault injection)."""

    def __init__(
        self, security: RingSecurity | None = None, wrap: ChannelWrapper | None = None
    ) -> None:
        self.security = security or RingSecurity()
        self._wrap = wrap
        self._lock = threading.Lock()
        # _lock, both (any thread that calls a peer; retain() from the maintenance thread).
        self._stubs: dict[str, tuple[grpc.Channel, pb_grpc.ChordStub]] = {}
        self._used: dict[str, float] = {}  # last use, so cleanup spares channels in use

    def _entry(self, address: str) -> tuple[grpc.Channel, pb_grpc.ChordStub]:
        with self._lock:
            self._used[address] = time.monotonic()
            entry = self._stubs.get(address)
            if entry is None:
                channel = self.security.channel(address, CHANNEL_OPTIONS)
                if self._wrap is not None:
                    channel = self._wrap(channel, address)
                entry = (channel, pb_grpc.ChordStub(channel))
                self._stubs[address] = entry
            return entry

    def stub(self, address: str) -> pb_grpc.ChordStub:
        return self._entry(address)[1]

    def channel(self, address: str) -> grpc.Channel:
        """The peer's one channel, for the other services it serves (files)."""
        return self._entry(address)[0]

    def retain(self, addresses: Iterable[str], idle: float = 0.0) -> None:
        """Close channels to peers we no longer know and have not used for ``idle``
        seconds (bounded memory under churn, without cutting a transfer in flight)."""
        keep = set(addresses)
        cutoff = time.monotonic() - idle
        with self._lock:
            stale = [a for a in self._stubs if a not in keep and self._used.get(a, 0.0) <= cutoff]
            closing = [self._stubs.pop(a)[0] for a in stale]
            for address in stale:
                self._used.pop(address, None)
        for channel in closing:
            channel.close()

    def __len__(self) -> int:
        return len(self._stubs)

    def close(self) -> None:
        self.retain(())


class GrpcTransport:
    def __init__(
        self,
        ring: Ring,
        timeout: float,
        pool: ChannelPool | None = None,
        security: RingSecurity | None = None,
    ) -> None:
        self.ring = ring
        self.timeout = timeout
        self.pool = pool if pool is not None else ChannelPool(security)  # an empty pool is falsy

    def _call(
        self, peer: NodeRef, method: str, request: object, convert: Callable[[object], T]
    ) -> T:
        stub = self.pool.stub(peer.address)
        deadline = time.monotonic() + self.timeout
        busy_wait = BUSY_RETRY_S
        while True:
            try:
                reply = getattr(stub, method)(request, timeout=deadline - time.monotonic())
                break
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
                detail = exc.details() if isinstance(exc, grpc.Call) else str(exc)
                # A busy peer answered, so it is alive: ask again (within the deadline)
                # rather than have stabilize or check_predecessor count it as dead. A
                # flood of calls from elsewhere must not push a peer out of the ring.
                if code is grpc.StatusCode.RESOURCE_EXHAUSTED and (
                    time.monotonic() + busy_wait < deadline - BUSY_RETRY_S
                ):
                    time.sleep(busy_wait * (0.5 + random.random()))
                    busy_wait = min(busy_wait * 2, 0.2)
                    continue
                refusal = refusal_of_error(exc)  # the peer said no, and why
                if refusal is not None:
                    raise Refused(refusal, detail or code.name) from None
                raise PeerUnreachable(peer, f"{code.name}: {detail}") from None
        try:
            return convert(reply)
        except (BadReference, ValueError) as exc:
            raise PeerUnreachable(peer, f"malformed reply: {exc}") from None

    def find_successor_step(
        self, peer: NodeRef, key: int, exclude: frozenset[int] = frozenset(), /
    ) -> StepAnswer:
        def convert(reply: object) -> StepAnswer:
            assert isinstance(reply, pb.StepReply)
            predecessor = (
                ref_from_pb(self.ring, reply.predecessor) if reply.HasField("predecessor") else None
            )
            return StepAnswer(
                reply.done,
                refs_from_pb(self.ring, reply.nodes),
                predecessor,
                refs_from_pb(self.ring, reply.owners),
                refs_from_pb(self.ring, reply.hints),
            )

        request = pb.StepRequest(key=to_hex(key), exclude=[to_hex(i) for i in exclude])
        return self._call(peer, "FindSuccessorStep", request, convert)

    def get_state(self, peer: NodeRef, caller: NodeRef | None = None) -> PeerState:
        def convert(reply: object) -> PeerState:
            assert isinstance(reply, pb.StateReply)
            node = ref_from_pb(self.ring, reply.node)
            predecessor = (
                ref_from_pb(self.ring, reply.predecessor) if reply.HasField("predecessor") else None
            )
            return PeerState(node, predecessor, refs_from_pb(self.ring, reply.successors))

        request = pb.StateRequest(caller=ref_to_pb(caller)) if caller else pb.StateRequest()
        return self._call(peer, "GetState", request, convert)

    def ring_bits(self, peer: NodeRef) -> int:
        """The m of the ring ``peer`` belongs to (0 if it does not say). Read without
        converting any reference: with another m, the peer's IDs would not check out."""

        def convert(reply: object) -> int:
            assert isinstance(reply, pb.StateReply)
            return int(reply.bits)

        return self._call(peer, "GetState", EMPTY, convert)

    def join(self, peer: NodeRef, joiner: NodeRef, bits: int) -> tuple[NodeRef, ...]:
        request = pb.JoinRequest(joiner=ref_to_pb(joiner), bits=bits)
        return self._call(peer, "Join", request, self._node_list)

    def notify(self, peer: NodeRef, node: NodeRef) -> None:
        self._call(peer, "Notify", pb.NotifyRequest(node=ref_to_pb(node)), lambda _: None)

    def ping(self, peer: NodeRef) -> NodeRef:
        def convert(reply: object) -> NodeRef:
            assert isinstance(reply, pb.NodeRef)
            return ref_from_pb(self.ring, reply)

        return self._call(peer, "Ping", EMPTY, convert)

    def get_members(self, peer: NodeRef) -> tuple[tuple[NodeRef, float], ...]:
        def convert(reply: object) -> tuple[tuple[NodeRef, float], ...]:
            assert isinstance(reply, pb.MemberList)
            return tuple((ref_from_pb(self.ring, m.node), float(m.age)) for m in reply.members)

        return self._call(peer, "GetMembers", EMPTY, convert)

    def leave(
        self,
        peer: NodeRef,
        leaving: NodeRef,
        predecessor: NodeRef | None,
        successors: tuple[NodeRef, ...],
    ) -> None:
        request = pb.LeaveRequest(
            leaving=ref_to_pb(leaving),
            predecessor=ref_to_pb(predecessor) if predecessor is not None else None,
            successors=[ref_to_pb(s) for s in successors],
        )
        self._call(peer, "Leave", request, lambda _: None)

    def _node_list(self, reply: object) -> tuple[NodeRef, ...]:
        assert isinstance(reply, pb.NodeList)
        return refs_from_pb(self.ring, reply.nodes)

    def close(self) -> None:
        self.pool.close()
