"""Writing and reading back: sizes around chunk boundaries, ranges, hashes, validation."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from services.storage import CHUNK_SIZE, IntegrityError, StorageEngine, StorageError
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

SIZES = [0, 1, CS - 1, CS, CS + 1, CS * 7 // 2]


def expected_chunks(data: bytes, chunk_size: int) -> tuple[str, ...]:
    return tuple(
        hashlib.sha256(data[i : i + chunk_size]).hexdigest()
        for i in range(0, len(data), chunk_size)
    )


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_put_bytes(engine: StorageEngine, data_dir: Path, size: int) -> None:
    data = payload(size, seed=size)
    record = put(engine, "docs/report.pdf", 1, data)
    assert (record.size, record.sha256, record.version) == (size, sha(data), 1)
    assert record.chunk_size == CS
    assert record.chunk_hashes == expected_chunks(data, CS)
    assert record.role == "primary" and not record.deleted and not record.damaged
    assert record.key_hex == format(key_of("docs/report.pdf"), "040x")
    assert engine.get("docs/report.pdf") == record
    pieces = list(engine.read(record))
    assert all(0 < len(p) <= CS for p in pieces)
    assert b"".join(pieces) == data
    for index in range(len(record.chunk_hashes)):
        assert engine.read_chunk(record, index) == data[index * CS : (index + 1) * CS]
    assert engine.verify(record)
    assert blob_files(data_dir) == {sha(data): size}
    assert tmp_files(data_dir) == []


@pytest.mark.parametrize("size", SIZES)
def test_streamed_writes_straddle_chunks(engine: StorageEngine, size: int) -> None:
    """Chunk hashes must not depend on how the stream was cut into write() calls."""
    data = payload(size, seed=size + 1)
    with engine.writer("f", key_of("f"), 1, role="replica") as writer:
        for start in range(0, size, 7777):
            writer.write(data[start : start + 7777])
        writer.write(b"")
        assert writer.bytes_written == size
        record = writer.commit()
    assert record.chunk_hashes == expected_chunks(data, CS)
    assert record.sha256 == sha(data) and record.role == "replica"
    assert read_all(engine, record) == data


def test_default_chunk_size_five_mib(tmp_path: Path) -> None:
    data = payload(5 * CHUNK_SIZE + 12345, seed=5)
    with StorageEngine(tmp_path / "big") as engine:
        record = put(engine, "big.bin", 1, data)
        assert record.chunk_size == CHUNK_SIZE == 1 << 20
        assert len(record.chunk_hashes) == 6
        assert record.chunk_hashes == expected_chunks(data, CHUNK_SIZE)
        pieces = list(engine.read(record))
        assert [len(p) for p in pieces] == [CHUNK_SIZE] * 5 + [12345]
        assert b"".join(pieces) == data
        mid, span = CHUNK_SIZE * 2 - 10, CHUNK_SIZE + 20
        assert b"".join(engine.read(record, mid, span)) == data[mid : mid + span]
        assert engine.verify(record)


RANGES = [
    (0, 1),
    (0, CS),
    (1, CS),  # crosses the first boundary by one byte
    (CS - 1, 2),
    (CS, CS),
    (CS - 5, 2 * CS + 10),  # touches three chunks
    (3 * CS, CS // 2),  # exactly the last, partial chunk
    (3 * CS + 100, CS // 2 - 100),
    (CS * 7 // 2 - 1, 1),
    (17, 0),
    (CS * 7 // 2, 0),  # zero bytes at EOF
]


@pytest.mark.parametrize(("offset", "length"), RANGES)
def test_ranges(engine: StorageEngine, offset: int, length: int) -> None:
    data = payload(CS * 7 // 2, seed=3)
    record = put(engine, "r", 1, data)
    pieces = list(engine.read(record, offset, length))
    assert b"".join(pieces) == data[offset : offset + length]
    assert all(0 < len(p) <= CS for p in pieces)
    first, last = offset // CS, (offset + length - 1) // CS
    assert len(pieces) == (0 if length == 0 else last - first + 1)


def test_range_to_end_and_bad_ranges(engine: StorageEngine) -> None:
    data = payload(CS + 10, seed=4)
    record = put(engine, "r", 1, data)
    assert b"".join(engine.read(record, CS)) == data[CS:]
    assert list(engine.read(record, len(data))) == []
    for offset, length in [(len(data) + 1, None), (0, len(data) + 1), (CS, 11), (-1, 1), (0, -1)]:
        with pytest.raises(ValueError):
            engine.read(record, offset, length)  # raised at call time, not at first next()
    for index in (-1, 2):
        with pytest.raises(ValueError):
            engine.read_chunk(record, index)
    empty = put(engine, "empty", 1, b"")
    assert list(engine.read(empty)) == []
    with pytest.raises(ValueError):
        engine.read_chunk(empty, 0)


@pytest.mark.parametrize(
    ("announce", "written"),
    [
        ({"expected_sha256": sha(b"something else")}, b"actual content"),
        ({"expected_size": 10}, b"too short"),
        ({"expected_size": 3}, b"too long"),  # refused at write() time
        ({"expected_size": 9, "expected_sha256": sha(b"x" * 9)}, b"y" * 9),
    ],
)
def test_integrity_errors_leave_nothing(
    engine: StorageEngine, data_dir: Path, announce: dict[str, object], written: bytes
) -> None:
    writer = engine.writer("f", key_of("f"), 1, role="primary", **announce)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        writer.write(written)
        writer.commit()
    assert writer.closed
    assert engine.get("f") is None
    assert tmp_files(data_dir) == [] and blob_files(data_dir) == {}
    assert engine.usage() == (0, None)
    with pytest.raises(StorageError):
        writer.write(b"more")


def test_expected_values_that_match_are_accepted(engine: StorageEngine) -> None:
    data = payload(CS + 3, seed=9)
    with engine.writer(
        "f", key_of("f"), 1, role="primary", expected_size=len(data), expected_sha256=sha(data)
    ) as writer:
        writer.write(data)
        record = writer.commit()
    assert record.sha256 == sha(data)


def test_leaving_writer_block_without_commit_aborts(engine: StorageEngine, data_dir: Path) -> None:
    with engine.writer("f", key_of("f"), 1, role="primary") as writer:
        writer.write(b"abc")
        assert len(tmp_files(data_dir)) == 1
    assert writer.closed and engine.get("f") is None and tmp_files(data_dir) == []
    with pytest.raises(RuntimeError), engine.writer("g", key_of("g"), 1, role="primary") as w2:
        w2.write(b"abc")
        raise RuntimeError("sender went away")
    assert engine.get("g") is None and tmp_files(data_dir) == [] and engine.usage()[0] == 0


@pytest.mark.parametrize(
    "name",
    ["", "a\x00b", "x" * 256, "é" * 128, "\ud800", "日本語" * 29],  # 29 * 9 = 261 bytes
)
def test_invalid_names_rejected(engine: StorageEngine, name: str) -> None:
    with pytest.raises(ValueError):
        engine.put_bytes(name, 1, 1, b"data", role="primary")
    with pytest.raises(ValueError):
        engine.writer(name, 1, 1, role="primary")
    with pytest.raises(ValueError):
        engine.delete(name, 1, 1, role="primary")
    with pytest.raises(ValueError):
        engine.get(name)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/abs/path", "a\nb", "a\u202eb", "a/ /b"])
def test_new_content_obeys_the_ring_name_rules(engine: StorageEngine, name: str) -> None:
    with pytest.raises(ValueError, match="file name"):
        engine.put_bytes(name, 1, 1, b"data", role="primary")


@pytest.mark.parametrize("name", ["x" * 255, "é" * 127, "dir/sub/file.txt", "a..b/.c", "x:y"])
def test_odd_but_valid_names_are_metadata_only(
    engine: StorageEngine, data_dir: Path, name: str
) -> None:
    record = put(engine, name, 1, b"payload")
    assert engine.get(name) == record
    assert read_all(engine, record) == b"payload"
    assert blob_files(data_dir) == {sha(b"payload"): 7}  # the name never became a path
    assert sorted(p.name for p in data_dir.parent.iterdir()) == ["peer"]


def test_invalid_arguments_rejected(engine: StorageEngine, tmp_path: Path) -> None:
    for key in (-1, 1 << 160, True):
        with pytest.raises(ValueError):
            engine.put_bytes("f", key, 1, b"", role="primary")
    for version in (0, -3, 1 << 63):
        with pytest.raises(ValueError):
            engine.put_bytes("f", 1, version, b"", role="primary")
    with pytest.raises(ValueError):
        engine.put_bytes("f", 1, 1, b"", role="owner")
    with pytest.raises(ValueError):
        engine.writer("f", 1, 1, role="primary", expected_sha256="ABC")
    with pytest.raises(ValueError):
        engine.writer("f", 1, 1, role="primary", expected_size=-1)
    with pytest.raises(ValueError):
        StorageEngine(tmp_path / "other", chunk_size=0)
    assert engine.records(include_deleted=True) == []


def test_late_announcement_from_trailer(engine: StorageEngine, data_dir: Path) -> None:
    """The gRPC Store stream announces size and SHA-256 in a trailer, after the data."""
    data = payload(CS + 7, seed=11)
    with engine.writer("f", key_of("f"), 1, role="primary") as writer:
        writer.write(data)
        writer.expect(len(data), sha(data))
        assert writer.commit().sha256 == sha(data)
    with engine.writer("g", key_of("g"), 1, role="primary") as writer:
        writer.write(data)
        writer.expect(len(data), sha(b"not it"))
        with pytest.raises(IntegrityError):
            writer.commit()
    assert engine.get("g") is None and tmp_files(data_dir) == []
    too_short = engine.writer("h", key_of("h"), 1, role="primary")
    too_short.write(b"12345")
    with pytest.raises(IntegrityError):  # fewer bytes than already written
        too_short.expect(size=3)
    other_sha = engine.writer("h", key_of("h"), 1, role="primary", expected_sha256=sha(b"b"))
    with pytest.raises(IntegrityError):  # contradicts the header
        other_sha.expect(sha256=sha(b"a"))
    assert too_short.closed and other_sha.closed
    assert tmp_files(data_dir) == [] and engine.usage()[0] == len(data)
