"""Abuse scenarios: hostile clients against one victim peer of a live ring while a
well-behaved client (faults.probe, from 127.0.0.2) measures what users and the ring see.

Each abuse runs for ``abuse_seconds``; the promises (faults.report.problems) are:
/health p99 and every small download under 1 s, none failed; the victim never leaves
its predecessor's successor list; its RSS grows by at most RSS_GROWTH_MIB; every
acknowledged upload stays readable; the ring converges afterwards. The cross-site
abuse also promises that nothing changed (nothing planted, nothing deleted).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from devtools.launcher import PeerProcess
from faults import attackers, cross_site
from faults.harness import Harness, Verdict
from faults.probe import Probe, summary

log = logging.getLogger("faults")
MIB = 1 << 20
BIG_MIB = 48  # the file stalled readers ask for: more than every buffer on the way
# The most the victim's resident memory may grow under an abuse. Stalled transfers hold
# a few MiB each (read-ahead, one message in flight) until they are cut, and their
# number is capped (48 gRPC transfer threads, 32 REST transfers): the bound follows.
RSS_GROWTH_MIB = 256.0
LIMIT_MS = 1000.0
MAX_PEERS = 8  # the 4- or 8-peer ring, whatever --peers the matrix runs with


@dataclass
class Target:
    """What the attackers aim at."""

    victim: PeerProcess
    big: str  # a BIG_MIB file the victim holds
    small: str  # a small file the probe downloads
    planted: str = "planted-by-another-site.txt"

    @property
    def rest(self) -> tuple[str, int]:
        return self.victim.host, self.victim.api_port

    @property
    def grpc(self) -> tuple[str, int]:
        return self.victim.host, self.victim.port


Attack = Callable[[Harness, Target], AbstractContextManager[dict[str, Any]]]


@contextlib.contextmanager
def _cross_site(h: Harness, target: Target) -> Iterator[dict[str, Any]]:
    report: dict[str, Any] = {}
    if not cross_site.available():
        report["skipped"] = f"no Chromium at {cross_site.CHROMIUM} or no playwright"
    else:
        report.update(cross_site.attack(target.victim.api_url, target.small, target.planted))
    yield report
    client = h.client(h.rng.choice([p for p in h.live() if p is not target.victim]))
    planted = [target.planted, f"{target.planted}-form"]
    report["planted"] = [name for name in planted if client.search(name).found]
    report["target_deleted"] = not client.search(target.small).found
    report["victim_running"] = target.victim.running()


ATTACKS: dict[str, Attack] = {
    "idle-connections": lambda h, t: attackers.idle_connections(
        t.rest, attackers.sources(10, 4), 200
    ),
    "slow-uploads": lambda h, t: attackers.slow_uploads(t.rest, attackers.sources(20, 4), 200),
    "stalled-downloads": lambda h, t: attackers.stalled_downloads(
        t.rest, attackers.sources(30, 4), 16, t.big
    ),
    "watch-streams": lambda h, t: attackers.watch_streams(t.grpc, attackers.sources(40, 4), 32),
    "stalled-fetches": lambda h, t: attackers.stalled_fetches(
        t.grpc, attackers.sources(50, 4), 32, t.big
    ),
    "step-flood": lambda h, t: attackers.step_flood(t.grpc, attackers.sources(60, 2), 256),
    "cross-site": _cross_site,
}
SCENARIO_PREFIX = "abuse-"


def prepare(h: Harness) -> Target:
    """Start the ring (at most 8 peers), upload the seeded files and one big file the
    victim holds."""
    h.extra["peers"] = min(h.options.peers, MAX_PEERS)
    h.start(h.extra["peers"])
    names = h.make_files(h.options.files)
    h.upload(names)
    if h.converge() is None:
        raise RuntimeError("the ring did not settle after the uploads")
    h.converge_s = None
    victim = h.rng.choice(h.live())
    big = _big_file_held_by(h, victim)
    small = min(h.acked, key=lambda n: len(h.corpus[n]))
    return Target(victim, big, small)


def _big_file_held_by(h: Harness, victim: PeerProcess) -> str:
    for attempt in range(1000):
        name = f"big-{attempt:03d}.bin"
        if victim in h.expected_holders(name, h.live()):
            break
    data = h.rng.randbytes(BIG_MIB * MIB)
    h.corpus[name] = data
    h.sha[name] = hashlib.sha256(data).hexdigest()
    pieces = [data[i : i + MIB] for i in range(0, len(data), MIB)]
    h.client(victim).put(name, pieces, size=len(data))
    h.acked[name] = h.sha[name]
    return name


def _rss(peer: PeerProcess) -> float:
    return peer.memory_mib("VmRSS")


def abuse(h: Harness, target: Target, kind: str) -> dict[str, Any]:
    """Run one attack for abuse_seconds under the probe; the figures it measured."""
    probe = Probe(h, target.victim, target.small, h.acked[target.small]).start()
    time.sleep(1.0)  # a few calm samples first
    baseline = _rss(target.victim)
    started = time.monotonic()
    with ATTACKS[kind](h, target) as report:
        log.info("%s running: %s", kind, report)
        time.sleep(h.options.abuse_seconds)
    held = time.monotonic() - started
    figures = summary(probe.stop(), baseline)
    figures["attack"] = report
    figures["attack_s"] = round(held, 1)
    figures["victim"] = target.victim.address
    return figures


def settle_and_check(h: Harness) -> Verdict:
    h.converge()
    return h.classify()


def scenario(kind: str) -> Callable[[Harness], Verdict]:
    """A faults scenario (fresh ring) running the one abuse ``kind``."""

    def run(h: Harness) -> Verdict:
        target = prepare(h)
        h.extra.update(abuse(h, target, kind))
        return settle_and_check(h)

    run.__name__ = kind.replace("-", "_")
    return run


def series(h: Harness, kinds: list[str]) -> tuple[Target, dict[str, dict[str, Any]]]:
    """Every abuse in ``kinds`` on one ring, one after the other, against one victim
    (the fast subset of make test); figures per abuse."""
    target = prepare(h)
    results = {}
    for kind in kinds:
        results[kind] = abuse(h, target, kind)
        h.wait_ideal(30)  # the ring is whole again before the next abuse starts
    return target, results


def problems(figures: dict[str, Any], limit_ms: float = LIMIT_MS) -> list[str]:
    """The abuse promises ``figures`` break (empty: all kept); ``limit_ms`` bounds the
    /health p99 and the small downloads."""
    wrong = []
    if figures["health_p99_ms"] >= limit_ms or figures["health_failed"]:
        wrong.append(
            f"/health p99 {figures['health_p99_ms']} ms, {figures['health_failed']} failed"
        )
    if figures["download_max_ms"] >= limit_ms or figures["download_failed"]:
        wrong.append(
            f"small download max {figures['download_max_ms']} ms, "
            f"{figures['download_failed']} failed"
        )
    if figures["victim_left_lists"]:
        wrong.append(
            f"victim missing from its predecessor's list in "
            f"{figures['victim_left_lists']}/{figures['ring_polls']} polls"
        )
    growth = figures["rss_peak_mib"] - figures["rss_before_mib"]
    if growth > RSS_GROWTH_MIB:
        wrong.append(f"victim RSS grew by {growth:.0f} MiB")
    attack = figures.get("attack", {})
    if attack.get("planted") or attack.get("target_deleted"):
        wrong.append(
            f"cross-site writes took effect: planted {attack.get('planted')}, "
            f"target deleted {attack.get('target_deleted')}"
        )
    if "victim_running" in attack and not attack["victim_running"]:
        wrong.append("the victim stopped")
    return wrong
