"""Lookup path length and latency on a real ring of N peer processes.

    python -m bench.lookup --peers 64

Prints hops (mean / p50 / p99), lookup latency, and the ratio of lookup latency to
hops x a bare gRPC round trip (the standard health check to the same peers,
measured in the same run), plus convergence time and peer memory (RSS).
Lookups are driven from this process exactly as a client would: iterative, one
FindSuccessorStep RPC per hop, starting at a random peer.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tabulate import tabulate

from chord.ids import to_hex
from chord.lookup import iterative_lookup
from devtools.launcher import LocalRing, wait_for


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def fingers_complete(ring: LocalRing, ids: list[int]) -> bool:
    """Every finger of every peer points at successor(start), as in the ideal ring."""
    by_id = {p.ref.id: p for p in ring.peers}
    for peer in ring.peers:
        status, body = peer.get("/finger_table", timeout=5)
        if status != 200:
            return False
        for finger in body["fingers"]:
            start = int(finger["start"], 16)
            want = ids[bisect.bisect_left(ids, start) % len(ids)]
            if finger["node"] is None or int(finger["node"]["id"], 16) != want:
                return False
    return len(by_id) == len(ids)


def start_ring(ring: LocalRing, peers: int) -> float:
    """All joiners start at once (joins are concurrent, as in real deployments)."""
    begin = time.monotonic()
    first = ring.start_peer()
    joiners = [ring.spawn(join=first.address) for _ in range(peers - 1)]
    for peer in joiners:
        ring.wait_ready(peer, timeout=120)
    ring.wait_ideal(timeout=180)
    ids = sorted(p.ref.id for p in ring.peers)
    if not wait_for(lambda: fingers_complete(ring, ids), timeout=120, interval=0.5):
        raise TimeoutError("finger tables did not converge")
    return time.monotonic() - begin


def health_rtts(ring: LocalRing, samples: int, rnd: random.Random) -> list[float]:
    channels = {p.address: grpc.insecure_channel(p.address) for p in ring.peers}
    stubs = {a: health_pb2_grpc.HealthStub(c) for a, c in channels.items()}
    request = health_pb2.HealthCheckRequest(service="")
    for stub in stubs.values():  # connect every channel before timing
        stub.Check(request, timeout=5)
    rtts = []
    addresses = list(stubs)
    for _ in range(samples):
        stub = stubs[rnd.choice(addresses)]
        begin = time.perf_counter()
        stub.Check(request, timeout=5)
        rtts.append(time.perf_counter() - begin)
    for channel in channels.values():
        channel.close()
    return rtts


def measure(peers: int, lookups: int, seed: int, one_hop: bool = True) -> dict[str, float]:
    rnd = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="bench-lookup-") as workdir:
        ring = LocalRing(
            Path(workdir),
            extra_args=(
                "--stabilize-interval",
                "0.5",
                "--fix-fingers-interval",
                "0.25",
                "--log-level",
                "warning",
                "--one-hop" if one_hop else "--no-one-hop",
            ),
        )
        try:
            converge_s = start_ring(ring, peers)
            rss = [p.memory_mib() for p in ring.peers]
            ids = sorted(p.ref.id for p in ring.peers)
            refs = [p.ref for p in ring.peers]
            transport = ring.transport
            for ref in refs:  # warm every channel, as the health baseline does
                transport.ping(ref)
            rtts = health_rtts(ring, max(1000, lookups), rnd)
            hops: list[int] = []
            latencies: list[float] = []
            wrong = 0
            for _ in range(lookups):
                key = rnd.randrange(ring.ring.size)
                start = rnd.choice(refs)
                begin = time.perf_counter()
                found = iterative_lookup(
                    ring.ring, key, [start], transport.find_successor_step, 2 * ring.ring.bits
                )
                latencies.append(time.perf_counter() - begin)
                hops.append(found.hops)
                if found.owner.id != ids[bisect.bisect_left(ids, key) % len(ids)]:
                    wrong += 1
                    print(f"wrong owner for {to_hex(key)}")
        finally:
            ring.close()
    rtt = statistics.mean(rtts)
    mean_hops = statistics.mean(hops)
    return {
        "peers": peers,
        "lookups": lookups,
        "wrong_owner": wrong,
        "hops_mean": mean_hops,
        "hops_p50": percentile([float(h) for h in hops], 50),
        "hops_p99": percentile([float(h) for h in hops], 99),
        "hops_target": 0.5 * math.log2(peers) + 1,
        "lookup_ms_mean": statistics.mean(latencies) * 1000,
        "lookup_ms_p50": percentile(latencies, 50) * 1000,
        "lookup_ms_p99": percentile(latencies, 99) * 1000,
        "grpc_rtt_ms_mean": rtt * 1000,
        "grpc_rtt_ms_p50": percentile(rtts, 50) * 1000,
        "latency_ratio": statistics.mean(latencies) / (mean_hops * rtt),
        "converge_s": converge_s,
        "rss_mib_max": max(rss),
        "rss_mib_mean": statistics.mean(rss),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.lookup",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--peers", type=int, nargs="+", default=[16])
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="one JSON object per ring size")
    parser.add_argument(
        "--no-one-hop",
        action="store_true",
        help="peers route with fingers and successor lists only (the Chord paper's routing)",
    )
    args = parser.parse_args()
    rows = []
    for peers in args.peers:
        result = measure(peers, args.lookups, args.seed, one_hop=not args.no_one_hop)
        if args.json:
            print(json.dumps(result), flush=True)
        rows.append(result)
    if not args.json:
        columns = [
            "peers",
            "hops_mean",
            "hops_p50",
            "hops_p99",
            "hops_target",
            "lookup_ms_mean",
            "lookup_ms_p99",
            "grpc_rtt_ms_mean",
            "latency_ratio",
            "converge_s",
            "rss_mib_max",
            "wrong_owner",
        ]
        print(tabulate([[r[c] for c in columns] for r in rows], headers=columns, floatfmt=".2f"))


if __name__ == "__main__":
    main()
