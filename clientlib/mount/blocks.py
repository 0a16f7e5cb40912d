"""Reading ring files in blocks: Range requests, read-ahead and a bounded LRU cache.

A file is read in blocks of ``block`` bytes (a few MiB: one Range request each, far
bigger than the kernel's 128 KiB-1 MiB reads). A read that continues where the last one
ended fetches the next ``ahead`` blocks in the background, so the network works while the
program consumes. Blocks are fetched by :class:`clientlib.download.RangeFetcher`: from
the holders the search named (owner and replicas), rotating the first choice per block
and falling back to the others when one fails, so a holder dying under an open file
costs one failed request. Blocks are cached by (sha256, index), so a new version never
reads an old block; the cache holds at most ``capacity`` bytes (least recently used go).
Every wait is bounded: a block that does not arrive in time is an error, never a hang.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from clientlib.download import RangeFetcher, Remote
from clientlib.peer import ClientError, PeerApi
from clientlib.ranges import MIB

# Bytes per Range request. Each request costs the peer a lookup and a stat of the holders
# (~10 ms) before bytes flow, so bigger blocks pay it less often: measured with bench.mount,
# cold sequential read vs REST download: 4 MiB 0.5-0.6x, 8 MiB 0.7-0.9x, 16 MiB ~0.85x.
BLOCK = 8 * MIB
AHEAD = 3  # blocks fetched ahead of a sequential reader

Key = tuple[str, int]


class BlockCache:
    """Blocks of file versions, least recently used evicted beyond ``capacity`` bytes;
    concurrent requests for a block share one fetch."""

    def __init__(self, capacity: int, workers: int = AHEAD + 1) -> None:
        self.capacity = capacity
        self.lock = threading.Lock()
        self.blocks: OrderedDict[Key, bytes] = OrderedDict()
        self.size = 0
        self.pending: dict[Key, Future[bytes]] = {}
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="block")

    def get(self, key: Key, fetch: RangeFetcher, piece: tuple[int, int]) -> Future[bytes]:
        """The block, cached or being fetched (a fetch is started if neither)."""
        with self.lock:
            if key in self.blocks:
                self.blocks.move_to_end(key)
                done: Future[bytes] = Future()
                done.set_result(self.blocks[key])
                return done
            if key in self.pending:
                return self.pending[key]
            future = self.pool.submit(fetch.fetch, key[1], piece)
            self.pending[key] = future
        future.add_done_callback(lambda f: self.settle(key, f))
        return future

    def settle(self, key: Key, future: Future[bytes]) -> None:
        with self.lock:
            self.pending.pop(key, None)
            if not future.cancelled() and future.exception() is None:
                self.keep(key, future.result())

    def put(self, key: Key, data: bytes) -> None:
        """A block known without fetching it (the mount just uploaded these bytes)."""
        with self.lock:
            self.keep(key, data)

    def keep(self, key: Key, data: bytes) -> None:
        """Cache ``data`` (the caller holds the lock), evicting the least recently used."""
        if len(data) > self.capacity:
            return
        old = self.blocks.pop(key, None)
        self.size -= len(old) if old is not None else 0
        self.blocks[key] = data
        self.size += len(data)
        while self.size > self.capacity:
            _, evicted = self.blocks.popitem(last=False)
            self.size -= len(evicted)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class BlockReader:
    """One open file: ``read(offset, size)`` from its blocks, reading ahead when the
    reads are sequential."""

    def __init__(
        self,
        remote: Remote,
        asked: PeerApi,
        cache: BlockCache,
        block: int = BLOCK,
        ahead: int = AHEAD,
    ) -> None:
        self.remote, self.cache, self.block, self.ahead = remote, cache, block, ahead
        self.fetcher = RangeFetcher(remote, list(remote.holders), asked)
        # A block may have to be tried on every holder, each within the socket timeout.
        self.wait = asked.timeout * (len(remote.holders) + 2)
        self.next_offset = 0

    def future(self, index: int) -> Future[bytes]:
        start = index * self.block
        piece = (start, min(start + self.block, self.remote.size))
        return self.cache.get((self.remote.sha256, index), self.fetcher, piece)

    def read(self, offset: int, size: int) -> bytes:
        size = max(0, min(size, self.remote.size - offset))
        if size == 0:
            return b""
        first, last = offset // self.block, (offset + size - 1) // self.block
        wanted = [self.future(i) for i in range(first, last + 1)]
        if offset == self.next_offset or offset == 0:
            blocks = -(-self.remote.size // self.block)
            for index in range(last + 1, min(last + 1 + self.ahead, blocks)):
                self.future(index)
        self.next_offset = offset + size
        parts = []
        for index, future in zip(range(first, last + 1), wanted, strict=True):
            try:
                data = future.result(timeout=self.wait)
            except FutureTimeout:
                raise ClientError(
                    f"block {index} of {self.remote.name!r} did not arrive within {self.wait:g} s"
                ) from None
            lo = max(offset - index * self.block, 0)
            hi = min(offset + size - index * self.block, len(data))
            parts.append(data[lo:hi])
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        self.fetcher.close()


class RingStream:
    """A file in the ring as a sequential ``read(n)`` source (a rename streams one file
    from the ring into an upload of another)."""

    def __init__(self, reader: BlockReader) -> None:
        self.reader, self.offset = reader, 0

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = self.reader.remote.size - self.offset
        data = self.reader.read(self.offset, size)
        self.offset += len(data)
        return data
