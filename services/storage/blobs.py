"""Content-addressed blob files on disk: ``blobs/<sha[:2]>/<sha>`` plus a ``tmp/`` area.

Only this module builds filesystem paths, and only from SHA-256 hex, so a user-chosen file
name can never escape the data directory. Nothing here knows about records or locking.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_BLOB_NAME = re.compile(r"^[0-9a-f]{64}$")
_SHARD_NAME = re.compile(r"^[0-9a-f]{2}$")


def fsync_dir(path: Path) -> None:
    """Make a rename/unlink/create inside ``path`` durable (POSIX: fsync the directory)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def blob_path(root: Path, sha: str) -> Path:
    """Where the blob with SHA-256 ``sha`` lives under a storage root."""
    return root / "blobs" / sha[:2] / sha


def flip_byte(path: Path, offset: int) -> None:
    """Corrupt one byte in place (same inode, same size), as bit rot would: for the
    corruption tests and the fault harness, never called by the engine."""
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.blobs = root / "blobs"
        self.tmp = root / "tmp"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha: str) -> Path:
        return blob_path(self.blobs.parent, sha)

    def new_tmp(self) -> tuple[BinaryIO, Path]:
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="w-")
        return os.fdopen(fd, "wb"), Path(name)

    def empty_tmp(self) -> int:
        """Remove everything left in tmp/ by writers of a previous (possibly killed) run."""
        removed = 0
        for entry in self.tmp.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                continue  # we never create directories there; leave foreign ones alone
            entry.unlink(missing_ok=True)
            removed += 1
        return removed

    def scan(self) -> Iterator[tuple[str, int]]:
        """``(sha, size)`` of every blob file on disk (foreign files are skipped)."""
        for shard in self.blobs.iterdir():
            if not (_SHARD_NAME.match(shard.name) and shard.is_dir()):
                continue
            for entry in shard.iterdir():
                if _BLOB_NAME.match(entry.name) and entry.name[:2] == shard.name:
                    yield entry.name, entry.stat().st_size

    def size_of(self, sha: str) -> int | None:
        try:
            return self.path(sha).stat().st_size
        except FileNotFoundError:
            return None

    def place(self, tmp: Path, sha: str) -> None:
        """Atomically move a fully written, fsynced tmp file to its blob path and make the
        rename durable. Replaces an existing blob (used to heal a corrupted one: readers
        that already opened the old file keep their inode)."""
        target = self.path(sha)
        shard = target.parent
        new_shard = not shard.exists()
        if new_shard:
            shard.mkdir(exist_ok=True)
        os.replace(tmp, target)
        fsync_dir(shard)
        if new_shard:
            fsync_dir(self.blobs)

    def remove(self, sha: str) -> int:
        """Delete a blob; returns the bytes freed (0 if it was already gone)."""
        target = self.path(sha)
        try:
            size = target.stat().st_size
            target.unlink()
        except FileNotFoundError:
            return 0
        # Not fsynced: if the unlink is lost in a crash, startup GC removes the orphan again.
        return size
