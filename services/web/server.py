"""The event loop and the worker pools behind the REST connections.

One thread runs an asyncio loop that owns every socket (services.web.connection);
requests that are whole go to one of two thread pools running the Flask app: uploads
and downloads to the transfer pool, everything else to the small one, so /get_successor
or /lookup never wait behind transfers. ``inline`` answers the cheapest requests (GET
/health) on the loop itself, with no thread at all.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field, replace

from services.dav.options import is_dav_path
from services.web.connection import Connection
from services.web.limits import ConnectionTable, HttpLimits
from services.web.wsgi import WsgiApp

log = logging.getLogger("chord.api")

Headers = list[tuple[bytes, bytes]]
Inline = Callable[[str, str], "tuple[int, Headers, bytes] | None"]  # (method, path)
TRANSFER_PATHS = frozenset({"/upload_file", "/download_file"})
SWEEP_EVERY = 1.0  # seconds between checks of every connection's deadline
DESCRIPTOR_RESERVE = 256  # files, gRPC connections and storage beside REST connections


class WorkerPool:
    """A thread pool that says no (instead of queueing without end) when ``queue``
    tasks already wait for a thread."""

    def __init__(self, name: str, workers: int, queue: int) -> None:
        self.name = name
        self.queue = queue
        self._pool = futures.ThreadPoolExecutor(workers, thread_name_prefix=f"rest-{name}")
        self._lock = threading.Lock()
        self._waiting = 0

    def submit(self, task: Callable[[], None]) -> bool:
        with self._lock:
            if self._waiting >= self.queue:
                return False
            self._waiting += 1

        def run() -> None:
            with self._lock:
                self._waiting -= 1
            try:
                task()
            except Exception:
                log.exception("REST worker failed")

        try:
            self._pool.submit(run)
        except RuntimeError:  # shut down
            return False
        return True

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class Core:
    """What every connection shares."""

    app: WsgiApp
    limits: HttpLimits
    address: tuple[str, int]
    inline: Inline
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    loop_thread: int = 0
    connections: set[Connection] = field(default_factory=set)
    table: ConnectionTable = field(init=False)
    small: WorkerPool = field(init=False)
    transfers: WorkerPool = field(init=False)

    def __post_init__(self) -> None:
        self.table = ConnectionTable(self.limits)
        self.small = WorkerPool("small", self.limits.workers, self.limits.queue)
        self.transfers = WorkerPool("transfer", self.limits.transfer_workers, self.limits.queue)

    def pool_for(self, path: str) -> WorkerPool:
        # WebDAV: any request may move a file's bytes (GET, PUT, COPY, MOVE).
        return self.transfers if path in TRANSFER_PATHS or is_dav_path(path) else self.small

    def sweep(self) -> None:
        now = time.monotonic()
        try:
            for connection in list(self.connections):
                connection.check(now)
        except Exception:  # never let one connection end the deadlines of all
            log.exception("checking REST connection deadlines failed")
        finally:
            self.loop.call_later(SWEEP_EVERY, self.sweep)


def fit_to_descriptors(limits: HttpLimits) -> HttpLimits:
    """Raise the soft limit on open files so ``limits.connections`` fit (up to the hard
    limit); if they still do not, lower ``connections`` to what does, saying so."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = limits.connections + DESCRIPTOR_RESERVE
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft < wanted:
        fitted = max(8, soft - DESCRIPTOR_RESERVE)
        log.warning(
            "only %d open files allowed: at most %d REST connections, not %d",
            soft,
            fitted,
            limits.connections,
        )
        return replace(limits, connections=fitted, per_ip=min(limits.per_ip, fitted))
    return limits


def listening_sockets(host: str, port: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address ``host`` has."""
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(1024)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets
