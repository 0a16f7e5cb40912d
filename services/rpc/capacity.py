"""Reserved capacity on the gRPC server: Chord RPCs always find a free thread.

Every call belongs to one class (``CallClass``): the Chord protocol, file transfers
(streams that may last minutes), short file calls, health Watch streams, and the rest
(reflection). Each class runs on a thread pool of its own and admits at most ``limit``
calls at once (running or queued); one more is answered RESOURCE_EXHAUSTED at once, on
a tiny pool of its own, without waiting even for its request message. So a flood of
transfers, stalled streams or Watch streams fills their class and never the Chord
pool, which has ``max_workers`` threads whatever else happens.

Beyond the class limits, no caller address (IP, whatever its port) may hold more than
``per_caller`` open calls of a class, so one client cannot take a class alone; and
streams that stop moving are cut (services.rpc.stream_watchdog).

How: grpc's sync server runs a call on the ``experimental_thread_pool`` of its
behaviour when there is one. The admission check runs in an interceptor, on the
server's single polling thread, just before grpc submits the call to that pool; the
pool counts what it was given and what finished (``ClassPool``), so the count is exact
whatever happens to the call, even if the client goes away before its request arrives.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc

from services.common.log_limits import caller_ip
from services.rpc.grpc_types import ServerInterceptor
from services.rpc.interceptors import Behaviour, Shape, behaviour_of, make_handler, rewrap
from services.rpc.stream_watchdog import StreamWatchdog

log = logging.getLogger("chord.rpc")


@dataclass(frozen=True)
class CallClass:
    name: str
    methods: tuple[str, ...]  # full-method prefixes: "/chord.v1.Chord/", "/x.Y/Method"
    threads: int
    limit: int  # calls admitted at once, running or queued
    per_caller: int  # open calls of one caller IP
    open_limit: int = 0  # open calls in all (0: limit); counts non-blocking streams too
    watched: bool = True  # streams cut when idle (not Watch: silent by design)


class ClassPool(futures.ThreadPoolExecutor):
    """A thread pool that knows how many calls it was given that have not finished."""

    def __init__(self, call_class: CallClass) -> None:
        super().__init__(max_workers=call_class.threads, thread_name_prefix=call_class.name)
        self.call_class = call_class
        self._lock = threading.Lock()
        self.admitted = 0  # _lock (written by gRPC threads and the pool's own)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future[Any]:
        with self._lock:
            self.admitted += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._finished(None)
            raise
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _: object) -> None:
        with self._lock:
            self.admitted -= 1

    def has_room(self) -> bool:
        return self.admitted < self.call_class.limit


class OpenCalls:
    """Open calls of one class, in all and per caller IP, from the behaviour's start to
    the call's end (grpc's termination callback, so non-blocking streams count too)."""

    def __init__(self, call_class: CallClass) -> None:
        self.call_class = call_class
        self._lock = threading.Lock()
        self.total = 0  # _lock
        self._by_caller: dict[str, int] = {}  # _lock

    def enter(self, context: grpc.ServicerContext) -> str | None:
        """None if the call may go on (and is counted until it ends), else why not."""
        caller = caller_ip(context.peer())
        limit = self.call_class.open_limit or self.call_class.limit
        with self._lock:
            mine = self._by_caller.get(caller, 0)
            if mine >= self.call_class.per_caller:
                return f"{mine} {self.call_class.name} calls from {caller} are open already"
            if self.total >= limit:
                return f"{self.total} {self.call_class.name} calls are open already"
            self.total += 1
            self._by_caller[caller] = mine + 1
        if not context.add_callback(lambda: self._leave(caller)):
            self._leave(caller)  # the call ended already
        return None

    def _leave(self, caller: str) -> None:
        with self._lock:
            self.total -= 1
            left = self._by_caller.get(caller, 1) - 1
            if left > 0:
                self._by_caller[caller] = left
            else:
                self._by_caller.pop(caller, None)


def _reject(context: grpc.ServicerContext, why: str) -> None:
    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"this peer is busy: {why}; retry later")


class CapacityGate(ServerInterceptor):
    """Puts every call on its class's pool, or answers RESOURCE_EXHAUSTED."""

    def __init__(
        self, classes: Sequence[CallClass], fallback: str, watchdog: StreamWatchdog
    ) -> None:
        self.pools = {c.name: ClassPool(c) for c in classes}
        self.open = {c.name: OpenCalls(c) for c in classes}
        self._routes = sorted(
            ((prefix, c.name) for c in classes for prefix in c.methods),
            key=lambda route: -len(route[0]),  # the most specific prefix wins
        )
        self._fallback = fallback
        self.watchdog = watchdog
        # Rejections take microseconds and never wait for anything (see _rejecting).
        self._reject_pool = futures.ThreadPoolExecutor(2, thread_name_prefix="reject")

    def class_of(self, method: str, streaming: bool = False) -> str:
        """The class of ``method``; a streaming method of a service routed with a
        trailing ``/*`` prefix goes to that class, its unary ones to the plain prefix's."""
        for prefix, name in self._routes:
            wildcard = prefix.endswith("*")
            if method.startswith(prefix.rstrip("*")) and (streaming or not wildcard):
                return name
        return self._fallback

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(details)
        if handler is None:
            return None
        streaming = handler.request_streaming or handler.response_streaming
        name = self.class_of(details.method, streaming)
        pool = self.pools[name]
        if not pool.has_room():
            return self._rejecting(handler, f"{pool.call_class.limit} {name} calls at once")
        admitted = rewrap(handler, self._admitted(self.open[name]))
        setattr(behaviour_of(admitted), "experimental_thread_pool", pool)  # noqa: B010  # a fresh closure
        return admitted

    def _admitted(self, calls: OpenCalls) -> Callable[[Behaviour, Shape], Behaviour]:
        watched = calls.call_class.watched

        def wrap(behaviour: Behaviour, shape: Shape) -> Behaviour:
            if shape.non_blocking:

                def non_blocking_call(request: Any, context: grpc.ServicerContext,
                                      send: Any) -> Any:  # fmt: skip
                    why = calls.enter(context)
                    if why is not None:
                        _reject(context, why)
                    return behaviour(request, context, send)

                return non_blocking_call

            def call(request: Any, context: grpc.ServicerContext) -> Any:
                why = calls.enter(context)
                if why is not None:
                    _reject(context, why)
                if not watched:
                    return behaviour(request, context)
                return self.watchdog.guard(behaviour, shape, request, context)

            return call

        return wrap

    def _rejecting(
        self, handler: grpc.RpcMethodHandler[Any, Any], why: str
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """A handler answering RESOURCE_EXHAUSTED. It is a request-streaming one whatever
        the method is: grpc then calls it at once, without first waiting for a request
        message that a hostile client may never send."""

        def reject(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            _reject(context, why)

        kind = "stream_stream" if handler.response_streaming else "stream_unary"
        return make_handler(kind, reject, handler, experimental_thread_pool=self._reject_pool,
                            experimental_non_blocking=False)  # fmt: skip

    def shutdown(self) -> None:
        for pool in (*self.pools.values(), self._reject_pool):
            pool.shutdown(wait=False, cancel_futures=True)


CHORD = "/chord.v1.Chord/"
FILES = "/chord.v1.Files/"
HEALTH = "/grpc.health.v1.Health/"


def peer_classes(chord_threads: int, chord_limit: int, transfer_threads: int) -> list[CallClass]:
    """The classes of a peer's calls. Chord calls take microseconds (no handler makes a
    call), so a queue of ``chord_limit`` drains in milliseconds; a transfer may last
    minutes, so transfers are never queued, and one caller IP gets at most a third of
    them (an attacker needs several addresses to fill the class, and even then Chord
    calls and short file calls are untouched). Every streaming Files method is a
    transfer, whatever it is called (``/*``)."""
    return [
        CallClass("chord", (CHORD, HEALTH + "Check"), chord_threads, chord_limit,
                  per_caller=chord_limit, watched=False),
        CallClass("transfer", (FILES + "*",),
                  transfer_threads, transfer_threads, per_caller=max(1, transfer_threads // 3)),
        CallClass("files", (FILES,), 4, 32, per_caller=16, watched=False),
        # Watch is non-blocking: its thread returns at once; the stream then costs a
        # little memory until the client goes. Silent by design, so never cut as idle.
        CallClass("watch", (HEALTH + "Watch",), 2, 64, per_caller=16, open_limit=256,
                  watched=False),
        CallClass("other", (), 2, 8, per_caller=4),  # reflection, anything else
    ]  # fmt: skip
