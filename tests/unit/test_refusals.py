"""Refusals keep their meaning on the wire: the refusing side sends the exact code
beside the gRPC status, the calling side reads it back into :class:`Refused`; a reply
without a code (an older peer) or with an unknown one (a newer peer) still maps to
what its status code has always meant."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any, cast

import grpc
import pytest

from chord.ids import Ring
from chord.node_ref import NodeRef
from chord.refusals import Refusal
from chord.transport import PeerUnreachable, Refused
from devtools.launcher import free_port
from proto import chord_pb2 as pb
from proto import chord_pb2_grpc as pb_grpc
from services.peer.peer import _join_failure
from services.rpc.refusals import (
    REFUSAL_METADATA,
    REFUSAL_OF_STATUS,
    STATUS_OF,
    abort_refused,
    refusal_from,
)
from services.rpc.server import GrpcServer
from services.rpc.transport import GrpcTransport

RING = Ring()


class Aborted(Exception):
    pass


class RecordingContext:
    """The part of a grpc.ServicerContext a refusal uses."""

    def __init__(self) -> None:
        self.trailing: tuple[tuple[str, str], ...] = ()
        self.status: grpc.StatusCode | None = None
        self.details = ""

    def set_trailing_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.trailing = metadata

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.status, self.details = code, details
        raise Aborted


# ------------------------------------------------------------ the mapping both ways
@pytest.mark.parametrize("refusal", list(Refusal))
def test_every_refusal_survives_the_round_trip(refusal: Refusal) -> None:
    context = RecordingContext()
    with pytest.raises(Aborted):
        abort_refused(cast(grpc.ServicerContext, context), refusal, "why")
    assert context.status is STATUS_OF[refusal] and context.details == "why"
    assert context.trailing == ((REFUSAL_METADATA, refusal.value),)
    assert refusal_from(context.status, context.trailing) is refusal
    # Every refusal is sent with a status code that reads as a refusal without the code.
    assert context.status in REFUSAL_OF_STATUS


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, Refusal.INVALID_IDENTITY),
        (grpc.StatusCode.ALREADY_EXISTS, Refusal.ID_COLLISION),
        (grpc.StatusCode.FAILED_PRECONDITION, Refusal.RING_MISMATCH),
        (grpc.StatusCode.PERMISSION_DENIED, Refusal.PERMISSION_DENIED),
        (grpc.StatusCode.UNAUTHENTICATED, Refusal.UNAUTHENTICATED),
    ],
)
def test_an_older_peer_without_a_code_maps_as_before(
    status: grpc.StatusCode, expected: Refusal
) -> None:
    assert refusal_from(status, None) is expected
    assert refusal_from(status, (("other-key", "x"),)) is expected
    # A code this version does not know (a newer peer's): the status code still counts.
    assert refusal_from(status, ((REFUSAL_METADATA, "some-future-reason"),)) is expected


def test_a_code_in_bytes_is_read_too() -> None:
    trailing = ((REFUSAL_METADATA, b"slow-address"),)
    assert refusal_from(grpc.StatusCode.PERMISSION_DENIED, trailing) is Refusal.SLOW_ADDRESS


@pytest.mark.parametrize(
    "status",
    [
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
    ],
)
def test_other_statuses_are_no_refusal_whatever_the_metadata(status: grpc.StatusCode) -> None:
    assert refusal_from(status, ((REFUSAL_METADATA, "id-collision"),)) is None


def test_refused_takes_the_code_as_text_too() -> None:
    assert Refused("ring-mismatch", "m=6").code is Refusal.RING_MISMATCH
    assert f"{Refusal.ID_COLLISION}" == "id-collision"  # as it is printed in messages


# ------------------------------------------------------- through a real gRPC server
class RefusingNode:
    """A node whose Join refuses with the code set by the test."""

    def __init__(self, me: NodeRef) -> None:
        self.me = me
        self.ring = RING
        self.refusal: Refusal | None = None

    def handle_join(self, joiner: NodeRef, bits: int) -> tuple[NodeRef, ...]:
        assert self.refusal is not None
        raise Refused(self.refusal, f"no ({self.refusal})")

    def handle_step(self, key: int, exclude: frozenset[int]) -> None:
        raise AssertionError("a malformed request never reaches the node")


class LegacyServicer(pb_grpc.ChordServicer):
    """A peer of an older version: its refusals carry no code."""

    def Join(self, request: pb.JoinRequest, context: grpc.ServicerContext) -> pb.NodeList:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "the advertised address did not answer")
        raise AssertionError


@pytest.fixture
def refusing() -> Iterator[tuple[RefusingNode, GrpcTransport]]:
    address = f"127.0.0.1:{free_port()}"
    node = RefusingNode(NodeRef.for_address(RING, address))
    server = GrpcServer(cast(Any, node), address, 2, 4)
    server.start()
    transport = GrpcTransport(RING, 5.0)
    try:
        yield node, transport
    finally:
        transport.close()
        server.stop(grace=0)


@pytest.mark.parametrize("refusal", list(Refusal))
def test_the_caller_reads_the_exact_refusal(
    refusing: tuple[RefusingNode, GrpcTransport], refusal: Refusal
) -> None:
    node, transport = refusing
    node.refusal = refusal
    joiner = NodeRef.for_address(RING, "127.0.0.1:1")
    with pytest.raises(Refused) as caught:
        transport.join(node.me, joiner, RING.bits)
    assert caught.value.code is refusal and caught.value.detail == f"no ({refusal})"


def test_a_malformed_request_is_no_identity_problem(
    refusing: tuple[RefusingNode, GrpcTransport],
) -> None:
    """Too many excluded peers: INVALID_ARGUMENT as before, but said to be a bad
    request, not a forged identity."""
    node, transport = refusing
    stub = transport.pool.stub(node.me.address)
    request = pb.StepRequest(key="0" * 40, exclude=["0" * 40] * 1000)
    with pytest.raises(grpc.RpcError) as caught:
        stub.FindSuccessorStep(request, timeout=5)
    error = cast(grpc.Call, caught.value)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert refusal_from(error.code(), error.trailing_metadata()) is Refusal.INVALID_REQUEST


def test_an_older_peers_refusal_keeps_its_old_meaning() -> None:
    address = f"127.0.0.1:{free_port()}"
    server = grpc.server(futures.ThreadPoolExecutor(2))
    pb_grpc.add_ChordServicer_to_server(LegacyServicer(), server)
    server.add_insecure_port(address)
    server.start()
    transport = GrpcTransport(RING, 5.0)
    try:
        with pytest.raises(Refused) as caught:
            transport.join(NodeRef.for_address(RING, address), NodeRef(1, "x:1"), RING.bits)
        assert caught.value.code is Refusal.PERMISSION_DENIED
        assert "did not answer" in caught.value.detail
    finally:
        transport.close()
        server.stop(0)


# ------------------------------------------------------------- what the joiner says
SEED = "127.0.0.1:7000"


@pytest.mark.parametrize(
    "refusal",
    [r for r in Refusal if r not in (Refusal.SLOW_ADDRESS, Refusal.UNAUTHENTICATED)],
)
def test_the_start_up_error_names_the_exact_refusal(refusal: Refusal) -> None:
    message = _join_failure(SEED, Refused(refusal, "the detail"))
    assert message == f"the ring refused this peer ({refusal.value}): the detail"


def test_a_slow_address_is_retried_and_a_missing_secret_advised() -> None:
    assert _join_failure(SEED, Refused(Refusal.SLOW_ADDRESS, "slow")) is None
    message = _join_failure(SEED, Refused(Refusal.UNAUTHENTICATED, "no secret"))
    assert message is not None and "--ring-secret" in message
    assert _join_failure(SEED, PeerUnreachable(NodeRef(1, SEED), "DEADLINE_EXCEEDED")) is None
