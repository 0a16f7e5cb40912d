"""The one-hop table (chord.membership) by hand on a ring of m = 8: what it learns,
forgets and gossips, and the owner candidates it names."""

from __future__ import annotations

from chord.ids import Ring
from chord.membership import Membership
from chord.node_ref import NodeRef

RING = Ring(8)


def ref(ident: int) -> NodeRef:
    return NodeRef(ident, f"peer-{ident}")


def table(me: int = 10, ttl: float = 100.0) -> Membership:
    return Membership(ref(me), RING.size, ttl)


def ids(nodes: tuple[NodeRef, ...]) -> list[int]:
    return [n.id for n in nodes]


def test_learns_from_evidence_and_hints_never_itself() -> None:
    members = table()
    members.heard_from(ref(50), now=0)
    members.hint([ref(10), ref(90), ref(200)], now=0)
    assert ids(members.members()) == [50, 90, 200]
    assert len(members) == 3 and ref(90) in members and ref(10) not in members


def test_around_names_the_member_before_the_key_and_the_owners_after() -> None:
    members = table(me=10)
    members.hint([ref(50), ref(90), ref(200)], now=0)
    before, after = members.around(95, 3)
    assert before == ref(90) and ids(after) == [200, 10, 50]  # wraps, includes us
    before, after = members.around(60, 2)
    assert before == ref(50) and ids(after) == [90, 200]
    # Nothing known between us and the key: we are the closest, no one to send it to.
    before, after = members.around(30, 1)
    assert before is None and ids(after) == [50]


def test_behind_names_the_members_before_the_key_nearest_first() -> None:
    members = table(me=10)
    members.hint([ref(50), ref(90), ref(200), ref(240)], now=0)
    assert ids(members.behind(95, 2, frozenset())) == [90, 50]
    assert ids(members.behind(95, 3, frozenset({90}))) == [50]  # found dead: skipped
    assert ids(members.behind(5, 3, frozenset())) == [240, 200, 90]  # wraps past zero
    # Only peers strictly between us and the key: never us, nor the key's own peer.
    assert ids(members.behind(60, 5, frozenset())) == [50]
    assert members.behind(30, 2, frozenset()) == ()
    assert ids(members.behind(10, 9, frozenset())) == [240, 200, 90, 50]  # all the way round


def test_a_dead_peer_stays_out_until_it_speaks_again() -> None:
    members = table(ttl=100)
    members.heard_from(ref(50), now=0)
    members.forget(ref(50), now=10)
    members.hint([ref(50)], now=20)  # someone still lists it: ignored
    members.merge([(ref(50), 15.0)], now=20)  # evidence from before its death: ignored
    assert ref(50) not in members
    members.heard_from(ref(50), now=30)  # it answered us: back
    assert ref(50) in members


def test_gossip_keeps_the_fresher_age_and_entries_expire() -> None:
    members = table(ttl=100)
    members.merge([(ref(50), 90.0), (ref(90), 10.0)], now=100)
    assert [(n.id, age) for n, age in members.entries(now=100)] == [(50, 90.0), (90, 10.0)]
    members.merge([(ref(50), 1.0)], now=100)  # someone heard from it just now
    assert dict((n.id, a) for n, a in members.entries(now=100))[50] == 1.0
    assert ids(tuple(n for n, _ in members.entries(now=195))) == [50]  # 90 is 105 s old
    assert ref(90) not in members


def test_an_id_at_another_address_is_not_adopted_from_gossip() -> None:
    members = table()
    members.heard_from(ref(50), now=0)
    members.merge([(NodeRef(50, "elsewhere"), 0.0)], now=1)
    assert members.members() == (ref(50),)


def test_we_are_never_forgotten_nor_gossiped() -> None:
    members = table(me=10)
    members.forget(ref(10), now=0)
    assert members.entries(now=1000) == []
    assert ids(members.around(10, 1)[1]) == [10]
