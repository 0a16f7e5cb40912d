"""What one REST connection may cost, and who may open one.

A connection costs a file descriptor and a few KiB (h11's state, at most BODY_PRELOAD
bytes of body, at most WRITE_HIGH bytes of response) until its request is whole; no
thread is ever held waiting on a client. The table below admits connections: at most
``connections`` in all (when full, the longest-idle keep-alive connection is closed to
make room) and at most ``per_ip`` from one client IP.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

KIB = 1 << 10
MAX_HEAD_BYTES = 64 * KIB  # request line + headers; more is answered 431
BODY_PRELOAD = 64 * KIB  # body bytes buffered before a request is handed to a thread
BODY_HIGH = 1 << 20  # body bytes buffered for a running app before the socket is paused
BODY_LOW = 256 * KIB  # ... and resumed
WRITE_HIGH = 1 << 20  # response bytes buffered before the producing thread is released
WRITE_LOW = 256 * KIB


@dataclass(frozen=True)
class HttpLimits:
    connections: int = 1024
    per_ip: int = 64
    idle_timeout: float = 15.0  # no request under way
    header_timeout: float = 10.0  # first byte of a request to its last header
    body_timeout: float = 20.0  # between two pieces of a request body the app waits for
    send_timeout: float = 30.0  # a response the client takes no byte of
    workers: int = 8  # small requests
    transfer_workers: int = 32  # uploads and downloads
    queue: int = 64  # requests waiting for a thread (per pool) before 503
    max_body: int = (10240 + 1) << 20  # a declared Content-Length above this: 413 at once


class Closable(Protocol):
    def close_idle(self) -> None: ...


class ConnectionTable:
    """Open connections per client IP, and the idle ones in the order they went idle."""

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._per_ip: dict[str, int] = {}
        self.total = 0
        self._idle: OrderedDict[int, Closable] = OrderedDict()

    def admit(self, ip: str) -> str | None:
        """Count a new connection from ``ip``; None, or why it is refused."""
        evict: Closable | None = None
        with self._lock:
            mine = self._per_ip.get(ip, 0)
            if mine >= self.limits.per_ip:
                return f"{mine} connections from {ip} are open already"
            if self.total >= self.limits.connections:
                if not self._idle:
                    return f"{self.total} connections are open already"
                _, evict = self._idle.popitem(last=False)
            self.total += 1
            self._per_ip[ip] = mine + 1
        if evict is not None:
            evict.close_idle()  # its leave() makes room again
        return None

    def leave(self, ip: str, connection: Closable) -> None:
        with self._lock:
            self._idle.pop(id(connection), None)
            self.total -= 1
            left = self._per_ip.get(ip, 1) - 1
            if left > 0:
                self._per_ip[ip] = left
            else:
                self._per_ip.pop(ip, None)

    def idle(self, connection: Closable, idle: bool) -> None:
        """Mark ``connection`` as waiting for a request (evictable) or not."""
        with self._lock:
            if idle:
                self._idle[id(connection)] = connection
            else:
                self._idle.pop(id(connection), None)
