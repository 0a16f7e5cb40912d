"""Many threads writing and reading at once, as gRPC server threads will."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from services.storage import FileRecord, StaleVersion, StorageEngine
from tests.storage.storage_helpers import CS, blob_files, key_of, payload, read_all, sha, tmp_files

THREADS = 8
FILES_PER_THREAD = 5


def content(thread: int, index: int) -> bytes:
    # Every third file has the same content as another thread's: exercises concurrent dedupe.
    seed = index if index % 3 == 0 else thread * 100 + index
    return payload((seed * 7919) % (3 * CS) + 1, seed=seed)


def worker(engine: StorageEngine, thread: int, start: threading.Barrier) -> list[FileRecord]:
    start.wait()
    records = []
    for index in range(FILES_PER_THREAD):
        name = f"t{thread}/file{index}"
        data = content(thread, index)
        with engine.writer(name, key_of(name), 1, role="primary") as writer:
            for offset in range(0, len(data), 10_000):  # uneven pieces, many lock round trips
                writer.write(data[offset : offset + 10_000])
            record = writer.commit()
        assert read_all(engine, record) == data  # read back while others write
        records.append(record)
    return records


def test_concurrent_writers(engine: StorageEngine, data_dir: Path) -> None:
    start = threading.Barrier(THREADS)
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(worker, engine, t, start) for t in range(THREADS)]
        results = [f.result(timeout=60) for f in futures]
    assert sum(len(r) for r in results) == THREADS * FILES_PER_THREAD
    expected = {
        f"t{t}/file{i}": content(t, i) for t in range(THREADS) for i in range(FILES_PER_THREAD)
    }
    stored = engine.records()
    assert {r.name for r in stored} == set(expected)
    for record in stored:
        assert record.sha256 == sha(expected[record.name])
        assert engine.verify(record)
    distinct = {sha(data): len(data) for data in expected.values()}
    assert blob_files(data_dir) == distinct
    assert engine.usage() == (sum(distinct.values()), None)
    assert tmp_files(data_dir) == []


def test_concurrent_versions_of_one_name(engine: StorageEngine, data_dir: Path) -> None:
    """Writers race on one name with different versions: the newest wins, losers see
    StaleVersion, and only the winner's blob remains."""
    start = threading.Barrier(THREADS)

    def attempt(version: int) -> str:
        start.wait()
        try:
            engine.put_bytes(
                "hot", key_of("hot"), version, payload(CS, seed=version), role="primary"
            )
        except StaleVersion:
            return "stale"
        return "stored"

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(attempt, range(1, THREADS + 1)))
    assert "stored" in outcomes
    final = engine.get("hot")
    assert final is not None and final.version == THREADS
    assert read_all(engine, final) == payload(CS, seed=THREADS)
    assert blob_files(data_dir) == {final.sha256: CS} and tmp_files(data_dir) == []
    assert engine.usage()[0] == CS
