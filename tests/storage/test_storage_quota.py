"""Quota: distinct blob bytes plus open writers' reservations never exceed the limit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.storage import QuotaExceeded, StorageEngine
from tests.storage.storage_helpers import CS, blob_files, key_of, payload, put, sha, tmp_files

QUOTA = 10 * CS


@pytest.fixture
def full(data_dir: Path) -> Iterator[StorageEngine]:
    engine = StorageEngine(data_dir, quota_bytes=QUOTA, chunk_size=CS)
    yield engine
    engine.close()  # idempotent: some tests close it themselves


def test_refused_up_front_with_expected_size(full: StorageEngine, data_dir: Path) -> None:
    put(full, "a", 1, payload(6 * CS))
    before = full.usage()
    assert before == (6 * CS, QUOTA)
    with pytest.raises(QuotaExceeded):
        full.writer("b", key_of("b"), 1, role="replica", expected_size=4 * CS + 1)
    with pytest.raises(QuotaExceeded):
        put(full, "b", 1, payload(5 * CS))
    assert full.usage() == before and tmp_files(data_dir) == [] and full.get("b") is None
    with full.writer("b", key_of("b"), 1, role="replica", expected_size=4 * CS) as writer:
        assert full.usage() == (QUOTA, QUOTA)  # reserved before a byte arrives
        with pytest.raises(QuotaExceeded):
            full.writer("c", key_of("c"), 1, role="replica", expected_size=1)
        writer.write(payload(4 * CS, seed=2))
        writer.commit()
    assert full.usage() == (QUOTA, QUOTA)


def test_refused_mid_stream_without_expected_size(full: StorageEngine, data_dir: Path) -> None:
    put(full, "a", 1, payload(3 * CS))
    before_usage, before_blobs = full.usage(), blob_files(data_dir)
    writer = full.writer("big", key_of("big"), 1, role="primary")
    written = 0
    with pytest.raises(QuotaExceeded):
        while True:
            writer.write(payload(CS // 2, seed=written))
            written += CS // 2
            assert full.usage()[0] == before_usage[0] + written  # grows as bytes arrive
    assert written == 7 * CS  # refused as soon as the next piece would not fit
    assert writer.closed
    assert full.usage() == before_usage
    assert blob_files(data_dir) == before_blobs and tmp_files(data_dir) == []
    assert full.get("big") is None


def test_space_is_reusable_after_delete_and_drop(full: StorageEngine) -> None:
    put(full, "a", 1, payload(6 * CS, seed=1))
    put(full, "b", 1, payload(4 * CS, seed=2))
    with pytest.raises(QuotaExceeded):
        put(full, "c", 1, b"x")
    full.delete("a", key_of("a"), 1, role="primary")
    assert full.usage()[0] == 4 * CS
    put(full, "c", 1, payload(6 * CS, seed=3))
    full.drop("b")
    full.drop("c")
    assert full.usage() == (0, QUOTA)
    put(full, "d", 1, payload(QUOTA, seed=4))  # exactly the quota fits


def test_dedupe_counts_once_and_new_version_frees_old(full: StorageEngine) -> None:
    data = payload(3 * CS, seed=1)
    put(full, "a", 1, data)
    put(full, "b", 1, payload(2 * CS, seed=2))
    assert full.usage()[0] == 5 * CS
    with full.writer("c", key_of("c"), 1, role="replica", expected_size=len(data)) as w:
        # While streaming we cannot know it will dedupe: it is reserved like any write...
        assert full.usage()[0] == 8 * CS
        w.write(data)
        w.commit()
    assert full.usage()[0] == 5 * CS  # ...and costs nothing once it turns out identical
    put(full, "a", 2, payload(CS, seed=9))
    assert full.usage()[0] == 6 * CS  # a's v1 blob is still c's
    put(full, "c", 2, b"")
    assert full.usage()[0] == 3 * CS  # now it is nobody's


def test_abort_releases_reservation(full: StorageEngine, data_dir: Path) -> None:
    writer = full.writer("a", key_of("a"), 1, role="primary", expected_size=5 * CS)
    writer.write(b"abc")
    assert full.usage() == (5 * CS, QUOTA)
    writer.abort()
    writer.abort()  # idempotent
    assert full.usage() == (0, QUOTA) and tmp_files(data_dir) == []


def test_close_aborts_open_writers(full: StorageEngine, data_dir: Path) -> None:
    writer = full.writer("a", key_of("a"), 1, role="primary")
    writer.write(b"partial")
    full.close()
    assert writer.closed and tmp_files(data_dir) == []
    with StorageEngine(data_dir) as again:
        assert again.get("a") is None


def test_unlimited_when_no_quota(engine: StorageEngine) -> None:
    put(engine, "a", 1, payload(3 * CS))
    assert engine.usage() == (3 * CS, None)
    assert sha(b"") in {put(engine, "e", 1, b"").sha256}
