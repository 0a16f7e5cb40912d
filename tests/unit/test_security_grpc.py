"""Peer authentication and admission on one in-process gRPC server (loopback only):
the ring secret is demanded on every Chord call (health stays open), compared without
echoing it; messages above the size limit are refused; a joiner or notifier whose
advertised address does not answer is refused and never adopted."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from chord.ids import Ring
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.sim.network import VirtualClock
from chord.transport import Refused
from devtools.launcher import free_port
from proto import chord_pb2 as pb
from proto import chord_pb2_grpc as pb_grpc
from services.rpc.admission import AddressCheck
from services.rpc.security import MAX_MESSAGE_BYTES, SECRET_METADATA_KEY, RingSecurity
from services.rpc.server import GrpcServer
from services.rpc.transport import ChannelPool, GrpcTransport

RING = Ring()
SECRET = "correct horse battery staple"
WRONG = "incorrect-donkey-battery-staple"


class Served:
    def __init__(
        self, security: RingSecurity, admission: bool = False, port: int | None = None
    ) -> None:
        self.pool = ChannelPool(security)
        port = port or free_port()
        self.address = f"127.0.0.1:{port}"
        self.me = NodeRef.for_address(RING, self.address)
        self.node = ChordNode(self.me, RING, GrpcTransport(RING, 1.0, self.pool), VirtualClock())
        self.node.create()
        check = AddressCheck(self.me, self.pool, timeout=0.5) if admission else None
        self.server = GrpcServer(self.node, self.address, 4, 8, security=security, admission=check)
        self.check = check
        self.server.start()
        self.server.set_serving(True)

    def stop(self) -> None:
        self.server.stop(grace=0)
        self.pool.close()


@pytest.fixture
def secured() -> Iterator[Served]:
    served = Served(RingSecurity(secret=SECRET), admission=True)
    yield served
    served.stop()


def call(address: str, method: str, request: object, metadata: list[tuple[str, str]]) -> object:
    with grpc.insecure_channel(address) as channel:
        return getattr(pb_grpc.ChordStub(channel), method)(request, timeout=5, metadata=metadata)


@pytest.mark.parametrize("metadata", [[], [(SECRET_METADATA_KEY, WRONG)], [("x-other", SECRET)]])
@pytest.mark.parametrize(
    ("method", "request_message"),
    [("Ping", pb.Empty()), ("GetState", pb.Empty()), ("Join", pb.JoinRequest())],
)
def test_calls_without_the_secret_are_unauthenticated(
    secured: Served, metadata: list[tuple[str, str]], method: str, request_message: object
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call(secured.address, method, request_message, metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    details = caught.value.details() or ""
    assert SECRET_METADATA_KEY in details
    assert SECRET not in details and WRONG not in details


def test_the_right_secret_is_served(secured: Served) -> None:
    reply = call(secured.address, "Ping", pb.Empty(), [(SECRET_METADATA_KEY, SECRET)])
    assert isinstance(reply, pb.NodeRef) and reply.address == secured.address
    transport = GrpcTransport(RING, 2.0, security=RingSecurity(secret=SECRET))
    try:
        assert transport.ping(secured.me) == secured.me  # the pool's interceptor sends it
    finally:
        transport.close()


def test_a_peer_with_the_wrong_secret_is_refused(secured: Served) -> None:
    transport = GrpcTransport(RING, 2.0, security=RingSecurity(secret=WRONG))
    try:
        with pytest.raises(Refused) as caught:
            transport.get_state(secured.me)
    finally:
        transport.close()
    assert caught.value.code == "unauthenticated"


def test_health_stays_open_and_reflection_does_not(secured: Served) -> None:
    with grpc.insecure_channel(secured.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.RpcError) as caught:
            next(iter(reflection.ServerReflectionInfo(iter([request]), timeout=5)))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # ... but works for an operator who has the secret (grpcurl -H ...)
        answers = reflection.ServerReflectionInfo(
            iter([request]), timeout=5, metadata=[(SECRET_METADATA_KEY, SECRET)]
        )
        assert next(iter(answers)).list_services_response.service


def test_messages_above_the_limit_are_refused(secured: Served) -> None:
    big = pb.StepRequest(key="0" * (MAX_MESSAGE_BYTES + 1))
    with pytest.raises(grpc.RpcError) as caught:
        call(secured.address, "FindSuccessorStep", big, [(SECRET_METADATA_KEY, SECRET)])
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # The channels of the pool refuse to send one in the first place.
    stub = secured.pool.stub(secured.address)
    with pytest.raises(grpc.RpcError) as caught:
        stub.FindSuccessorStep(big, timeout=5)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def dead_ref() -> NodeRef:
    return NodeRef.for_address(RING, f"127.0.0.1:{free_port()}")  # nobody listens there


def test_a_joiner_whose_address_does_not_answer_is_refused(secured: Served) -> None:
    joiner = dead_ref()
    transport = GrpcTransport(RING, 2.0, security=RingSecurity(secret=SECRET))
    try:
        with pytest.raises(Refused) as caught:
            transport.join(secured.me, joiner, RING.bits)
        assert joiner.address in caught.value.detail and "did not answer" in caught.value.detail
        # A notify from it is refused too, and it never becomes the predecessor.
        with pytest.raises(Refused):
            transport.notify(secured.me, joiner)
        assert secured.node.state().predecessor is None
        assert secured.check is not None and not secured.check.verified(joiner.address)
    finally:
        transport.close()


def test_a_joiner_whose_address_answers_is_admitted(secured: Served) -> None:
    other = Served(RingSecurity(secret=SECRET))  # a live peer (not joined: still answers)
    try:
        transport = GrpcTransport(RING, 2.0, security=RingSecurity(secret=SECRET))
        try:
            copied = transport.join(secured.me, other.me, RING.bits)
            assert copied == (secured.me,)
            assert secured.check is not None and secured.check.verified(other.address)
            transport.notify(secured.me, other.me)
            assert secured.node.state().predecessor == other.me
        finally:
            transport.close()
    finally:
        other.stop()


def test_an_id_that_is_not_sha1_of_the_address_is_refused(secured: Served) -> None:
    forged = pb.NodeRef(id=secured.me.hex, address="127.0.0.1:1")
    with pytest.raises(grpc.RpcError) as caught:
        call(
            secured.address,
            "Join",
            pb.JoinRequest(joiner=forged, bits=RING.bits),
            [(SECRET_METADATA_KEY, SECRET)],
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "SHA-1" in (caught.value.details() or "")


def test_a_peer_address_must_be_host_port(secured: Served) -> None:
    """No probe to a unix socket or other non-TCP target a forged address could name."""
    address = "unix:/tmp/x.sock"
    joiner = pb.NodeRef(id=NodeRef.for_address(RING, address).hex, address=address)
    with pytest.raises(grpc.RpcError) as caught:
        call(
            secured.address,
            "Join",
            pb.JoinRequest(joiner=joiner, bits=RING.bits),
            [(SECRET_METADATA_KEY, SECRET)],
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_no_secret_configured_means_an_open_ring() -> None:
    served = Served(RingSecurity())
    try:
        reply = call(served.address, "Ping", pb.Empty(), [])
        assert isinstance(reply, pb.NodeRef)
    finally:
        served.stop()


def test_a_peer_restarting_on_its_address_is_admitted_at_once(secured: Served) -> None:
    """The failed probe's reconnect backoff must not make the new process look dead."""
    assert secured.check is not None
    ghost = dead_ref()
    with pytest.raises(Refused):
        secured.check(ghost)
    # Also leave the pool's own channel in backoff, as a crashed neighbour would.
    with pytest.raises(grpc.RpcError):
        secured.pool.stub(ghost.address).Ping(pb.Empty(), timeout=0.5)
    reborn = Served(RingSecurity(secret=SECRET), port=int(ghost.address.rsplit(":", 1)[1]))
    try:
        secured.check(ghost)
        assert secured.check.verified(ghost.address)
    finally:
        reborn.stop()


def test_a_slow_joiner_is_told_apart_from_a_dead_one(secured: Served) -> None:
    """A listener that accepts connections but never answers in time is refused as
    ``slow-address`` after the probe's retries (the joiner will try again), while an
    address where nothing listens is ``unreachable-address`` at once; the exact code
    reaches the caller beside the status."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts TCP, never speaks HTTP/2: a joiner that is up but stalled
    try:
        slow = NodeRef.for_address(RING, f"127.0.0.1:{silent.getsockname()[1]}")
        transport = GrpcTransport(RING, 5.0, security=RingSecurity(secret=SECRET))
        with pytest.raises(Refused) as caught:
            transport.join(secured.me, slow, RING.bits)
        assert caught.value.code == "slow-address", caught.value
        assert "3 tries" in caught.value.detail
        with pytest.raises(Refused) as caught:
            transport.join(secured.me, dead_ref(), RING.bits)
        assert caught.value.code == "unreachable-address", caught.value
    finally:
        silent.close()
