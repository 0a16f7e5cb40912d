"""Incremental whole-content and per-chunk SHA-256, fed with arbitrary write() pieces."""

from __future__ import annotations

import hashlib


class ChunkHasher:
    """Hashes a stream as a whole and in fixed ``chunk_size`` slices.

    Slices are independent of how the stream is cut into ``update`` calls: a chunk may
    straddle several calls and one call may cover several chunks.
    """

    def __init__(self, chunk_size: int) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self.chunk_size = chunk_size
        self._whole = hashlib.sha256()
        self._chunk = hashlib.sha256()
        self._filled = 0  # bytes in the current, unfinished chunk
        self._done: list[str] = []
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")  # slice by bytes whatever the item format
        self._whole.update(view)
        self.size += len(view)
        while view:
            take = min(len(view), self.chunk_size - self._filled)
            self._chunk.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == self.chunk_size:
                self._done.append(self._chunk.hexdigest())
                self._chunk = hashlib.sha256()
                self._filled = 0

    def finish(self) -> tuple[str, tuple[str, ...]]:
        """``(whole sha256 hex, chunk hashes)``; a trailing partial chunk counts as a chunk,
        an empty stream has no chunks."""
        chunks = list(self._done)
        if self._filled:
            chunks.append(self._chunk.hexdigest())
        return self._whole.hexdigest(), tuple(chunks)
