"""Reserved capacity on one in-process peer's gRPC server (services.rpc.capacity):
streaming handlers keep their nature through every interceptor, open Watch streams and
stalled Fetch streams never take the Chord protocol's threads, and a stalled stream is
cut after the per-message idle deadline (services.rpc.stream_watchdog)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from chord.ids import Ring
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.sim.network import VirtualClock
from devtools.fault_injection import injector_for
from devtools.launcher import free_port, wait_for
from faults.attackers import Forwarder
from proto import chord_pb2 as pb
from proto import chord_pb2_grpc as pb_grpc
from proto import files_pb2 as fpb
from proto import files_pb2_grpc as fpb_grpc
from services.files.servicer import FilesServicer
from services.rpc.interceptors import behaviour_of
from services.rpc.security import SECRET_METADATA_KEY, RingSecurity
from services.rpc.server import SERVER_KEEPALIVE_TIMEOUT_MS, CallCounter, GrpcServer
from services.rpc.transport import GrpcTransport
from services.storage import StorageEngine

pytestmark = pytest.mark.integration
RING = Ring()
SECRET = "correct horse battery staple"
MIB = 1 << 20
BIG = "big.bin"
IDLE = 1.0  # the stream idle deadline these tests run with


class Collector:
    """Stands in for a grpc.Server to collect the handlers services register."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        for name, handler in handlers.items():
            self.handlers[f"/{service}/{name}"] = handler

    def add_generic_rpc_handlers(self, generic: Any) -> None:
        for one in generic:
            for method, handler in getattr(one, "_method_handlers", {}).items():
                self.handlers[method] = handler


@dataclass
class Details:
    method: str
    invocation_metadata: tuple[tuple[str, str], ...] = ((SECRET_METADATA_KEY, SECRET),)


def through(
    interceptors: list[grpc.ServerInterceptor[Any, Any]],
    handler: grpc.RpcMethodHandler[Any, Any],
    method: str,
) -> grpc.RpcMethodHandler[Any, Any]:
    """What the server runs for ``method``: the interceptors applied as grpc does (the
    first one outermost)."""

    def step(index: int, details: Any) -> grpc.RpcMethodHandler[Any, Any] | None:
        if index == len(interceptors):
            return handler
        return interceptors[index].intercept_service(lambda d: step(index + 1, d), details)

    final = step(0, Details(method))
    assert final is not None
    return final


@dataclass
class Peer:
    server: GrpcServer
    address: str
    storage: StorageEngine


def start(tmp_path: Path, chord_threads: int = 2, transfer_workers: int = 6) -> Peer:
    address = f"127.0.0.1:{free_port()}"
    me = NodeRef.for_address(RING, address)
    node = ChordNode(me, RING, GrpcTransport(RING, timeout=1), VirtualClock())
    node.create()
    storage = StorageEngine(tmp_path / "files", None)
    files = FilesServicer(storage, RING)
    server = GrpcServer(
        node,
        address,
        chord_threads,
        8,
        services=[("chord.v1.Files", lambda s: fpb_grpc.add_FilesServicer_to_server(files, s))],
        transfer_workers=transfer_workers,
        stream_idle_timeout=IDLE,
    )
    server.start()
    server.set_serving(True)
    return Peer(server, address, storage)


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[Peer]:
    served = start(tmp_path)
    data = bytes(range(256)) * (32 * MIB // 256)
    writer = served.storage.writer(BIG, RING.hash(BIG), 1, role="primary")
    with writer:
        for offset in range(0, len(data), MIB):
            writer.write(data[offset : offset + MIB])
        writer.expect(len(data), hashlib.sha256(data).hexdigest())
        writer.commit()
    yield served
    served.server.stop(grace=0)
    served.storage.close()


def test_streaming_handlers_keep_their_nature_through_every_interceptor(
    tmp_path: Path,
) -> None:
    """Every streaming method of every service a peer serves, through the interceptors
    a peer installs (metrics, fault injection, capacity, ring secret): a non-blocking
    behaviour stays non-blocking, and every call runs on its class's pool."""
    collector = Collector()
    storage = StorageEngine(tmp_path / "files", None)
    fpb_grpc.add_FilesServicer_to_server(FilesServicer(storage, RING), collector)
    me = NodeRef.for_address(RING, "127.0.0.1:1")
    node = ChordNode(me, RING, GrpcTransport(RING, timeout=1), VirtualClock())
    pb_grpc.add_ChordServicer_to_server(pb_grpc.ChordServicer(), collector)
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), collector)
    reflection.enable_server_reflection(
        ("chord.v1.Chord", reflection.SERVICE_NAME),
        collector,  # type: ignore[arg-type]
    )
    rules = '[{"action": "delay", "ms": 1, "p": 0, "direction": "in"}]'
    faults = injector_for("127.0.0.1:1", rules, None)
    assert faults is not None
    server = GrpcServer(
        node, f"127.0.0.1:{free_port()}", 2, 8, security=RingSecurity(secret=SECRET)
    )
    interceptors = [
        CallCounter(
            lambda method, code: None, lambda: __import__("contextlib").nullcontext(), frozenset()
        ),
        faults.server_interceptor(),
        *server.interceptors,
    ]
    streaming = {
        m: h for m, h in collector.handlers.items() if h.response_streaming or h.request_streaming
    }
    assert {
        "/chord.v1.Files/Fetch",
        "/chord.v1.Files/Store",
        "/chord.v1.Files/ListRange",
        "/grpc.health.v1.Health/Watch",
    } <= set(streaming), sorted(streaming)
    for method, handler in streaming.items():
        final = through(interceptors, handler, method)
        before, after = behaviour_of(handler), behaviour_of(final)
        assert getattr(after, "experimental_non_blocking", False) == getattr(
            before, "experimental_non_blocking", False
        ), method
        pool = getattr(after, "experimental_thread_pool", None)
        assert pool is server.capacity.pools[server.capacity.class_of(method, True)], method
    watch = "/grpc.health.v1.Health/Watch"
    final_watch = behaviour_of(through(interceptors, streaming[watch], watch))
    assert getattr(final_watch, "experimental_non_blocking")  # noqa: B009
    server.stop(grace=0)
    storage.close()


def ping_ms(address: str) -> float:
    with grpc.insecure_channel(address) as channel:
        started = time.monotonic()
        pb_grpc.ChordStub(channel).Ping(pb.Empty(), timeout=2)
        return (time.monotonic() - started) * 1000


def test_open_watch_streams_hold_no_thread(peer: Peer) -> None:
    """Watch streams (one caller IP may keep 16 open) cost no thread; the 17th of the
    same caller is refused at once."""
    channels = [
        grpc.insecure_channel(peer.address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(17)
    ]
    calls = [
        health_pb2_grpc.HealthStub(c).Watch(health_pb2.HealthCheckRequest(), timeout=30)
        for c in channels[:16]
    ]
    try:
        for call in calls:
            assert next(call).status == health_pb2.HealthCheckResponse.SERVING
        calls.append(
            health_pb2_grpc.HealthStub(channels[16]).Watch(
                health_pb2.HealthCheckRequest(), timeout=30
            )
        )
        with pytest.raises(grpc.RpcError) as refused:
            next(calls[16])
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # No thread held: each handler returns once its watcher is registered (polled:
        # the last one may still be on its way out when its stream's message arrives).
        assert wait_for(lambda: peer.server.capacity.pools["watch"].admitted == 0, 5)
        assert peer.server.capacity.open["watch"].total == 16
        assert ping_ms(peer.address) < 500
    finally:
        for call in calls:
            call.cancel()
        for channel in channels:
            channel.close()


def stalled_fetches(peer: Peer, count: int) -> tuple[list[Forwarder], list[Any]]:
    host, port = peer.address.rsplit(":", 1)
    # One caller IP may hold a third of the transfer threads: three source addresses.
    relays = [Forwarder((host, int(port)), f"127.0.0.{21 + i % 3}") for i in range(count)]
    calls = []
    for relay in relays:
        channel = grpc.insecure_channel(relay.address)
        call = fpb_grpc.FilesStub(channel).Fetch(
            fpb.FetchRequest(name=BIG, to_end=True), timeout=60
        )
        next(call)  # the metadata message: the stream is open
        relay.stall()
        calls.append(call)
    return relays, calls


def wait_until_free(peer: Peer, seconds: float) -> float:
    pools = peer.server.capacity.pools
    started = time.monotonic()
    while pools["transfer"].admitted and time.monotonic() < started + seconds:
        time.sleep(0.05)
    assert pools["transfer"].admitted == 0
    return time.monotonic() - started


def test_a_stream_the_client_stops_reading_is_cut_after_the_idle_deadline(peer: Peer) -> None:
    """A client that reads its socket but not the stream: HTTP/2 flow control stops the
    sends, the watchdog cancels the stream, and the thread is free at once."""
    channel = grpc.insecure_channel(peer.address)
    call = fpb_grpc.FilesStub(channel).Fetch(fpb.FetchRequest(name=BIG, to_end=True), timeout=60)
    try:
        next(call)
        assert wait_until_free(peer, IDLE * 2 + 1) >= IDLE * 0.9
        assert peer.server.watchdog.cut == 1
    finally:
        call.cancel()
        channel.close()


def test_stalled_fetches_fill_only_their_class_and_are_cut_when_idle(peer: Peer) -> None:
    relays, calls = stalled_fetches(peer, 6)  # the transfer class has 6 threads
    try:
        time.sleep(0.3)
        pools = peer.server.capacity.pools
        assert pools["transfer"].admitted == 6
        with grpc.insecure_channel(peer.address) as channel:  # the seventh: refused at once
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as refused:
                next(fpb_grpc.FilesStub(channel).Fetch(fpb.FetchRequest(name=BIG), timeout=5))
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert time.monotonic() - started < 1.0
        assert ping_ms(peer.address) < 500  # Chord has its own threads
        # The idle deadline cancels them (a scan runs every IDLE/4 s); as their relays
        # read nothing more, not even the cancellation, the server's keepalive timeout
        # then ends their connections and frees the threads.
        wait_until_free(peer, IDLE + SERVER_KEEPALIVE_TIMEOUT_MS / 1000 + 3)
        assert peer.server.watchdog.cut == 6
    finally:
        for call in calls:
            call.cancel()
        for relay in relays:
            relay.close()


def watch(address: str) -> tuple[grpc.Channel, Any]:
    channel = grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
    call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=60)
    return channel, call


def test_a_peer_stops_at_once_while_its_watchers_leave(tmp_path: Path) -> None:
    """grpc_health's servicer sent updates under a lock that a closing Watch's callback
    needs, on the thread that must finish the send: a peer stopping while watchers left
    hung for good (CI: GrpcServer.stop stuck 300 s). Stop now races 16 leaving
    watchers, several times, and always returns."""
    for round_ in range(6):
        served = start(tmp_path / str(round_))
        watches = [watch(served.address) for _ in range(16)]
        try:
            for _, call in watches:
                assert next(call).status == health_pb2.HealthCheckResponse.SERVING
            leaving = threading.Thread(target=cancel_all, args=([c for _, c in watches],))
            stopping = threading.Thread(target=served.server.stop, args=(0,))
            leaving.start()
            stopping.start()
            stopping.join(10)
            assert not stopping.is_alive(), f"stop hung in round {round_}"
            leaving.join(5)
        finally:
            for channel, call in watches:
                call.cancel()
                channel.close()
            served.storage.close()


def test_a_watcher_that_stops_reading_holds_up_no_one(peer: Peer) -> None:
    """A watcher behind a relay that stopped reading, on a connection whose window a
    stalled Fetch filled: setting the status returns at once, a reading watcher still
    hears the change, and the server stops promptly."""
    relay = Forwarder(tuple_address(peer.address), "127.0.0.31")
    stalled = grpc.insecure_channel(relay.address)
    fetch = fpb_grpc.FilesStub(stalled).Fetch(fpb.FetchRequest(name=BIG, to_end=True), timeout=60)
    stuck_watch = health_pb2_grpc.HealthStub(stalled).Watch(
        health_pb2.HealthCheckRequest(), timeout=60
    )
    reader_channel, reader = watch(peer.address)
    try:
        next(fetch)
        assert next(stuck_watch).status == health_pb2.HealthCheckResponse.SERVING
        assert next(reader).status == health_pb2.HealthCheckResponse.SERVING
        relay.stall()
        time.sleep(0.5)  # the Fetch fills the stalled connection's window meanwhile
        started = time.monotonic()
        peer.server.set_serving(False)
        assert time.monotonic() - started < 0.2
        assert next(reader).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert time.monotonic() - started < 5 + 2  # at worst, the stuck send's deadline
        started = time.monotonic()
        peer.server.stop(grace=0)
        assert time.monotonic() - started < 3
    finally:
        for call in (fetch, stuck_watch, reader):
            call.cancel()
        stalled.close()
        reader_channel.close()
        relay.close()


def tuple_address(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def cancel_all(calls: list[Any]) -> None:
    for call in calls:
        call.cancel()
