"""Versions, tombstones, drop, dedupe and the small metadata operations."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.storage import StaleVersion, StorageEngine, StorageError
from tests.storage.storage_helpers import blob_files, key_of, payload, put, read_all, sha, tmp_files


def test_newer_version_replaces_older_and_releases_its_blob(
    engine: StorageEngine, data_dir: Path
) -> None:
    v1 = put(engine, "f", 1, b"first")
    v2 = put(engine, "f", 2, b"second version")
    assert engine.get("f") == v2
    assert blob_files(data_dir) == {sha(b"second version"): 14}
    assert engine.usage()[0] == 14
    assert read_all(engine, v2) == b"second version"
    with pytest.raises(StorageError, match="no longer stored"):
        engine.read(v1)  # old versions are never served
    assert engine.records() == [v2]


def test_same_version_same_content_is_idempotent(engine: StorageEngine, data_dir: Path) -> None:
    first = put(engine, "f", 3, b"content")
    again = put(engine, "f", 3, b"content")
    assert again == first
    moved = put(engine, "f", 3, b"content", role="replica")  # e.g. re-pushed as a replica
    assert moved.role == "replica" and moved.created == first.created
    assert engine.get("f") == moved
    assert blob_files(data_dir) == {sha(b"content"): 7} and tmp_files(data_dir) == []


def test_stale_versions_refused(engine: StorageEngine, data_dir: Path) -> None:
    put(engine, "f", 5, b"five")
    with pytest.raises(StaleVersion):
        engine.writer("f", key_of("f"), 4, role="primary")  # refused before any byte moves
    with pytest.raises(StaleVersion):
        engine.writer("f", key_of("f"), 5, role="primary", expected_sha256=sha(b"other"))
    with pytest.raises(StaleVersion):
        put(engine, "f", 5, b"other")  # content only known at commit
    assert read_all(engine, engine.get("f")) == b"five"  # type: ignore[arg-type]
    assert tmp_files(data_dir) == [] and blob_files(data_dir) == {sha(b"five"): 4}


def test_race_lost_at_commit(engine: StorageEngine, data_dir: Path) -> None:
    """Both writers pass the up-front check; the older one loses when it commits."""
    older = engine.writer("f", key_of("f"), 2, role="primary")
    newer = engine.writer("f", key_of("f"), 3, role="primary")
    older.write(b"two")
    newer.write(b"three")
    assert newer.commit().version == 3
    with pytest.raises(StaleVersion):
        older.commit()
    assert older.closed and tmp_files(data_dir) == []
    assert engine.get("f").version == 3  # type: ignore[union-attr]
    assert blob_files(data_dir) == {sha(b"three"): 5} and engine.usage()[0] == 5


def test_tombstones(engine: StorageEngine, data_dir: Path) -> None:
    live = put(engine, "f", 3, b"data")
    digest_before = engine.digest(0, 0)
    stone = engine.delete("f", key_of("f"), 3, role="primary")  # same version: delete wins
    assert stone.deleted and stone.version == 3 and stone.size == 0 and stone.chunk_hashes == ()
    assert engine.get("f") == stone
    assert blob_files(data_dir) == {} and engine.usage()[0] == 0
    assert engine.digest(0, 0) != digest_before
    with pytest.raises(StorageError):
        engine.read(live)
    with pytest.raises(StorageError):
        engine.read(stone)
    for version in (2, 3):  # an older replica push must not resurrect the file
        with pytest.raises(StaleVersion):
            put(engine, "f", version, b"data")
    with pytest.raises(StaleVersion):
        engine.delete("f", key_of("f"), 2, role="primary")
    assert engine.delete("f", key_of("f"), 3, role="primary") == stone  # idempotent
    assert engine.records() == []
    assert engine.records(include_deleted=True) == [stone]
    assert engine.in_range(0, 0) == [stone]
    revived = put(engine, "f", 4, b"new life")  # a newer version is a real re-creation
    assert engine.get("f") == revived and read_all(engine, revived) == b"new life"


def test_tombstone_for_unknown_name_and_persistence(data_dir: Path) -> None:
    with StorageEngine(data_dir) as engine:
        engine.delete("ghost", key_of("ghost"), 7, role="replica")
    with StorageEngine(data_dir) as engine:
        stone = engine.get("ghost")
        assert stone is not None and stone.deleted and stone.role == "replica"
        with pytest.raises(StaleVersion):
            put(engine, "ghost", 7, b"boo")


def test_drop_forgets_everything(engine: StorageEngine, data_dir: Path) -> None:
    put(engine, "a", 2, b"aaa")
    engine.delete("b", key_of("b"), 5, role="replica")
    engine.drop("a")
    engine.drop("b")
    engine.drop("never-seen")  # no-op
    assert engine.get("a") is None and engine.get("b") is None
    assert engine.records(include_deleted=True) == []
    assert blob_files(data_dir) == {} and engine.usage()[0] == 0
    assert put(engine, "b", 1, b"old version accepted again").version == 1


def test_dedupe(engine: StorageEngine, data_dir: Path) -> None:
    data = payload(100_000, seed=1)
    a = put(engine, "a", 1, data)
    b = put(engine, "copy/of/a", 9, data, role="replica")
    assert a.sha256 == b.sha256
    assert blob_files(data_dir) == {sha(data): len(data)}
    assert engine.usage()[0] == len(data)  # counted once
    engine.drop("a")
    assert read_all(engine, b) == data
    assert engine.verify(b)
    engine.delete("copy/of/a", key_of("copy/of/a"), 10, role="replica")
    assert blob_files(data_dir) == {} and engine.usage()[0] == 0


def test_new_version_with_content_of_another_name_keeps_shared_blob(
    engine: StorageEngine, data_dir: Path
) -> None:
    put(engine, "a", 1, b"shared")
    put(engine, "b", 1, b"b-only")
    put(engine, "b", 2, b"shared")  # b's old blob goes, the shared one stays
    put(engine, "a", 2, b"a-new")  # a leaves the shared blob: b still needs it
    assert blob_files(data_dir) == {sha(b"shared"): 6, sha(b"a-new"): 5}
    assert read_all(engine, engine.get("b")) == b"shared"  # type: ignore[arg-type]


def test_set_role_mark_damaged_and_record_filters(engine: StorageEngine) -> None:
    put(engine, "p", 1, b"p")
    put(engine, "r", 1, b"r", role="replica")
    engine.delete("t", key_of("t"), 1, role="replica")
    assert [r.name for r in engine.records(role="replica")] == ["r"]
    engine.set_role("r", "primary")
    assert engine.get("r").role == "primary"  # type: ignore[union-attr]
    engine.mark_damaged("p")
    assert engine.get("p").damaged  # type: ignore[union-attr]
    assert {r.name for r in engine.records(include_damaged=False)} == {"r"}
    assert {r.name for r in engine.records(include_deleted=True)} == {"p", "r", "t"}
    with pytest.raises(KeyError):
        engine.set_role("missing", "primary")
    with pytest.raises(KeyError):
        engine.mark_damaged("missing")
    with pytest.raises(ValueError):
        engine.set_role("p", "boss")
    with pytest.raises(ValueError):
        engine.records(role="boss")


def test_records_sorted_by_key_then_name(engine: StorageEngine) -> None:
    for name in ["zeta", "alpha", "mid", "omega"]:
        put(engine, name, 1, name.encode())
    engine.put_bytes("same-key-b", 42, 1, b"1", role="primary")
    engine.put_bytes("same-key-a", 42, 1, b"2", role="primary")
    records = engine.records()
    assert [(r.key, r.name) for r in records] == sorted((r.key, r.name) for r in records)
    assert [r.name for r in records[:2]] == ["same-key-a", "same-key-b"]


def test_second_engine_on_same_dir_refused(engine: StorageEngine, data_dir: Path) -> None:
    with pytest.raises(StorageError, match="in use"):
        StorageEngine(data_dir)
    engine.close()
    with pytest.raises(StorageError, match="closed"):
        engine.get("x")
    StorageEngine(data_dir).close()  # free again once closed
