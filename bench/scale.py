"""Many peers on one machine: every start succeeds, and an idle peer costs almost nothing.

    python -m bench.scale --peers 128 --runs 10
    python -m bench.scale --peers 64 --idle 60 --json

Each run starts N real peer processes the way ``make run`` does (default settings, the
launcher's port 0), all joiners at once through random earlier peers, and reports:
start failures (refused joins, bind failures, other exits), the time from the last
start to convergence (successor lists and every finger exact), then after ``--idle``
seconds of nothing: CPU per peer (% of one core, from /proc) and RSS, then the time the
predecessor of a peer killed with -9 takes to drop it, and lookup latency against a bare
gRPC round trip measured in the same run (bench.lookup's method).
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench.lookup import fingers_complete, health_rtts, percentile
from chord.ids import to_hex
from chord.lookup import iterative_lookup
from devtools.launcher import LocalRing, PeerProcess, wait_for

TICKS = os.sysconf("SC_CLK_TCK")


def proportional_mib(pid: int) -> float:
    """Proportional set size (shared pages divided among their users), from /proc."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(peer: PeerProcess) -> float:
    fields = Path(f"/proc/{peer.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def start_all(ring: LocalRing, count: int, rnd: random.Random) -> dict[str, int]:
    """The first peer, then every other one at once, each joining through a random peer
    started before it. Returns the failures by kind."""
    first = ring.start_peer()
    joiners: list[PeerProcess] = []
    for _ in range(count - 1):
        seed = rnd.choice([first, *joiners])
        try:
            # 128 interpreters starting on 2 cores: a seed may take a minute to listen.
            seed.wait_ports(180)
        except (RuntimeError, TimeoutError):
            seed = first
        joiners.append(ring.spawn(join=seed.address))
    failures = {"refused": 0, "bind": 0, "other": 0}
    for peer in joiners:
        try:
            ring.wait_ready(peer, timeout=180)
        except (RuntimeError, TimeoutError):
            log = peer.log_tail(5)
            kind = "refused" if "refused" in log else "bind" if "cannot listen" in log else "other"
            failures[kind] += 1
            print(f"peer failed to start ({kind}):\n{log}", flush=True)
    return failures


def converge(ring: LocalRing) -> float:
    began = time.monotonic()
    live = ring.live()
    ring.wait_ideal(timeout=300, peers=live)
    ids = sorted(p.ref.id for p in live)
    if not wait_for(lambda: fingers_complete_among(ring, live, ids), 300, interval=1.0):
        raise TimeoutError("finger tables did not converge")
    return time.monotonic() - began


def fingers_complete_among(ring: LocalRing, live: list[PeerProcess], ids: list[int]) -> bool:
    saved = ring.peers
    ring.peers = live
    try:
        return fingers_complete(ring, ids)
    finally:
        ring.peers = saved


def idle_cpu(peers: list[PeerProcess], seconds: float) -> list[float]:
    before = [cpu_seconds(p) for p in peers]
    time.sleep(seconds)  # a benchmark's measurement window, not a wait for a condition
    return [(cpu_seconds(p) - b) / seconds * 100 for p, b in zip(peers, before, strict=True)]


def crash_detection(ring: LocalRing, rnd: random.Random) -> float:
    """kill -9 one peer; seconds until its predecessor no longer lists it first."""
    live = sorted(ring.live(), key=lambda p: p.ref.id)
    index = rnd.randrange(len(live))
    victim, predecessor = live[index], live[index - 1]
    ring.kill(victim)
    began = time.monotonic()

    def dropped() -> bool:
        status, body = predecessor.get("/get_successor", timeout=2)
        return status == 200 and body["successor"]["address"] != victim.address

    if not wait_for(dropped, 60, interval=0.05):
        return float("inf")
    return time.monotonic() - began


def lookup_ratio(ring: LocalRing, lookups: int, rnd: random.Random) -> dict[str, float]:
    live = ring.live()
    refs = [p.ref for p in live]
    ids = sorted(r.id for r in refs)
    for ref in refs:
        ring.transport.ping(ref)
    saved = ring.peers
    ring.peers = live
    try:
        rtts = health_rtts(ring, max(500, lookups), rnd)
    finally:
        ring.peers = saved
    hops, latencies, wrong = [], [], 0
    for _ in range(lookups):
        key = rnd.randrange(ring.ring.size)
        began = time.perf_counter()
        found = iterative_lookup(
            ring.ring,
            key,
            [rnd.choice(refs)],
            ring.transport.find_successor_step,
            2 * ring.ring.bits,
        )
        latencies.append(time.perf_counter() - began)
        hops.append(found.hops)
        if found.owner.id != ids[bisect.bisect_left(ids, key) % len(ids)]:
            wrong += 1
            print(f"wrong owner for {to_hex(key)}")
    rtt, mean_hops = statistics.mean(rtts), statistics.mean(hops)
    return {
        "hops_mean": mean_hops,
        "lookup_ms_p50": percentile(latencies, 50) * 1000,
        "lookup_ms_p99": percentile(latencies, 99) * 1000,
        "grpc_rtt_ms": rtt * 1000,
        "latency_ratio": statistics.mean(latencies) / (mean_hops * rtt),
        "wrong_owner": wrong,
    }


def one_run(args: argparse.Namespace, run: int) -> dict[str, Any]:
    rnd = random.Random(args.seed + run)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as workdir:
        extra = ("--log-level", "warning", *args.peer_args)
        ring = LocalRing(Path(workdir), extra_args=extra)
        try:
            began = time.monotonic()
            failures = start_all(ring, args.peers, rnd)
            started_s = time.monotonic() - began
            converge_s = converge(ring)
            live = ring.live()
            time.sleep(args.settle)  # let the intervals back off: part of what is measured
            cpu = idle_cpu(live, args.idle)
            rss = [p.memory_mib() for p in live]
            pss = [proportional_mib(p.process.pid) for p in live]
            detect_s = crash_detection(ring, rnd)
            lookups = lookup_ratio(ring, args.lookups, rnd)
        finally:
            ring.close()
    return {
        "run": run,
        "peers": args.peers,
        **{f"failed_{kind}": n for kind, n in failures.items()},
        "start_s": started_s,
        "converge_s": converge_s,
        "idle_cpu_pct_mean": statistics.mean(cpu),
        "idle_cpu_pct_max": max(cpu),
        "rss_mib_mean": statistics.mean(rss),
        "rss_mib_max": max(rss),
        # RSS counts the pages of shared libraries (grpc's core, libpython, libcrypto)
        # in full in every peer; PSS divides them among the processes sharing them.
        "pss_mib_mean": statistics.mean(pss),
        "crash_detect_s": detect_s,
        **lookups,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--peers", type=int, default=128)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle measured")
    parser.add_argument(
        "--settle", type=float, default=30.0, help="seconds after convergence before measuring"
    )
    parser.add_argument("--lookups", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "peer_args", nargs="*", help="run_node.py flags after --: -- --maintenance-backoff 1"
    )
    args = parser.parse_args()
    rows = []
    for run in range(args.runs):
        row = one_run(args, run)
        rows.append(row)
        print(json.dumps(row) if args.json else f"run {run}: {row}", flush=True)
    columns = [
        "run",
        "failed_refused",
        "failed_bind",
        "failed_other",
        "converge_s",
        "idle_cpu_pct_mean",
        "idle_cpu_pct_max",
        "rss_mib_max",
        "pss_mib_mean",
        "crash_detect_s",
        "hops_mean",
        "grpc_rtt_ms",
        "latency_ratio",
    ]
    if not args.json:
        print(tabulate([[r[c] for c in columns] for r in rows], headers=columns, floatfmt=".2f"))


if __name__ == "__main__":
    main()
