"""Reading one chunk of a blob and checking it against its recorded hash."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .record import FileRecord


def read_exact(fd: int, offset: int, length: int) -> bytes:
    """Up to ``length`` bytes at ``offset``; shorter only at end of file."""
    first = os.pread(fd, length, offset)
    if len(first) == length or not first:
        return first
    parts = [first]
    got = len(first)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class BlobReader:
    """An open blob plus the record its bytes must match. Positional reads only, so one
    reader could serve several chunks in any order."""

    def __init__(self, path: Path, record: FileRecord) -> None:
        self.path = path
        self.record = record
        self._fd = os.open(path, os.O_RDONLY)  # FileNotFoundError is the caller's to handle
        self._stat = os.fstat(self._fd)

    def size_ok(self) -> bool:
        return self._stat.st_size == self.record.size

    def is_file_at(self, path: Path) -> bool:
        """Whether ``path`` still names the file we opened (a repair may have replaced it;
        its corruption must then not be blamed on the fresh copy)."""
        try:
            now = os.stat(path)
        except FileNotFoundError:
            return False
        return (now.st_dev, now.st_ino) == (self._stat.st_dev, self._stat.st_ino)

    def chunk(self, index: int, verify: bool = True) -> bytes | None:
        """Chunk ``index`` if it has the right length and (with ``verify``) matches its
        hash, else None."""
        offset, length = self.record.chunk_span(index)
        data = read_exact(self._fd, offset, length)
        if len(data) != length:
            return None
        if verify and hashlib.sha256(data).hexdigest() != self.record.chunk_hashes[index]:
            return None
        return data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
