"""Running code around every call a gRPC server handles, whatever its kind.

grpc's server interceptors get a handler that is one of four kinds (unary or streaming
request, unary or streaming response); :func:`rewrap` hides that, so the metrics, fault
injection and any later interceptor only say what to run around a call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc

Behaviour = Callable[[Any, grpc.ServicerContext], Any]
# (behaviour, streaming) -> the behaviour to run instead; ``streaming``: it yields responses
Wrapper = Callable[[Behaviour, bool], Behaviour]


def short_method(full: str | bytes) -> str:
    """'/chord.v1.Chord/Ping' -> 'Chord/Ping' (the labels metrics and fault rules use)."""
    text = full.decode() if isinstance(full, bytes) else full
    return text.rsplit(".", 1)[-1]


class HandlerInterceptor(grpc.ServerInterceptor):
    """A server interceptor that replaces each call's handler: subclasses say how in
    :meth:`wrap` (usually with :func:`rewrap`)."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        return None if handler is None else self.wrap(handler, short_method(details.method))

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        raise NotImplementedError


def rewrap(handler: grpc.RpcMethodHandler, wrap: Wrapper) -> grpc.RpcMethodHandler:
    """``handler`` with its behaviour replaced by ``wrap(behaviour, streaming)``."""
    if handler.unary_unary or handler.stream_unary:
        kind = "unary_unary" if handler.unary_unary else "stream_unary"
    else:
        kind = "unary_stream" if handler.unary_stream else "stream_stream"
    streaming = kind in ("unary_stream", "stream_stream")
    factory = getattr(grpc, f"{kind}_rpc_method_handler")
    return factory(  # type: ignore[no-any-return]
        wrap(getattr(handler, kind), streaming),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def run_first(check: Callable[[grpc.ServicerContext], None]) -> Wrapper:
    """A wrapper that calls ``check(context)`` before the behaviour (it may abort)."""

    def wrap(behaviour: Behaviour, streaming: bool) -> Behaviour:
        if streaming:

            def stream_call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                check(context)
                yield from behaviour(request, context)

            return stream_call

        def unary_call(request: Any, context: grpc.ServicerContext) -> Any:
            check(context)
            return behaviour(request, context)

        return unary_call

    return wrap
