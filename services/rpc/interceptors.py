"""Running code around every call a gRPC server handles, whatever its kind.

grpc's server interceptors get a handler that is one of four kinds (unary or streaming
request, unary or streaming response); :func:`rewrap` hides that, so the metrics, fault
injection and any later interceptor only say what to run around a call.

Two attributes grpc reads from a handler's behaviour survive every rewrap, because losing
them changes how the server runs the call: ``experimental_non_blocking`` (the behaviour
returns at once and sends responses through a callback, as grpc.health.v1's Watch does:
without it, each open Watch stream holds a server thread for as long as it is open) and
``experimental_thread_pool`` (the pool the call runs on: services.rpc.capacity).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from services.rpc.grpc_types import ServerInterceptor

Behaviour = Callable[..., Any]  # (request, context) or, non-blocking, (request, context, send)
CARRIED = ("experimental_non_blocking", "experimental_thread_pool")


@dataclass(frozen=True)
class Shape:
    """How a behaviour answers: ``streaming`` it yields (or sends) several responses;
    ``non_blocking`` it is called as (request, context, send) and returns at once;
    ``client_streaming`` its request is an iterator of messages."""

    streaming: bool
    non_blocking: bool = False
    client_streaming: bool = False


# (behaviour, shape) -> the behaviour to run instead, of the same shape
Wrapper = Callable[[Behaviour, Shape], Behaviour]


def short_method(full: str | bytes) -> str:
    """'/chord.v1.Chord/Ping' -> 'Chord/Ping' (the labels metrics and fault rules use)."""
    text = full.decode() if isinstance(full, bytes) else full
    return text.rsplit(".", 1)[-1]


class HandlerInterceptor(ServerInterceptor):
    """A server interceptor that replaces each call's handler: subclasses say how in
    :meth:`wrap` (usually with :func:`rewrap`)."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(details)
        return None if handler is None else self.wrap(handler, short_method(details.method))

    def wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], method: str
    ) -> grpc.RpcMethodHandler[Any, Any]:
        raise NotImplementedError


def kind_of(handler: grpc.RpcMethodHandler[Any, Any]) -> str:
    """'unary_unary', 'unary_stream', 'stream_unary' or 'stream_stream'."""
    if handler.unary_unary or handler.stream_unary:
        return "unary_unary" if handler.unary_unary else "stream_unary"
    return "unary_stream" if handler.unary_stream else "stream_stream"


def behaviour_of(handler: grpc.RpcMethodHandler[Any, Any]) -> Behaviour:
    return getattr(handler, kind_of(handler))  # type: ignore[no-any-return]


def shape_of(handler: grpc.RpcMethodHandler[Any, Any]) -> Shape:
    behaviour = behaviour_of(handler)
    kind = kind_of(handler)
    return Shape(
        streaming=kind.endswith("_stream"),
        non_blocking=bool(getattr(behaviour, "experimental_non_blocking", False)),
        client_streaming=kind.startswith("stream_"),
    )


def make_handler(
    kind: str, behaviour: Behaviour, like: grpc.RpcMethodHandler[Any, Any], **attributes: Any
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of ``kind`` running ``behaviour``, with ``like``'s (de)serializers and
    the grpc attributes of ``like``'s behaviour, overridden by ``attributes``."""
    inner = behaviour_of(like)
    if hasattr(behaviour, "__func__"):  # a bound method takes no attributes: forward to it
        method = behaviour

        def behaviour(*args: Any) -> Any:
            return method(*args)

    for name in CARRIED:
        value = attributes.get(name, getattr(inner, name, None))
        if value is not None:
            setattr(behaviour, name, value)
    factory = getattr(grpc, f"{kind}_rpc_method_handler")
    return factory(  # type: ignore[no-any-return]
        behaviour,
        request_deserializer=like.request_deserializer,
        response_serializer=like.response_serializer,
    )


def rewrap(
    handler: grpc.RpcMethodHandler[Any, Any], wrap: Wrapper
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with its behaviour replaced by ``wrap(behaviour, shape)``; grpc's
    attributes of the behaviour (non-blocking, thread pool) are kept."""
    return make_handler(kind_of(handler), wrap(behaviour_of(handler), shape_of(handler)), handler)


def run_first(check: Callable[[grpc.ServicerContext], None]) -> Wrapper:
    """A wrapper that calls ``check(context)`` before the behaviour (it may abort)."""

    def wrap(behaviour: Behaviour, shape: Shape) -> Behaviour:
        if shape.non_blocking:

            def non_blocking_call(request: Any, context: grpc.ServicerContext, send: Any) -> Any:
                check(context)
                return behaviour(request, context, send)

            return non_blocking_call
        if shape.streaming:

            def stream_call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                check(context)
                yield from behaviour(request, context)

            return stream_call

        def unary_call(request: Any, context: grpc.ServicerContext) -> Any:
            check(context)
            return behaviour(request, context)

        return unary_call

    return wrap
