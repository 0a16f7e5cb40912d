"""Two-phase writes: a staged version is durable but invisible until committed, an
aborted stage leaves nothing, a conflict is found at staging; per-file replica counts
are kept with versions and tombstones and survive a reopen and the v1 -> v2 schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from services.storage import QuotaExceeded, StaleVersion, StorageEngine
from tests.storage.storage_helpers import blob_files, key_of, put, read_all, sha, tmp_files


def test_a_staged_version_is_invisible_until_committed(
    engine: StorageEngine, data_dir: Path
) -> None:
    writer = engine.writer("f", key_of("f"), 1, role="primary", replicas=2)
    writer.write(b"staged bytes")
    digest, chunks = writer.stage()
    assert digest == sha(b"staged bytes") and len(chunks) == 1
    assert engine.get("f") is None and engine.records() == []
    assert blob_files(data_dir) == {} and len(tmp_files(data_dir)) == 1  # durable in tmp/
    assert engine.usage()[0] == len(b"staged bytes")  # the quota stays reserved
    record = writer.commit()
    assert (record.version, record.replicas) == (1, 2)
    assert engine.get("f") == record and read_all(engine, record) == b"staged bytes"
    assert tmp_files(data_dir) == []


def test_an_aborted_stage_leaves_nothing(engine: StorageEngine, data_dir: Path) -> None:
    with engine.writer("f", key_of("f"), 1, role="replica") as writer:
        writer.write(b"never published")
        writer.stage()
    assert writer.closed and engine.get("f") is None
    assert tmp_files(data_dir) == [] and blob_files(data_dir) == {}
    assert engine.usage()[0] == 0


def test_a_conflict_is_refused_at_staging(engine: StorageEngine, data_dir: Path) -> None:
    put(engine, "f", 1, b"original")
    writer = engine.writer("f", key_of("f"), 1, role="primary")
    writer.write(b"other bytes, same version")
    with pytest.raises(StaleVersion):
        writer.stage()
    assert writer.closed and tmp_files(data_dir) == []
    assert read_all(engine, engine.get("f")) == b"original"  # type: ignore[arg-type]


def test_a_stage_over_quota_is_refused(tmp_path: Path) -> None:
    with StorageEngine(tmp_path / "peer", quota_bytes=10) as small:
        writer = small.writer("f", key_of("f"), 1, role="primary")
        with pytest.raises(QuotaExceeded):
            writer.write(b"x" * 11)
        assert writer.closed and small.usage()[0] == 0


def test_replica_counts_persist_with_versions_and_tombstones(data_dir: Path) -> None:
    with StorageEngine(data_dir) as engine:
        put(engine, "five", 1, b"kept on five peers", replicas=5)
        engine.delete("gone", key_of("gone"), 2, role="primary", replicas=4)
    with StorageEngine(data_dir) as engine:
        assert engine.get("five").replicas == 5  # type: ignore[union-attr]
        assert engine.get("gone").replicas == 4  # type: ignore[union-attr]


def test_an_index_from_before_replica_counts_opens_with_count_0(data_dir: Path) -> None:
    with StorageEngine(data_dir) as engine:
        put(engine, "old", 1, b"stored by an older peer", replicas=3)
    index = data_dir / "index.sqlite3"
    db = sqlite3.connect(index)
    db.execute("ALTER TABLE files DROP COLUMN replicas")  # what schema v1 looked like
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    with StorageEngine(data_dir) as engine:
        record = engine.get("old")
        assert record is not None and record.replicas == 0  # 0: the ring's default
        assert read_all(engine, record) == b"stored by an older peer"
