"""Corruption detection, repair, persistence across restarts and startup recovery.

Decision on partially corrupt files: reads verify only the chunks they touch, so before the
corruption is detected a range over good chunks is served normally. Once any read or verify
finds a bad chunk the record (and every record sharing that blob) is marked damaged and
nothing of it is served, good chunks included, until a repair stores the version again.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from services.storage import CorruptData, StorageEngine, StorageError
from services.storage.blobs import blob_path, flip_byte
from tests.storage.storage_helpers import (
    CS,
    blob_files,
    key_of,
    payload,
    put,
    read_all,
    sha,
    tmp_files,
)


def test_flipped_byte_detected_before_bad_chunk_is_yielded(
    engine: StorageEngine, data_dir: Path
) -> None:
    data = payload(4 * CS, seed=1)
    record = put(engine, "f", 1, data)
    flip_byte(blob_path(data_dir, record.sha256), 2 * CS + 123)
    # Not yet detected: a range over good chunks only is served.
    assert b"".join(engine.read(record, 0, 2 * CS)) == data[: 2 * CS]
    assert engine.read_chunk(record, 3) == data[3 * CS :]
    got: list[bytes] = []
    with pytest.raises(CorruptData):
        for piece in engine.read(record):
            got.append(piece)
    assert got == [data[:CS], data[CS : 2 * CS]]  # nothing of chunk 2 escaped
    assert engine.get("f").damaged  # type: ignore[union-attr]
    # Damaged: nothing is served any more, not even the good chunks.
    with pytest.raises(CorruptData):
        engine.read(record, 0, 10)
    with pytest.raises(CorruptData):
        engine.read_chunk(record, 0)
    assert not engine.verify(record)
    assert [r.name for r in engine.records(include_damaged=False)] == []


def test_unverified_read_leaves_the_check_to_the_caller_but_not_the_length(
    engine: StorageEngine, data_dir: Path
) -> None:
    """verify=False (a downloader that checks chunk hashes itself) passes a flipped byte
    on and marks nothing; a truncated blob is still caught, since the length is cheap."""
    data = payload(3 * CS, seed=7)
    record = put(engine, "f", 1, data)
    path = blob_path(data_dir, record.sha256)
    flip_byte(path, CS + 9)
    served = b"".join(engine.read(record, verify=False))
    assert len(served) == len(data) and served != data
    assert not engine.get("f").damaged  # type: ignore[union-attr]
    with path.open("r+b") as fh:
        fh.truncate(2 * CS + 1)
    with pytest.raises(CorruptData):
        b"".join(engine.read(record, verify=False))
    assert engine.get("f").damaged  # type: ignore[union-attr]


def test_verify_finds_corruption_nobody_read(engine: StorageEngine, data_dir: Path) -> None:
    data = payload(3 * CS + 5, seed=2)
    record = put(engine, "f", 1, data)
    assert engine.verify(record)
    flip_byte(blob_path(data_dir, record.sha256), 3 * CS + 4)  # last byte, partial chunk
    assert not engine.verify(record)
    assert engine.get("f").damaged  # type: ignore[union-attr]


def test_shared_blob_corruption_damages_every_name(engine: StorageEngine, data_dir: Path) -> None:
    data = payload(2 * CS, seed=3)
    a = put(engine, "a", 1, data)
    put(engine, "b", 4, data, role="replica")
    flip_byte(blob_path(data_dir, a.sha256), 5)
    with pytest.raises(CorruptData):
        engine.read_chunk(a, 0)
    assert engine.get("a").damaged and engine.get("b").damaged  # type: ignore[union-attr]


def test_repair_by_storing_the_same_version_again(engine: StorageEngine, data_dir: Path) -> None:
    data = payload(2 * CS, seed=4)
    a = put(engine, "a", 3, data)
    put(engine, "b", 1, data)
    flip_byte(blob_path(data_dir, a.sha256), CS + 1)
    assert not engine.verify(a)
    repaired = put(engine, "a", 3, data)  # e.g. anti-entropy fetched it from a replica
    assert not repaired.damaged and repaired.created == a.created
    assert read_all(engine, repaired) == data and engine.verify(repaired)
    b = engine.get("b")
    assert b is not None and not b.damaged and engine.verify(b)  # same bytes, healed too
    assert blob_files(data_dir) == {a.sha256: len(data)} and tmp_files(data_dir) == []
    assert engine.usage()[0] == len(data)


def test_truncated_or_missing_blob_at_runtime(engine: StorageEngine, data_dir: Path) -> None:
    a = put(engine, "a", 1, payload(2 * CS, seed=5))
    b = put(engine, "b", 1, payload(CS, seed=6))
    with blob_path(data_dir, a.sha256).open("r+b") as fh:
        fh.truncate(CS)
    blob_path(data_dir, b.sha256).unlink()
    with pytest.raises(CorruptData):
        engine.read_chunk(a, 0)  # the size check catches it even for an intact chunk
    with pytest.raises(CorruptData):
        list(engine.read(b))
    assert engine.get("a").damaged and engine.get("b").damaged  # type: ignore[union-attr]


def test_superseded_record_is_not_blamed(engine: StorageEngine) -> None:
    """A reader holding an old record after a new version replaced it gets StorageError and
    the new version is not marked damaged because the old blob vanished."""
    v1 = put(engine, "f", 1, payload(CS, seed=7))
    put(engine, "f", 2, payload(CS, seed=8))
    with pytest.raises(StorageError) as info:
        engine.read_chunk(v1, 0)
    assert not isinstance(info.value, CorruptData)
    assert not engine.get("f").damaged  # type: ignore[union-attr]


def test_stream_in_progress_survives_new_version(engine: StorageEngine) -> None:
    data = payload(3 * CS, seed=9)
    v1 = put(engine, "f", 1, data)
    stream = engine.read(v1)
    first = next(stream)  # blob is open now
    put(engine, "f", 2, b"replacement")  # unlinks v1's blob
    assert first + b"".join(stream) == data  # the open file keeps its bytes


def test_persistence_across_restart(data_dir: Path) -> None:
    files = {f"dir/{i}.bin": payload(i * CS // 3, seed=i) for i in range(6)}
    with StorageEngine(data_dir, chunk_size=CS) as engine:
        for name, data in files.items():
            put(engine, name, 2, data, role="replica" if len(data) % 2 else "primary")
        engine.delete("gone", key_of("gone"), 4, role="primary")
        before = engine.records(include_deleted=True)
        usage = engine.usage()
        digest = engine.digest(0, 0)
    with StorageEngine(data_dir, chunk_size=2 * CS) as engine:  # a new default chunk size...
        assert engine.records(include_deleted=True) == before  # ...does not touch old records
        assert engine.usage() == usage and engine.digest(0, 0) == digest
        for name, data in files.items():
            record = engine.get(name)
            assert record is not None and read_all(engine, record) == data
            assert engine.verify(record)
        fresh = put(engine, "new", 1, payload(3 * CS))
        assert fresh.chunk_size == 2 * CS and len(fresh.chunk_hashes) == 2


def test_startup_flags_missing_and_wrong_size_blobs(data_dir: Path) -> None:
    with StorageEngine(data_dir, chunk_size=CS) as engine:
        gone = put(engine, "gone", 1, payload(CS, seed=1))
        short = put(engine, "short", 1, payload(2 * CS, seed=2))
        ok = put(engine, "ok", 1, payload(CS, seed=3))
    blob_path(data_dir, gone.sha256).unlink()
    with blob_path(data_dir, short.sha256).open("ab") as fh:
        fh.write(b"trailing junk")
    with StorageEngine(data_dir, chunk_size=CS) as engine:
        assert engine.get("gone").damaged and engine.get("short").damaged  # type: ignore[union-attr]
        assert not engine.get("ok").damaged  # type: ignore[union-attr]
        assert read_all(engine, ok) == payload(CS, seed=3)
        assert engine.usage()[0] == 2 * CS + len(b"trailing junk") + CS  # what is on disk
        repaired = put(engine, "gone", 1, payload(CS, seed=1))
        assert not repaired.damaged and read_all(engine, repaired) == payload(CS, seed=1)


def test_startup_removes_tmp_leftovers_and_orphan_blobs(data_dir: Path) -> None:
    with StorageEngine(data_dir, chunk_size=CS) as engine:
        kept = put(engine, "kept", 1, b"keep me")
    orphan = sha(b"orphan")
    blob_path(data_dir, orphan).parent.mkdir(parents=True, exist_ok=True)
    blob_path(data_dir, orphan).write_bytes(b"orphan")
    (data_dir / "tmp" / "w-leftover").write_bytes(b"half a file")
    with StorageEngine(data_dir, chunk_size=CS) as engine:
        assert tmp_files(data_dir) == []
        assert blob_files(data_dir) == {kept.sha256: 7}
        assert engine.usage()[0] == 7


def test_unusable_index_is_a_storage_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "index.sqlite3").write_bytes(b"not a database" * 100)
    with pytest.raises(StorageError, match="cannot open index"):
        StorageEngine(garbage)
    newer = tmp_path / "newer"
    StorageEngine(newer).close()
    with sqlite3.connect(newer / "index.sqlite3") as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(StorageError, match="newer"):
        StorageEngine(newer)
    (newer / "index.sqlite3").unlink()
    StorageEngine(newer).close()  # the failed opens released the directory lock
