"""Failures and departures with real processes: kill -9 (one peer, then two adjacent
ones), graceful leave on SIGTERM, a crashed peer restarting at the same address,
and peers joining all at once."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from devtools.launcher import LocalRing, PeerProcess
from tests.integration.chordtest import (
    build_ring,
    check_lookups,
    describe,
    random_address,
    random_keys,
    wait_ideal,
)

pytestmark = pytest.mark.integration


def by_id(peers: list[PeerProcess]) -> list[PeerProcess]:
    return sorted(peers, key=lambda p: p.ref.id)


def test_ring_heals_after_kill_9_of_one_then_two_adjacent_peers(
    make_ring: Callable[..., LocalRing], rng: random.Random, seed: str
) -> None:
    ring = make_ring()
    peers = build_ring(ring, rng, 8, seed)
    wait_ideal(ring, seed, timeout=40)

    victim = rng.choice(peers)
    ring.kill(victim)
    survivors = ring.live()
    assert len(survivors) == 7
    took = wait_ideal(ring, f"{seed} after killing {victim.address}", timeout=30, peers=survivors)
    print(f"healed after one kill -9 in {took:.1f}s")
    keys = [*random_keys(rng, 10, ring.ring), victim.ref.id]
    check_lookups(survivors, survivors, keys, f"{seed} after killing {victim.address}")

    ordered = by_id(survivors)
    first = rng.randrange(len(ordered))
    pair = [ordered[first], ordered[(first + 1) % len(ordered)]]
    for peer in pair:
        ring.kill(peer)
    survivors = ring.live()
    assert len(survivors) == 5
    where = f"{seed} after killing adjacent {describe(pair)}"
    took = wait_ideal(ring, where, timeout=30, peers=survivors)
    print(f"healed after two adjacent kill -9 in {took:.1f}s")
    keys = random_keys(rng, 10, ring.ring) + [p.ref.id for p in pair]
    check_lookups(survivors, survivors, keys, where)


def test_graceful_leave_on_sigterm(
    make_ring: Callable[..., LocalRing], rng: random.Random, seed: str
) -> None:
    ring = make_ring()
    peers = build_ring(ring, rng, 5, seed)
    wait_ideal(ring, seed, timeout=30)

    leaver = rng.choice(peers)
    code = ring.terminate(leaver)
    log = leaver.log_path.read_text(errors="replace")
    assert code == 0, f"[seed {seed}] {leaver.address} exited with {code}:\n{leaver.log_tail()}"
    assert "left the ring" in log, f"[seed {seed}] no goodbye in the log:\n{leaver.log_tail()}"
    assert "Traceback" not in log, log

    survivors = ring.live()
    where = f"{seed} after {leaver.address} left"
    # The leaver told its neighbours, so no failure timeout is involved: quick.
    took = wait_ideal(ring, where, timeout=10, peers=survivors)
    print(f"ideal again {took:.1f}s after the leave")
    check_lookups(survivors, survivors, [*random_keys(rng, 10, ring.ring), leaver.ref.id], where)
    for neighbour in _neighbours(peers, leaver):
        told = f"{leaver.short_id}@{leaver.address} is leaving the ring"
        assert told in neighbour.log_path.read_text(errors="replace"), (
            f"[seed {seed}] neighbour {neighbour.address} was not told:\n{neighbour.log_tail()}"
        )


def _neighbours(peers: list[PeerProcess], peer: PeerProcess) -> list[PeerProcess]:
    ordered = by_id(peers)
    index = ordered.index(peer)
    return [ordered[index - 1], ordered[(index + 1) % len(ordered)]]


def test_last_peer_leaves_cleanly(
    make_ring: Callable[..., LocalRing], rng: random.Random, seed: str
) -> None:
    ring = make_ring()
    peers = build_ring(ring, rng, 2, seed)
    wait_ideal(ring, seed, timeout=20)
    assert ring.terminate(peers[0]) == 0
    wait_ideal(ring, seed, timeout=10, peers=[peers[1]])
    status, body = peers[1].get("/get_successor")
    assert status == 200 and body["successor"]["address"] == peers[1].address, body
    assert ring.terminate(peers[1]) == 0
    assert "left the ring" in peers[1].log_path.read_text()


def test_crashed_peer_restarts_at_the_same_address(
    make_ring: Callable[..., LocalRing], rng: random.Random, seed: str
) -> None:
    ring = make_ring()
    peers = build_ring(ring, rng, 5, seed)
    wait_ideal(ring, seed, timeout=30)

    victim = rng.choice(peers)
    ring.kill(victim)
    # Restart at once, before the ring has noticed the crash: it still lists the old
    # process at this address, which the new one must cope with.
    seed_peer = rng.choice(ring.live())
    reborn = ring.start_peer(victim.host, victim.port, join=seed_peer.address)
    assert reborn.ref == victim.ref
    where = f"{seed} after restarting {victim.address} via {seed_peer.address}"
    wait_ideal(ring, where, timeout=30)
    members = ring.live()
    assert reborn in members and len(members) == 5
    check_lookups(members, members, [*random_keys(rng, 10, ring.ring), reborn.ref.id], where)


def test_concurrent_joins_converge(
    make_ring: Callable[..., LocalRing], rng: random.Random, seed: str
) -> None:
    """Six peers started at the same moment, each through a random one of them (a seed
    that is still starting must be retried, not fatal), settle into one ideal ring."""
    ring = make_ring()
    first_host, first_port = random_address(rng, ring.ring)
    first = ring.start_peer(first_host, first_port)
    addresses: list[tuple[str, int]] = []
    ids = {first.ref.id}
    for _ in range(6):
        host, port = random_address(rng, ring.ring, ids)
        ids.add(ring.ring.hash(f"{host}:{port}"))
        addresses.append((host, port))
    # Each joins through the first peer or one started before it (all within
    # milliseconds), so every seed chain leads to the ring without a cycle.
    everyone = [first.address] + [f"{h}:{p}" for h, p in addresses]
    joiners = [
        ring.spawn(host, port, join=rng.choice(everyone[: i + 1]))
        for i, (host, port) in enumerate(addresses)
    ]
    for peer in joiners:
        ring.wait_ready(peer, timeout=30)
    peers = [first, *joiners]
    wait_ideal(ring, seed, timeout=40, peers=peers)
    check_lookups(rng.sample(peers, 3), peers, random_keys(rng, 15, ring.ring), seed)
