"""chord.replication's rules by hand: versions, writes, and a Keeper over tiny
in-memory rings (chord.sim.files) where every copy can be checked."""

from __future__ import annotations

import pytest

from chord.ids import Ring
from chord.replication import (
    Decision,
    Refusal,
    Role,
    current,
    decide,
    newest,
    plan_delete,
    plan_write,
    should_pull,
    should_send,
    store_refusal,
    write_quorum,
)
from chord.sim.files import SimCopy, SimFiles
from chord.sim.network import SimNetwork
from chord.sim.rng import SimRandom


def copy(version: int, *, deleted: bool = False, damaged: bool = False, sha: str = "a") -> SimCopy:
    return SimCopy("f", 1, version, "" if deleted else sha, deleted, 0, Role.PRIMARY, damaged)


# ----------------------------------------------------------------- versions
def test_role_keeps_its_wire_and_storage_words() -> None:
    assert (
        str(Role.PRIMARY) == "primary"
        and Role("primary") is Role.PRIMARY
        and f"{Role.REPLICA}" == "replica"
    )
    assert Role.at(0) is Role.PRIMARY and Role.at(2) is Role.REPLICA


def test_newest_wins_and_an_intact_copy_beats_a_damaged_one() -> None:
    assert newest([None, copy(1), copy(3), copy(2)]) == copy(3)
    assert newest([copy(2, damaged=True), copy(2)]) == copy(2)
    assert newest([None, None]) is None


def test_current_is_none_after_a_delete_and_lists_intact_holders() -> None:
    answers = {"a": copy(2), "b": copy(2, damaged=True), "c": copy(1), "d": None}
    found, having = current(answers)
    assert found == copy(2) and having == ["a"]
    assert current({"a": copy(3, deleted=True), "b": copy(2)}) == (None, [])


@pytest.mark.parametrize(
    ("theirs", "mine", "pull", "send"),
    [
        (copy(2), copy(1), True, False),
        (copy(1), copy(2), False, True),
        (None, copy(1), False, True),
        (copy(1), None, True, False),
        (copy(1), copy(1), False, False),
        (copy(1, damaged=True), copy(1), False, True),
        (copy(1), copy(1, damaged=True), True, False),
        (copy(3, deleted=True), copy(2), True, False),  # a tombstone travels like bytes
    ],
)
def test_pull_and_send(
    theirs: SimCopy | None, mine: SimCopy | None, pull: bool, send: bool
) -> None:
    assert should_pull(theirs, mine) is pull
    assert should_send(theirs, mine) is send


def test_a_holder_accepts_only_newer_or_identical_versions() -> None:
    assert store_refusal(None, 1, "a") is None
    assert store_refusal(copy(2), 3, "b") is None
    assert store_refusal(copy(2), 2, "a") is None  # idempotent
    assert store_refusal(copy(2), 2, "b") is not None  # other bytes
    assert store_refusal(copy(2), 1, "a") is not None  # older
    assert store_refusal(copy(2, deleted=True), 2, "a") is not None  # deleted


# -------------------------------------------------------------------- writes
def test_plan_write() -> None:
    assert plan_write(None, replicas=None, default=3, tentative=False).version == 1
    assert plan_write(copy(4), replicas=None, default=3, tentative=False).version == 4
    assert plan_write(copy(4), replicas=None, default=3, tentative=True).version == 5
    after_delete = plan_write(copy(4, deleted=True), replicas=2, default=3, tentative=False)
    assert (after_delete.version, after_delete.copies, after_delete.inherited) == (5, 2, 0)


def test_quorum_and_decision() -> None:
    assert write_quorum(None, 3, 3) == 3
    assert write_quorum(2, 3, 3) == 2
    assert write_quorum(None, 5, 3) == 3
    assert decide(set(), 3, 3) is Decision.COMMIT
    assert decide(set(), 2, 3) is Decision.TOO_FEW
    assert decide({Refusal.NO_SPACE}, 3, 3) is Decision.NO_SPACE
    assert decide({Refusal.NO_SPACE, Refusal.CONFLICT}, 3, 3) is Decision.CONFLICT


def test_plan_delete() -> None:
    assert plan_delete(None, 3) is None
    assert plan_delete(copy(2, deleted=True), 3) is None
    plan = plan_delete(copy(2), 3)
    assert plan is not None and (plan.version, plan.copies) == (3, 3)


# -------------------------------------------------------------------- keeper
def tiny_ring(peers: int = 5) -> SimFiles:
    net = SimNetwork(Ring(16), successors=4)
    net.build_ideal(net.random_addresses(peers, SimRandom(7)))
    return SimFiles(net, copies=3)


def place(files: SimFiles, name: str, version: int, addresses: list[str]) -> SimCopy:
    key = files.net.ring.hash(name)
    placed = SimCopy(name, key, version, f"{name}-{version}", False, 0)
    for address in addresses:
        files.store(address).accept(placed)
    return placed


def test_repair_pushes_a_missing_copy_and_drops_a_misplaced_one() -> None:
    files = tiny_ring()
    key = files.net.ring.hash("x")
    holders = files.ideal_holders(key, 3)
    stranger = next(a for a in sorted(files.net.alive) if a not in holders)
    place(files, "x", 1, [holders[0], stranger])  # two holders lack it; a stranger has it
    for _ in range(3):
        files.run_round()
    assert sorted(files.holding("x")) == sorted(holders)


def test_newer_version_replaces_older_everywhere_and_a_tombstone_stays() -> None:
    files = tiny_ring()
    holders = files.ideal_holders(files.net.ring.hash("y"), 3)
    place(files, "y", 1, holders)
    tombstone = SimCopy("y", files.net.ring.hash("y"), 2, "", True, 0)
    files.store(holders[2]).accept(tombstone)  # one holder saw the delete
    for _ in range(3):
        files.run_round()
    assert all(c.deleted and c.version == 2 for c in files.holding("y").values())
    assert sorted(files.holding("y")) == sorted(holders)


def test_a_superseded_copy_beyond_the_default_count_is_dropped() -> None:
    """v1 was kept on 4 holders; v2 (2 copies) never reached the 4th (it was down):
    the 4th learns from the owner that its copy is superseded and drops it."""
    files = tiny_ring(6)
    key = files.net.ring.hash("z")
    holders = files.ideal_holders(key, 4)
    old = SimCopy("z", key, 1, "old", False, 4)
    for address in holders:
        files.store(address).accept(old)
    new = SimCopy("z", key, 2, "new", False, 2)
    for address in holders[:2]:
        files.store(address).accept(new)
    for _ in range(3):
        files.run_round()
    assert sorted(files.holding("z")) == sorted(holders[:2])
    assert {c.version for c in files.holding("z").values()} == {2}
