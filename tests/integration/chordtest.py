"""Helpers shared by the integration tests: random addresses, building a ring of real
peer processes, the true owner of a key, and checked REST lookups.

Every random choice comes from a seeded ``random.Random`` (see conftest.py), and the
assertion messages name the seed and the addresses involved, so a failure can be
replayed with ``CHORD_TEST_SEED=<seed>``.
"""

from __future__ import annotations

import bisect
import random
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from chord.ids import Ring, to_hex
from config.settings import API_PORT_OFFSET
from devtools.launcher import (
    ROOT,
    LocalRing,
    PeerProcess,
    free_port,
    http_json,
    port_is_free,
)

RUN_NODE = str(ROOT / "run_node.py")

# Seeded ports come from below Linux's ephemeral range (32768-60999) so that outgoing
# connections do not take them; the REST twin (port + 10000) stays below it too.
SEEDED_PORTS = (20000, 22700)


def random_host(rng: random.Random, taken: Iterable[str] = ()) -> str:
    """A loopback address 127.x.y.z (any of them reaches this machine on Linux)."""
    taken = set(taken)
    while True:
        host = f"127.{rng.randint(1, 254)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        if host not in taken:
            return host


def seeded_port(rng: random.Random, host: str) -> int:
    """A port chosen by ``rng`` that is free on ``host`` together with its REST twin."""
    for _ in range(50):
        port = rng.randint(*SEEDED_PORTS)
        if port_is_free(host, port) and port_is_free(host, port + API_PORT_OFFSET):
            return port
    return free_port(host)


def random_address(
    rng: random.Random, ring: Ring, avoid_ids: Iterable[int] = ()
) -> tuple[str, int]:
    """A fresh (host, port) whose ID on ``ring`` differs from every ID in ``avoid_ids``
    (matters for small rings: with m = 6, random addresses collide often)."""
    avoid = set(avoid_ids)
    while True:
        host = random_host(rng)
        port = seeded_port(rng, host)
        if ring.hash(f"{host}:{port}") not in avoid:
            return host, port


def true_owner(peers: Sequence[PeerProcess], key: int) -> PeerProcess:
    """successor(key) among ``peers``: the first peer whose ID is >= key, wrapping."""
    ordered = sorted(peers, key=lambda p: p.ref.id)
    ids = [p.ref.id for p in ordered]
    return ordered[bisect.bisect_left(ids, key) % len(ordered)]


def describe(peers: Iterable[PeerProcess]) -> str:
    """The peers in ID order, as 'shortid@host:port' (for assertion messages)."""
    return ", ".join(f"{p.short_id}@{p.address}" for p in sorted(peers, key=lambda p: p.ref.id))


def build_ring(ring: LocalRing, rng: random.Random, count: int, seed: str) -> list[PeerProcess]:
    """Start ``count`` peers at random addresses; each after the first joins through
    a randomly chosen member that is already up."""
    peers: list[PeerProcess] = []
    ids: set[int] = set()
    for _ in range(count):
        host, port = random_address(rng, ring.ring, ids)
        join = rng.choice(peers).address if peers else None
        try:
            peer = ring.start_peer(host, port, join=join)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(
                f"[seed {seed}] {host}:{port} failed to start joining via {join} "
                f"(members: {describe(peers)}): {exc}"
            ) from exc
        ids.add(peer.ref.id)
        peers.append(peer)
    return peers


def wait_ideal(
    ring: LocalRing, seed: str, timeout: float, peers: Sequence[PeerProcess] | None = None
) -> float:
    """LocalRing.wait_ideal with the seed, the members and their log tails on failure.
    Returns how long convergence took."""
    chosen = list(peers) if peers is not None else ring.live()
    started = time.monotonic()
    try:
        ring.wait_ideal(timeout=timeout, peers=chosen)
    except TimeoutError as exc:
        tails = "\n".join(f"--- {p.address}\n{p.log_tail(8)}" for p in chosen)
        raise AssertionError(f"[seed {seed}] {exc}\nmembers: {describe(chosen)}\n{tails}") from None
    return time.monotonic() - started


def random_keys(rng: random.Random, count: int, ring: Ring) -> list[int]:
    return [rng.randrange(ring.size) for _ in range(count)]


def check_lookups(
    askers: Sequence[PeerProcess],
    members: Sequence[PeerProcess],
    keys: Iterable[int],
    seed: str,
    timeout: float = 5.0,
) -> None:
    """Every asker's GET /lookup?key= names successor(key) among ``members``."""
    wrong: list[str] = []
    for key in keys:
        expected = true_owner(members, key)
        for asker in askers:
            try:
                status, body = asker.get(f"/lookup?key={to_hex(key)}", timeout=timeout)
            except OSError as exc:
                status, body = 0, f"no answer within {timeout}s: {exc!r}"
            owner = body.get("owner", {}) if isinstance(body, dict) else {}
            if status != 200 or owner.get("address") != expected.address:
                wrong.append(
                    f"key {to_hex(key)} via {asker.address}: HTTP {status} {body!r}, "
                    f"expected owner {expected.short_id}@{expected.address}"
                )
    assert not wrong, (
        f"[seed {seed}] {len(wrong)} wrong lookups; members {describe(members)}:\n"
        + "\n".join(wrong[:10])
    )


def timed_get(peer: PeerProcess, path: str, limit: float = 2.0) -> tuple[int, object, float]:
    """GET with a hard deadline: a peer that does not answer within ``limit`` fails."""
    started = time.monotonic()
    try:
        status, body = http_json(peer.api_url + path, timeout=limit)
    except OSError as exc:  # includes socket timeouts and refused connections
        raise AssertionError(
            f"GET {peer.api_url}{path} got no answer within {limit}s: {exc!r}\n{peer.log_tail()}"
        ) from None
    return status, body, time.monotonic() - started


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_node(args: Sequence[str], data_dir: Path, timeout: float = 30.0) -> Finished:
    """Run run_node.py to completion; a hang past ``timeout`` fails the test (and
    subprocess.run kills the process)."""
    command = [sys.executable, RUN_NODE, *args, "--no-menu", "--data-dir", str(data_dir)]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"{' '.join(command)} still running after {timeout}s; stderr: {exc.stderr!r}"
        ) from None
    return Finished(done.returncode, done.stdout, done.stderr, time.monotonic() - started)
