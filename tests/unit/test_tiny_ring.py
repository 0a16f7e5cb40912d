"""Tiny rings on m = 6 (64 ids), built with the simulator and checked against
expectations a person can derive by hand from the sorted list of IDs.

The peers are "10.0.0.N:7000"; their IDs (SHA-1 mod 64) are pinned in
test_addresses_have_the_ids_used_below, so every table here can be checked on paper:

    10.0.0.1 -> 41   10.0.0.2 -> 21   10.0.0.3 -> 9   10.0.0.4 -> 20   10.0.0.5 -> 61

The five-peer ring is therefore, clockwise: 9, 20, 21, 41, 61 (and back to 9).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from chord.fingers import FingerTable
from chord.ids import Ring
from chord.invariants import ideal_violations, violations
from chord.lookup import LookupFailed, iterative_lookup
from chord.node import ChordNode, NodeState
from chord.node_ref import NodeRef
from chord.sim.network import SimNetwork
from chord.successors import successor_list
from chord.transport import NotReady, PeerUnreachable, Refused, StepAnswer

RING = Ring(6)


# ------------------------------------------------------------------- helpers
def pick_addresses(count: int) -> dict[str, int]:
    """The first ``count`` addresses "10.0.0.N:7000" (N = 1, 2, ...) whose IDs on RING
    are distinct, each with its ID."""
    chosen: dict[str, int] = {}
    n = 0
    while len(chosen) < count:
        n += 1
        address = f"10.0.0.{n}:7000"
        ident = RING.hash(address)
        if ident not in chosen.values():
            chosen[address] = ident
    return chosen


def build_ring(addresses: Sequence[str], r: int) -> SimNetwork:
    """Create the first peer, join the others through it, run maintenance rounds until
    Ideal (bounded), then refresh every finger table."""
    net = SimNetwork(RING, successors=r)
    net.add(addresses[0]).create()
    for address in addresses[1:]:
        net.add(address).join(addresses[0])
    for _ in range(50):
        if not ideal_violations(states(net), r):
            break
        net.run_maintenance_round()
    assert ideal_violations(states(net), r) == []
    assert violations(states(net)) == []
    for node in net.members():
        node.fix_all_fingers()
    return net


def states(net: SimNetwork) -> list[NodeState]:
    return [node.state() for node in net.live_nodes()]


def by_id(net: SimNetwork) -> dict[int, ChordNode]:
    return {node.me.id: node for node in net.members()}


def successor_of(ids: Sequence[int], key: int) -> int:
    """The first ID at or after ``key`` clockwise: the owner of ``key``."""
    return next((i for i in sorted(ids) if i >= key), min(ids))


def predecessor_of(ids: Sequence[int], ident: int) -> int:
    """The ID just before ``ident`` clockwise."""
    return next((i for i in sorted(ids, reverse=True) if i < ident), max(ids))


def ids_of(nodes: Sequence[NodeRef | None]) -> list[int | None]:
    return [None if n is None else n.id for n in nodes]


def colliding_address(ident: int, taken: Sequence[str]) -> str:
    """Brute force: an address not in ``taken`` whose ID on RING is ``ident``."""
    for n in range(1, 10_000):
        address = f"10.1.{n // 250}.{n % 250}:7000"
        if address not in taken and RING.hash(address) == ident:
            return address
    raise AssertionError("no colliding address found")  # pragma: no cover


ADDRESSES = pick_addresses(5)
A41, A21, A9, A20, A61 = ADDRESSES  # named by ID
FIVE_IDS = [9, 20, 21, 41, 61]


@pytest.fixture(params=[2, 3], ids=["r=2", "r=3"])
def five(request: pytest.FixtureRequest) -> SimNetwork:
    return build_ring(list(ADDRESSES), r=request.param)


@pytest.fixture
def five_r2() -> SimNetwork:
    return build_ring(list(ADDRESSES), r=2)


# --------------------------------------------------------------- addresses
def test_addresses_have_the_ids_used_below() -> None:
    expected = {
        "10.0.0.1:7000": 41,
        "10.0.0.2:7000": 21,
        "10.0.0.3:7000": 9,
        "10.0.0.4:7000": 20,
        "10.0.0.5:7000": 61,
    }
    assert pick_addresses(5) == expected
    for address, ident in expected.items():
        assert int(hashlib.sha1(address.encode()).hexdigest(), 16) % 64 == ident
    assert sorted(expected.values()) == FIVE_IDS


def test_pick_addresses_skips_colliding_ids() -> None:
    # 10.0.0.8 hashes to 9 like 10.0.0.3, so it is skipped.
    assert RING.hash("10.0.0.8:7000") == RING.hash("10.0.0.3:7000") == 9
    picked = pick_addresses(8)
    assert "10.0.0.8:7000" not in picked
    assert len(set(picked.values())) == 8


# -------------------------------------------------- successors, predecessors
def test_five_peer_ring_successor_lists_r2(five_r2: SimNetwork) -> None:
    nodes = by_id(five_r2)
    assert sorted(nodes) == FIVE_IDS
    expected = {9: [20, 21], 20: [21, 41], 21: [41, 61], 41: [61, 9], 61: [9, 20]}
    assert {i: ids_of(n.state().successors) for i, n in nodes.items()} == expected


def test_five_peer_ring_predecessors(five: SimNetwork) -> None:
    expected = {9: 61, 20: 9, 21: 20, 41: 21, 61: 41}
    assert {i: ids_of([n.state().predecessor])[0] for i, n in by_id(five).items()} == expected


def test_five_peer_ring_successor_lists_follow_sorted_ids(five: SimNetwork) -> None:
    r = five.successors
    for i, ident in enumerate(FIVE_IDS):
        want = [FIVE_IDS[(i + k) % 5] for k in range(1, r + 1)]
        assert ids_of(by_id(five)[ident].state().successors) == want


def test_ring_smaller_than_r_plus_one_lists_every_other_peer_once() -> None:
    net = build_ring([A41, A21, A9], r=3)  # ids 9, 21, 41
    got = {i: ids_of(n.state().successors) for i, n in by_id(net).items()}
    assert got == {9: [21, 41], 21: [41, 9], 41: [9, 21]}


def test_successor_list_keeps_only_clockwise_entries() -> None:
    refs = {ident: NodeRef.for_address(RING, a) for a, ident in ADDRESSES.items()}
    me = refs[21]

    def build(chain: list[int], length: int = 5) -> list[int | None]:
        return ids_of(successor_list(me, [refs[i] for i in chain], length))

    assert build([41, 61, 9]) == [41, 61, 9]
    assert build([41, 61, 9], length=2) == [41, 61]
    assert build([41, 61, 9, 21, 41]) == [41, 61, 9]  # came back round to me: cut
    assert build([41, 41, 61]) == [41, 61]  # no duplicates
    # A copied list that runs past me without naming me (its owner does not know me
    # yet): 20 lies before 21 but 41 does not follow 20 before coming back to me.
    assert build([41, 9, 61, 20]) == [41, 9, 20]
    assert build([20, 9]) == [20]  # 9 is not between 20 and 21 going clockwise


def test_creator_without_successors_points_at_itself() -> None:
    """Right after the second peer joins, the creator still has an empty successor
    list: it is a ring of one, the joiner an appendage pointing at it. Both are safe
    states (an empty list means "my successor is me")."""
    net = SimNetwork(RING, successors=2)
    net.add(A41).create()
    net.add(A21).join(A41)
    assert net.nodes[A41].state().successors == ()
    assert violations(states(net)) == []
    net.run_maintenance_round()
    assert ideal_violations(states(net), 2) == []


# ------------------------------------------------------------------ fingers
def test_finger_tables_by_hand(five: SimNetwork) -> None:
    # node: starts (node + 1, 2, 4, 8, 16, 32 mod 64) -> successor of each start
    expected = {
        9: ([10, 11, 13, 17, 25, 41], [20, 20, 20, 20, 41, 41]),
        20: ([21, 22, 24, 28, 36, 52], [21, 41, 41, 41, 41, 61]),
        21: ([22, 23, 25, 29, 37, 53], [41, 41, 41, 41, 41, 61]),
        41: ([42, 43, 45, 49, 57, 9], [61, 61, 61, 61, 61, 9]),
        61: ([62, 63, 1, 5, 13, 29], [9, 9, 9, 9, 20, 41]),
    }
    for ident, (starts, owners) in expected.items():
        state = by_id(five)[ident].state()
        assert list(state.finger_starts) == starts
        assert ids_of(state.fingers) == owners
        assert owners == [successor_of(FIVE_IDS, s) for s in starts]


def node9_table() -> tuple[FingerTable, dict[int, NodeRef]]:
    """Node 9's finger table filled by hand: 20 owns starts 10, 11, 13, 17; 41 owns 25
    and 41."""
    refs = {ident: NodeRef.for_address(RING, a) for a, ident in ADDRESSES.items()}
    table = FingerTable(RING, refs[9])
    table, after = table.fill(0, refs[20], refs[9])
    assert after == 4  # fills 0..3: starts in (9, 20]
    table, after = table.fill(4, refs[41], refs[21])
    assert after == 0  # fills 4, 5: starts in (21, 41]; wraps
    assert ids_of(table.entries()) == [20, 20, 20, 20, 41, 41]
    return table, refs


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (50, [41, 20]),  # both inside (9, 50); 41 is closer to 50
        (42, [41, 20]),
        (41, [20]),  # 41 is the key itself, not strictly before it
        (21, [20]),
        (20, []),  # nothing strictly inside (9, 20)
        (10, []),
        (9, [41, 20]),  # (9, 9) is the whole ring but 9
        (5, [41, 20]),  # wraps: (9, 5) = 10..63, 0..4
    ],
)
def test_closest_preceding_on_node_9(key: int, expected: list[int]) -> None:
    table, _ = node9_table()
    assert ids_of(table.closest_preceding(key, (), limit=4)) == expected


def test_closest_preceding_uses_extra_peers_and_limit() -> None:
    table, refs = node9_table()
    assert ids_of(table.closest_preceding(50, (refs[21],), limit=4)) == [41, 21, 20]
    assert ids_of(table.closest_preceding(30, (refs[21], refs[20]), limit=4)) == [21, 20]
    assert ids_of(table.closest_preceding(50, (refs[21],), limit=1)) == [41]
    # Extra peers outside (me, key) are ignored just like fingers.
    assert ids_of(table.closest_preceding(15, (refs[61], refs[9]), limit=4)) == []


def test_closest_preceding_after_forget() -> None:
    table, refs = node9_table()
    without = table.forget(refs[41])
    assert ids_of(without.entries()) == [20, 20, 20, 20, None, None]
    assert ids_of(without.closest_preceding(50, (), limit=4)) == [20]
    # A new table: the old one, which a reader may still hold, is unchanged.
    assert ids_of(table.entries()) == [20, 20, 20, 20, 41, 41]
    assert without.version == table.version + 1
    assert without.forget(refs[41]) is without  # nothing to forget: the same table


def test_closest_preceding_on_node_61_wraps() -> None:
    refs = {ident: NodeRef.for_address(RING, a) for a, ident in ADDRESSES.items()}
    table = FingerTable(RING, refs[61])
    table, after = table.fill(0, refs[9], refs[61])
    assert after == 4  # starts 62, 63, 1, 5 are in (61, 9]
    table, after = table.fill(4, refs[20], refs[9])
    assert after == 5  # start 13
    table, after = table.fill(5, refs[41], refs[21])
    assert after == 0  # start 29
    assert ids_of(table.closest_preceding(30, (), 4)) == [20, 9]
    assert ids_of(table.closest_preceding(10, (), 4)) == [9]
    assert ids_of(table.closest_preceding(5, (), 4)) == []  # (61, 5) holds 62..4 only
    assert ids_of(table.closest_preceding(61, (), 4)) == [41, 20, 9]


def test_empty_finger_table_offers_only_extra_peers() -> None:
    refs = {ident: NodeRef.for_address(RING, a) for a, ident in ADDRESSES.items()}
    table = FingerTable(RING, refs[9])
    assert table.closest_preceding(50, (), 4) == ()
    assert ids_of(table.closest_preceding(50, (refs[20],), 4)) == [20]


def test_handle_step_names_the_owner_only_as_the_keys_predecessor(five_r2: SimNetwork) -> None:
    node9 = by_id(five_r2)[9]  # successors 20, 21; fingers 20 x4, 41 x2; predecessor 61
    answer = node9.handle_step(20)  # in (9, 20]: 9 is the key's predecessor
    assert answer.done and ids_of(answer.nodes) == [20, 21]
    assert answer.predecessor is not None and answer.predecessor.id == 9
    assert answer.owners == ()
    # Deeper in the successor list: 20 is asked next (it answers from its own, fresher
    # list); the list's view of the owner comes along only as owner candidates.
    answer = node9.handle_step(21)
    assert not answer.done and ids_of(answer.nodes) == [20]
    assert ids_of(answer.owners) == [21]
    assert answer.predecessor is not None and answer.predecessor.id == 61  # its own
    answer = node9.handle_step(50)  # beyond the list: closest known peers before 50
    assert not answer.done and ids_of(answer.nodes) == [41, 21, 20]
    assert answer.owners == ()


def test_handle_step_answers_for_its_own_range(five_r2: SimNetwork) -> None:
    """A key in (predecessor, me] is the responder's own: it says so, naming itself,
    its successors and its predecessor (how a verified lookup ends)."""
    node9 = by_id(five_r2)[9]
    for key in (62, 63, 0, 5, 9):  # (61, 9], across zero, its own ID included
        answer = node9.handle_step(key)
        assert answer.done and ids_of(answer.nodes) == [9, 20, 21], key
        assert answer.predecessor is not None and answer.predecessor.id == 61


def test_handle_step_leaves_out_excluded_peers(five_r2: SimNetwork) -> None:
    """Peers the caller found dead are never offered, and the responder's nearest live
    successor is reckoned without them."""
    nodes = by_id(five_r2)
    node9 = nodes[9]
    dead20 = frozenset({nodes[20].me.id})
    answer = node9.handle_step(50, dead20)
    assert not answer.done and ids_of(answer.nodes) == [41, 21]
    # Without 20, 9 is the predecessor of 21: it names the owner at once.
    answer = node9.handle_step(21, dead20)
    assert answer.done and ids_of(answer.nodes) == [21]
    assert answer.predecessor is not None and answer.predecessor.id == 9


def test_fallback_finds_the_live_owner_when_every_closer_peer_is_dead() -> None:
    """The peer before a key still lists its crashed successors: a verified lookup asks
    the entries from the key on, and the first live one, 41, told that its predecessor
    21 is dead, answers as the owner with its own successors. Nothing before the key
    is contacted. (r = 3, so 9 still lists a live successor: the operating assumption
    holds.)"""
    net = build_ring(list(ADDRESSES), r=3)
    nodes = by_id(net)
    net.crash(nodes[20].me.address)
    net.crash(nodes[21].me.address)
    result = nodes[9].lookup(21, confirm_owner=True)
    assert result.owner.id == 41
    assert ids_of(result.successors) == [41, 61, 9, 20]  # 41's list: no stabilize yet
    assert (result.hops, result.timeouts) == (1, 1)  # 21 dead, 41 answered


# ------------------------------------------------------------------ lookups
def test_every_key_from_every_peer_finds_its_successor(five: SimNetwork) -> None:
    for node in five.members():
        for key in range(RING.size):
            result = node.lookup(key)
            owner = successor_of(FIVE_IDS, key)
            assert result.owner.id == owner, (node.me.id, key)
            assert result.successors[0] == result.owner
            assert result.predecessor.id == predecessor_of(FIVE_IDS, owner), (node.me.id, key)
            assert result.timeouts == 0
            assert result.hops <= 3  # log2(5) rounded up: fingers keep routes short


@pytest.mark.parametrize(
    ("key", "owner"),
    [(62, 9), (63, 9), (0, 9), (1, 9), (8, 9), (9, 9), (10, 20), (60, 61), (61, 61)],
)
def test_wrap_around_keys(five_r2: SimNetwork, key: int, owner: int) -> None:
    """Keys after the largest ID (61) belong to the smallest (9)."""
    for node in five_r2.members():
        assert node.lookup(key).owner.id == owner


def test_one_peer_ring_owns_everything() -> None:
    net = SimNetwork(RING, successors=3)
    node = net.add(A41)
    node.create()
    assert ideal_violations(states(net), 3) == []
    assert violations(states(net)) == []
    net.run_maintenance_round()
    node.fix_all_fingers()
    state = node.state()
    assert state.successors == () and state.predecessor is None
    assert state.successor == node.me
    assert set(state.fingers) == {node.me}
    for key in range(RING.size):
        result = node.lookup(key)
        assert result.owner == node.me and result.hops == 0 and result.timeouts == 0
    assert net.counters.messages == 0  # a lone peer never talks to anyone


def test_two_peer_ring() -> None:
    net = build_ring([A41, A21], r=3)  # ids 21 and 41
    nodes = by_id(net)
    for me, other in ((21, 41), (41, 21)):
        state = nodes[me].state()
        assert ids_of(state.successors) == [other]
        assert state.predecessor is not None and state.predecessor.id == other
    assert ids_of(nodes[21].state().fingers) == [41, 41, 41, 41, 41, 21]  # 22..53
    assert ids_of(nodes[41].state().fingers) == [21] * 6  # 42, 43, 45, 49, 57, 9
    for node in nodes.values():
        for key in range(RING.size):
            assert node.lookup(key).owner.id == (41 if 21 < key <= 41 else 21)


# ------------------------------------------------------------- admission
@pytest.fixture
def three() -> SimNetwork:
    return build_ring([A41, A21, A9], r=2)  # ids 9, 21, 41


def test_join_refused_when_id_is_not_hash_of_address(three: SimNetwork) -> None:
    address = "10.0.0.99:7000"
    forged = NodeRef((RING.hash(address) + 1) % RING.size, address)
    with pytest.raises(Refused) as refused:
        by_id(three)[41].handle_join(forged, RING.bits)
    assert refused.value.code == "invalid-identity"


def test_join_refused_on_id_collision_with_responder(three: SimNetwork) -> None:
    address = colliding_address(41, list(ADDRESSES))
    with pytest.raises(Refused) as refused:
        by_id(three)[41].handle_join(NodeRef.for_address(RING, address), RING.bits)
    assert refused.value.code == "id-collision"


def test_join_refused_on_id_collision_with_a_listed_successor(three: SimNetwork) -> None:
    node41 = by_id(three)[41]
    assert ids_of(node41.state().successors) == [9, 21]
    address = colliding_address(21, list(ADDRESSES))
    with pytest.raises(Refused) as refused:
        node41.handle_join(NodeRef.for_address(RING, address), RING.bits)
    assert refused.value.code == "id-collision"


def test_colliding_peer_cannot_join_end_to_end(three: SimNetwork) -> None:
    address = colliding_address(41, list(ADDRESSES))
    newcomer = three.add(address)
    with pytest.raises(Refused) as refused:
        newcomer.join(A9)
    assert refused.value.code == "id-collision"
    assert not newcomer.joined
    assert violations(states(three)) == []
    assert ideal_violations(states(three), 2) == []


def test_join_refused_on_ring_mismatch(three: SimNetwork) -> None:
    joiner = NodeRef.for_address(RING, "10.0.0.99:7000")
    with pytest.raises(Refused) as refused:
        by_id(three)[41].handle_join(joiner, RING.bits + 1)
    assert refused.value.code == "ring-mismatch"


def test_same_address_rejoining_is_not_a_collision(three: SimNetwork) -> None:
    node41 = by_id(three)[41]
    node21 = by_id(three)[21]
    # 21 re-announcing itself (a restart): admitted, handed 41's list and 41 itself.
    assert ids_of(node41.handle_join(node21.me, RING.bits)) == [9, 21]


def test_handlers_refuse_until_joined() -> None:
    net = SimNetwork(RING, successors=2)
    node = net.add(A41)
    other = NodeRef.for_address(RING, A21)
    for call in (
        lambda: node.handle_step(5),
        node.handle_state,
        lambda: node.handle_join(other, RING.bits),
        lambda: node.handle_notify(other),
        node.handle_ping,
    ):
        with pytest.raises(NotReady):
            call()
    # Seen from another peer through the transport, a not-ready peer is unreachable.
    with pytest.raises(PeerUnreachable):
        net.add(A21).transport.ping(node.me)


# ----------------------------------------------------------------- rectify
def test_notify_from_a_farther_peer_keeps_the_live_predecessor(five_r2: SimNetwork) -> None:
    """41's predecessor is 21. A notify from 9 (not in (21, 41)) must not replace it,
    however insistent; 9 only becomes the challenger."""
    nodes = by_id(five_r2)
    nodes[41].handle_notify(nodes[9].me)
    assert nodes[41].state().predecessor == nodes[21].me
    nodes[41].check_predecessor()  # 21 answers the ping: nothing changes
    assert nodes[41].state().predecessor == nodes[21].me


def test_challenger_replaces_a_dead_predecessor_only_after_answering(
    five_r2: SimNetwork,
) -> None:
    nodes = by_id(five_r2)
    nodes[41].handle_notify(nodes[20].me)
    five_r2.crash(A21)
    nodes[41].check_predecessor()
    assert nodes[41].state().predecessor == nodes[20].me


def test_dead_predecessor_with_dead_challenger_is_forgotten(five_r2: SimNetwork) -> None:
    nodes = by_id(five_r2)
    nodes[41].handle_notify(nodes[20].me)
    five_r2.crash(A21)
    five_r2.crash(A20)
    nodes[41].check_predecessor()
    assert nodes[41].state().predecessor is None


def test_notify_from_a_closer_peer_is_adopted(five_r2: SimNetwork) -> None:
    node41 = by_id(five_r2)[41]
    closer = NodeRef.for_address(RING, "10.0.0.9:7000")
    assert closer.id == 32  # in (21, 41)
    node41.handle_notify(closer)
    assert node41.state().predecessor == closer


def test_notify_with_forged_identity_is_refused(five_r2: SimNetwork) -> None:
    node41 = by_id(five_r2)[41]
    with pytest.raises(Refused) as refused:
        node41.handle_notify(NodeRef(32, "10.0.0.1:7000"))  # that address hashes to 41
    assert refused.value.code == "invalid-identity"
    assert node41.state().predecessor == by_id(five_r2)[21].me


# ------------------------------------------------------------------- leave
def test_graceful_leave_updates_neighbours_at_once(five_r2: SimNetwork) -> None:
    nodes = by_id(five_r2)
    handed_to: list[NodeRef] = []
    nodes[21].hooks.before_leave = handed_to.append
    nodes[21].leave()
    assert handed_to == [nodes[41].me]  # storage hands its keys to the successor first
    assert not nodes[21].joined
    # Both neighbours forgot it immediately, without waiting for a timeout.
    assert ids_of(nodes[20].state().successors) == [41]
    assert nodes[41].state().predecessor is None
    with pytest.raises(NotReady):
        nodes[21].handle_ping()
    assert violations(states(five_r2)) == []

    for _ in range(20):
        if not ideal_violations(states(five_r2), 2):
            break
        five_r2.run_maintenance_round()
        assert violations(states(five_r2)) == []
    assert ideal_violations(states(five_r2), 2) == []
    rest = [9, 20, 41, 61]
    assert ids_of(nodes[20].state().successors) == [41, 61]
    assert ids_of(nodes[9].state().successors) == [20, 41]
    assert nodes[41].state().predecessor == nodes[20].me
    for node in five_r2.members():
        for key in range(RING.size):
            assert node.lookup(key).owner.id == successor_of(rest, key)


def test_leaving_twice_is_harmless(five_r2: SimNetwork) -> None:
    node = by_id(five_r2)[21]
    node.leave()
    messages = five_r2.counters.messages
    node.leave()
    assert five_r2.counters.messages == messages


# -------------------------------------------------------------- dead peers
def test_lookup_routes_around_a_dead_finger(five_r2: SimNetwork) -> None:
    """Node 9 knows 41 only as a finger. With 41 crashed and no maintenance run, the
    lookup of 50 asks 41 first (closest before 50) and times out. 21 is next: it is not
    50's predecessor by its own list (41, 61), so it names only 41 (already found dead)
    and offers 61 as a fallback. The only other candidate, 20, is farther from the key
    than 21, so the fallback is taken: 61, correct, since 41 is gone."""
    nodes = by_id(five_r2)
    five_r2.crash(A41)
    timeouts_before = five_r2.counters.timeouts
    result = nodes[9].lookup(50)
    assert result.owner.id == 61
    assert result.timeouts == 1
    assert result.hops == 1  # only 21 answered
    assert five_r2.counters.timeouts == timeouts_before + 1
    assert nodes[41].me not in nodes[9].state().fingers  # the dead finger was dropped
    # 21 still lists 41 until it stabilizes, so the next lookup meets it once more.
    assert nodes[9].lookup(50).owner.id == 61
    five_r2.run_maintenance_round()
    assert nodes[9].lookup(50).timeouts == 0


def test_lookup_may_name_a_dead_owner_until_maintenance(five_r2: SimNetwork) -> None:
    """What is, and is not, guaranteed: a lookup trusts the responder's successor list.
    21 still lists the crashed 41 first, so it answers "41 owns 30" and the lookup
    returns the dead peer without any timeout. Whoever then contacts 41 finds it
    dead and retries; after maintenance the owner is 61."""
    nodes = by_id(five_r2)
    five_r2.crash(A41)
    result = nodes[9].lookup(30)
    assert result.owner.id == 41 and result.timeouts == 0
    for _ in range(10):
        five_r2.run_maintenance_round()
    assert ideal_violations(states(five_r2), 2) == []
    assert nodes[9].lookup(30).owner.id == 61


# --------------------------------------------------------- iterative lookup
def ref(ident: int) -> NodeRef:
    return NodeRef(ident, f"peer-{ident}")


def test_hop_cap_stops_an_endless_chain_of_closer_peers() -> None:
    asked: list[int] = []

    def always_one_closer(
        peer: NodeRef, key: int, exclude: frozenset[int] = frozenset()
    ) -> StepAnswer:
        asked.append(peer.id)
        return StepAnswer(False, (ref(peer.id + 1),))

    with pytest.raises(LookupFailed, match="hop cap 5"):
        iterative_lookup(RING, 63, [ref(0)], always_one_closer, max_hops=5)
    assert asked == [0, 1, 2, 3, 4]


def test_local_step_does_not_count_as_a_hop() -> None:
    asked: list[int] = []

    def always_one_closer(
        peer: NodeRef, key: int, exclude: frozenset[int] = frozenset()
    ) -> StepAnswer:
        asked.append(peer.id)
        return StepAnswer(False, (ref(peer.id + 1),))

    with pytest.raises(LookupFailed, match="hop cap"):
        iterative_lookup(RING, 63, [ref(0)], always_one_closer, max_hops=3, local=ref(0))
    assert asked == [0, 1, 2, 3]


def test_backward_candidates_are_ignored() -> None:
    """Candidates not strictly between the responder (30) and the key (40) would let
    two peers bounce a key between them forever; they are dropped, so the lookup
    ends with "no live peer" after one question."""
    asked: list[int] = []

    def backwards(peer: NodeRef, key: int, exclude: frozenset[int] = frozenset()) -> StepAnswer:
        asked.append(peer.id)
        return StepAnswer(False, (ref(20), ref(30), ref(40), ref(50), ref(10)))

    with pytest.raises(LookupFailed, match="no live peer"):
        iterative_lookup(RING, 40, [ref(30)], backwards, max_hops=100)
    assert asked == [30]


def test_two_peers_naming_each_other_do_not_loop() -> None:
    """The ancestor's failure: 10 says "ask 20", 20 says "ask 10". Only the forward
    step is taken."""
    asked: list[int] = []
    names = {10: ref(20), 20: ref(10)}

    def ping_pong(peer: NodeRef, key: int, exclude: frozenset[int] = frozenset()) -> StepAnswer:
        asked.append(peer.id)
        return StepAnswer(False, (names[peer.id],))

    with pytest.raises(LookupFailed, match="no live peer"):
        iterative_lookup(RING, 30, [ref(10)], ping_pong, max_hops=100)
    assert asked == [10, 20]


def test_every_candidate_dead_fails_and_reports_each() -> None:
    dead: list[int] = []

    def unreachable(peer: NodeRef, key: int, exclude: frozenset[int] = frozenset()) -> StepAnswer:
        raise PeerUnreachable(peer)

    with pytest.raises(LookupFailed, match="2 unreachable"):
        iterative_lookup(
            RING,
            40,
            [ref(30), ref(35)],
            unreachable,
            max_hops=10,
            on_dead=lambda p: dead.append(p.id),
        )
    assert dead == [35, 30]  # closest to the key first


def test_done_answer_ends_the_lookup() -> None:
    def answer(peer: NodeRef, key: int, exclude: frozenset[int] = frozenset()) -> StepAnswer:
        if peer.id == 10:
            return StepAnswer(False, (ref(30), ref(20)))
        return StepAnswer(True, (ref(45), ref(50)))  # 30 knows: 45 owns the key

    result = iterative_lookup(RING, 40, [ref(10)], answer, max_hops=10)
    assert result.owner == ref(45)
    assert result.successors == (ref(45), ref(50))
    assert result.predecessor == ref(30)  # defaults to the peer that answered
    assert (result.hops, result.timeouts) == (2, 0)
