"""grpc.health.v1 for a peer: Check, List and a Watch that never blocks a setter.

grpc_health's own servicer sends every Watch update while holding its lock, and the
send waits until the server's event thread has taken it; that same thread runs a
closing stream's callback, which needs the lock. A peer stopping (set NOT_SERVING)
while a watcher cancels deadlocks: CI caught ``GrpcServer.stop`` hung for five
minutes that way. A watcher that stops reading (its connection's flow-control window
full) would likewise hold the setter forever.

Here the status table is guarded by a lock that is never held across a send. Updates
go to watchers from one notifier thread, in order (a watcher always ends on the
latest status), so ``set`` returns at once. A send still blocked after ``stuck_after``
seconds (the watcher stopped reading) cancels that watcher's stream, which ends the
send, so one stalled watcher delays the others by at most that long; every watcher is
cancelled when the server stops (``close``).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

log = logging.getLogger("chord.rpc")

Status = int  # health_pb2.HealthCheckResponse.ServingStatus
SendResponse = Callable[[health_pb2.HealthCheckResponse | None], object]


@dataclass(eq=False)
class _Watcher:
    service: str
    send: SendResponse
    context: grpc.ServicerContext
    closed: bool = False
    sent: Status | None = None  # the last status it was sent: only changes are sent


class HealthService(health_pb2_grpc.HealthServicer):  # type: ignore[misc]  # untyped generated base
    def __init__(self, stuck_after: float = 5.0) -> None:
        self._lock = threading.Lock()
        self._status: dict[str, Status] = {"": health_pb2.HealthCheckResponse.SERVING}  # _lock
        self._watchers: set[_Watcher] = set()  # _lock
        # Watchers with news, for the notifier thread (a queue: no lock needed).
        self._outbox: queue.SimpleQueue[_Watcher | None] = queue.SimpleQueue()
        self._stuck_after = stuck_after
        self._notifier: threading.Thread | None = None  # _lock; started on first use
        self._closed = False  # _lock

    # ------------------------------------------------------------------ RPCs

    def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        with self._lock:
            status = self._status.get(request.service)
        if status is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    def List(
        self, request: health_pb2.HealthListRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthListResponse:
        with self._lock:
            statuses = dict(self._status)
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in statuses.items()
            }
        )

    def Watch(  # grpc's non-blocking form: responses go through a callback
        self,
        request: health_pb2.HealthCheckRequest,
        context: grpc.ServicerContext,
        send_response_callback: SendResponse | None = None,
    ) -> None:
        if send_response_callback is None:  # only ever served non-blocking (below)
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "Watch needs a non-blocking server")
        watcher = _Watcher(request.service, send_response_callback, context)
        with self._lock:
            if self._closed:
                context.abort(grpc.StatusCode.UNAVAILABLE, "the peer is stopping")
            self._watchers.add(watcher)
        context.add_callback(lambda: self._forget(watcher))
        self._post(watcher)  # its first update: the current status, sent in order

    # ------------------------------------------------------------- the peer's side

    def set(self, service: str, status: Status) -> None:
        """Records ``service``'s status and queues it to its watchers; never blocks."""
        with self._lock:
            if self._closed:
                return
            self._status[service] = status
            watchers = [w for w in self._watchers if w.service == service]
        for watcher in watchers:
            self._post(watcher)

    def close(self) -> None:
        """The server stops: no more updates, every watcher's stream ends."""
        with self._lock:
            self._closed = True
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher.context.cancel()  # type: ignore[no-untyped-call]  # unannotated in grpc-stubs
        self._outbox.put(None)

    # --------------------------------------------------------------- internals

    def _forget(self, watcher: _Watcher) -> None:
        with self._lock:
            watcher.closed = True
            self._watchers.discard(watcher)

    def _post(self, watcher: _Watcher) -> None:
        with self._lock:
            if self._notifier is None:
                self._notifier = threading.Thread(
                    target=self._notify, name="health-notify", daemon=True
                )
                self._notifier.start()
        self._outbox.put(watcher)

    def _notify(self) -> None:
        while (watcher := self._outbox.get()) is not None:
            with self._lock:
                if watcher.closed or status_unchanged(self._status, watcher):
                    continue
                status = self._status.get(
                    watcher.service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
                )
                watcher.sent = status
            # The send returns once the message is on its way and blocks while the
            # watcher's connection cannot take it; cancelling the stream ends it. Sends
            # are rare (a status changes at start and stop), so a timer each is cheap.
            deadline = threading.Timer(self._stuck_after, self._cancel_stuck, (watcher,))
            deadline.daemon = True
            deadline.start()
            try:
                watcher.send(health_pb2.HealthCheckResponse(status=status))
            except Exception:
                log.debug("health update to a watcher failed", exc_info=True)
            finally:
                deadline.cancel()

    def _cancel_stuck(self, watcher: _Watcher) -> None:
        log.info("cancelled a health watcher that stopped reading")
        watcher.context.cancel()  # type: ignore[no-untyped-call]  # unannotated in grpc-stubs


def status_unchanged(statuses: dict[str, Status], watcher: _Watcher) -> bool:
    status = statuses.get(watcher.service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
    return bool(watcher.sent == status)


# Served without a thread per stream: the handler registers the watcher and returns.
HealthService.Watch.experimental_non_blocking = True  # type: ignore[attr-defined]
