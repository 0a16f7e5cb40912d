"""Start and stop real peer processes on this machine.

Used by ``run_node.py --local-ring``, the integration tests and the benchmarks,
so all three exercise exactly the program a user runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chord.ids import Ring
from chord.invariants import ideal_violations
from chord.node_ref import NodeRef
from chord.transport import PeerState, PeerUnreachable
from config.settings import API_PORT_OFFSET
from services.rpc.security import RingSecurity
from services.rpc.transport import GrpcTransport
from services.storage.blobs import blob_path

ROOT = Path(__file__).resolve().parent.parent
FIRST_FREE_PORT = 10000  # free_port picks from here up to the ephemeral range (less 10000)
PORT_FILE = "ports.json"


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux; a common default
    elsewhere): a port picked from it may be taken by any connection a moment later."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


_PICKER = random.Random()  # which free port: a different one per process and call


def free_port(host: str = "127.0.0.1", avoid: Iterable[int] = ()) -> int:
    """A port that is free now on ``host`` (and whose REST twin, port + 10000, is too),
    below the ephemeral range, so no outgoing connection takes it before it is bound.
    For a peer the launcher starts itself prefer port 0 (see LocalRing.spawn): this is
    for ports a caller must name in advance."""
    avoid = set(avoid)
    top = min(ephemeral_ports()[0], 65536) - API_PORT_OFFSET
    for _ in range(400):
        port = _PICKER.randrange(FIRST_FREE_PORT, top)
        if (
            port not in avoid
            and port_is_free(host, port)
            and port_is_free(host, port + API_PORT_OFFSET)
        ):
            return port
    raise RuntimeError("no free port pair found")


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; returns whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def http_json(url: str, timeout: float = 2.0, method: str = "GET") -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body or b"null")
        except ValueError:
            return exc.code, body.decode(errors="replace")


@dataclass
class PeerProcess:
    host: str
    bound_port: int  # 0 until the peer reports the port it got (port_file)
    bound_api_port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    ring: Ring
    port_file: Path | None = None  # where a peer started on port 0 reports its ports

    @property
    def port(self) -> int:
        return self._ports()[0]

    @property
    def api_port(self) -> int:
        return self._ports()[1]

    def wait_ports(self, timeout: float) -> tuple[int, int]:
        """The (gRPC, REST) ports, waiting up to ``timeout`` for a peer on port 0 to
        report them (starting many peers at once can take a while)."""
        return self._ports(timeout)

    def _ports(self, timeout: float = 30.0) -> tuple[int, int]:
        """The ports, waiting for the port file of a peer started on port 0."""
        if not self.bound_port:
            report = self._port_report(timeout)
            self.bound_port, self.bound_api_port = int(report["port"]), int(report["api_port"])
        return self.bound_port, self.bound_api_port

    def _port_report(self, timeout: float) -> dict[str, Any]:
        assert self.port_file is not None, "a peer on port 0 needs a port file"
        found: dict[str, Any] = {}

        def reported() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"peer on {self.host} exited with {self.process.returncode} before "
                    f"binding:\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError, ValueError):
                found.update(json.loads(self.port_file.read_text()))  # type: ignore[union-attr]
            return bool(found)

        if not wait_for(reported, timeout, interval=0.02):
            raise TimeoutError(f"peer on {self.host} reported no ports within {timeout}s")
        return found

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def ref(self) -> NodeRef:
        return NodeRef.for_address(self.ring, self.address, f"{self.host}:{self.api_port}")

    @property
    def short_id(self) -> str:
        return self.ring.short(self.ref.id)

    def running(self) -> bool:
        return self.process.poll() is None

    def memory_mib(self, field: str = "VmRSS") -> float:
        """Resident memory now (``VmRSS``) or at its peak (``VmHWM``), from /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def blob_path(self, sha256: str) -> Path:
        """This peer's stored blob of that content (``<data dir>/files`` is its storage)."""
        return blob_path(self.log_path.parent / "files", sha256)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, Any]:
        return http_json(self.api_url + path, timeout=timeout)


@dataclass
class LocalRing:
    """A set of peer processes sharing one working directory; ``close()`` ends them all."""

    workdir: Path
    bits: int = 160
    successors: int = 8
    extra_args: Sequence[str] = (
        "--stabilize-interval",
        "0.2",
        "--fix-fingers-interval",
        "0.2",
        "--check-predecessor-interval",
        "0.3",
        "--rpc-timeout",
        "1",
    )
    env: dict[str, str] = field(default_factory=dict)
    peers: list[PeerProcess] = field(default_factory=list)
    # How the launcher's own observer calls authenticate (the peers get theirs from
    # env / args): needed when the peers demand a ring secret or mutual TLS.
    security: RingSecurity | None = None

    def __post_init__(self) -> None:
        self.ring = Ring(self.bits)
        self.transport = GrpcTransport(self.ring, timeout=2.0, security=self.security)

    # -------------------------------------------------------------- processes
    def spawn(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        join: str | None = None,
        args: Sequence[str] = (),
    ) -> PeerProcess:
        """Start a peer; without ``port`` it binds port 0 and reports what it got in a
        port file (no window in which another process could take a chosen port). A
        peer restarted on an address seen before gets that address's data dir back."""
        if port is None:
            data_dir = self.workdir / f"{host}_auto{len(self.peers)}"
            ports = ["--port", "0", "--api-port", "0"]
        else:
            known = [p for p in self.peers if p.bound_port == port and p.host == host]
            data_dir = known[-1].log_path.parent if known else self.workdir / f"{host}_{port}"
            ports = ["--port", str(port), "--api-port", str(port + API_PORT_OFFSET)]
        data_dir.mkdir(parents=True, exist_ok=True)
        port_file = data_dir / PORT_FILE
        port_file.unlink(missing_ok=True)
        log_path = data_dir / "peer.log"
        command = [
            sys.executable,
            str(ROOT / "run_node.py"),
            "--host",
            host,
            *ports,
            "--port-file",
            str(port_file),
            "--data-dir",
            str(data_dir),
            "--no-menu",
            "--bits",
            str(self.bits),
            "--successors",
            str(self.successors),
            *self.extra_args,
            *args,
        ]
        if join is not None:
            command += ["--join", join]
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**os.environ, **self.env},
                start_new_session=True,  # Ctrl-C reaches the launcher, which stops peers in order
            )
        bound = (0, 0) if port is None else (port, port + API_PORT_OFFSET)
        peer = PeerProcess(host, *bound, process, log_path, self.ring, port_file)
        self.peers.append(peer)
        return peer

    def wait_ready(self, peer: PeerProcess, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if not peer.running():
                raise RuntimeError(
                    f"peer {peer.address} exited with {peer.process.returncode}:\n{peer.log_tail()}"
                )
            with contextlib.suppress(OSError, ValueError):
                return peer.get("/health", timeout=1.0)[0] == 200
            return False

        if not wait_for(ready, timeout):
            raise TimeoutError(
                f"peer {peer.address} not ready after {timeout}s:\n{peer.log_tail()}"
            )

    def start_peer(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        join: str | None = None,
        args: Sequence[str] = (),
    ) -> PeerProcess:
        peer = self.spawn(host, port, join, args)
        self.wait_ready(peer)
        return peer

    def start_ring(
        self, count: int, args: Sequence[str] = (), timeout: float = 60.0
    ) -> list[PeerProcess]:
        """``count`` peers: the first creates the ring, the others join it at once (their
        joins overlap), then wait until the ring is ideal. Returns them, first first."""
        first = self.start_peer(args=args)
        others = [self.spawn(join=first.address, args=args) for _ in range(count - 1)]
        for peer in others:
            self.wait_ready(peer)
        self.wait_ideal(timeout=timeout)
        return [first, *others]

    def kill(self, peer: PeerProcess) -> None:
        """kill -9: no goodbye, the ring has to notice by itself."""
        with contextlib.suppress(ProcessLookupError):
            peer.process.send_signal(signal.SIGKILL)
        peer.process.wait(timeout=10)

    def terminate(self, peer: PeerProcess, timeout: float = 15.0) -> int:
        """SIGTERM: the peer leaves gracefully; returns its exit code."""
        with contextlib.suppress(ProcessLookupError):
            peer.process.send_signal(signal.SIGTERM)
        try:
            return peer.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(peer)
            raise

    def live(self) -> list[PeerProcess]:
        return [p for p in self.peers if p.running()]

    def close(self) -> None:
        """End every process this ring started: gracefully, then by force."""
        for peer in self.live():
            with contextlib.suppress(ProcessLookupError):
                peer.process.send_signal(signal.SIGTERM)
        for peer in self.peers:
            try:
                peer.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill(peer)
        self.transport.close()

    def __enter__(self) -> LocalRing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- observation
    def state(self, peer: PeerProcess) -> PeerState | None:
        try:
            return self.transport.get_state(peer.ref)
        except PeerUnreachable:
            return None

    def ideal_problems(self, peers: Iterable[PeerProcess] | None = None) -> list[str]:
        """What keeps the given peers (default: all running) from the Ideal ring."""
        views = []
        for peer in peers if peers is not None else self.live():
            state = self.state(peer)
            if state is None:
                return [f"{peer.address} does not answer"]
            views.append(_View(state.node, state.predecessor, state.successors))
        return ideal_violations(views, self.successors)

    def wait_ideal(self, timeout: float = 60.0, peers: Iterable[PeerProcess] | None = None) -> None:
        chosen = list(peers) if peers is not None else None
        problems: list[str] = []

        def ideal() -> bool:
            nonlocal problems
            problems = self.ideal_problems(chosen)
            return not problems

        if not wait_for(ideal, timeout, interval=0.1):
            raise TimeoutError(f"ring not ideal after {timeout}s: {problems[:5]}")


@dataclass(frozen=True)
class _View:
    me: NodeRef
    predecessor: NodeRef | None
    successors: tuple[NodeRef, ...]
    joined: bool = True
