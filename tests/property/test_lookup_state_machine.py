"""The lookup state machine (chord.lookup) against brute force, on rings of m = 8.

Ideal rings, then any set of crashes that leaves every live peer a live successor in
its list (the operating assumption: a live route then exists to every key). Nothing
is repaired, as in the Chord paper's simultaneous-failure experiment. A verified lookup
from every live peer must end at the key's true live owner, within the hop cap, and
never give up; with or without the one-hop table (complete, but still naming the
dead). A routing step never offers a peer the caller excluded, and offers only peers
strictly between the responder and the key, nearest the key first.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chord.ids import Ring
from chord.node import ChordNode
from chord.placement import successor_index
from chord.sim.network import SimNetwork

RING = Ring(8)
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None)


def addresses(count: int) -> list[str]:
    """``count`` addresses with distinct IDs on RING."""
    chosen: dict[int, str] = {}
    n = 0
    while len(chosen) < count:
        n += 1
        address = f"10.1.{n // 250}.{n % 250 + 1}:7000"
        chosen.setdefault(RING.hash(address), address)
    return list(chosen.values())


@st.composite
def crashed_rings(draw: st.DrawFn) -> tuple[SimNetwork, list[ChordNode], bool]:
    size = draw(st.integers(min_value=3, max_value=40))
    r = draw(st.integers(min_value=1, max_value=5))
    one_hop = draw(st.booleans())
    net = SimNetwork(RING, successors=r, one_hop=one_hop)
    nodes = net.build_ideal(addresses(size))
    dead = draw(st.sets(st.integers(min_value=0, max_value=size - 1), max_size=size - 1))
    for index in sorted(dead):
        victim = nodes[index]
        net.crash(victim.me.address)
        # The operating assumption: no live peer may be left without a live successor.
        if any(
            not any(s.address in net.alive for s in n.state().successors)
            for n in nodes
            if n.me.address in net.alive
        ):
            net.alive.add(victim.me.address)
    return net, [n for n in nodes if n.me.address in net.alive], one_hop


@SETTINGS
@given(crashed_rings(), st.lists(st.integers(min_value=0, max_value=255), min_size=1, max_size=6))
def test_verified_lookups_find_the_live_owner(
    case: tuple[SimNetwork, list[ChordNode], bool], keys: list[int]
) -> None:
    _, live, _ = case
    ids = sorted(n.me.id for n in live)
    for key in keys:
        owner = ids[successor_index(ids, key)]
        for start in live:
            found = start.lookup(key, forget_dead=False, confirm_owner=True)
            assert found.owner.id == owner, (key, start.me.id)
            assert found.hops + found.timeouts <= start.max_hops


@SETTINGS
@given(crashed_rings(), st.integers(min_value=0, max_value=255), st.data())
def test_a_step_offers_no_excluded_peer_and_only_progress(
    case: tuple[SimNetwork, list[ChordNode], bool], key: int, data: st.DataObject
) -> None:
    net, live, _ = case
    responder = data.draw(st.sampled_from(live))
    known = sorted(
        {n.id for n in (*responder.state().successors, *responder.state().fingers) if n is not None}
    )
    exclude = frozenset(data.draw(st.sets(st.sampled_from(known or [0]))))
    answer = responder.handle_step(key, exclude)
    me, size = responder.me.id, RING.size
    if not answer.done:
        distances = [(key - n.id) % size for n in answer.nodes]
        assert all(0 < d < ((key - me) % size or size) for d in distances), answer
        assert distances == sorted(distances), answer
    offered = [*(() if answer.done else answer.nodes), *answer.owners, *answer.hints]
    assert not {n.id for n in offered} & exclude, (answer, exclude)
    assert net is not None
