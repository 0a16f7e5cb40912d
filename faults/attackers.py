"""Hostile clients for the abuse scenarios (faults.abuse): each is a context manager
that starts its connections on entry and closes every one on exit.

Every attacker sends traffic only to the victim's loopback address, from source
addresses 127.0.0.x of its own (``sources``), so per-address limits on the victim see
it as other clients than the well-behaved probe (127.0.0.2) and the peers (127.0.0.1).
Counts and durations are bounded by the caller; nothing here retries forever.

gRPC cannot bind a client's source address, so the gRPC attackers dial a
:class:`Forwarder`: a local TCP relay whose upstream connections are bound to the
attacker's address, and which can stop reading from the victim (a stalled reader).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import select
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from proto import chord_pb2 as pb
from proto import chord_pb2_grpc as pb_grpc
from proto import files_pb2 as fpb
from proto import files_pb2_grpc as fpb_grpc


def sources(first: int, count: int) -> list[str]:
    """``count`` loopback source addresses 127.0.0.first, 127.0.0.first+1, ..."""
    return [f"127.0.0.{first + i}" for i in range(count)]


def connect(
    target: tuple[str, int], source: str, timeout: float = 5.0, rcvbuf: int | None = None
) -> socket.socket:
    """A TCP connection to ``target`` from ``source`` (port chosen by the kernel)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connect, so the window stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(target)
    return sock


def _close_all(socks: Sequence[socket.socket]) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.close()


@contextlib.contextmanager
def idle_connections(
    target: tuple[str, int], srcs: Sequence[str], count: int
) -> Iterator[dict[str, Any]]:
    """``count`` TCP connections that never send a byte."""
    socks: list[socket.socket] = []
    report: dict[str, Any] = {"opened": 0, "refused": 0}
    for source in itertools.islice(itertools.cycle(srcs), count):
        try:
            socks.append(connect(target, source, timeout=2.0))
            report["opened"] += 1
        except OSError:
            report["refused"] += 1
    try:
        yield report
    finally:
        report["closed_by_peer"] = sum(_closed(s) for s in socks)
        _close_all(socks)


def _closed(sock: socket.socket) -> bool:
    """Whether the other end closed ``sock``: what it sent is read (a 408, say) until
    the end shows, or until nothing more is there."""
    sock.setblocking(False)
    try:
        for _ in range(64):
            if sock.recv(65536) == b"":
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    return False


class _Trickler:
    """Keeps ``socks`` alive by sending one byte on each every ``every`` seconds."""

    def __init__(self, socks: list[socket.socket], byte: bytes, every: float) -> None:
        self.socks = socks
        self.byte = byte
        self.every = every
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, name="trickle", daemon=True)

    def _run(self) -> None:
        alive = list(self.socks)
        while alive and not self.stop.wait(self.every):
            for sock in list(alive):
                try:
                    sock.send(self.byte)
                    self.sent += 1
                except OSError:  # closed by the victim
                    alive.remove(sock)


@contextlib.contextmanager
def slow_uploads(
    target: tuple[str, int], srcs: Sequence[str], count: int, every: float = 1.0
) -> Iterator[dict[str, Any]]:
    """``count`` uploads announcing 1 MiB that send their body one byte per ``every``
    seconds (slowloris on the body)."""
    head = (
        (
            "POST /upload_file HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 1048576\r\n\r\n"
            '--xyz\r\nContent-Disposition: form-data; name="file"; filename="slow.bin"\r\n\r\n'
        )
        .format(host=f"{target[0]}:{target[1]}")
        .encode()
    )
    socks: list[socket.socket] = []
    report: dict[str, Any] = {"opened": 0, "refused": 0}
    for source in itertools.islice(itertools.cycle(srcs), count):
        try:
            sock = connect(target, source, timeout=2.0)
            sock.sendall(head)
            socks.append(sock)
            report["opened"] += 1
        except OSError:
            report["refused"] += 1
    trickler = _Trickler(socks, b"x", every)
    trickler.thread.start()
    try:
        yield report
    finally:
        trickler.stop.set()
        trickler.thread.join(5)
        report["closed_by_peer"] = sum(_closed(s) for s in socks)
        _close_all(socks)


@contextlib.contextmanager
def stalled_downloads(
    target: tuple[str, int], srcs: Sequence[str], count: int, name: str
) -> Iterator[dict[str, Any]]:
    """``count`` downloads of ``name`` that read the first bytes and then stop reading
    (a 4 KiB receive buffer, so the sender's side fills at once)."""
    request = (
        f"GET /download_file?name={name} HTTP/1.1\r\nHost: {target[0]}:{target[1]}\r\n\r\n"
    ).encode()
    socks: list[socket.socket] = []
    report: dict[str, Any] = {"opened": 0, "refused": 0, "answered": 0}
    for source in itertools.islice(itertools.cycle(srcs), count):
        try:
            sock = connect(target, source, timeout=5.0, rcvbuf=4096)
            sock.sendall(request)
            socks.append(sock)
            report["opened"] += 1
        except OSError:
            report["refused"] += 1
    for sock in socks:
        with contextlib.suppress(OSError):
            report["answered"] += sock.recv(1024).startswith(b"HTTP/1.1 200")
    try:
        yield report  # whether the victim dropped them: its active transfers (faults.probe)
    finally:
        _close_all(socks)


# ------------------------------------------------------------------- gRPC side
class Forwarder:
    """A TCP relay on 127.0.0.1: every connection it accepts is relayed to ``target``
    from ``source``. ``stall()`` stops reading from the victim (its writes then back up),
    as a client that stopped reading would."""

    def __init__(self, target: tuple[str, int], source: str) -> None:
        self.target = target
        self.source = source
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._stalled = threading.Event()
        self._stop = threading.Event()
        self._socks: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, name="fwd-accept", daemon=True).start()

    def stall(self) -> None:
        self._stalled.set()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
                upstream = connect(self.target, self.source)
            except OSError:
                return
            upstream.settimeout(None)
            self._socks += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_victim: bool) -> None:
        with contextlib.suppress(OSError):
            while not self._stop.is_set():
                if from_victim and self._stalled.is_set():
                    self._stop.wait(0.2)
                    continue
                readable, _, _ = select.select([source], [], [], 0.2)
                if not readable:
                    continue
                data = source.recv(1 << 16)
                if not data:
                    break
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()
        _close_all(self._socks)


def _channel(forwarder: Forwarder) -> grpc.Channel:
    # A channel of its own per stream (no subchannel sharing): one TCP connection each.
    return grpc.insecure_channel(forwarder.address, options=[("grpc.use_local_subchannel_pool", 1)])


def _close_streams(
    calls: Sequence[Any], channels: Sequence[grpc.Channel], forwarders: Sequence[Forwarder]
) -> None:
    for call in calls:
        call.cancel()
    for channel in channels:
        channel.close()
    for forwarder in forwarders:
        forwarder.close()


@contextlib.contextmanager
def watch_streams(
    target: tuple[str, int], srcs: Sequence[str], count: int
) -> Iterator[dict[str, Any]]:
    """``count`` open grpc.health.v1.Health/Watch streams (each reads the first answer;
    Watch then sends nothing until the status changes)."""
    forwarders = [Forwarder(target, s) for s in itertools.islice(itertools.cycle(srcs), count)]
    channels = [_channel(f) for f in forwarders]
    calls = []
    report: dict[str, Any] = {"opened": 0, "first_answers": 0}
    for channel in channels:
        call = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=600
        )
        calls.append(call)
        report["opened"] += 1
    for call in calls:
        with contextlib.suppress(grpc.RpcError, StopIteration):
            next(call)
            report["first_answers"] += 1
    try:
        yield report
    finally:
        report["ended_by_peer"] = sum(not call.is_active() for call in calls)
        _close_streams(calls, channels, forwarders)


@contextlib.contextmanager
def stalled_fetches(
    target: tuple[str, int], srcs: Sequence[str], count: int, name: str
) -> Iterator[dict[str, Any]]:
    """``count`` Files/Fetch streams of ``name`` whose reader stops after the first
    message (its relay stops reading, so the victim's sends back up)."""
    forwarders = [Forwarder(target, s) for s in itertools.islice(itertools.cycle(srcs), count)]
    channels = [_channel(f) for f in forwarders]
    calls = []
    report: dict[str, Any] = {"opened": 0, "first_answers": 0}
    for forwarder, channel in zip(forwarders, channels, strict=True):
        call = fpb_grpc.FilesStub(channel).Fetch(
            fpb.FetchRequest(name=name, to_end=True), timeout=600
        )
        with contextlib.suppress(grpc.RpcError, StopIteration):
            next(call)
            report["first_answers"] += 1
        forwarder.stall()
        calls.append(call)
        report["opened"] += 1
    try:
        yield report
    finally:
        _close_streams(calls, channels, forwarders)


@contextlib.contextmanager
def step_flood(
    target: tuple[str, int], srcs: Sequence[str], in_flight: int
) -> Iterator[dict[str, Any]]:
    """FindSuccessorStep for random keys as fast as the victim answers, ``in_flight``
    calls outstanding at all times (grpc.aio, one connection per source address)."""
    forwarders = [Forwarder(target, s) for s in srcs]
    report: dict[str, Any] = {"calls": 0, "ok": 0, "codes": {}}
    stop = threading.Event()

    async def flood() -> None:
        channels = [grpc.aio.insecure_channel(f.address) for f in forwarders]
        stubs = [pb_grpc.ChordStub(c) for c in channels]
        rng = random.Random(7)

        async def worker(index: int) -> None:
            stub = stubs[index % len(stubs)]
            while not stop.is_set():
                key = f"{rng.getrandbits(160):040x}"
                try:
                    await stub.FindSuccessorStep(pb.StepRequest(key=key), timeout=5)
                    report["ok"] += 1
                except grpc.aio.AioRpcError as exc:
                    name = exc.code().name
                    report["codes"][name] = report["codes"].get(name, 0) + 1
                    await asyncio.sleep(0.001)
                report["calls"] += 1

        await asyncio.gather(*(worker(i) for i in range(in_flight)))
        for channel in channels:
            await channel.close(None)

    thread = threading.Thread(target=lambda: asyncio.run(flood()), name="flood", daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        yield report
    finally:
        stop.set()
        thread.join(15)
        report["rate_per_s"] = round(report["calls"] / max(0.001, time.monotonic() - started))
        for forwarder in forwarders:
            forwarder.close()
