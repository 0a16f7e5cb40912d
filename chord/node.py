"""One Chord peer's state and the corrected maintenance protocol (Zave, TSE 2017).

Two kinds of methods:

* ``handle_*`` answer other peers. They read and write local state only and never
  make a call of their own, so a server thread can never wait on the network, nor
  on a call that comes back to this peer.
* ``create`` / ``join`` / ``stabilize`` / ``fix_next_finger`` / ``check_predecessor``
  / ``leave`` / ``lookup`` are driven by the owner of the node (the maintenance loop
  or the simulator). They call other peers through the transport, and take the
  state guard only around local reads and writes, never across a call.

``guard`` is any context manager: a plain ``threading.Lock`` in a real peer (not
re-entrant: no path takes it twice, see "Threads" below), a no-op in the
single-threaded simulator.

Threads. In a real peer, handlers run on gRPC threads and the steps on maintenance
threads, all at once. The discipline that keeps them apart:

* Values, not structures: the successor list is a tuple and the finger table an
  immutable :class:`~chord.fingers.FingerTable`, each replaced whole. A reader that
  takes one reference holds a consistent snapshot, so handlers route without the
  guard.
* Every write of a shared field happens under the guard, and so does every
  read-then-write (a read of the predecessor followed by its replacement, say).
* The one mutable structure, the one-hop table (``membership``), is read and written
  only under the guard.
* Derived state (the routing index) is cached together with the snapshots it was
  built from, in one reference: it is current exactly when those snapshots are.
* Nothing calls out while holding the guard: no RPC, no hook, and no method that
  takes the guard itself. That is why a non-re-entrant lock suffices; every ``with
  self._guard`` block below reads or writes fields and calls pure functions only
  (tests/unit/test_node_threads.py drives every path under a guard that fails on
  re-entry).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass
from typing import NamedTuple

from chord.fingers import FingerTable, KeyPredecessor, RoutingIndex
from chord.ids import Ring, between, between_right
from chord.lookup import LookupFailed, LookupMachine, LookupResult, drive, iterative_lookup
from chord.membership import DEFAULT_TTL, Membership
from chord.node_ref import NodeRef
from chord.refusals import Refusal
from chord.successors import successor_list
from chord.transport import (
    Clock,
    NotReady,
    PeerState,
    PeerUnreachable,
    Refused,
    StepAnswer,
    Transport,
)

# Closer peers offered per routing step. With 8, a lookup survives even half the ring
# failing at once (4 left ~10 % of lookups stranded in the failures experiment at p = 0.5).
STEP_CANDIDATES = 8
# Owner candidates a step offers from the one-hop table: the first is the owner if the
# table is current; the others cover it having died unnoticed (each one a timeout).
TABLE_OWNERS = 4
# Members just before the key a step offers from the table, nearest first: the key's
# predecessor if the table is current, and the next ones if it died unnoticed.
TABLE_BEFORE = 3


class JoinFailed(Exception):
    """Joining did not complete (seed unreachable, or every path to our place failed)."""


class _PredecessorDead(Exception):
    def __init__(self, peer: NodeRef) -> None:
        super().__init__(f"predecessor-to-be {peer.address} did not answer")
        self.peer = peer


class _CachedIndex(NamedTuple):
    """A routing index and the exact snapshots it was built from (its cache key)."""

    successors: tuple[NodeRef, ...]
    fingers: FingerTable
    routing: RoutingIndex


@dataclass(frozen=True)
class NodeState:
    """A consistent snapshot of one peer, for the REST API, tests and invariants."""

    me: NodeRef
    predecessor: NodeRef | None
    successors: tuple[NodeRef, ...]
    fingers: tuple[NodeRef | None, ...]
    finger_starts: tuple[int, ...]
    joined: bool
    last_stabilized: float | None

    @property
    def successor(self) -> NodeRef:
        return self.successors[0] if self.successors else self.me


@dataclass
class NodeHooks:
    """Seams for the layers above the protocol (the storage engine hands keys off here)."""

    before_leave: Callable[[NodeRef], None] | None = None  # called with the successor
    on_neighbours_changed: Callable[[NodeState], None] | None = None
    # The view changed, or a handler found work for the maintenance steps (a joiner to
    # adopt, a challenger to check): called outside the guard, from any thread.
    on_change: Callable[[], None] | None = None


class ChordNode:
    def __init__(
        self,
        me: NodeRef,
        ring: Ring,
        transport: Transport,
        clock: Clock,
        successors: int = 8,
        guard: AbstractContextManager[object] | None = None,
        max_hops: int | None = None,
        hooks: NodeHooks | None = None,
        one_hop: bool = False,
        membership_ttl: float = DEFAULT_TTL,
    ) -> None:
        """``one_hop``: keep the whole membership (chord.membership) and offer the owner
        it names in every routing step, so lookups take one hop when it is current."""
        if me.id != ring.hash(me.address):
            raise ValueError(f"{me.address}: ID is not SHA-1 of the advertised address")
        if successors < 1:
            raise ValueError("successor list length must be at least 1")
        self.me = me
        self.ring = ring
        self.transport = transport
        self.clock = clock
        self.r = successors
        self.max_hops = max_hops if max_hops is not None else max(2 * ring.bits, 32)
        self.hooks = hooks or NodeHooks()
        self._guard: AbstractContextManager[object] = guard or nullcontext()
        # Shared fields (see "Threads" in the module doc). "guard" = written under the
        # guard; readers take a snapshot with one reference read, or the guard.
        self._fingers = FingerTable(ring, me)  # guard; an immutable table, swapped whole
        self._successors: tuple[NodeRef, ...] = ()  # guard; a tuple, swapped whole
        self._predecessor: NodeRef | None = None  # guard
        self._challenger: NodeRef | None = None  # guard; notified us, lost to a live predecessor
        # guard. The predecessor, if it asked for our state (its stabilize) since the
        # last check_predecessor: proof of life that spares a Ping.
        self._predecessor_heard: NodeRef | None = None
        self._joined = False  # guard
        self._last_stabilized: float | None = None  # guard
        # Grows when the view changes (see ``changes``). Bumped from any thread without
        # the guard: a lost increment among simultaneous ones still leaves it grown.
        self._changes = 0
        # The routing index with the snapshots it was built from: one reference, written
        # by whichever handler rebuilt it last, without the guard (see _routing_index).
        self._index = _CachedIndex((), self._fingers, RoutingIndex(ring, me, (), ()))
        # guard, like _fingers (mutable: only ever touched under the guard).
        self.membership = Membership(me, ring.size, membership_ttl) if one_hop else None
        # Owned by the single thread that runs the step (fix_fingers, members gossip).
        self._next_finger = 0
        self._gossip_next = 0  # gossip rounds so far: picks whom to pull from next

    # ------------------------------------------------------------------ reads
    @property
    def successor(self) -> NodeRef:
        successors = self._successors
        return successors[0] if successors else self.me

    @property
    def changes(self) -> int:
        """Grows whenever this peer's view changes: a neighbour, a challenger for the
        predecessor's place, a finger. The maintenance loop backs off while it stays the
        same (nothing to repair) and returns to full speed when it moves."""
        return self._changes + self._fingers.version

    @property
    def joined(self) -> bool:
        return self._joined

    def state(self) -> NodeState:
        with self._guard:
            return NodeState(
                me=self.me,
                predecessor=self._predecessor,
                successors=self._successors,
                fingers=self._fingers.entries(),
                finger_starts=self._fingers.starts,
                joined=self._joined,
                last_stabilized=self._last_stabilized,
            )

    def describe(self) -> str:
        return self.me.describe(self.ring)

    # ------------------------------------------------------ handlers (no RPCs)
    def handle_step(self, key: int, exclude: frozenset[int] = frozenset()) -> StepAnswer:
        """One routing step from local tables, offering none of the peers in ``exclude``
        (the caller found them dead). A key in (predecessor, me] is ours: we say so,
        which is how a verified lookup ends. Successor-list entries route too: if the
        key falls before the first of them, this peer knows the owner exactly."""
        if not self._joined:
            self._require_joined()
        # No guard: the index is built from immutable snapshots (successors and fingers
        # are replaced whole), and routing only needs a recent view.
        index = self._routing_index()
        if not index.successors:
            return StepAnswer(True, (self.me,), self.me)
        predecessor = self._predecessor
        # Ours if the key is in (predecessor, me], or if the caller found our predecessor
        # dead: a caller names it only when it checked the peers from the key to us
        # (routing callers name dead peers between us and the key, which include our
        # predecessor only when the key is ours anyway).
        if predecessor is not None and (
            between_right(predecessor.id, key, self.me.id) or predecessor.id in exclude
        ):
            return StepAnswer(True, (self.me, *index.successors), predecessor)
        route = index.route(key, STEP_CANDIDATES, exclude)
        if isinstance(route, KeyPredecessor):
            return StepAnswer(True, route.owners, self.me)
        closer, beyond = route.closer, route.beyond
        hints: tuple[NodeRef, ...] = ()
        if self.membership is not None:
            closer, hints = self._table_candidates(key, exclude, closer, bool(beyond))
        return StepAnswer(False, closer, predecessor, beyond, hints)

    def _table_candidates(
        self, key: int, exclude: frozenset[int], closer: tuple[NodeRef, ...], listed: bool
    ) -> tuple[tuple[NodeRef, ...], tuple[NodeRef, ...]]:
        """The one-hop table's view added to a routing answer: the member just before
        the key leads the closer peers (it is the closest we know), and unless our
        successor list reaches the key (``listed``), the members from its owner on are
        the hints (a verified lookup asks them next; only the owner's own answer counts:
        the table is no stretch of the ring, and may miss the owner altogether)."""
        assert self.membership is not None
        with self._guard:
            _, after = self.membership.around(key, TABLE_OWNERS + len(exclude))
            before = self.membership.behind(key, TABLE_BEFORE, exclude)
        extra = [n for n in before if n not in closer]
        if extra:
            size = self.ring.size
            closer = tuple(
                sorted((*extra, *closer), key=lambda n: (key - n.id) % size)[:STEP_CANDIDATES]
            )
        if listed:
            return closer, ()
        return closer, tuple(n for n in after if n.id not in exclude)[:TABLE_OWNERS]

    def owns(self, key: int) -> bool:
        """Whether ``key`` is ours as we see it now: in (predecessor, me], or we are
        alone. False while our predecessor is unknown (we cannot tell)."""
        if not self._joined:
            return False
        if not self._successors:
            return True
        predecessor = self._predecessor
        return predecessor is not None and between_right(predecessor.id, key, self.me.id)

    def owner_candidates(self, key: int, count: int = 2) -> tuple[NodeRef, ...]:
        """Who owns ``key``, from our own tables and without a call: ourselves if we
        do; else the owner our successor list or one-hop table names, then the peers
        after it (a caller confirms with the owner, or takes a full lookup)."""
        if self.owns(key):
            return (self.me, *self._successors)[:count]
        answer = self.handle_step(key)
        return (answer.nodes if answer.done else answer.owners or answer.hints)[:count]

    def handle_state(self, caller: NodeRef | None = None) -> PeerState:
        self._require_joined()
        with self._guard:
            if caller is not None and caller == self._predecessor:
                self._predecessor_heard = caller  # it stabilizes: alive (check_predecessor)
            return PeerState(self.me, self._predecessor, self._successors)

    def handle_join(self, joiner: NodeRef, bits: int) -> tuple[NodeRef, ...]:
        """Admit ``joiner`` as our new successor: check who it claims to be, then hand it
        our successor list to copy (the new peer must never know a single successor)."""
        self._require_joined()
        if bits != self.ring.bits:
            raise Refused(
                Refusal.RING_MISMATCH, f"this ring uses m={self.ring.bits} bits, not {bits}"
            )
        self._check_identity(joiner)
        with self._guard:
            successors = self._successors
            for known in (self.me, *successors):
                if known.id == joiner.id and known.address != joiner.address:
                    raise Refused(
                        Refusal.ID_COLLISION,
                        f"ID {joiner.hex} is already in the ring at {known.address}",
                    )
        self._heard_from(joiner)
        # A new successor is on its way: stabilize at full speed to adopt it soon,
        # however far the maintenance loop had backed off.
        self._note_change()
        return (*successors, self.me)[: self.r]

    def handle_notify(self, node: NodeRef) -> None:
        """Rectify: accept ``node`` as predecessor if it is closer than the current one.
        Otherwise remember it; check_predecessor replaces the current predecessor with
        it only if the current one turns out dead (that ping is not done here: a
        handler makes no calls)."""
        self._require_joined()
        self._check_identity(node)
        if node == self.me:
            return
        self._heard_from(node)
        with self._guard:
            current = self._predecessor
            adopted = current is None or between(current.id, node.id, self.me.id)
            if adopted:
                self._predecessor = node
                self._challenger = None
            challenged = not adopted and node != current and node != self._challenger
            if challenged:
                self._challenger = node
        if adopted:
            self._neighbours_changed()
        elif challenged:
            self._note_change()  # check_predecessor has work to do

    def handle_leave(
        self, leaving: NodeRef, predecessor: NodeRef | None, successors: tuple[NodeRef, ...]
    ) -> None:
        """A neighbour is leaving gracefully: forget it now rather than after a timeout.
        Nothing it names is adopted unchecked: its predecessor only becomes our
        challenger, which check_predecessor pings before adopting."""
        with self._guard:
            if self._predecessor == leaving:
                self._predecessor = None
                if predecessor is not None and predecessor != self.me:
                    self._challenger = predecessor
            self._successors = tuple(s for s in self._successors if s != leaving)
            self._fingers = self._fingers.forget(leaving)
            if self.membership is not None:
                self.membership.forget(leaving, self.clock.now())
        self._neighbours_changed()

    def handle_ping(self) -> NodeRef:
        self._require_joined()
        return self.me

    # ------------------------------------------- maintenance (makes RPCs)
    def create(self) -> None:
        with self._guard:
            self._successors = ()
            self._predecessor = None
            self._joined = True
        self._neighbours_changed()

    def join(self, seed_address: str) -> None:
        """Join through any member. Raises :class:`JoinFailed` (worth retrying) or
        :class:`Refused` (this peer may not join: retrying will not help)."""
        seed = self.transport.ping(NodeRef.for_address(self.ring, seed_address))
        predecessor = self._find_predecessor(self.me.id, seed)
        dead: set[int] = set()
        for _ in range(self.max_hops):
            if predecessor == self.me:
                raise JoinFailed("the ring still routes to a previous run of this peer; retrying")
            try:
                predecessor, copied = self._admission(predecessor, dead)
                break
            except _PredecessorDead as gone:
                # It crashed and its neighbours have not noticed yet: the peer before
                # it is our predecessor-to-be (or is closer to it).
                dead.add(gone.peer.id)
                predecessor = self._find_predecessor(gone.peer.id, seed)
        else:
            raise JoinFailed("could not find a live predecessor; retrying")
        # Entries before us in the copied list are peers found dead on the way, and a
        # restarted peer may find its own old entry at the head of the list.
        chain = [
            n for n in copied if n != self.me and not between(predecessor.id, n.id, self.me.id)
        ]
        with self._guard:
            self._successors = successor_list(self.me, chain, self.r) or (predecessor,)
            self._predecessor = predecessor
            self._joined = True
        self._notify_successor()
        self._neighbours_changed()
        self._pull_members(predecessor)

    def _pull_members(self, peer: NodeRef) -> bool:
        """Merge ``peer``'s one-hop table into ours (after a join, so that a joiner
        does not route through fingers alone while gossip fills its table); False if
        it did not answer."""
        if self.membership is None:
            return True
        try:
            entries = self.transport.get_members(peer)
        except PeerUnreachable:
            return False
        with self._guard:
            now = self.clock.now()
            self.membership.heard_from(peer, now)
            self.membership.merge(entries, now)
        return True

    def _find_predecessor(self, key: int, seed: NodeRef) -> NodeRef:
        try:
            found = iterative_lookup(
                self.ring, key, [seed], self.transport.find_successor_step, self.max_hops
            )
        except LookupFailed as exc:
            raise JoinFailed(str(exc)) from exc
        return found.predecessor

    def _admission(
        self, predecessor: NodeRef, dead: set[int]
    ) -> tuple[NodeRef, tuple[NodeRef, ...]]:
        """Ask our predecessor-to-be to admit us. The lookup named it from the
        responder's view, which may be stale; if its own list shows a live peer between
        it and us, that peer is the real predecessor: ask it instead, so the copied list
        is always ordered from our position. Raises _PredecessorDead for a dead one."""
        for _ in range(self.max_hops):
            try:
                copied = self.transport.join(predecessor, self.me, self.ring.bits)
            except PeerUnreachable:
                raise _PredecessorDead(predecessor) from None
            closer = [
                n
                for n in copied
                if n != self.me and n.id not in dead and between(predecessor.id, n.id, self.me.id)
            ]
            if not closer:
                return predecessor, copied
            predecessor = closer[-1]
        raise JoinFailed("could not find our place in the ring; retrying")

    def stabilize(self) -> None:
        """Refresh the successor list from the first live successor, adopt a closer
        successor if that peer knows one (only after it answers), then notify."""
        for _ in range(self.r + 1):
            head = self.successor
            if head == self.me:
                self._stabilize_alone()
                return
            try:
                head_state = self.transport.get_state(head, caller=self.me)
            except PeerUnreachable:
                self._drop_dead_successor(head)
                continue
            self._learn(head, head_state)
            chain = [head, *head_state.successors]
            candidate = head_state.predecessor
            if candidate is not None and between(self.me.id, candidate.id, head.id):
                try:
                    candidate_state = self.transport.get_state(candidate)
                except PeerUnreachable:
                    pass
                else:
                    chain = [candidate, *candidate_state.successors]
            self._adopt_successors(chain)
            # A successor that already names us as its predecessor has nothing to learn
            # from a notify (rectify would change nothing): skip the RPC.
            if chain[0] != head or head_state.predecessor != self.me:
                self._notify_successor()
            return

    def check_predecessor(self) -> None:
        """Ping the predecessor (unless it called us since the last check and nobody
        challenges its place); if it is dead, replace it by the last challenger if that
        one answers, else forget it (the next notify fills it)."""
        with self._guard:
            current, challenger = self._predecessor, self._challenger
            heard, self._predecessor_heard = self._predecessor_heard, None
        if current is not None and heard == current and challenger is None:
            return  # it asked for our state since the last check: alive, no Ping needed
        if current is not None and self._is_alive(current):
            return
        replacement = challenger if challenger is not None and self._is_alive(challenger) else None
        with self._guard:
            if self._predecessor == current:
                self._predecessor = replacement
                self._challenger = None
                changed = current != replacement
            else:
                changed = False
        if changed:
            self._neighbours_changed()

    def fix_next_finger(self) -> bool:
        """Refresh one finger (and every following finger with the same owner). Returns
        whether that ended a pass over the whole table (the maintenance loop paces
        passes, not single lookups: a pass runs at full speed, the pauses between
        passes grow while the table stays the same)."""
        index = self._next_finger
        start = self._fingers.starts[index]
        try:
            found = self.lookup(start)
        except LookupFailed:
            self._next_finger = (index + 1) % self.ring.bits
            return self._next_finger == 0
        with self._guard:
            self._fingers, self._next_finger = self._fingers.fill(
                index, found.owner, found.predecessor
            )
            return self._next_finger == 0

    def fix_all_fingers(self) -> None:
        """A full pass over the table: about log2(N) lookups, thanks to FingerTable.fill."""
        self._next_finger = 0
        for _ in range(self.ring.bits):
            self.fix_next_finger()
            if self._next_finger == 0:
                return

    def lookup(
        self, key: int, *, forget_dead: bool = True, confirm_owner: bool = False
    ) -> LookupResult:
        """Find successor(key), starting from this peer's own tables (a local step).

        ``forget_dead``: drop fingers found dead on the way (off to measure a network
        whose repair is stopped). ``confirm_owner``: end only when the owner itself has
        answered that the key is in (its predecessor, itself] (chord.lookup, verified),
        as every client about to use the owner wants.
        """
        machine = self.start_lookup(key, confirm_owner=confirm_owner)
        return drive(machine, self._ask_step, self._forget_finger if forget_dead else None)

    def start_lookup(self, key: int, *, confirm_owner: bool = False) -> LookupMachine:
        """The lookup of :meth:`lookup` as a state machine, for a caller that sends the
        steps itself (the simulator's message events): a request marked ``local`` is
        answered by :meth:`handle_step`; report each remote answer to
        :meth:`step_answered` and each silence to :meth:`step_unanswered`."""
        return LookupMachine(
            self.ring, key, [self.me], self.max_hops, local=self.me, verify=confirm_owner
        )

    def step_answered(self, peer: NodeRef) -> None:
        """``peer`` answered a lookup step of ours: alive (news for the one-hop table)."""
        if self.membership is not None:
            self._heard_from(peer)

    def step_unanswered(self, peer: NodeRef) -> None:
        """``peer`` did not answer a lookup step of ours: no longer a finger."""
        self._forget_finger(peer)

    def leave(self) -> None:
        """Leave gracefully: stop routing, let storage hand keys off to the successor,
        then tell both neighbours so they do not wait for a timeout."""
        with self._guard:
            if not self._joined:
                return
            self._joined = False
            predecessor, successors = self._predecessor, self._successors
        successor = successors[0] if successors else self.me
        if self.hooks.before_leave is not None and successor != self.me:
            self.hooks.before_leave(successor)
        neighbours = [successor] if predecessor in (None, successor) else [successor, predecessor]
        for neighbour in neighbours:
            if neighbour is None or neighbour == self.me:
                continue
            with suppress(PeerUnreachable):  # if it is gone it will find out by itself
                self.transport.leave(neighbour, self.me, predecessor, successors)

    def merge_through(self, predecessor: NodeRef) -> bool:
        """Cross-join (chord.merge): be admitted by ``predecessor``, our predecessor in a
        ring that does not route our ID to us, without leaving our own ring. Our
        successor list becomes the nearest peers of both lists, our predecessor the
        closer one, and we notify our successor in that ring so that ``predecessor``
        adopts us at its next stabilize. False if it did not answer; raises
        :class:`Refused` if it refused us."""
        if predecessor == self.me or not self._joined:
            return False
        try:
            copied = self.transport.join(predecessor, self.me, self.ring.bits)
        except PeerUnreachable:
            return False
        theirs = [
            n for n in copied if n != self.me and not between(predecessor.id, n.id, self.me.id)
        ]
        with self._guard:
            if not self._joined:
                return False
            mine = self._successors
            candidates = sorted(
                {*mine, *theirs}, key=lambda n: self.ring.distance(self.me.id, n.id)
            )
            self._successors = successor_list(self.me, candidates, self.r) or (predecessor,)
            current = self._predecessor
            if current is None or between(current.id, predecessor.id, self.me.id):
                self._predecessor = predecessor
            changed = self._successors != mine or current != self._predecessor
        if theirs:
            with suppress(PeerUnreachable):  # it learns of us from predecessor otherwise
                self.transport.notify(theirs[0], self.me)
        self._notify_successor()
        if changed:
            self._neighbours_changed()
        return True

    def bootstrap(
        self,
        predecessor: NodeRef | None,
        successors: tuple[NodeRef, ...],
        fingers: tuple[NodeRef | None, ...],
    ) -> None:
        """Start from a known state instead of joining: the simulator's fast path to the
        ideal ring at large N (see chord.sim.network.SimNetwork.build_ideal)."""
        with self._guard:
            self._predecessor = predecessor
            self._successors = successor_list(self.me, successors, self.r)
            self._fingers = self._fingers.with_entries(fingers)
            self._joined = True

    # ------------------------------------------------------- one-hop table
    def known_members(self) -> tuple[NodeRef, ...]:
        """Every peer we know, ourselves included, in ring order from ID 0: the one-hop
        table, or without one our successor list."""
        with self._guard:
            if self.membership is not None:
                peers = {self.me, *self.membership.members()}
            else:
                peers = {self.me, *self._successors}
        return tuple(sorted(peers, key=lambda n: n.id))

    def handle_members(self) -> tuple[tuple[NodeRef, float], ...]:
        """Our one-hop table as (peer, age in seconds), ourselves first (age 0)."""
        self._require_joined()
        if self.membership is None:
            return ((self.me, 0.0),)
        with self._guard:
            return ((self.me, 0.0), *self.membership.entries(self.clock.now()))

    def exchange_members(self) -> bool:
        """Pull gossip: merge the table of one member, drawn by SHA-1 of our address and
        the round number (each peer its own order: peers started together must not all
        pull from the same member, or news spreads only as fast as that one learns it).
        A member that does not answer is dropped; one that does is heard from. Whether
        our table changed (the maintenance loop backs off while it does not)."""
        if self.membership is None or not self._joined:
            return False
        with self._guard:
            members = self.membership.members() or (self.successor,)
            before = self.membership.version
        turn = self.ring.hash(f"{self.me.address}#{self._gossip_next}")
        peer = members[turn % len(members)]
        self._gossip_next += 1
        if peer != self.me and not self._pull_members(peer):
            self._forget_finger(peer)
        with self._guard:
            return self.membership.version != before

    def _heard_from(self, peer: NodeRef) -> None:
        if self.membership is not None:
            with self._guard:
                self.membership.heard_from(peer, self.clock.now())

    def _learn(self, peer: NodeRef, state: PeerState) -> None:
        """``peer`` answered with its neighbourhood: it is alive, and names others."""
        if self.membership is None:
            return
        named = (*state.successors, *([state.predecessor] if state.predecessor else []))
        with self._guard:
            now = self.clock.now()
            self.membership.heard_from(peer, now)
            self.membership.hint(named, now)

    # ------------------------------------------------------------ internals
    def _routing_index(self) -> RoutingIndex:
        """The routing index for the current successors and fingers, rebuilt when either
        was replaced (identity tells: both are immutable and swapped whole).

        Called from many gRPC threads at once, without the guard. Each builds from the
        snapshots it read first and caches the index *with* them, in one reference. A
        thread that stores an index built from older snapshots than the current ones
        (a finger was filled meanwhile) stores them as its key too, so the next call
        sees the key differ from the current tables and rebuilds: an index is never
        taken for current unless it was built from the current tables.
        """
        successors, fingers = self._successors, self._fingers
        cached = self._index
        if cached.successors is successors and cached.fingers is fingers:
            return cached.routing
        index = RoutingIndex(self.ring, self.me, successors, fingers.entries())
        self._index = _CachedIndex(successors, fingers, index)
        return index

    def _require_joined(self) -> None:
        if not self._joined:
            raise NotReady(f"{self.me.address} is not a ring member (joining or leaving)")

    def _check_identity(self, node: NodeRef) -> None:
        if node.id != self.ring.hash(node.address):
            raise Refused(
                Refusal.INVALID_IDENTITY,
                f"ID {node.hex} is not SHA-1 of the advertised address {node.address!r}",
            )

    def _ask_step(
        self, peer: NodeRef, key: int, exclude: frozenset[int] = frozenset(), /
    ) -> StepAnswer:
        if peer == self.me:
            return self.handle_step(key, exclude)
        answer = self.transport.find_successor_step(peer, key, exclude)
        self.step_answered(peer)
        return answer

    def _is_alive(self, peer: NodeRef) -> bool:
        try:
            return self.transport.ping(peer) == peer
        except PeerUnreachable:
            return False

    def _forget_finger(self, peer: NodeRef) -> None:
        with self._guard:
            self._fingers = self._fingers.forget(peer)
            if self.membership is not None:
                self.membership.forget(peer, self.clock.now())

    def _adopt_successors(self, chain: list[NodeRef]) -> None:
        successors = successor_list(self.me, chain, self.r)
        with self._guard:
            changed = successors != self._successors
            self._successors = successors
            self._last_stabilized = self.clock.now()
        if changed:
            self._neighbours_changed()

    def _drop_dead_successor(self, dead: NodeRef) -> None:
        with self._guard:
            self._successors = tuple(s for s in self._successors if s != dead)
            self._fingers = self._fingers.forget(dead)
            if self.membership is not None:
                self.membership.forget(dead, self.clock.now())
            if self._predecessor == dead:
                self._predecessor = None
            exhausted = not self._successors
        if exhausted:
            self._recover_successor(dead)
        self._neighbours_changed()

    def _recover_successor(self, dead: NodeRef) -> None:
        """Every listed successor is dead (more simultaneous failures than the list
        covers). Rather than declare ourselves alone, try any other peer we still
        know, nearest first; stabilize then walks to the true successor."""
        with self._guard:
            known = {f for f in self._fingers.entries() if f is not None}
            if self._predecessor is not None:
                known.add(self._predecessor)
        known -= {self.me, dead}
        for peer in sorted(known, key=lambda n: self.ring.distance(self.me.id, n.id)):
            try:
                peer_state = self.transport.get_state(peer)
            except PeerUnreachable:
                self._forget_finger(peer)
                continue
            with self._guard:
                self._successors = successor_list(self.me, [peer, *peer_state.successors], self.r)
            return

    def _stabilize_alone(self) -> None:
        """A peer with no successor adopts whoever notified it (the second peer of a
        ring), once that peer answers."""
        with self._guard:
            candidate = self._predecessor
        if candidate is None or candidate == self.me:
            return
        try:
            candidate_state = self.transport.get_state(candidate)
        except PeerUnreachable:
            return
        self._adopt_successors([candidate, *candidate_state.successors])
        self._notify_successor()

    def _notify_successor(self) -> None:
        head = self.successor
        if head == self.me:
            return
        # Unreachable: the next stabilize drops it. Refused: it cannot admit us (say, it
        # cannot reach our advertised address); joining reported that already, and
        # stabilize must go on rather than fail every round on the same refusal.
        with suppress(PeerUnreachable, Refused):
            self.transport.notify(head, self.me)

    def _note_change(self) -> None:
        self._changes += 1
        if self.hooks.on_change is not None:
            self.hooks.on_change()

    def _neighbours_changed(self) -> None:
        self._note_change()
        if self.hooks.on_neighbours_changed is not None:
            self.hooks.on_neighbours_changed(self.state())
