"""The well-behaved client of the abuse scenarios: while an attack runs it measures,
from a source address of its own (127.0.0.2), what a user and the ring see of the
victim: GET /health latency, a small download's latency and bytes, whether the victim
stays in its predecessor's successor list, and the victim's resident memory.

Every HTTP request uses a fresh connection, as a liveness probe or a new user does, so
a victim that stops accepting connections shows up as the failure it is.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from chord.transport import PeerUnreachable
from devtools.launcher import PeerProcess
from faults.harness import Harness, percentile

SOURCE = "127.0.0.2"
TIMEOUT = 5.0  # a request that takes longer counts as this long (and as failed)


def http_get(peer: PeerProcess, path: str, timeout: float = TIMEOUT) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(
        peer.host, peer.api_port, timeout=timeout, source_address=(SOURCE, 0)
    )
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass
class Samples:
    health_ms: list[float] = field(default_factory=list)
    health_failed: int = 0
    download_ms: list[float] = field(default_factory=list)
    download_failed: int = 0
    left_lists: int = 0  # polls in which the victim was missing from its predecessor's list
    ring_polls: int = 0
    rss_mib: list[float] = field(default_factory=list)
    transfers: list[int] = field(default_factory=list)  # the victim's active transfers
    errors: list[str] = field(default_factory=list)


class Probe:
    """Runs three loops (health, download, ring and memory) until :meth:`stop`."""

    def __init__(self, h: Harness, victim: PeerProcess, small: str, sha256: str) -> None:
        self.h = h
        self.victim = victim
        self.small = small
        self.sha256 = sha256
        self.samples = Samples()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(self._health, 0.1), daemon=True),
            threading.Thread(target=self._loop, args=(self._download, 0.5), daemon=True),
            threading.Thread(target=self._loop, args=(self._ring, 0.2), daemon=True),
        ]

    def start(self) -> Probe:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Samples:
        self._stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT + 5)
        return self.samples

    def _loop(self, step: Any, every: float) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                step()
            except Exception as exc:  # a probe never dies; it records
                self.samples.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            self._stop.wait(max(0.0, every - (time.monotonic() - started)))

    def _timed(self, path: str) -> tuple[float, int, bytes]:
        started = time.monotonic()
        try:
            status, body = http_get(self.victim, path)
        except OSError as exc:
            self.samples.errors.append(f"{path}: {type(exc).__name__}: {exc}"[:200])
            return TIMEOUT * 1000, 0, b""
        return (time.monotonic() - started) * 1000, status, body

    def _health(self) -> None:
        ms, status, _ = self._timed("/health")
        self.samples.health_ms.append(ms)
        self.samples.health_failed += status != 200

    def _download(self) -> None:
        ms, status, body = self._timed(f"/download_file?name={quote(self.small)}")
        self.samples.download_ms.append(ms)
        good = status == 200 and hashlib.sha256(body).hexdigest() == self.sha256
        self.samples.download_failed += not good

    def _ring(self) -> None:
        """Is the victim still listed by the peer before it (observed over gRPC from
        the harness; the predecessor is never attacked)? Plus the victim's RSS and its
        active transfers (/status)."""
        with open(f"/proc/{self.victim.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    self.samples.rss_mib.append(int(line.split()[1]) / 1024)
        code, body = http_get(self.victim, "/status")
        if code == 200:
            self.samples.transfers.append(int(json.loads(body)["active_transfers"]))
        ordered = self.h.live()
        index = ordered.index(self.victim)
        predecessor = ordered[index - 1]
        try:
            state = self.h.transport.get_state(predecessor.ref)
        except PeerUnreachable:
            return
        self.samples.ring_polls += 1
        self.samples.left_lists += self.victim.ref not in state.successors


def summary(samples: Samples, baseline_rss: float) -> dict[str, Any]:
    health, download = samples.health_ms, samples.download_ms
    return {
        "health_p50_ms": round(percentile(health, 0.5)),
        "health_p99_ms": round(percentile(health, 0.99)),
        "health_failed": samples.health_failed,
        "health_polls": len(health),
        "download_max_ms": round(max(download, default=0.0)),
        "download_failed": samples.download_failed,
        "downloads": len(download),
        "victim_left_lists": samples.left_lists,
        "ring_polls": samples.ring_polls,
        "rss_before_mib": round(baseline_rss, 1),
        "rss_peak_mib": round(max(samples.rss_mib, default=baseline_rss), 1),
        # Stalled transfers held by the victim: most at once, and at the attack's end
        # (0 once the idle / send deadlines have cut them).
        "transfers_max": max(samples.transfers, default=0),
        "transfers_end": samples.transfers[-1] if samples.transfers else 0,
        "probe_errors": samples.errors[:5],
    }
