"""Keeping k copies of every file on the right peers: anti-entropy, migration, hand-off.

One :meth:`Keeper.run_once` per maintenance round (the adapter schedules it):

1. Anti-entropy for this peer's primary range (predecessor, me]: compare a digest of
   the range with each successor that holds some of it (cheap when equal, the common
   case); where it differs, list the range there and reconcile file by file: push what
   we have newer (bytes or tombstones, so deletes stay deleted), pull what they have
   newer. This restores every file's copies after crashes, fills a joiner's new range
   from its successor, and catches a restarted peer up.
2. Migration: copies held outside the primary range are checked against a lookup (one
   per owner range). If this peer is no longer among a file's holders, it makes sure
   every holder has the version, then drops its own copy.

Every file version carries its own number of copies k (chosen by its writer; 0 in the
record means the ring's default), so the successor at position i (1: the owner's first
successor) holds exactly the files with k > i: digests at that position cover only
those, and a copy held beyond its file's k is migrated away like any misplaced copy.

A round also measures replication health: for each primary file, how many of its
holders have the newest version; below its k it is degraded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic

from chord.ids import between_right
from chord.lookup import LookupFailed, LookupResult
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.placement import copies_wanted, holders_of
from chord.replication.placement import answer_predates, holders_found
from chord.replication.transport import FileTransport, H, LocalStore, TransferFailed
from chord.replication.versions import Role, Version, should_pull, should_send


@dataclass(frozen=True)
class Health:
    name: str
    version: int
    copies: int  # holders (this one included) with the newest version
    wanted: int


@dataclass(frozen=True)
class Event:
    """Something a round did or failed to do, for the adapter's log."""

    message: str
    problem: bool = False


@dataclass(frozen=True)
class Round:
    busy: bool  # it found work: a range that differed, a copy to move or drop, a failure
    health: tuple[Health, ...] | None  # None: no primary range yet (not joined)

    @property
    def degraded(self) -> tuple[Health, ...]:
        return tuple(h for h in self.health or () if h.copies < h.wanted)


@dataclass(frozen=True)
class _Range(Generic[H]):
    """Our primary range (start, end] as stored at one moment."""

    start: int
    end: int
    records: dict[str, H]
    digest: str


# name -> version -> intact copies of it (None: that version is a tombstone).
Tally = dict[str, dict[int, int | None]]


def _count(tally: Tally, version: Version, *, intact: bool | None = None) -> None:
    """Note one holder holding ``version``: a tombstone marks the version deleted; a
    damaged copy adds nothing (but the version is known)."""
    versions = tally.setdefault(version.name, {})
    if version.deleted:
        versions[version.version] = None
        return
    seen = versions.get(version.version, 0)
    if seen is not None:
        healthy = not version.damaged if intact is None else intact
        versions[version.version] = seen + (1 if healthy else 0)


class Keeper(Generic[H]):
    """The replication rules of one peer, run over a FileTransport and a LocalStore."""

    def __init__(
        self,
        node: ChordNode,
        store: LocalStore[H],
        files: FileTransport[H],
        copies: int,
        on_event: Callable[[Event], None] = lambda _: None,
    ) -> None:
        self.node = node
        self.store = store
        self.files = files
        self.copies = copies  # the ring's default k, for versions that carry none
        self.on_event = on_event
        self._busy = False

    def wanted(self, version: Version) -> int:
        """How many holders ``version`` has (its own k, else the ring's default)."""
        return copies_wanted(version.replicas, self.copies)

    # ------------------------------------------------------------------ round
    def run_once(self) -> Round:
        """One round of anti-entropy for our primary range, then migration."""
        self._busy = False
        state = self.node.state()
        if not state.joined or state.predecessor is None:
            return Round(False, None)
        start, end = state.predecessor.id, self.node.me.id
        tally: Tally = {}
        view = self._snapshot(start, end)
        most = max([self.copies, *(self.wanted(r) for r in view.records.values())])
        for position, peer in enumerate(holders_of(state.successors, most - 1), start=1):
            if self._reconcile(peer, view, tally, position):
                view = self._snapshot(start, end)  # we pulled: our range changed
        health = self._health(view, tally)
        self._migrate(start, end)
        return Round(self._busy, health)

    def hand_off(self, successor: NodeRef) -> None:
        """Before a graceful leave: make sure the successor has our primary range."""
        state = self.node.state()
        if state.predecessor is None or successor == self.node.me:
            return
        view = self._snapshot(state.predecessor.id, self.node.me.id)
        self._reconcile(successor, view, {}, position=0)  # it takes every file over

    def _snapshot(self, start: int, end: int) -> _Range[H]:
        """Our primary range as stored now, read once per round rather than once per
        replica holder (and re-read only after a pull changes it)."""
        records = {r.name: r for r in self.store.in_range(start, end)}
        return _Range(start, end, records, self.store.digest(start, end))

    def _digest(self, view: _Range[H], position: int) -> str:
        if position == 0:
            return view.digest
        return self.store.digest(view.start, view.end, lambda r: self.wanted(r) > position)

    # ---------------------------------------------------------- anti-entropy
    def _reconcile(self, peer: NodeRef, view: _Range[H], tally: Tally, position: int) -> bool:
        """Make ``peer`` (``position`` places after us) hold exactly the versions of our
        primary range that it should (files with k > position), newest wins both ways,
        and note in ``tally`` which version of each file it holds afterwards. Returns
        whether we pulled anything (our own range changed). Position 0 (a hand-off to
        the peer taking our range over) covers every file."""
        held_there = {n: r for n, r in view.records.items() if self.wanted(r) > position}
        try:
            if self.files.digest(peer, view.start, view.end, position) == self._digest(
                view, position
            ):
                for record in held_there.values():
                    _count(tally, record)
                return False
            self._busy = True  # the range differs there
            theirs = {v.name: v for v in self.files.list_range(peer, view.start, view.end)}
        except TransferFailed:
            return False  # unreachable: stabilize replaces it, and the next round retries
        mine: dict[str, Version] = dict(view.records)
        pulled = False
        for name in sorted(set(mine) | set(theirs)):
            held: Version | None = theirs.get(name)
            try:
                held, pulled_now = self._reconcile_file(
                    peer, held, view.records.get(name), name in held_there, mine, tally
                )
                pulled = pulled or pulled_now
            except TransferFailed as exc:
                self._event(f"could not reconcile {name} with {peer.address}: {exc}", True)
                self._busy = True
            counted = mine.get(name) or held
            if held is not None and counted is not None and self.wanted(counted) > position:
                _count(tally, held)
        return pulled

    def _reconcile_file(
        self,
        peer: NodeRef,
        held: Version | None,
        ours: H | None,
        belongs_there: bool,
        mine: dict[str, Version],
        tally: Tally,
    ) -> tuple[Version | None, bool]:
        """One file of a differing range: pull theirs, push ours, or drop their older
        copy. Returns what ``peer`` still holds that is not yet counted, and whether we
        pulled."""
        if should_pull(held, ours):
            assert held is not None
            # The owner keeps every file of its range, whatever its k.
            mine[held.name] = self.files.pull(peer, held, Role.PRIMARY)
            self._event(f"pulled {held.name} v{held.version} from {peer.address}")
            return held, True
        if should_send(held, ours) and belongs_there:
            assert ours is not None  # missing or older where it belongs: send ours
            self.files.push(peer, ours, Role.REPLICA)
            self._event(f"pushed {ours.name} v{ours.version} to {peer.address}")
            _count(tally, ours, intact=True)
            return None, False
        if held is not None and ours is not None and held.version < ours.version:
            # An older copy beyond this file's count (an overwrite lowered it).
            self.files.drop_older(held.name, ours.version, [peer])
            self._event(f"dropped old {held.name} v{held.version} on {peer.address}")
            return None, False
        return held, False

    def _health(self, view: _Range[H], tally: Tally) -> tuple[Health, ...]:
        """Copies of the newest version of every file in our primary range, ours and the
        replica holders' (a file we lack ourselves still counts: it is degraded)."""
        mine = view.records
        health: list[Health] = []
        for name in sorted(set(mine) | set(tally)):
            versions = dict(tally.get(name, {}))
            record = mine.get(name)
            if record is not None:
                _count({name: versions}, record)
            newest = max(versions)
            live = versions[newest]
            if live is None:  # the newest version is a tombstone: nothing to keep alive
                continue
            # A file we lack (a pull failed) is judged by the default k until we have it.
            wanted = self.wanted(record) if record is not None else self.copies
            health.append(Health(name, newest, live, wanted))
        return tuple(health)

    # -------------------------------------------------------------- migration
    def _migrate(self, start: int, end: int) -> None:
        """Hand off and drop copies this peer no longer has to hold."""
        outside = [r for r in self.store.held() if not between_right(start, r.key, end)]
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
            self._place(record, holders_found(found, self.wanted(record)))

    def _place(self, record: H, holders: tuple[NodeRef, ...]) -> None:
        """Keep ``record`` as a replica if this peer is one of ``holders``; else hand it
        to every holder and drop it."""
        me = self.node.me
        if me in holders and self._superseded(record, holders, holders.index(me)):
            self._busy = True
            self.store.drop(record.name)
            self._event(f"dropped {record.name} v{record.version}: superseded, fewer copies")
            return
        if me in holders or answer_predates(me, holders, self.wanted(record)):
            if self.store.role_of(record) != Role.REPLICA:
                self.store.set_role(record.name, Role.REPLICA)
            return
        self._busy = True  # a copy this peer should not keep: handed off, then dropped
        if self._all_hold(record, holders):
            self.store.drop(record.name)
            self._event(
                f"dropped {record.name}: now held by {', '.join(h.address for h in holders)}"
            )

    def _superseded(self, record: H, holders: tuple[NodeRef, ...], position: int) -> bool:
        """Our copy sits at ``position`` among the holders its own count names, beyond
        the ring's default count, where the owner's anti-entropy does not reach unless
        a file needs it: is there a newer version there that no longer wants a copy
        here (an overwrite lowered the count while we were unreachable)? Asked of the
        owner, and only for such copies (rare: files kept above the default count)."""
        if position < self.copies:
            return False  # the owner's anti-entropy visits us and drops it if so
        owner = holders[0]
        answer = self.files.stat_all(record.name, [owner]).get(owner)
        return (
            answer is not None
            and answer.version > record.version
            and self.wanted(answer) <= position
        )

    def _all_hold(self, record: H, holders: tuple[NodeRef, ...]) -> bool:
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
                self.files.push(peer, record, Role.at(index))
            except TransferFailed:
                return False
        return True

    def _event(self, message: str, problem: bool = False) -> None:
        self.on_event(Event(message, problem))
