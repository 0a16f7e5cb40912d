"""Keeping k copies of every file on the right peers: anti-entropy, migration, hand-off.

Runs on the maintenance loop (never in a request handler). Each round:

1. Anti-entropy for this peer's primary range (predecessor, me]: compare a digest of the
   range with each successor that holds some of it (cheap when equal, which is the
   common case); where it differs, list the range there and reconcile file by file: push
   what we have newer (bytes or tombstones, so deletes stay deleted), pull what they have
   newer. This restores every file's copies after crashes, fills a joiner's new range
   from its successor, and catches a restarted peer up.
2. Migration: files held outside the primary range are checked against a lookup (one
   per owner range). If this peer is no longer among a file's holders, it makes sure
   every holder has the version, then drops its own copy.

Every file version carries its own number of copies k (chosen by its writer; 0 in the
record means the ring's default), so the successor at position i (1: the owner's first
successor) holds exactly the files with k > i: digests at that position cover only
those, and a copy held beyond its file's k is migrated away like any misplaced copy.

It also keeps replication health: for each primary file, how many of its holders have
the newest version; below its k it is degraded.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import grpc

from chord.ids import between_right, to_hex
from chord.lookup import LookupFailed, LookupResult
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.placement import copies_wanted, holders_of
from proto import files_pb2 as fpb
from services.files.client import FileClient, FileInfo, holders_found
from services.storage import FileRecord, StorageEngine, StorageError

log = logging.getLogger("chord.replication")


@dataclass(frozen=True)
class Health:
    name: str
    version: int
    copies: int  # holders (this one included) with the newest version
    wanted: int


@dataclass(frozen=True)
class _Range:
    """Our primary range (start, end] as stored at one moment."""

    start: int
    end: int
    records: dict[str, FileRecord]
    digest: str


# name -> version -> healthy copies of it (None: that version is a tombstone).
Tally = dict[str, dict[int, int | None]]


def _count(tally: Tally, name: str, version: int, *, deleted: bool, healthy: bool) -> None:
    """Note one holder holding ``version`` of ``name``: a tombstone marks the version
    deleted; a damaged live copy adds nothing (but the version is known)."""
    versions = tally.setdefault(name, {})
    if deleted:
        versions[version] = None
        return
    current = versions.get(version, 0)
    if current is not None:
        versions[version] = current + (1 if healthy else 0)


def _newer(theirs: FileInfo | None, mine: FileRecord | None) -> bool:
    """Should we copy theirs? Theirs is newer, or ours is missing or damaged."""
    if theirs is None or theirs.damaged:
        return False
    if mine is None or mine.damaged:
        return mine is None or theirs.version >= mine.version
    return theirs.version > mine.version


def _behind(theirs: FileInfo | None, mine: FileRecord | None) -> bool:
    """Should we send ours? Theirs is older, missing, or a damaged copy of ours."""
    if mine is None or mine.damaged:
        return False
    if theirs is None or theirs.version < mine.version:
        return True
    return theirs.damaged and theirs.version == mine.version


class Replicator:
    def __init__(
        self, node: ChordNode, engine: StorageEngine, files: FileClient, copies: int
    ) -> None:
        self.node = node
        self.engine = engine
        self.files = files
        self.copies = copies  # the ring's default k, for versions that carry none
        self._health: dict[str, Health] = {}
        self._scrubbed = ""  # name the last scrub stopped at
        self._busy = False  # the current round found work (see run_once)
        self._lock = threading.Lock()

    def health(self) -> list[Health]:
        with self._lock:
            return sorted(self._health.values(), key=lambda h: h.name)

    def degraded(self) -> list[Health]:
        return [h for h in self.health() if h.copies < h.wanted]

    def health_rows(self) -> list[tuple[str, int, int, int]]:
        """(name, version, copies, wanted) per primary file, for the Health RPC."""
        return [(h.name, h.version, h.copies, h.wanted) for h in self.health()]

    # ------------------------------------------------------------------ round
    def wanted(self, version: FileRecord | FileInfo) -> int:
        """How many holders ``version`` has (its own k, else the ring's default)."""
        return copies_wanted(version.replicas, self.copies)

    def run_once(self) -> bool:
        """One round; returns whether it found work (a range that differed, a copy to
        move or drop, damage, a degraded file): the maintenance loop runs the next
        round soon then, and backs off while rounds find nothing."""
        self._busy = False
        state = self.node.state()
        if not state.joined or state.predecessor is None:
            return False
        start, end = state.predecessor.id, self.node.me.id
        tally: Tally = {}
        view = self._snapshot(start, end)
        most = max([self.copies, *(self.wanted(r) for r in view.records.values())])
        for position, peer in enumerate(holders_of(state.successors, most - 1), start=1):
            if self._reconcile(peer, view, tally, position):
                view = self._snapshot(start, end)  # we pulled: our range changed
        self._record_health(view, tally)
        self._migrate(start, end)
        self._scrub()
        return self._busy or bool(self.degraded())

    def _snapshot(self, start: int, end: int) -> _Range:
        """Our primary range as stored now, read once per round rather than once per
        replica holder (and re-read only after a pull changes it)."""
        records = {r.name: r for r in self.engine.in_range(start, end)}
        return _Range(start, end, records, self.engine.digest(start, end))

    def _scrub(self, budget: int = 8 << 20) -> None:
        """Re-verify a few held copies per round (round robin, about ``budget`` bytes), so
        corruption that no read touches is still found, marked damaged and repaired."""
        records = [r for r in self.engine.records() if not r.damaged]
        records.sort(key=lambda r: r.name)
        after = [r for r in records if r.name > self._scrubbed] or records
        spent = 0
        for record in after:
            if spent and spent + record.size > budget:
                break
            try:
                if not self.engine.verify(record):
                    log.warning("scrub found %s damaged", record.name)
                    self._busy = True
            except StorageError:
                pass
            self._scrubbed = record.name
            spent += max(record.size, 1)

    def _reconcile(self, peer: NodeRef, view: _Range, tally: Tally, position: int) -> bool:
        """Make ``peer`` (``position`` places after us) hold exactly the versions of our
        primary range that it should (files with k > position), newest wins both ways,
        and note in ``tally`` which version of each file it holds afterwards. Returns
        whether we pulled anything (our own range changed). Position 0 (a hand-off to
        the peer taking our range over) covers every file."""
        request = fpb.RangeRequest(start=to_hex(view.start), end=to_hex(view.end))
        stub = self.files.stub(peer)
        timeout = self.files.rpc_timeout
        held_there = {n: r for n, r in view.records.items() if self.wanted(r) > position}
        try:
            digest = stub.Digest(
                fpb.RangeRequest(start=request.start, end=request.end, position=position),
                timeout=timeout,
            ).digest
            if digest == self._digest(view, position):
                for record in held_there.values():
                    _count(
                        tally,
                        record.name,
                        record.version,
                        deleted=record.deleted,
                        healthy=not record.damaged,
                    )
                return False
            self._busy = True  # the range differs there
            theirs = {
                m.name: FileInfo.from_pb(m)
                for m in stub.ListRange(request, timeout=self.files.transfer_timeout)
            }
        except grpc.RpcError:
            return False  # unreachable: stabilize replaces it, and the next round retries
        mine = dict(view.records)
        pulled = False
        for name in sorted(set(mine) | set(theirs)):
            held, ours = theirs.get(name), mine.get(name)
            try:
                if _newer(held, ours):
                    # The owner keeps every file of its range, whatever its k.
                    assert held is not None
                    mine[name] = self.files.pull(peer, held, self.engine, role="primary")
                    pulled = True
                    log.info("pulled %s v%d from %s", name, held.version, peer.address)
                elif _behind(held, ours) and name in held_there:
                    assert ours is not None  # missing or older where it belongs: send ours
                    self.files.push(self.engine, ours, peer, role="replica")
                    log.info("pushed %s v%d to %s", name, ours.version, peer.address)
                    held = None
                    _count(tally, name, ours.version, deleted=ours.deleted, healthy=True)
                elif held is not None and ours is not None and held.version < ours.version:
                    # An older copy beyond this file's count (an overwrite lowered it).
                    self.files.drop_older(name, ours.version, [peer])
                    log.info("dropped old %s v%d on %s", name, held.version, peer.address)
                    held = None
            except (grpc.RpcError, StorageError) as exc:
                log.warning("could not reconcile %s with %s: %s", name, peer.address, exc)
                self._busy = True
            counted = mine.get(name) or held
            if held is not None and counted is not None and self.wanted(counted) > position:
                _count(tally, name, held.version, deleted=held.deleted, healthy=not held.damaged)
        return pulled

    def _digest(self, view: _Range, position: int) -> str:
        if position == 0:
            return view.digest
        return self.engine.digest(view.start, view.end, lambda r: self.wanted(r) > position)

    def _record_health(self, view: _Range, tally: Tally) -> None:
        """Copies of the newest version of every file in our primary range, ours and the
        replica holders' (a file we lack ourselves still counts: it is degraded)."""
        mine = view.records
        health: dict[str, Health] = {}
        for name in sorted(set(mine) | set(tally)):
            versions = dict(tally.get(name, {}))
            record = mine.get(name)
            if record is not None:
                _count(
                    {name: versions},
                    name,
                    record.version,
                    deleted=record.deleted,
                    healthy=not record.damaged,
                )
            newest = max(versions)
            live = versions[newest]
            if live is None:  # the newest version is a tombstone: nothing to keep alive
                continue
            # A file we lack (a pull failed) is judged by the default k until we have it.
            wanted = self.wanted(record) if record is not None else self.copies
            health[name] = Health(name, newest, live, wanted)
        with self._lock:
            self._health = health

    # -------------------------------------------------------------- migration
    def _migrate(self, start: int, end: int) -> None:
        """Hand off and drop files this peer no longer has to hold."""
        outside = [r for r in self.engine.records(include_deleted=True)
                   if not between_right(start, r.key, end)]  # fmt: skip
        covered: list[LookupResult] = []  # one lookup per owner range
        for record in outside:
            found = next(
                (f for f in covered if between_right(f.predecessor.id, record.key, f.owner.id)),
                None,
            )
            if found is None:
                try:
                    found = self.node.lookup(record.key, confirm_owner=True)
                except LookupFailed:
                    self._busy = True
                    continue
                covered.append(found)
            wanted = self.wanted(record)
            holders = holders_found(found, wanted)
            if self.node.me in holders or self._skipped_me(holders, wanted):
                if record.role != "replica":
                    self.engine.set_role(record.name, "replica")
                continue
            self._busy = True  # a copy this peer should not keep: handed off, then dropped
            if self._all_hold(record, holders):
                self.engine.drop(record.name)
                log.info("dropped %s: now held by %s", record.name,
                         ", ".join(h.address for h in holders))  # fmt: skip

    def _skipped_me(self, holders: tuple[NodeRef, ...], wanted: int) -> bool:
        """The lookup's answer leaves this live peer out although it is one of the key's
        k successors: it names fewer than k peers, or our ID lies between its owner and
        its last holder. The responder's successor list predates us (we just joined or
        restarted); dropping now would only have our copy sent back a moment later."""
        if len(holders) < wanted:
            return True
        return len(holders) > 1 and between_right(holders[0].id, self.node.me.id, holders[-1].id)

    def _all_hold(self, record: FileRecord, holders: tuple[NodeRef, ...]) -> bool:
        """Every holder has this version (or newer), pushing ours where it is missing."""
        answers = self.files.stat_all(record.name, holders)
        if len(answers) < len(holders):
            return False  # someone did not answer: keep our copy for now
        for index, peer in enumerate(holders):
            info = answers[peer]
            if info is not None and info.version >= record.version:
                continue
            if record.damaged:
                return False
            try:
                role = "primary" if index == 0 else "replica"
                self.files.push(self.engine, record, peer, role=role)
            except (grpc.RpcError, StorageError):
                return False
        return True

    # --------------------------------------------------------------- hand-off
    def hand_off(self, successor: NodeRef) -> None:
        """Before a graceful leave: make sure the successor has our primary range."""
        state = self.node.state()
        if state.predecessor is None or successor == self.node.me:
            return
        view = self._snapshot(state.predecessor.id, self.node.me.id)
        self._reconcile(successor, view, {}, position=0)  # it takes every file over
