"""Shared helpers for the storage-engine tests (imported as tests.storage.storage_helpers)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from services.storage import FileRecord, StorageEngine

CS = 64 * 1024  # small chunk size: keeps most tests fast while still spanning many chunks


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def key_of(name: str) -> int:
    return int.from_bytes(hashlib.sha1(name.encode()).digest(), "big")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_files(data_dir: Path) -> dict[str, int]:
    """``{sha: size}`` of every file under blobs/."""
    return {p.name: p.stat().st_size for p in (data_dir / "blobs").rglob("*") if p.is_file()}


def tmp_files(data_dir: Path) -> list[Path]:
    return list((data_dir / "tmp").iterdir())


def read_all(engine: StorageEngine, record: FileRecord) -> bytes:
    return b"".join(engine.read(record))


def put(
    engine: StorageEngine,
    name: str,
    version: int,
    data: bytes,
    role: str = "primary",
    replicas: int = 0,
) -> FileRecord:
    return engine.put_bytes(name, key_of(name), version, data, role=role, replicas=replicas)
