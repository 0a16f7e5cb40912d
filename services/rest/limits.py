"""Per-client limits of the REST API: concurrent transfers and a rate on mutating requests.

A client is its remote IP address as the HTTP server saw it (``REMOTE_ADDR``; forwarded
headers are not trusted, so behind a reverse proxy every client shares the proxy's
budget: set the limits there instead). Both answer 429 ``too-many-requests`` with a
Retry-After header. Memory is bounded: at most ``MAX_CLIENTS`` buckets are kept, the
least recently used forgotten first (a forgotten client simply starts with a full
bucket again).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator

from flask import Request

from services.rest.errors import ApiError

MAX_CLIENTS = 10_000
TRANSFER_RETRY_AFTER = 1  # seconds: a transfer's end cannot be predicted


def too_many(detail: str, retry_after: int) -> ApiError:
    return ApiError(429, detail, headers={"Retry-After": str(max(1, retry_after))})


class TransferSlot:
    """One running transfer of one client; ``release`` is idempotent."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            release, self._release = self._release, None
        if release is not None:
            release()

    def held_over(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """Pass ``chunks`` on; the slot is released when the stream ends or is closed."""
        try:
            yield from chunks
        finally:
            self.release()


class ClientLimits:
    def __init__(
        self,
        max_transfers: int = 8,
        per_minute: int = 120,
        clock: Callable[[], float] = time.monotonic,
        max_total: int = 32,
    ) -> None:
        """``max_total``: transfers of all clients together. A download whose client
        stopped reading still holds its read-ahead (a few MiB) until the HTTP server
        drops it (http_send_timeout), so this cap is what bounds their memory."""
        self.max_transfers = max_transfers
        self.max_total = max_total
        self.per_minute = per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._active: dict[str, int] = {}
        # client -> (tokens, when they were counted)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    # ------------------------------------------------------------ rate
    def spend(self, client: str) -> None:
        """Take one token from ``client``'s bucket (capacity: a minute's worth), or raise
        429 saying when the next one will be there."""
        rate = self.per_minute / 60.0  # tokens per second
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.pop(client, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - then) * rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
        if not allowed:
            wait = math.ceil((1.0 - tokens) / rate)
            raise too_many(
                f"more than {self.per_minute} uploads, deletes or shutdowns per minute from "
                f"this client; retry in {max(1, wait)} s",
                wait,
            )

    # ------------------------------------------------------- transfers
    def transfer(self, client: str) -> TransferSlot:
        """A slot for one upload or download of ``client``, or 429 when it has
        ``max_transfers`` running already."""
        with self._lock:
            running = self._active.get(client, 0)
            busy = sum(self._active.values()) >= self.max_total
            full = running >= self.max_transfers
            if not (full or busy):
                self._active[client] = running + 1
        if busy and not full:
            raise ApiError(
                503,
                f"this peer is serving {self.max_total} transfers already; retry shortly",
                "unavailable",
                headers={"Retry-After": str(TRANSFER_RETRY_AFTER)},
            )
        if full:
            raise too_many(
                f"this client already has {self.max_transfers} transfers running on this "
                "peer; wait for one to finish",
                TRANSFER_RETRY_AFTER,
            )
        return TransferSlot(lambda: self._done(client))

    def _done(self, client: str) -> None:
        with self._lock:
            left = self._active.get(client, 1) - 1
            if left > 0:
                self._active[client] = left
            else:
                self._active.pop(client, None)

    def active(self, client: str) -> int:
        with self._lock:
            return self._active.get(client, 0)


def client_of(request: Request) -> str:
    """The client a limit applies to: the remote IP the HTTP server saw."""
    return request.remote_addr or "unknown"
