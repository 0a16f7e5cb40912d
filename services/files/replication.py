"""Keeping k copies of every file on the right peers, on this peer's maintenance loop.

The rules (anti-entropy of the primary range, migration after joins and leaves,
hand-off before a leave, health) are the replication core's (chord.replication.keeper);
this driver runs them over gRPC and the storage engine (services.files.transport), logs
what they did, keeps the last round's health for the Health RPC and the dashboard, and
adds the one step that needs the disk: scrubbing held copies for silent corruption.
"""

from __future__ import annotations

import logging
import threading

from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.placement import copies_wanted
from chord.replication import Event, Health, Keeper, Version
from services.files.client import FileClient
from services.files.transport import EngineStore, GrpcFileTransport
from services.storage import FileRecord, StorageEngine, StorageError

log = logging.getLogger("chord.replication")

__all__ = ["Health", "Replicator"]


def _log(event: Event) -> None:
    (log.warning if event.problem else log.info)("%s", event.message)


class Replicator:
    def __init__(
        self, node: ChordNode, engine: StorageEngine, files: FileClient, copies: int
    ) -> None:
        self.node = node
        self.engine = engine
        self.files = files
        self.copies = copies  # the ring's default k, for versions that carry none
        self.keeper = Keeper(
            node, EngineStore(engine), GrpcFileTransport(files, engine), copies, _log
        )
        self._health: dict[str, Health] = {}  # guarded by _lock
        self._scrubbed = ""  # name the last scrub stopped at (maintenance thread only)
        self._lock = threading.Lock()

    def health(self) -> list[Health]:
        with self._lock:
            return sorted(self._health.values(), key=lambda h: h.name)

    def degraded(self) -> list[Health]:
        return [h for h in self.health() if h.copies < h.wanted]

    def health_rows(self) -> list[tuple[str, int, int, int]]:
        """(name, version, copies, wanted) per primary file, for the Health RPC."""
        return [(h.name, h.version, h.copies, h.wanted) for h in self.health()]

    def wanted(self, version: Version) -> int:
        """How many holders ``version`` has (its own k, else the ring's default)."""
        return copies_wanted(version.replicas, self.copies)

    def run_once(self) -> bool:
        """One round; returns whether it found work (a range that differed, a copy to
        move or drop, damage, a degraded file): the maintenance loop runs the next
        round soon then, and backs off while rounds find nothing."""
        outcome = self.keeper.run_once()
        if outcome.health is None:
            return False
        with self._lock:
            self._health = {h.name: h for h in outcome.health}
        scrub_found = self._scrub()
        return outcome.busy or scrub_found or bool(outcome.degraded)

    def hand_off(self, successor: NodeRef) -> None:
        """Before a graceful leave: make sure the successor has our primary range."""
        self.keeper.hand_off(successor)

    def _scrub(self, budget: int = 8 << 20) -> bool:
        """Re-verify a few held copies per round (round robin, about ``budget`` bytes), so
        corruption that no read touches is still found, marked damaged and repaired.
        Returns whether it found damage."""
        records: list[FileRecord] = [r for r in self.engine.records() if not r.damaged]
        records.sort(key=lambda r: r.name)
        after = [r for r in records if r.name > self._scrubbed] or records
        spent = 0
        found = False
        for record in after:
            if spent and spent + record.size > budget:
                break
            try:
                if not self.engine.verify(record):
                    log.warning("scrub found %s damaged", record.name)
                    found = True
            except StorageError:
                pass
            self._scrubbed = record.name
            spent += max(record.size, 1)
        return found
