"""The fault harness: real peer processes, a logged workload, a checker.

A :class:`Harness` starts a ring of real peers (devtools.launcher.LocalRing, the same
program a user runs), uploads seeded files through random peers from several client
threads while logging each operation (name, SHA-256, acknowledged or not, latency),
lets a scenario inject its fault, waits for convergence by polling (the ring is ideal
among the live peers and every acknowledged file is whole on its k successors), and
classifies every acknowledged upload as ok, lost or corrupt by downloading it.

Everything is observed from outside, over the peers' own gRPC services and their data
directories, exactly as the integration tests do; nothing of a peer is imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import shutil
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chord.placement import replica_indexes
from chord.transport import PeerUnreachable
from config.settings import API_PORT_OFFSET
from devtools.launcher import LocalRing, PeerProcess, free_port, port_is_free
from services.files.client import FileClient, FileError, FileInfo, remote_client
from services.rpc.transport import GrpcTransport

log = logging.getLogger("faults")

KIB = 1024
# Ports below Linux's ephemeral range (32768-60999), REST twin (+10000) too.
SEEDED_PORTS = (20000, 22700)


@dataclass
class Options:
    peers: int = 16
    replicas: int = 3
    files: int = 500
    seed: int = 1
    clients: int = 4  # client threads of the upload phase (and of background load)
    min_size: int = 1 * KIB
    max_size: int = 64 * KIB
    attempts: int = 4  # client retries: an operation is tried this often before it fails
    backoff: float = 0.5  # seconds before the first retry, doubled each time (capped at 2)
    rpc_timeout: float = 2.0  # the client's deadline of every small RPC
    transfer_timeout: float = 6.0  # the client's deadline of one Store / Fetch
    repair_interval: float = 1.0  # the peers' anti-entropy period
    converge_timeout: float = 180.0
    stop_seconds: float = 20.0  # sigstop: how long the peer stays stopped
    churn_seconds: float = 120.0
    churn_every: float = 2.0
    churn_clients: int = 10
    partition_seconds: float = 30.0
    abuse_seconds: float = 20.0  # how long each abuse scenario's attack lasts
    fault_rules: str | None = None  # static fault rules every peer starts with
    workdir: Path | None = None  # default: a temporary directory, removed afterwards
    keep: bool = False  # keep the workdir (peer logs and data) afterwards

    def op_budget(self) -> float:
        """Seconds one client operation may take at most, every retry included: per
        attempt a lookup (a few hops), a Stat per holder and one transfer, each under
        its deadline; plus the backoffs between attempts."""
        per_attempt = self.transfer_timeout + (4 + self.replicas) * self.rpc_timeout
        backoffs = sum(min(self.backoff * 2.0**i, 2.0) for i in range(self.attempts - 1))
        return self.attempts * per_attempt + backoffs


@dataclass
class Op:
    kind: str  # put | get
    name: str
    ok: bool
    seconds: float
    attempts: int
    error: str = ""


@dataclass
class Verdict:
    ok: int = 0
    lost: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Harness:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.rng = random.Random(options.seed)
        self._own_workdir = options.workdir is None
        self.workdir = options.workdir or Path(tempfile.mkdtemp(prefix="chord-faults-"))
        self.rules_file = self.workdir / "fault-rules.json"
        args = [
            *LocalRing.extra_args,
            "--repair-interval",
            str(options.repair_interval),
            "--replicas",
            str(options.replicas),
            "--fault-rules-file",
            str(self.rules_file),
        ]
        if options.fault_rules:
            args += ["--fault-rules", options.fault_rules]
        self.ring = LocalRing(self.workdir / "ring", extra_args=tuple(args))
        self.transport = GrpcTransport(self.ring.ring, timeout=options.rpc_timeout)
        self.corpus: dict[str, bytes] = {}
        self.sha: dict[str, str] = {}
        self.acked: dict[str, str] = {}  # name -> SHA-256 of what was acknowledged
        self.ops: list[Op] = []
        self.stopped: set[int] = set()  # pids under SIGSTOP
        self.expected_lost: set[str] = set()
        self._lock = threading.Lock()
        self._ids: set[int] = set()
        self.started = time.monotonic()
        self.converge_s: float | None = None
        self.notes: list[str] = []
        self.extra: dict[str, Any] = {}

    # --------------------------------------------------------------- processes
    def address(self) -> tuple[str, int]:
        """A seeded loopback address 127.x.y.z:port, free, whose ID no peer has."""
        rng = self.rng
        while True:
            host = f"127.{rng.randint(1, 254)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
            port = 0
            for _ in range(50):
                candidate = rng.randint(*SEEDED_PORTS)
                if port_is_free(host, candidate) and port_is_free(
                    host, candidate + API_PORT_OFFSET
                ):
                    port = candidate
                    break
            port = port or free_port(host)
            ident = self.ring.ring.hash(f"{host}:{port}")
            if ident not in self._ids:
                self._ids.add(ident)
                return host, port

    def start(self, count: int | None = None) -> list[PeerProcess]:
        """The first peer, then the others all at once, each joining through a random
        peer started before it; returns when the ring is ideal."""
        count = count or self.options.peers
        host, port = self.address()
        first = self.ring.start_peer(host, port)
        spawned = [first]
        for _ in range(count - 1):
            host, port = self.address()
            seed = self.rng.choice(spawned)
            spawned.append(self.ring.spawn(host, port, join=seed.address))
        for peer in spawned[1:]:
            self.ring.wait_ready(peer, timeout=60)
        self.wait_ideal(120)
        return spawned

    def join(self) -> PeerProcess:
        host, port = self.address()
        return self.ring.start_peer(host, port, join=self.rng.choice(self.live()).address)

    def live(self) -> list[PeerProcess]:
        """Running and not stopped, in ID order."""
        peers = [p for p in self.ring.live() if p.process.pid not in self.stopped]
        return sorted(peers, key=lambda p: p.ref.id)

    def stop(self, peer: PeerProcess) -> None:
        self.stopped.add(peer.process.pid)
        peer.process.send_signal(signal.SIGSTOP)

    def resume(self, peer: PeerProcess) -> None:
        with contextlib.suppress(ProcessLookupError):
            peer.process.send_signal(signal.SIGCONT)
        self.stopped.discard(peer.process.pid)

    def write_rules(self, rules: list[dict[str, Any]]) -> None:
        """Replace the runtime fault rules every peer polls (atomically: rename)."""
        tmp = self.rules_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(rules))
        tmp.replace(self.rules_file)

    def close(self) -> None:
        """End every process started: SIGCONT the stopped ones, then kill -9 them all
        (the data is thrown away; a graceful leave would only slow the teardown)."""
        for peer in self.ring.peers:
            if peer.running():
                with contextlib.suppress(ProcessLookupError):
                    peer.process.send_signal(signal.SIGCONT)
                    peer.process.send_signal(signal.SIGKILL)
        for peer in self.ring.peers:
            with contextlib.suppress(Exception):
                peer.process.wait(timeout=10)
        self.stopped.clear()
        self.ring.close()
        self.transport.close()
        if self._own_workdir and not self.options.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------- files
    def make_files(self, count: int, prefix: str = "") -> list[str]:
        """``count`` seeded files of min_size..max_size bytes with random names."""
        names = []
        for _ in range(count):
            token = "".join(self.rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=10))
            name = f"{prefix}{len(self.corpus):05d}-{token}.bin"
            size = self.rng.randint(self.options.min_size, self.options.max_size)
            data = self.rng.randbytes(size)
            self.corpus[name] = data
            self.sha[name] = hashlib.sha256(data).hexdigest()
            names.append(name)
        return names

    def client(self, entry: PeerProcess) -> FileClient:
        return remote_client(
            self.ring.ring,
            self.transport,
            entry.ref,
            replicas=self.options.replicas,
            rpc_timeout=self.options.rpc_timeout,
            transfer_timeout=self.options.transfer_timeout,
        )

    def _attempt(self, kind: str, name: str, rng: random.Random) -> Op:
        """One operation with client retries, each attempt through a random running
        peer (a stopped one included: a real client cannot tell)."""
        started = time.monotonic()
        error = ""
        for attempt in range(1, self.options.attempts + 1):
            candidates = self.ring.live()
            if not candidates:
                break
            client = self.client(rng.choice(candidates))
            try:
                if kind == "put":
                    data = self.corpus[name]
                    client.put(name, [data], size=len(data))
                else:
                    _, stream = client.get(name)
                    got = b"".join(stream)
                    if hashlib.sha256(got).hexdigest() != self.acked[name]:
                        error = "wrong bytes"
                        return self._log(
                            Op(kind, name, False, time.monotonic() - started, attempt, error)
                        )
                return self._log(Op(kind, name, True, time.monotonic() - started, attempt))
            except (FileError, PeerUnreachable, Exception) as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
            if attempt < self.options.attempts:
                time.sleep(min(self.options.backoff * 2 ** (attempt - 1), 2.0))
        return self._log(
            Op(kind, name, False, time.monotonic() - started, self.options.attempts, error)
        )

    def _log(self, op: Op) -> Op:
        with self._lock:
            self.ops.append(op)
            if op.kind == "put" and op.ok:
                self.acked[op.name] = self.sha[op.name]
        if not op.ok:
            log.info("%s %s failed after %.1fs: %s", op.kind, op.name, op.seconds, op.error)
        return op

    def put(self, name: str, rng: random.Random | None = None) -> Op:
        return self._attempt("put", name, rng or random.Random(name))

    def get(self, name: str, rng: random.Random | None = None) -> Op:
        return self._attempt("get", name, rng or random.Random(name))

    def upload(self, names: Sequence[str], clients: int | None = None) -> None:
        """Upload ``names`` from ``clients`` threads (each with its own seeded RNG)."""
        workers = clients or self.options.clients
        shards = [list(names[i::workers]) for i in range(workers)]

        def run(index: int) -> None:
            rng = random.Random(f"{self.options.seed}-upload-{index}-{len(self.ops)}")
            for name in shards[index]:
                self.put(name, rng)

        self.run_clients(run, workers, timeout=max(120.0, len(names) * 2.0))

    def run_clients(self, body: Callable[[int], None], count: int, timeout: float) -> None:
        """Run ``body(i)`` on ``count`` threads; a thread still running after
        ``timeout`` is a hung client (recorded, never waited for further)."""
        threads = [
            threading.Thread(target=body, args=(i,), name=f"client-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        hung = sum(thread.is_alive() for thread in threads)
        if hung:
            self.extra["hung_threads"] = self.extra.get("hung_threads", 0) + hung
            self.notes.append(f"{hung} client thread(s) still running after {timeout:.0f}s")

    def background_load(
        self, names: Sequence[str], clients: int, stop: threading.Event
    ) -> threading.Thread:
        """Clients uploading ``names`` and downloading acknowledged files, half and
        half, until ``stop`` is set (or the names run out and stop is set)."""
        pending = list(names)
        lock = threading.Lock()

        def body(index: int) -> None:
            rng = random.Random(f"{self.options.seed}-load-{index}")
            while not stop.is_set():
                with lock:
                    name = pending.pop() if pending and rng.random() < 0.5 else None
                if name is not None:
                    self.put(name, rng)
                    continue
                with self._lock:
                    known = list(self.acked)
                if known:
                    self.get(rng.choice(known), rng)
                else:
                    stop.wait(0.1)

        runner = threading.Thread(
            target=self.run_clients,
            args=(body, clients, self.options.churn_seconds + self.options.op_budget() + 600),
            name="load",
            daemon=True,
        )
        runner.start()
        return runner

    # ------------------------------------------------------------ observation
    def expected_holders(self, name: str, peers: Sequence[PeerProcess]) -> list[PeerProcess]:
        ordered = sorted(peers, key=lambda p: p.ref.id)
        ids = [p.ref.id for p in ordered]
        key = self.ring.ring.hash(name)
        return [ordered[i] for i in replica_indexes(ids, key, self.options.replicas)]

    def holdings(self, peers: Iterable[PeerProcess]) -> dict[str, dict[str, FileInfo]]:
        """address -> name -> what that peer holds; a peer that does not answer is left out."""

        def listing(peer: PeerProcess) -> tuple[str, dict[str, FileInfo] | None]:
            client = self.client(peer)
            try:
                files = client.list_peer(peer.ref, timeout=10.0)
            except FileError:
                return peer.address, None
            return peer.address, {info.name: info for info in files}

        with futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(listing, peers))
        return {address: files for address, files in answers if files is not None}

    def under_replicated(self, peers: Sequence[PeerProcess] | None = None) -> list[str]:
        """Acknowledged files (not expected lost) that are not whole on each of their k
        successors among ``peers`` (default: the live ones)."""
        peers = list(peers) if peers is not None else self.live()
        if not peers:
            return sorted(self.acked)
        held = self.holdings(peers)
        wrong = []
        with self._lock:
            acked = dict(self.acked)
        for name, sha in acked.items():
            if name in self.expected_lost:
                continue
            for holder in self.expected_holders(name, peers):
                info = held.get(holder.address, {}).get(name)
                if info is None or info.deleted or info.damaged or info.sha256 != sha:
                    wrong.append(name)
                    break
        return wrong

    def rings(self, peers: Sequence[PeerProcess] | None = None) -> int:
        """How many distinct rings the peers' successor pointers form (1 when healed)."""
        peers = list(peers) if peers is not None else self.live()
        members = {p.address for p in peers}
        successor: dict[str, str | None] = {}
        for peer in peers:
            state = self.ring.state(peer)
            if state is None:
                continue
            # The first listed successor that is a live peer (an empty list: alone).
            alive = [s.address for s in state.successors if s.address in members]
            successor[peer.address] = alive[0] if alive or not state.successors else None
            if not state.successors:
                successor[peer.address] = peer.address
        cycles: set[frozenset[str]] = set()
        for start in successor:
            path: list[str] = []
            node: str | None = start
            while node is not None and node in successor and node not in path:
                path.append(node)
                node = successor[node]
            if node is not None and node in path:
                cycles.add(frozenset(path[path.index(node) :]))
        return len(cycles)

    def wait_ideal(self, timeout: float) -> None:
        self.ring.wait_ideal(timeout=timeout, peers=self.live())

    def converge(
        self, timeout: float | None = None, extra: Callable[[], bool] | None = None
    ) -> float | None:
        """Poll until the ring is ideal among the live peers and every acknowledged file
        is whole on its k successors (and ``extra()`` holds); the seconds it took, or
        None if ``timeout`` passed first."""
        timeout = self.options.converge_timeout if timeout is None else timeout
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            peers = self.live()
            if (
                not self.ring.ideal_problems(peers)
                and not self.under_replicated(peers)
                and (extra is None or extra())
            ):
                self.converge_s = time.monotonic() - started
                return self.converge_s
            time.sleep(0.5)
        self.notes.append(f"did not converge within {timeout:.0f}s")
        return None

    # ----------------------------------------------------------------- checker
    def classify(self, names: Iterable[str] | None = None) -> Verdict:
        """Download every acknowledged file (with the client's retries) and compare its
        SHA-256 with what was acknowledged."""
        with self._lock:
            acked = dict(self.acked)
        chosen = sorted(acked if names is None else names)
        verdict = Verdict()

        def check(name: str) -> tuple[str, str]:
            """ok / corrupt as soon as one entry peer serves the file; lost if none of
            ``attempts`` different entries can (NotFound from one ring is not final:
            after a partition the file may live only in the other one)."""
            rng = random.Random(f"check-{name}")
            peers = self.live()
            entries = rng.sample(peers, min(len(peers), self.options.attempts))
            errors = []
            for attempt, entry in enumerate(entries):
                try:
                    _, stream = self.client(entry).get(name)
                    got = b"".join(stream)
                except (FileError, PeerUnreachable, Exception) as exc:
                    errors.append(type(exc).__name__)
                    if errors[-1] != "NotFound":
                        time.sleep(min(0.2 * 2**attempt, 1.0))
                    continue
                return name, "ok" if hashlib.sha256(got).hexdigest() == acked[name] else "corrupt"
            log.info("%s unreadable through %d peers: %s", name, len(entries), errors)
            return name, "lost"

        with futures.ThreadPoolExecutor(self.options.clients) as pool:
            for name, outcome in pool.map(check, chosen):
                if outcome == "ok":
                    verdict.ok += 1
                elif outcome == "lost":
                    verdict.lost.append(name)
                else:
                    verdict.corrupt.append(name)
        return verdict

    def result(self, scenario: str, verdict: Verdict) -> dict[str, Any]:
        peers = self.live()
        ops = list(self.ops)
        times = [op.seconds * 1000 for op in ops]
        under = self.under_replicated(peers) if peers else []
        result: dict[str, Any] = {
            "scenario": scenario,
            "seed": self.options.seed,
            "peers": self.options.peers,
            "replicas": self.options.replicas,
            "files_acked": len(self.acked),
            "ok": verdict.ok,
            "lost": len(verdict.lost),
            "corrupt": len(verdict.corrupt),
            "under_replicated": len(under),
            "rings_seen": self.rings(peers),
            "converge_s": None if self.converge_s is None else round(self.converge_s, 1),
            "op_ok_rate": round(sum(op.ok for op in ops) / len(ops), 4) if ops else 1.0,
            "p50_ms": round(statistics.median(times)) if times else 0,
            "p99_ms": round(percentile(times, 0.99)),
            "max_op_ms": round(max(times, default=0.0)),
            "ops": len(ops),
            "op_budget_ms": round(self.options.op_budget() * 1000),
            "files": self.options.files,
            "wall_s": round(time.monotonic() - self.started, 1),
        }
        result.update(self.extra)
        if verdict.lost:
            result["lost_names"] = sorted(verdict.lost)[:20]
        if verdict.corrupt:
            result["corrupt_names"] = sorted(verdict.corrupt)[:20]
        if self.notes:
            result["notes"] = self.notes
        return result
