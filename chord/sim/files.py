"""Files in the simulator: the replication core over in-memory stores.

Every peer of a :class:`~chord.sim.network.SimNetwork` gets a :class:`SimStore` (its
disk: it outlives a crash, so a restarted address comes back with what it held) and a
:class:`~chord.replication.Keeper` running the same rules as the real peers' replicator,
over :class:`SimFileTransport`, which reaches other stores only where the network
delivers (crashed peers and the far side of a partition raise TransferFailed).
:class:`SimFileClient` writes and deletes as services.files.client.FileClient does:
the same lookups, the same plan (chord.replication.writes), a two-phase write that
commits only when the quorum staged and nobody refused.

Contents are modelled by their SHA-256 only; no bytes are kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from chord.ids import between_right
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.placement import copies_wanted, replica_indexes
from chord.replication import (
    Decision,
    Event,
    Keeper,
    Refusal,
    Role,
    TransferFailed,
    Version,
    decide,
    delete_refusal,
    holders_found,
    newest,
    plan_delete,
    plan_write,
    store_refusal,
    write_quorum,
)
from chord.replication.digest import range_digest
from chord.sim.network import SimNetwork
from chord.transport import PeerUnreachable


def content_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@dataclass(frozen=True)
class SimCopy:
    """One version of one file as one simulated peer holds it."""

    name: str
    key: int
    version: int
    sha256: str  # "" for a tombstone
    deleted: bool
    replicas: int = 0
    role: Role = Role.PRIMARY
    damaged: bool = False


def as_copy(version: Version, role: Role) -> SimCopy:
    return SimCopy(
        version.name, version.key, version.version, version.sha256, version.deleted,
        version.replicas, role, version.damaged,
    )  # fmt: skip


@dataclass
class SimStore:
    """One peer's copies (LocalStore[SimCopy]); the storage engine's rules on what it
    accepts, from the replication core."""

    copies: dict[str, SimCopy] = field(default_factory=dict)

    def in_range(self, start: int, end: int) -> list[SimCopy]:
        return sorted(
            (c for c in self.copies.values() if between_right(start, c.key, end)),
            key=lambda c: (c.key, c.name),
        )

    def digest(self, start: int, end: int, include: Callable[[SimCopy], bool] | None = None) -> str:
        return range_digest(c for c in self.in_range(start, end) if include is None or include(c))

    def held(self) -> list[SimCopy]:
        return sorted(self.copies.values(), key=lambda c: c.name)

    def role_of(self, record: SimCopy) -> Role:
        return record.role

    def set_role(self, name: str, role: Role) -> None:
        self.copies[name] = replace(self.copies[name], role=role)

    def drop(self, name: str) -> None:
        self.copies.pop(name, None)

    def drop_below(self, name: str, version: int) -> None:
        held = self.copies.get(name)
        if held is not None and held.version < version:
            del self.copies[name]

    def refusal(self, copy: SimCopy) -> str | None:
        """Why this store would refuse ``copy`` (None: it would take it)."""
        held = self.copies.get(copy.name)
        if copy.deleted:
            return delete_refusal(held, copy.version)
        return store_refusal(held, copy.version, copy.sha256)

    def accept(self, copy: SimCopy) -> SimCopy:
        """Store ``copy`` (an idempotent re-store only updates the role), or raise
        TransferFailed as a refusing holder answers."""
        problem = self.refusal(copy)
        if problem is not None:
            raise TransferFailed(problem)
        held = self.copies.get(copy.name)
        if held is not None and held.version == copy.version and held.deleted == copy.deleted:
            copy = replace(held, role=copy.role)
        self.copies[copy.name] = copy
        return copy


@dataclass
class SimFiles:
    """The file layer of a simulated ring: a store per address, a keeper per peer."""

    net: SimNetwork
    copies: int = 3  # the ring's default k
    stores: dict[str, SimStore] = field(default_factory=dict)
    keepers: dict[str, Keeper[SimCopy]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    keep_events: bool = False

    def store(self, address: str) -> SimStore:
        return self.stores.setdefault(address, SimStore())

    def keeper(self, node: ChordNode) -> Keeper[SimCopy]:
        """The keeper of ``node`` (a new one for a restarted address: same store), wired
        as services.peer wires the replicator: hand-off before a graceful leave."""
        keeper = self.keepers.get(node.me.address)
        if keeper is None or keeper.node is not node:
            keeper = Keeper(
                node,
                self.store(node.me.address),
                SimFileTransport(self, node.me.address),
                self.copies,
                self._note,
            )
            self.keepers[node.me.address] = keeper
            node.hooks.before_leave = keeper.hand_off
        return keeper

    def _note(self, event: Event) -> None:
        if self.keep_events:
            self.events.append(event)

    def reach(self, origin: str | None, peer: NodeRef) -> SimStore:
        """``peer``'s store if the network delivers from ``origin`` to it."""
        try:
            self.net.target(peer, origin)
        except PeerUnreachable as exc:
            raise TransferFailed(str(exc)) from exc
        return self.store(peer.address)

    def run_round(self) -> bool:
        """One replication round on every live member; whether any found work."""
        busy = False
        for node in self.net.members():
            busy = self.keeper(node).run_once().busy or busy
        return busy

    # ----------------------------------------------------------- ground truth
    def ideal_holders(self, key: int, copies: int) -> list[str]:
        """Addresses of the ``copies`` live members that should hold ``key``."""
        members = sorted(self.net.members(), key=lambda n: n.me.id)
        ids = [n.me.id for n in members]
        return [members[i].me.address for i in replica_indexes(ids, key, copies)]

    def holding(self, name: str, live_only: bool = True) -> dict[str, SimCopy]:
        """address -> the copy of ``name`` it holds (live addresses only, by default)."""
        return {
            address: store.copies[name]
            for address, store in sorted(self.stores.items())
            if name in store.copies and (not live_only or address in self.net.alive)
        }

    def newest_held(self, name: str) -> SimCopy | None:
        """The newest version of ``name`` any live peer holds."""
        return newest(self.holding(name).values())

    def misplaced(self, names: Iterable[str]) -> list[str]:
        """Files not held by exactly their k live holders at their newest version."""
        problems = []
        for name in names:
            top = self.newest_held(name)
            if top is None:
                continue
            want = set(self.ideal_holders(top.key, copies_wanted(top.replicas, self.copies)))
            have = self.holding(name)
            right = {a for a, c in have.items() if c.version == top.version}
            if right != want or set(have) != want:
                problems.append(
                    f"{name} v{top.version}: want {sorted(want)}, newest on {sorted(right)}, "
                    f"held on {sorted(have)}"
                )
        return problems


class SimFileTransport:
    """FileTransport[SimCopy] of the peer at ``origin``."""

    def __init__(self, files: SimFiles, origin: str | None) -> None:
        self.files = files
        self.origin = origin

    @property
    def _mine(self) -> SimStore:
        assert self.origin is not None
        return self.files.store(self.origin)

    def stat_all(self, name: str, peers: Sequence[NodeRef]) -> dict[NodeRef, Version | None]:
        answers: dict[NodeRef, Version | None] = {}
        for peer in peers:
            try:
                answers[peer] = self.files.reach(self.origin, peer).copies.get(name)
            except TransferFailed:
                continue
        return answers

    def digest(self, peer: NodeRef, start: int, end: int, position: int) -> str:
        default = self.files.copies
        return self.files.reach(self.origin, peer).digest(
            start, end, lambda c: copies_wanted(c.replicas, default) > position
        )

    def list_range(self, peer: NodeRef, start: int, end: int) -> list[Version]:
        return list(self.files.reach(self.origin, peer).in_range(start, end))

    def push(self, peer: NodeRef, record: SimCopy, role: Role) -> None:
        self.files.reach(self.origin, peer).accept(replace(record, role=role))

    def pull(self, peer: NodeRef, version: Version, role: Role) -> SimCopy:
        self.files.reach(self.origin, peer)  # the bytes come from there
        return self._mine.accept(as_copy(version, role))

    def drop_older(self, name: str, version: int, peers: Iterable[NodeRef]) -> None:
        for peer in peers:
            try:
                self.files.reach(self.origin, peer).drop_below(name, version)
            except TransferFailed:
                continue


class WriteFailed(Exception):
    """The write or delete was not acknowledged; ``decision`` says why."""

    def __init__(self, decision: str, detail: str = "") -> None:
        super().__init__(f"{decision}: {detail}" if detail else decision)
        self.decision = decision


class SimFileClient:
    """Writes and deletes through ``entry``'s lookups, as FileClient does for a peer."""

    def __init__(self, files: SimFiles, write_quorum: int | None = None) -> None:
        self.files = files
        self.write_quorum = write_quorum

    def _locate(self, entry: ChordNode, name: str, copies: int) -> tuple[int, tuple[NodeRef, ...]]:
        key = self.files.net.ring.hash(name)
        found = entry.lookup(key, confirm_owner=True)  # LookupFailed: not acknowledged
        return key, holders_found(found, copies)

    def _newest(self, entry: ChordNode, name: str, copies: int) -> Version | None:
        _, holders = self._locate(entry, name, copies)
        answers = SimFileTransport(self.files, entry.me.address).stat_all(name, holders)
        return newest(answers.values())

    def put(
        self,
        entry: ChordNode,
        name: str,
        content: bytes,
        *,
        overwrite: bool = False,
        replicas: int | None = None,
    ) -> SimCopy:
        """The acknowledged version, or WriteFailed (then no holder keeps it)."""
        default = self.files.copies
        held = self._newest(entry, name, max(replicas or 0, default))
        plan = plan_write(held, replicas=replicas, default=default, tentative=overwrite)
        key, holders = self._locate(entry, name, plan.copies)
        quorum = write_quorum(self.write_quorum, plan.copies, len(holders))
        copy = SimCopy(name, key, plan.version, content_hash(content), False, plan.copies)
        staged, refusals = self._stage(entry, copy, holders)
        decision = decide(refusals, len(staged), quorum)
        if decision is not Decision.COMMIT:
            raise WriteFailed(decision.value, f"{len(staged)} of {quorum} staged")
        for index, store in staged:
            store.accept(replace(copy, role=Role.at(index)))
        if held is not None:  # an overwrite that lowered the count releases the rest
            _, previous = self._locate(entry, name, copies_wanted(held.replicas, default))
            SimFileTransport(self.files, entry.me.address).drop_older(
                name, plan.version, previous[len(holders) :]
            )
        return copy

    def _stage(
        self, entry: ChordNode, copy: SimCopy, holders: tuple[NodeRef, ...]
    ) -> tuple[list[tuple[int, SimStore]], set[Refusal]]:
        """Phase one: which holders would store ``copy``, and who refused it."""
        staged: list[tuple[int, SimStore]] = []
        refusals: set[Refusal] = set()
        for index, peer in enumerate(holders):
            try:
                store = self.files.reach(entry.me.address, peer)
            except TransferFailed:
                continue
            if store.refusal(copy) is not None:
                refusals.add(Refusal.CONFLICT)
            else:
                staged.append((index, store))
        return staged, refusals

    def delete(self, entry: ChordNode, name: str) -> SimCopy:
        """The tombstone, acknowledged once one holder stored it (as FileClient.delete:
        anti-entropy spreads it to the others)."""
        default = self.files.copies
        plan = plan_delete(self._newest(entry, name, default), default)
        if plan is None:
            raise WriteFailed("not-found")
        key, holders = self._locate(entry, name, plan.copies)
        tombstone = SimCopy(name, key, plan.version, "", True, plan.copies)
        done = 0
        for index, peer in enumerate(holders):
            try:
                self.files.reach(entry.me.address, peer).accept(
                    replace(tombstone, role=Role.at(index))
                )
                done += 1
            except TransferFailed:
                continue
        if not done:
            raise WriteFailed("unavailable", f"no holder of {name!r} answered")
        return tombstone
