"""Cutting gRPC streams that stop moving: a per-message idle deadline.

grpc's sync server gives a streaming call a thread for as long as it lasts, and a
response send blocks that thread until the client takes the message (HTTP/2 flow
control), with no timeout of its own. A client that stops reading a Fetch, or stops
sending in a Store, would hold the thread until its own deadline, which it chooses.

So every stream is watched: each message that leaves or arrives is progress, and a
stream without progress for ``idle_timeout`` seconds is cancelled from this watchdog's
thread (``ServicerContext.cancel``, which ends the blocked send or receive at once; the
client sees CANCELLED). Measured: a stalled Fetch holding a server thread is cut, and
the thread freed, within idle_timeout + one scan (tests/integration/test_grpc_capacity).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from services.common.log_limits import LogLimiter, caller_ip
from services.rpc.interceptors import Behaviour, Shape

log = logging.getLogger("chord.rpc")


class _Watch:
    __slots__ = ("caller", "context", "last", "owner")

    def __init__(self, owner: StreamWatchdog, context: grpc.ServicerContext) -> None:
        self.owner = owner
        self.context = context
        self.caller = caller_ip(context.peer())  # a cancelled call no longer says
        self.last = owner.clock()

    def touch(self) -> None:
        self.last = self.owner.clock()

    def requests(self, messages: Iterator[Any]) -> Iterator[Any]:
        for message in messages:
            self.touch()
            yield message

    def responses(self, replies: Iterator[Any]) -> Iterator[Any]:
        try:
            for reply in replies:
                self.touch()
                yield reply  # grpc sends it before asking for the next one
                self.touch()
        finally:
            self.owner.forget(self)


class StreamWatchdog:
    def __init__(self, idle_timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_timeout = idle_timeout
        self.clock = clock
        self.cut = 0  # streams cancelled so far; written by the watchdog thread only
        self._lock = threading.Lock()
        self._watches: set[_Watch] = set()  # _lock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None  # _lock; started on first use
        self._logs = LogLimiter()

    def guard(self, behaviour: Behaviour, shape: Shape, request: Any,
              context: grpc.ServicerContext) -> Any:  # fmt: skip
        """Run ``behaviour`` with its stream(s) watched (a unary call runs as it is)."""
        if not (shape.streaming or shape.client_streaming):
            return behaviour(request, context)
        watch = self._watch(context)
        if shape.client_streaming:
            request = watch.requests(request)
        if shape.streaming:
            return watch.responses(behaviour(request, context))
        try:
            return behaviour(request, context)
        finally:
            self.forget(watch)

    def _watch(self, context: grpc.ServicerContext) -> _Watch:
        watch = _Watch(self, context)
        with self._lock:
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="stream-watchdog",
                                                daemon=True)  # fmt: skip
                self._thread.start()
        return watch

    def forget(self, watch: _Watch) -> None:
        with self._lock:
            self._watches.discard(watch)

    def check(self) -> None:
        """Cancel every stream idle for longer than idle_timeout; forget ended ones."""
        now = self.clock()
        with self._lock:
            ended = [w for w in self._watches if not w.context.is_active()]
            idle = [w for w in self._watches if now - w.last > self.idle_timeout]
            self._watches.difference_update(ended + idle)
        for watch in idle:
            if not watch.context.is_active():
                continue
            watch.context.cancel()  # type: ignore[no-untyped-call]  # unannotated in grpc-stubs
            self.cut += 1
            if self._logs.allow(watch.caller):
                log.warning("cut a stream from %s: no message moved for %.0f s",
                            watch.caller, self.idle_timeout)  # fmt: skip

    def _run(self) -> None:
        every = min(1.0, self.idle_timeout / 4)
        while not self._stop.wait(every):
            self.check()

    def stop(self) -> None:
        self._stop.set()
