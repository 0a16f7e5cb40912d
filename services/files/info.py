"""What a holder answers about one version of a file (Stat, ListRange, a write's reply)."""

from __future__ import annotations

from dataclasses import dataclass

from chord.ids import from_hex
from proto import files_pb2 as fpb


@dataclass(frozen=True)
class FileInfo:
    name: str
    key: int
    version: int
    size: int
    sha256: str
    chunk_size: int
    chunk_hashes: tuple[str, ...]
    deleted: bool
    damaged: bool = False
    created: float = 0.0  # Unix time the answering holder stored this version
    replicas: int = 0  # copies the ring keeps of this version (0: the ring's default)

    @classmethod
    def from_pb(cls, meta: fpb.FileMeta) -> FileInfo:
        return cls(
            meta.name, from_hex(meta.key), meta.version, meta.size, meta.sha256,
            meta.chunk_size, tuple(meta.chunk_hashes), meta.deleted, meta.damaged, meta.created,
            meta.replicas,
        )  # fmt: skip
