"""Thread-safety of a ChordNode, made deterministic.

A real peer runs the node's handlers on gRPC threads while the maintenance threads
refresh its tables. These tests interleave the two by hand, through injected hooks,
at the exact points where a thread switch used to do harm:

* the routing index: a handler rebuilds it from the successor list and the finger
  table while the maintenance thread fills a finger. The index must never be taken
  for current when it was built from an older table.
* the guard: a real peer's guard is a plain (non-reentrant) Lock, so no path may
  take it twice. Every maintenance step and handler runs here under a guard that
  fails on re-entry instead of deadlocking, and every guarded block of the source is
  checked to call nothing that could lead back to the guard.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

import chord.node
from chord.fingers import Forward, RoutingIndex
from chord.ids import Ring
from chord.node import STEP_CANDIDATES, ChordNode
from chord.sim.network import SimNetwork

RING = Ring(8)


def ideal_ring(count: int, successors: int = 3, one_hop: bool = False) -> SimNetwork:
    net = SimNetwork(RING, successors=successors, one_hop=one_hop)
    addresses = [f"10.0.1.{n}:7000" for n in range(1, 60)]
    chosen: dict[int, str] = {}
    for address in addresses:
        chosen.setdefault(RING.hash(address), address)
        if len(chosen) == count:
            break
    net.build_ideal(chosen.values())
    return net


def fresh_answer(node: ChordNode, key: int) -> Forward:
    """The routing decision an index built now, from the node's current tables, makes
    (a key half the ring away: forwarded, never the key's predecessor here)."""
    state = node.state()
    route = RoutingIndex(RING, node.me, state.successors, state.fingers)
    decision = route.route(key, STEP_CANDIDATES)
    assert isinstance(decision, Forward)
    return decision


def far_key(node: ChordNode) -> int:
    """A key half the ring away: routed through fingers, not the successor list."""
    return (node.me.id + RING.size // 2) % RING.size


def test_a_finger_filled_during_an_index_rebuild_is_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A handler starts rebuilding the routing index from the table it read; before it
    finishes, the maintenance thread refreshes every finger. The next routing step
    must see the refreshed fingers (the index built from the old table must not be
    marked current: it would route through successors only until the next change)."""
    net = ideal_ring(12)
    node = net.members()[0]
    state = node.state()
    node.bootstrap(state.predecessor, state.successors, (None,) * RING.bits)  # no fingers yet
    key = far_key(node)
    stale = fresh_answer(node, key)

    armed = True

    class InterleavedIndex(RoutingIndex):
        def __init__(self, *args: object, **kwargs: object) -> None:
            nonlocal armed
            if armed:
                armed = False
                # The handler has read the tables; now the maintenance thread runs.
                node.fix_all_fingers()
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(chord.node, "RoutingIndex", InterleavedIndex)
    node.handle_step(key)  # the interleaved rebuild
    monkeypatch.undo()

    current = fresh_answer(node, key)
    assert current != stale, "the refresh changed nothing: the test proves nothing"
    answer = node.handle_step(key)
    assert (answer.nodes, answer.owners) == (current.closer, current.beyond)


class ReentryDetector:
    """A guard that fails where a plain Lock would deadlock: taken again by the thread
    that holds it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None
        self.entries = 0

    def __enter__(self) -> object:
        me = threading.get_ident()
        if self._owner == me:
            raise AssertionError("the node's guard was taken twice by one thread")
        self._lock.acquire()
        self._owner = me
        self.entries += 1
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._owner = None
        self._lock.release()


@pytest.fixture(params=[False, True], ids=["fingers", "one-hop"])
def guarded_ring(request: pytest.FixtureRequest) -> Iterator[tuple[SimNetwork, ReentryDetector]]:
    net = SimNetwork(RING, successors=3, one_hop=request.param)
    guard = ReentryDetector()
    original_add = net.add

    def add(address: str) -> ChordNode:
        node = original_add(address)
        node._guard = guard  # one guard for all: any nesting across nodes shows too
        return node

    net.add = add  # type: ignore[method-assign]
    yield net, guard


def test_no_path_takes_the_guard_twice(guarded_ring: tuple[SimNetwork, ReentryDetector]) -> None:
    """Every handler and maintenance step, driven through joins, stabilization, finger
    fixes, gossip, lookups, a crash and graceful leaves: none re-enters the guard, so
    a plain Lock is enough (services.peer.peer uses one)."""
    net, guard = guarded_ring
    addresses = [f"10.0.2.{n}:7000" for n in range(1, 9)]
    net.add(addresses[0]).create()
    for address in addresses[1:]:
        net.add(address).join(addresses[0])
        net.run_maintenance_round()
    for _ in range(20):
        net.run_maintenance_round()
    for node in net.members():
        node.fix_all_fingers()
        node.exchange_members()
        node.known_members()
        node.handle_members()
        node.owner_candidates(far_key(node))
        node.lookup(far_key(node), confirm_owner=True)
    net.crash(addresses[3])
    for _ in range(5):
        net.run_maintenance_round()
    net.nodes[addresses[5]].leave()
    net.nodes[addresses[6]].leave()
    for _ in range(5):
        net.run_maintenance_round()
    assert guard.entries > 100  # the guard was in use throughout


# Receivers a guarded block may call: immutable values and pure helpers (the finger
# table, the one-hop table, the ring's arithmetic, the clock's reading).
PURE_RECEIVERS = frozenset({"_fingers", "membership", "ring", "clock"})


def guarded_calls_to_self(source: str) -> list[str]:
    """Every call inside a ``with self._guard`` block of ``source`` that could reach
    back into the node (a method of ``self``, the transport, a hook), as
    ``line: call``. Empty means no path can take the guard twice."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.With) or not any(
            ast.unparse(item.context_expr) == "self._guard" for item in node.items
        ):
            continue
        for inner in ast.walk(node):
            if not isinstance(inner, ast.Call):
                continue
            chain = ast.unparse(inner.func)
            if not chain.startswith("self."):
                continue  # a pure function of the core (successor_list, between...)
            receiver = chain.split(".")[1]
            if receiver not in PURE_RECEIVERS or chain.count(".") < 2:
                found.append(f"{inner.lineno}: {chain}")
    return found


def test_no_guarded_block_calls_back_into_the_node() -> None:
    """The static half of the proof: every ``with self._guard`` block in chord/node.py
    calls nothing of the node itself, its transport or its hooks (only the immutable
    finger table, the one-hop table, the ring and the clock), so none can take the
    guard again, whichever path led there."""
    source = Path(chord.node.__file__).read_text(encoding="utf-8")
    assert source.count("with self._guard") >= 15  # the blocks are found at all
    assert guarded_calls_to_self(source) == []


def test_the_static_check_catches_a_nested_acquire() -> None:
    source = (
        "class N:\n"
        "    def f(self):\n"
        "        with self._guard:\n"
        "            self.state()\n"
        "            self.transport.ping(x)\n"
        "            self._fingers.forget(x)\n"
    )
    assert guarded_calls_to_self(source) == ["4: self.state", "5: self.transport.ping"]
