"""The gRPC surface of one in-process peer: standard health, reflection, overload
rejection, and status codes (never a crash) for malformed or forged requests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from chord.ids import Ring
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.sim.network import VirtualClock
from chord.transport import StepAnswer
from proto import chord_pb2 as pb
from proto import chord_pb2_grpc as pb_grpc
from services.rpc.server import GrpcServer
from services.rpc.transport import GrpcTransport

pytestmark = pytest.mark.integration
RING = Ring()


class SlowNode(ChordNode):
    """A node whose routing step waits for a gate, to hold server slots busy."""

    gate = threading.Event()

    def handle_step(self, key: int, exclude: frozenset[int] = frozenset()) -> StepAnswer:
        self.gate.wait(10)
        return super().handle_step(key, exclude)


def start_peer(node_type: type[ChordNode], workers: int = 4, limit: int = 8) -> Iterator[str]:
    me = NodeRef.for_address(RING, "127.0.0.1:0")  # identity only; never dialled
    node = node_type(me, RING, GrpcTransport(RING, timeout=1), VirtualClock())
    node.create()
    server = GrpcServer(node, "127.0.0.1:0", workers, limit)
    server.start()
    server.set_serving(True)
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        server.stop(grace=0)


@pytest.fixture
def address() -> Iterator[str]:
    yield from start_peer(ChordNode)


@pytest.fixture
def channel(address: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(address) as channel:
        yield channel


def test_standard_health_service_reports_serving(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "chord.v1.Chord"):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    reply = next(iter(stub.ServerReflectionInfo(iter([request]), timeout=5)))
    names = {s.name for s in reply.list_services_response.service}
    assert {"chord.v1.Chord", "grpc.health.v1.Health"} <= names


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("FindSuccessorStep", pb.StepRequest(key="zz")),
        ("FindSuccessorStep", pb.StepRequest(key="-" + "0" * 39)),
        ("Notify", pb.NotifyRequest(node=pb.NodeRef(id="ab" * 20, address="10.0.0.1:1"))),
        ("Notify", pb.NotifyRequest()),
        ("Join", pb.JoinRequest(joiner=pb.NodeRef(id="00" * 20, address="x:1"), bits=160)),
        ("Leave", pb.LeaveRequest(leaving=pb.NodeRef(id="not hex", address=""))),
    ],
)
def test_malformed_or_forged_requests_get_invalid_argument(
    channel: grpc.Channel, method: str, request_message: object
) -> None:
    stub = pb_grpc.ChordStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        getattr(stub, method)(request_message, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details()
    assert stub.Ping(pb.Empty(), timeout=5).address == "127.0.0.1:0"  # still serving


def test_overload_is_rejected_at_once_not_queued() -> None:
    """With every slot busy, further calls fail fast with RESOURCE_EXHAUSTED."""
    SlowNode.gate.clear()
    peer = start_peer(SlowNode, workers=2, limit=2)
    address = next(peer)
    try:
        with grpc.insecure_channel(address) as channel, futures.ThreadPoolExecutor(8) as pool:
            stub = pb_grpc.ChordStub(channel)
            step = pb.StepRequest(key="00" * 20)
            calls = [pool.submit(stub.FindSuccessorStep, step, timeout=8) for _ in range(6)]
            # Two calls hold the two slots; the other four must bounce at once.
            futures.wait(calls, timeout=3, return_when=futures.ALL_COMPLETED)
            bounced = [c for c in calls if c.done()]
            failures = [c.exception() for c in bounced]
            codes = [e.code() for e in failures if isinstance(e, grpc.RpcError)]
            assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 4, codes
            SlowNode.gate.set()
            served = [c for c in calls if c.exception(timeout=10) is None]
            assert len(served) == 2
    finally:
        SlowNode.gate.set()
        next(peer, None)
