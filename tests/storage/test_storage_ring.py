"""Ring-interval queries and the anti-entropy digest."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from chord.ids import between_right
from services.storage import FileRecord, StorageEngine
from tests.storage.storage_helpers import CS

TOP = (1 << 160) - 1


def tombstone(engine: StorageEngine, name: str, key: int, version: int = 1) -> None:
    engine.delete(name, key, version, role="replica")  # metadata-only records: cheap to make


@pytest.fixture
def ring(engine: StorageEngine) -> StorageEngine:
    for key in (0, 10, 20, 30, TOP):
        engine.put_bytes(f"k{key}", key, 1, str(key).encode(), role="primary")
    tombstone(engine, "dead25", 25)
    return engine


def names(records: list[FileRecord]) -> list[str]:
    return [r.name for r in records]


def test_in_range_is_half_open(ring: StorageEngine) -> None:
    assert names(ring.in_range(10, 30)) == ["k20", "dead25", "k30"]  # start out, end in
    assert names(ring.in_range(20, 25)) == ["dead25"]  # tombstones included
    assert names(ring.in_range(11, 19)) == []


def test_in_range_wraps_around(ring: StorageEngine) -> None:
    assert names(ring.in_range(25, 10)) == ["k0", "k10", "k30", f"k{TOP}"]
    assert names(ring.in_range(TOP, 0)) == ["k0"]
    assert names(ring.in_range(30, TOP)) == [f"k{TOP}"]


def test_whole_ring(ring: StorageEngine) -> None:
    everything = names(ring.records(include_deleted=True))
    for point in (0, 20, 21, TOP):
        assert names(ring.in_range(point, point)) == everything


def test_in_range_matches_between_right(engine: StorageEngine) -> None:
    rng = random.Random(7)
    keys = [rng.randrange(1 << 160) for _ in range(40)] + [0, TOP]
    for i, key in enumerate(keys):
        tombstone(engine, f"n{i}", key)
    bounds = [*rng.sample(keys, 6), 0, TOP, rng.randrange(1 << 160)]
    for start in bounds:
        for end in bounds:
            want = sorted(k for k in keys if between_right(start, k, end))
            assert sorted(r.key for r in engine.in_range(start, end)) == want


def test_in_range_rejects_bad_bounds(engine: StorageEngine) -> None:
    for start, end in [(-1, 5), (0, 1 << 160)]:
        with pytest.raises(ValueError):
            engine.in_range(start, end)


def fill(engine: StorageEngine, order: list[int], role: str) -> None:
    for i in order:
        engine.put_bytes(f"f{i}", i * 1000, 2, f"content {i}".encode(), role=role)
    tombstone(engine, "gone", 3500, version=4)


def test_digest_equal_for_equal_contents(tmp_path: Path) -> None:
    with (
        StorageEngine(tmp_path / "a", chunk_size=CS) as a,
        StorageEngine(tmp_path / "b", chunk_size=2 * CS) as b,
    ):
        fill(a, [1, 2, 3, 4, 5], "primary")
        fill(b, [5, 3, 1, 4, 2], "replica")  # other order, other role, other chunk size
        b.put_bytes("outside", 9000, 1, b"not in range", role="replica")
        assert a.digest(500, 5000) == b.digest(500, 5000)
        assert a.digest(0, 0) != b.digest(0, 0)
        assert a.digest(100, 200) == b.digest(100, 200)  # both empty
        # A damaged copy must make the digests differ, or anti-entropy would never
        # notice it and repair it from the good one.
        b.mark_damaged("f2")
        assert a.digest(500, 5000) != b.digest(500, 5000)


@pytest.mark.parametrize(
    "change",
    ["newer version", "other content", "deleted", "renamed", "extra file", "tombstone version"],
)
def test_digest_differs_when_anything_differs(tmp_path: Path, change: str) -> None:
    with (
        StorageEngine(tmp_path / "a", chunk_size=CS) as a,
        StorageEngine(tmp_path / "b", chunk_size=CS) as b,
    ):
        fill(a, [1, 2, 3], "primary")
        fill(b, [1, 2, 3], "primary")
        assert a.digest(0, 0) == b.digest(0, 0)
        if change == "newer version":
            b.put_bytes("f2", 2000, 3, b"content 2", role="primary")
        elif change == "other content":
            b.drop("f2")
            b.put_bytes("f2", 2000, 2, b"content 2!", role="primary")
        elif change == "deleted":
            b.delete("f2", 2000, 2, role="primary")
        elif change == "renamed":
            b.drop("f2")
            b.put_bytes("f2 ", 2000, 2, b"content 2", role="primary")
        elif change == "extra file":
            b.put_bytes("f2b", 2000, 2, b"content 2", role="primary")
        else:
            tombstone(b, "gone", 3500, version=5)
        assert a.digest(0, 0) != b.digest(0, 0)
        assert a.digest(1500, 3500) != b.digest(1500, 3500)  # the range with the change
        assert a.digest(3500, 1500) == b.digest(3500, 1500)  # the rest of the ring
