"""Iterative lookup, driven by the caller.

The caller asks one peer at a time for a single step and decides itself whom to
ask next, so no peer ever blocks a server thread on another peer's answer (the
ancestor's recursive lookups did, and froze the whole ring). Every step must make
strict progress towards the key, and the number of hops is capped, so a lookup
always ends: with an owner, or with :class:`LookupFailed`.

The lookup itself is a pure state machine (:class:`LookupMachine`: next request,
then its reply or its timeout) that never calls out; :func:`iterative_lookup` drives
it with blocking calls (real peers, over the gRPC transport), the simulator with
message events on a virtual clock, where replies can be late and interleave.

A lookup never gives up while a live peer it has heard of is closer to the key:
peers found dead are remembered for the rest of the lookup (never contacted twice,
and named to every later responder so that it offers others instead), and a live
responder whose candidates all turned out dead is asked again, excluding them.

Two ways to end (``verify``):

* unverified: the key's immediate predecessor names the owner (its first successor),
  and that is the answer. Cheap, and what finger repair and joins need.
* verified: the owner itself must say so. As soon as some responder's successor list
  reaches past the key, the lookup asks the peers it lists there, nearest the key
  first: each one that answers and finds the key in (its predecessor, itself] ends
  the lookup. Its predecessor pointer is the freshest view of that stretch (a joiner
  tells its successor at once, while the peers before it learn only when they next
  stabilize), so a stale list costs one more hop, never a wrong owner. This is the
  answer clients use: they were about to contact the owner anyway.

  A successor list is a stretch of the ring: when the peers it shows before a
  candidate are dead, the lookup names them, and the candidate whose predecessor is
  among them takes the key. One-hop table hints (``StepAnswer.hints``) are not: a
  table may miss joiners, or whole runs of peers it has not heard of yet, so nothing is
  vouched for a hinted candidate. It ends the lookup only by finding the key in
  (its predecessor, itself] (or in its predecessor's range, asked in turn); otherwise
  routing goes on to the key's predecessor, whose list decides.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from heapq import heappop, heappush
from typing import NamedTuple, Protocol, TypeAlias

from chord.ids import Ring
from chord.node_ref import NodeRef
from chord.transport import PeerUnreachable, StepAnswer

# At most this many dead peers are named in one step request: the ones closest to the
# key matter (the responder would offer them first), and the message stays small.
MAX_EXCLUDE = 64
# A candidate owner whose predecessor lies between the key and it names a peer the
# list did not show (a joiner, usually one): follow such names this many times, then
# let routing reach the key's predecessor instead (a very stale list, such as a one-hop
# table missing many joiners, would otherwise be walked back peer by peer).
MAX_CORRECTIONS = 2
NO_EXCLUSIONS: frozenset[int] = frozenset()


class AskStep(Protocol):
    """One routing step: ``peer``'s answer for ``key`` from its own tables, offering
    none of the peers in ``exclude`` (found dead by the caller)."""

    def __call__(
        self, peer: NodeRef, key: int, exclude: frozenset[int] = NO_EXCLUSIONS, /
    ) -> StepAnswer: ...


class LookupFailed(Exception):
    """No live peer could route the key (every candidate dead, or the hop cap hit)."""


@dataclass(frozen=True)
class LookupResult:
    key: int
    owner: NodeRef
    successors: tuple[NodeRef, ...]  # owner first, then the peers after it
    predecessor: NodeRef  # the peer just before the key
    hops: int  # step RPCs answered by remote peers
    timeouts: int  # peers that were contacted and did not answer


class StepRequest(NamedTuple):
    """One step the lookup wants asked: ``peer``'s answer for ``key``, offering none of
    ``exclude``. ``local``: ``peer`` is the caller's own peer, answered from its own
    tables (not a hop, never late). The machine matches a reply or timeout to the very
    request object it answers (``is``), so a late reply to an older request is ignored
    even if it asked the same."""

    peer: NodeRef
    key: int
    exclude: frozenset[int]
    local: bool


# What the routing coroutine receives for a request: the answer, or None (no answer).
_Steps: TypeAlias = Generator[StepRequest, StepAnswer | None, LookupResult | None]


# Heap entries: (distance to the key, kind, order, peer, siblings, next sibling, limit).
# A candidate entry (kind ASK) stands for the best not yet asked candidate of one
# answer; popping it queues its next sibling (a k-way merge: the closest known peer is
# always asked next at ~2 heap pushes per hop). A REASK entry stands for a responder
# that may offer more once the candidates it named have died; at equal distance the
# responder's fallback (checked before every pop) goes first, then its re-ask.
ASK, REASK = 0, 1
_Entry = tuple[int, int, int, NodeRef, tuple[NodeRef, ...], int, int]


class _Routing:
    """The state of one lookup and its routing rules, written as a coroutine: each
    method that needs a peer's answer yields a :class:`StepRequest` and is sent the
    answer (None: no answer). :class:`LookupMachine` is its public face."""

    def __init__(
        self, ring: Ring, key: int, max_hops: int, local: NodeRef | None, verify: bool
    ) -> None:
        self.key = key
        self.size = ring.size
        self.max_hops = max_hops
        self.local_id = local.id if local is not None else -1  # ints compare faster
        self.verify = verify
        self.heap: list[_Entry] = []
        self.seen: set[int] = set()  # IDs ever queued: no peer is queued or asked twice
        self.dead: set[int] = set()  # peers found dead during this lookup
        # Per live responder: how many dead peers it was told about when it last answered
        # (a re-ask helps only if more of its stretch has died since).
        self.told: dict[int, int] = {}
        self.order = 0
        self.hops = 0
        self.timeouts = 0
        self.last_problem = ""  # the last unreachable peer and why, for LookupFailed
        self.timeout_reason = ""  # why the request now being answered got no answer
        # Unverified lookups: the owner candidates offered by the responder closest to
        # the key, used once every peer between it and the key is found dead.
        self.fallback: tuple[int, NodeRef, tuple[NodeRef, ...]] | None = None
        # Verified lookups: live candidates that could not tell whether they own the
        # key (no predecessor just then), by ID: (their chain, who listed them).
        self.unsure: dict[int, tuple[tuple[NodeRef, ...], NodeRef]] = {}
        # Live hinted candidates that did not confirm, by ID: the predecessor each named
        # (never asked again from a hint; a successor list may vouch for them).
        self.unconfirmed: dict[int, NodeRef | None] = {}

    # ------------------------------------------------------------- the queue
    def queue_next(self, nodes: tuple[NodeRef, ...], index: int, limit: int) -> None:
        """Queue the first usable candidate of ``nodes`` from ``index`` on. Only strict
        progress is accepted: a candidate must lie strictly between the peer that named
        it and the key (``limit`` is that peer's distance), so no answer sends us back.
        A ``limit`` above the ring size means "no progress needed" (start peers)."""
        key, size, seen = self.key, self.size, self.seen
        while index < len(nodes):
            node = nodes[index]
            index += 1
            distance = (key - node.id) % size
            if (0 < distance < limit or limit > size) and node.id not in seen:
                seen.add(node.id)
                self.order += 1
                heappush(self.heap, (distance, ASK, self.order, node, nodes, index, limit))
                return

    def queue_reask(self, peer: NodeRef, distance: int) -> None:
        self.order += 1
        heappush(self.heap, (distance, REASK, self.order, peer, (), 0, 0))

    def dead_between(self, distance: int) -> frozenset[int]:
        """The dead peers strictly between a responder at ``distance`` and the key:
        the only ones it could offer. The closest to the key first, if too many."""
        if not self.dead:
            return NO_EXCLUSIONS
        key, size = self.key, self.size
        inside = [d for d in self.dead if 0 < (key - d) % size < distance]
        if len(inside) > MAX_EXCLUDE:
            inside = sorted(inside, key=lambda d: (key - d) % size)[:MAX_EXCLUDE]
        return frozenset(inside)

    def call(
        self, peer: NodeRef, exclude: frozenset[int] = NO_EXCLUSIONS
    ) -> Generator[StepRequest, StepAnswer | None, StepAnswer | None]:
        """One step RPC (a local call for our own peer, not a hop); None if ``peer``
        did not answer."""
        remote = peer.id != self.local_id
        if remote and self.hops + self.timeouts >= self.max_hops:
            raise LookupFailed(f"hop cap {self.max_hops} reached for key {self.key:x}")
        answer = yield StepRequest(peer, self.key, exclude, not remote)
        if answer is None:
            self.timeouts += 1
            self.dead.add(peer.id)
            reason = self.timeout_reason
            self.last_problem = f"{peer.address}: {reason}" if reason else peer.address
            return None
        if remote:
            self.hops += 1
        return answer

    def result(self, nodes: tuple[NodeRef, ...], predecessor: NodeRef) -> LookupResult:
        return LookupResult(self.key, nodes[0], nodes, predecessor, self.hops, self.timeouts)

    # ------------------------------------------------------------------ routing
    def run(self, start: Iterable[NodeRef]) -> _Steps:
        size = self.size
        for node in start:  # not sorted by closeness, so each is queued on its own
            self.queue_next((node,), 0, size + 1)  # any start peer, even one on the key
        heap = self.heap
        while heap:
            # Peers farther from the key than the fallback's responder cannot know that
            # stretch of the ring better than it does: use the fallback before them.
            if self.fallback is not None and heap[0][0] >= self.fallback[0]:
                result: LookupResult | None = self.take_fallback()
                if result is not None:
                    return result
                continue  # all dead: keep looking further back
            distance, kind, _, peer, siblings, next_sibling, limit = heappop(heap)
            if kind == ASK:
                self.queue_next(siblings, next_sibling, limit)
            elif len(self.dead_between(distance or size)) <= self.told[peer.id]:
                continue  # nothing it could name has died since it answered: no news
            result = yield from self.step(peer, distance)
            if result is not None:
                return result
        return self.conclude()

    def conclude(self) -> LookupResult:
        """Routing ran out of peers to ask: the fallback's owners, else the best we heard."""
        if self.fallback is not None:
            result = self.take_fallback()
            if result is not None:
                return result
        if self.unsure:  # the best we heard: the live candidate nearest after the key
            chain, responder = min(
                self.unsure.values(), key=lambda c: (c[0][0].id - self.key) % self.size
            )
            return self.result(chain, responder)
        last = f"; last {self.last_problem}" if self.last_problem else ""
        raise LookupFailed(
            f"no live peer could route key {self.key:x} "
            f"({self.hops} answered, {self.timeouts} unreachable{last})"
        )

    def step(self, peer: NodeRef, distance: int) -> _Steps:
        """Ask ``peer`` (at ``distance`` from the key) for one step; the result if it
        ends the lookup."""
        exclude = self.dead_between(distance or self.size)
        answer = yield from self.call(peer, exclude)
        if answer is None:
            return None
        if answer.done and answer.nodes:
            return (yield from self.finish(peer, answer))
        # A peer sitting on the key (distance 0) may send us anywhere but back to itself.
        self.queue_next(answer.nodes, 0, distance or self.size)
        self.told[peer.id] = len(exclude)
        if answer.nodes:
            self.queue_reask(peer, distance)
        if answer.owners:
            if self.verify:
                # Its list reaches past the key: ask those peers now. If all are dead,
                # the peers it offered before the key (queued above) know further.
                return (yield from self.verified(answer.owners, peer))
            if self.fallback is None or distance < self.fallback[0]:
                self.fallback = (distance, peer, answer.owners)
        elif answer.hints and self.verify:
            # Its table names the owner: one hop if the table is right.
            return (yield from self.verified(answer.hints, peer, listed=False))
        return None

    def finish(self, peer: NodeRef, answer: StepAnswer) -> _Steps:
        """``peer`` named the owner: itself (it owns the key), or its successor (it is
        the key's predecessor)."""
        if self.verify:
            if answer.nodes[0] == peer:
                return self.result(answer.nodes, answer.predecessor or peer)
            return (yield from self.verified(answer.nodes, peer))
        live = self.first_known_live(answer.nodes)
        if live is None:
            return None
        return self.result(answer.nodes[live:], answer.predecessor or peer)

    # ----------------------------------------------------------- unverified end
    def first_known_live(self, nodes: tuple[NodeRef, ...]) -> int | None:
        """Index of the first peer of ``nodes`` not found dead during this lookup."""
        return next((i for i, node in enumerate(nodes) if node.id not in self.dead), None)

    def take_fallback(self) -> LookupResult | None:
        """Every peer known to lie between the responder and the key is dead: the owner
        is the first peer after the key in that responder's list."""
        assert self.fallback is not None
        _, responder, nodes = self.fallback
        self.fallback = None
        live = self.first_known_live(nodes)
        return None if live is None else self.result(nodes[live:], responder)

    # ------------------------------------------------------------- verified end
    def dead_before(self, node: NodeRef) -> frozenset[int]:
        """The dead peers in [key, node): what we vouch for when asking ``node``
        whether it owns the key (if its predecessor is among them, it does)."""
        key, size = self.key, self.size
        limit = (node.id - key) % size
        inside = [d for d in self.dead if (d - key) % size < limit]
        return frozenset(sorted(inside, key=lambda d: (d - key) % size)[-MAX_EXCLUDE:])

    def verified(
        self, candidates: tuple[NodeRef, ...], responder: NodeRef, listed: bool = True
    ) -> _Steps:
        """Ask ``candidates`` (peers at or after the key, nearest first, as ``responder``
        lists them) in turn until one answers, then settle who owns the key with it.
        None if every one is dead, or the one that answered could not tell.

        ``listed``: the candidates are a stretch of ``responder``'s successor list;
        otherwise they are one-hop table hints (see the module's docstring)."""
        for index, candidate in enumerate(candidates):
            if candidate.id in self.dead:
                continue  # found dead earlier in this lookup: no second timeout
            chain = candidates[index:]
            if not listed:
                if candidate.id in self.unconfirmed or candidate.id in self.unsure:
                    return None  # alive, not the owner: no later hint is either
                answer = yield from self.call(candidate)  # naming no one: hints vouch for nothing
                if answer is not None:
                    return (yield from self.settle(candidate, answer, chain, responder, False))
                continue
            if candidate.id in self.unsure:
                # It answered before without knowing its predecessor; now a second
                # list names it first after the key: take it, as unverified lookups do.
                return self.result(chain, responder)
            if self.vouched(candidate):
                return self.result(chain, responder)
            answer = yield from self.call(candidate, self.dead_before(candidate))
            if answer is not None:
                return (yield from self.settle(candidate, answer, chain, responder))
        return None

    def settle(
        self,
        candidate: NodeRef,
        answer: StepAnswer,
        chain: tuple[NodeRef, ...],
        responder: NodeRef,
        listed: bool = True,
    ) -> _Steps:
        """``candidate``, the first live peer at or after the key in ``responder``'s
        list ``chain``, answered. It owns the key if the key lies in (its predecessor,
        itself], or if its predecessor is among the dead peers we named (every peer the
        list shows before it is dead). If its predecessor lies between the key and it
        (a joiner the list does not show yet, or a peer that died unnoticed), ask that
        one; if it is dead, ask the candidate again, naming it. A candidate that does
        not know its predecessor cannot tell, and a list that missed more than a few
        peers is not corrected one peer at a time: then routing goes on towards the
        key's predecessor, whose list decides.

        Hinted candidates (not ``listed``) are asked naming no one, and a dead
        predecessor settles nothing for them: no list showed the lookup that stretch,
        so a live peer the table missed may lie between the key and it."""
        key, size = self.key, self.size
        for _ in range(MAX_CORRECTIONS + 1):
            if answer.done and answer.nodes:
                if answer.nodes[0] == candidate:
                    return self.result(answer.nodes, answer.predecessor or responder)
                # It sees itself before the key (a list that disagrees with the IDs):
                # its successors are the candidates then.
                return (yield from self.verified(answer.nodes, candidate))
            before = answer.predecessor
            if before is None or not 0 <= (before.id - key) % size < (candidate.id - key) % size:
                break
            if before.id in self.dead:  # more dead than one request can name
                if not listed:
                    break
                return self.result(chain, responder)
            closer = yield from self.call(
                before, self.dead_before(before) if listed else NO_EXCLUSIONS
            )
            if closer is not None:
                candidate, answer, chain = before, closer, (before, *chain)
                continue
            if not listed:
                break
            again = yield from self.call(candidate, self.dead_before(candidate))
            if again is None:  # died in the meantime: the list goes on after it
                return (yield from self.verified(chain[1:], responder))
            answer = again
        self.remember_unsettled(candidate, answer, chain, responder, listed)
        return None

    def remember_unsettled(
        self,
        candidate: NodeRef,
        answer: StepAnswer,
        chain: tuple[NodeRef, ...],
        responder: NodeRef,
        listed: bool,
    ) -> None:
        """``candidate`` could not be confirmed: a listed one is the best guess yet, a
        hinted one is remembered with the predecessor it named."""
        if listed:
            self.unsure[candidate.id] = (chain, responder)
        else:
            self.unconfirmed[candidate.id] = answer.predecessor

    def vouched(self, candidate: NodeRef) -> bool:
        """Whether ``candidate``, first live in a successor list, already answered (as a
        hint) naming a predecessor between the key and it that we found dead: asked now,
        naming the dead, it would take the key, so it need not be asked again."""
        if candidate.id not in self.unconfirmed:
            return False
        before = self.unconfirmed[candidate.id]
        return before is not None and before.id in self.dead_before(candidate)


class LookupMachine:
    """One lookup as a pure state machine: no I/O, no clock, no threads. The driver
    sends what :meth:`next_request` returns, then reports the answer with
    :meth:`on_reply`, or the silence with :meth:`on_timeout`, until :attr:`done`;
    :meth:`outcome` then gives the owner, or raises :class:`LookupFailed`.

    Real peers drive it with a blocking loop (:func:`iterative_lookup`), the simulator
    with message events on its virtual clock (chord.sim.scheduler), so replies may come
    late or out of order: a reply or timeout for a request the machine no longer waits
    for is ignored. One request is in flight at a time; each answer decides the next.
    """

    def __init__(
        self,
        ring: Ring,
        key: int,
        start: Iterable[NodeRef],
        max_hops: int,
        local: NodeRef | None = None,
        verify: bool = False,
    ) -> None:
        self.key = key
        self._routing = _Routing(ring, key, max_hops, local, verify)
        self._steps = self._routing.run(start)
        self._ready: StepRequest | None = None  # yielded, not yet handed to the driver
        self._waiting: StepRequest | None = None  # handed out, not yet answered
        self._result: LookupResult | None = None
        self._failure: LookupFailed | None = None
        self._resume(None)

    @property
    def done(self) -> bool:
        return self._result is not None or self._failure is not None

    def next_request(self) -> StepRequest | None:
        """The step to send now (each is handed out once); None while one is in flight
        or once the lookup is done."""
        request, self._ready = self._ready, None
        if request is not None:
            self._waiting = request
        return request

    def on_reply(self, request: StepRequest, answer: StepAnswer) -> bool:
        """``request``'s peer answered. False if the machine no longer waited for it
        (it timed out before, or the lookup ended): the answer is ignored."""
        if request is not self._waiting:
            return False
        self._waiting = None
        self._resume(answer)
        return True

    def on_timeout(self, request: StepRequest, reason: str = "") -> bool:
        """``request``'s peer did not answer in time (``reason``, for the failure's
        message): it is dead for the rest of the lookup. False if ignored (see
        :meth:`on_reply`)."""
        if request is not self._waiting:
            return False
        self._waiting = None
        self._routing.timeout_reason = reason
        self._resume(None)
        return True

    def outcome(self) -> LookupResult:
        """The result of a finished lookup; raises :class:`LookupFailed` if it failed."""
        if self._failure is not None:
            raise self._failure
        if self._result is None:
            raise RuntimeError(f"the lookup of key {self.key:x} has not finished")
        return self._result

    def _resume(self, answer: StepAnswer | None) -> None:
        try:
            self._ready = self._steps.send(answer)  # send(None) starts the coroutine
        except StopIteration as finished:
            self._result = finished.value
        except LookupFailed as exc:
            self._failure = exc


def drive(
    machine: LookupMachine, ask: AskStep, on_dead: Callable[[NodeRef], None] | None = None
) -> LookupResult:
    """Run ``machine`` to its end with blocking calls: ``ask`` answers each request
    (raising :class:`PeerUnreachable` for a peer that does not), ``on_dead`` hears of
    every peer found dead, before the next request is asked."""
    key = machine.key
    while (request := machine.next_request()) is not None:
        peer, exclude = request.peer, request.exclude
        try:
            answer = ask(peer, key, exclude) if exclude else ask(peer, key)
        except PeerUnreachable as exc:
            machine.on_timeout(request, exc.reason)
            if on_dead is not None:
                on_dead(peer)
            continue
        machine.on_reply(request, answer)
    return machine.outcome()


def iterative_lookup(
    ring: Ring,
    key: int,
    start: Iterable[NodeRef],
    ask: AskStep,
    max_hops: int,
    local: NodeRef | None = None,
    on_dead: Callable[[NodeRef], None] | None = None,
    verify: bool = False,
) -> LookupResult:
    """Find successor(key) starting from the peers in ``start``.

    ``ask(peer, key[, exclude])`` performs one step (an RPC, or a local call when
    ``peer`` is ``local``, which is not counted as a hop). Candidates are kept in a
    pool and the one closest before the key is always asked next; when it is dead the
    next closest is tried, so one dead finger costs one timeout, not the lookup. A
    responder whose candidates all died is asked again with them excluded.

    With ``verify``, the lookup ends only when the owner itself has answered (see the
    module's docstring); each owner candidate found dead is a timeout. Without it the
    owner is reported as the key's predecessor names it.
    """
    return drive(LookupMachine(ring, key, start, max_hops, local, verify), ask, on_dead)
