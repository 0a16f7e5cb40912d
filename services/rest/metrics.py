"""Prometheus metrics of one peer, in a registry of its own.

A registry per peer (not prometheus-client's global one) so that several peers in one
process (tests, simulations) never mix their numbers or clash on metric names.
Counters are updated where things happen (gRPC interceptor, lookup wrapper, REST file
bodies); storage and replication numbers are gauges read from their owners at scrape
time, so they can never drift from the truth.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chord.lookup import LookupFailed, LookupResult

HOP_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 24, 32)


@dataclass(frozen=True)
class Snapshot:
    """The peer's state numbers at scrape time."""

    stored_bytes: int
    files: dict[str, int]  # role -> live files held
    degraded: int


class _StateCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot], transfers: Callable[[], int]) -> None:
        self._snapshot = snapshot
        self._transfers = transfers

    def collect(self) -> Iterable[Metric]:
        now = self._snapshot()
        yield GaugeMetricFamily(
            "chord_stored_bytes", "Bytes of file data this peer stores", value=now.stored_bytes
        )
        files = GaugeMetricFamily("chord_files", "Live files this peer holds", labels=["role"])
        for role, count in sorted(now.files.items()):
            files.add_metric([role], count)
        yield files
        yield GaugeMetricFamily(
            "chord_degraded_files",
            "Files this peer is primary for with fewer than k healthy copies",
            value=now.degraded,
        )
        yield GaugeMetricFamily(
            "chord_active_transfers",
            "File transfers in progress through this peer (REST bodies, gRPC Write/Store/Fetch)",
            value=self._transfers(),
        )


class PeerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rpcs = Counter(
            "chord_rpcs",
            "gRPC calls served, by method and status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.lookups = Counter(
            "chord_lookups",
            "Lookups started by this peer, by result",
            ["result"],
            registry=self.registry,
        )
        self.hops = Histogram(
            "chord_lookup_hops",
            "Remote steps per successful lookup",
            buckets=HOP_BUCKETS,
            registry=self.registry,
        )
        self.bytes_in = Counter(
            "chord_bytes_in", "File bytes received in REST uploads", registry=self.registry
        )
        self.bytes_out = Counter(
            "chord_bytes_out", "File bytes sent in REST downloads", registry=self.registry
        )
        self._transfers = 0
        self._lock = threading.Lock()
        self._watched: _StateCollector | None = None

    # ------------------------------------------------------------------ state
    def watch(self, snapshot: Callable[[], Snapshot]) -> None:
        """Report ``snapshot()`` (and the transfer count) as gauges at each scrape.
        A second call replaces the first (an app built again for the same peer)."""
        if self._watched is not None:
            self.registry.unregister(self._watched)
        self._watched = _StateCollector(snapshot, self.active_transfers)
        self.registry.register(self._watched)

    def active_transfers(self) -> int:
        with self._lock:
            return self._transfers

    @contextmanager
    def transfer(self) -> Iterator[None]:
        """Count one transfer as active while the block runs."""
        with self._lock:
            self._transfers += 1
        try:
            yield
        finally:
            with self._lock:
                self._transfers -= 1

    # ---------------------------------------------------------------- events
    def rpc_done(self, method: str, code: str) -> None:
        self.rpcs.labels(method, code).inc()

    def counted(self, lookup: Callable[[int], LookupResult]) -> Callable[[int], LookupResult]:
        """``lookup`` that also counts results and hops (chord/ stays free of metrics)."""

        def counted_lookup(key: int) -> LookupResult:
            try:
                found = lookup(key)
            except LookupFailed:
                self.lookups.labels("failed").inc()
                raise
            self.lookups.labels("ok").inc()
            self.hops.observe(found.hops)
            return found

        return counted_lookup

    def render(self) -> bytes:
        return generate_latest(self.registry)
