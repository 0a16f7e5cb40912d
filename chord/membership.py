"""One-hop routing's table: every peer of the ring this peer has heard of, by ID.

With the whole membership (a few hundred bytes per peer), a lookup can go straight
to the key's owner instead of ~½·log2 N hops through fingers (Gupta, Liskov and
Rodrigues, "One Hop Lookups for Peer-to-Peer Overlays", HotOS 2003). The table is
only ever a source of *candidates*: the owner itself confirms it owns the key
(chord.lookup, verified), a dead entry costs one timeout and is dropped, and routing
falls back to fingers and successor lists. Correctness never depends on it.

How it stays current:

* direct evidence (a peer answered us, notified us, joined through us) sets an
  entry's ``heard`` time to now;
* hints (peers named in a live peer's answer) add unknown peers;
* pull gossip: every round a peer asks one member (in a pseudo-random order of its
  own, chord.node.ChordNode.exchange_members) for its table, entries travel with
  their *age* (time since their last direct evidence), and the fresher age wins, so
  news spreads in O(log N) rounds while a peer nobody hears from any more ages
  everywhere at once;
* a peer found dead, or leaving, is dropped and kept out for ``ttl`` seconds unless it
  gives direct evidence again; any entry older than ``ttl`` is dropped.

Ages are relative, so peers' clocks never need to agree.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable

from chord.node_ref import NodeRef

DEFAULT_TTL = 120.0  # seconds without direct evidence before an entry is dropped
NEVER = float("-inf")


class Membership:
    def __init__(self, me: NodeRef, size: int, ttl: float = DEFAULT_TTL) -> None:
        self.me = me
        self.size = size
        self.ttl = ttl
        # Sorted IDs of the members, this peer included: owner candidates read from the
        # table must list every peer known at or after the key, ourselves too (a
        # candidate told that all the peers listed before it are dead claims the key).
        self._ids: list[int] = [me.id]
        self._refs: dict[int, NodeRef] = {me.id: me}
        self._heard: dict[int, float] = {me.id: float("inf")}  # last direct evidence
        self._gone: dict[int, float] = {}  # dead or left: kept out until this time
        self._expired = float("-inf")  # when expire() last ran
        self.version = 0  # bumped on every add or removal

    def __len__(self) -> int:
        """Other members known."""
        return len(self._ids) - 1

    def __contains__(self, peer: NodeRef) -> bool:
        """Whether ``peer`` is a member we know of (ourselves excluded)."""
        return peer.id != self.me.id and self._refs.get(peer.id) == peer

    def members(self) -> tuple[NodeRef, ...]:
        """Every other peer in the table, in ring order from ID 0."""
        return tuple(self._refs[i] for i in self._ids if i != self.me.id)

    # ---------------------------------------------------------------- learning
    def heard_from(self, peer: NodeRef, now: float) -> None:
        """Direct evidence that ``peer`` is alive now (it answered, or called us)."""
        if peer.id == self.me.id:
            return
        self._gone.pop(peer.id, None)
        self._add(peer)
        self._heard[peer.id] = now

    def hint(self, peers: Iterable[NodeRef], now: float) -> None:
        """Peers a live peer named: added if unknown and not recently gone, as heard
        ``ttl`` / 2 ago (old enough that real evidence always wins)."""
        for peer in peers:
            if peer.id == self.me.id or peer.id in self._refs or self._is_gone(peer.id, now):
                continue
            self._add(peer)
            self._heard[peer.id] = now - self.ttl / 2

    def merge(self, entries: Iterable[tuple[NodeRef, float]], now: float) -> None:
        """Another peer's table: (peer, age in seconds). A fresher age wins; a peer we
        know to be gone comes back only with evidence fresher than its departure."""
        heard_of, me, ttl = self._heard, self.me.id, self.ttl
        for peer, age in entries:
            heard = now - age
            if heard_of.get(peer.id, NEVER) >= heard:
                continue  # nothing newer than what we know (the usual case: kept cheap)
            if peer.id == me or not 0 <= age < ttl:
                continue
            gone_until = self._gone.get(peer.id)
            if gone_until is not None and heard <= gone_until - ttl:
                continue  # that evidence is older than the news that it is gone
            known = self._refs.get(peer.id)
            if known is not None and known is not peer and known != peer:
                continue  # an ID claimed at another address: keep what we had
            self._gone.pop(peer.id, None)
            self._add(peer)
            heard_of[peer.id] = heard

    def forget(self, peer: NodeRef, now: float) -> None:
        """``peer`` did not answer, or is leaving: out, and kept out for ``ttl``."""
        if peer.id == self.me.id:
            return
        if self._refs.get(peer.id) == peer:
            self._remove(peer.id)
        self._gone[peer.id] = now + self.ttl

    def entries(self, now: float) -> list[tuple[NodeRef, float]]:
        """(peer, age) for gossip, dropping entries older than ``ttl`` first."""
        self.expire(now)
        return [
            (self._refs[i], max(0.0, now - self._heard[i])) for i in self._ids if i != self.me.id
        ]

    def expire(self, now: float) -> None:
        """Drop entries older than ``ttl`` (a scan of the table: at most ten times per
        ``ttl``, an entry outlives it by a tenth at most)."""
        if now - self._expired < self.ttl / 10:
            return
        self._expired = now
        for ident in [i for i in self._ids if now - self._heard[i] >= self.ttl]:
            self._remove(ident)
        for ident in [i for i, until in self._gone.items() if until <= now]:
            del self._gone[ident]

    # ----------------------------------------------------------------- routing
    def around(self, key: int, count: int) -> tuple[NodeRef | None, tuple[NodeRef, ...]]:
        """The member just before ``key`` (strictly between us and it; None if none) and
        up to ``count`` members from successor(key) on (ourselves included), as far as
        the table knows."""
        ids = self._ids
        at = bisect_left(ids, key)
        before_id = ids[at - 1]  # index -1 wraps to the largest ID
        me_distance = (key - self.me.id) % self.size
        # None when we are closer to the key than any member we know.
        before = self._refs[before_id] if 0 < (key - before_id) % self.size < me_distance else None
        after = [self._refs[ids[(at + k) % len(ids)]] for k in range(min(count, len(ids)))]
        return before, tuple(after)

    def behind(self, key: int, count: int, exclude: frozenset[int]) -> tuple[NodeRef, ...]:
        """Up to ``count`` members strictly between us and ``key``, nearest the key
        first, none of ``exclude``: where to ask next when the first is dead."""
        ids, size = self._ids, self.size
        me_distance = (key - self.me.id) % size or size
        found: list[NodeRef] = []
        at = bisect_left(ids, key)
        for k in range(1, len(ids) + 1):
            ident = ids[(at - k) % len(ids)]
            if not 0 < (key - ident) % size < me_distance:
                break  # reached us (or the key itself, all the way round)
            if ident not in exclude:
                found.append(self._refs[ident])
                if len(found) == count:
                    break
        return tuple(found)

    # ------------------------------------------------------------------ helpers
    def _is_gone(self, ident: int, now: float) -> bool:
        until = self._gone.get(ident)
        if until is None:
            return False
        if until <= now:
            del self._gone[ident]
            return False
        return True

    def _add(self, peer: NodeRef) -> None:
        if peer.id not in self._refs:
            insort(self._ids, peer.id)
            self.version += 1
        self._refs[peer.id] = peer

    def _remove(self, ident: int) -> None:
        self._ids.pop(bisect_left(self._ids, ident))
        del self._refs[ident]
        del self._heard[ident]
        self.version += 1
