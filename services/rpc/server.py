"""The peer's gRPC server: Chord service, standard health service, reflection.

``maximum_concurrent_rpcs`` makes an overloaded peer answer RESOURCE_EXHAUSTED at
once instead of queueing calls until every caller's deadline has passed.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from chord.node import ChordNode
from proto import chord_pb2 as pb
from proto import chord_pb2_grpc as pb_grpc
from services.rpc.capacity import CapacityGate, peer_classes
from services.rpc.chord_servicer import Admission, ChordServicer
from services.rpc.health import HealthService
from services.rpc.interceptors import Behaviour, HandlerInterceptor, Shape, rewrap
from services.rpc.security import MESSAGE_OPTIONS, RingSecurity
from services.rpc.stream_watchdog import StreamWatchdog

CHORD_SERVICE = pb.DESCRIPTOR.services_by_name["Chord"].full_name


# Accept the clients' keepalive pings (services/rpc/transport.py KEEPALIVE_MS) rather than
# answering them with GOAWAY "too many pings" (gRPC's default allows one per 5 minutes).
#
# The server's own keepalive cuts a connection whose client stopped reading its socket:
# gRPC sets TCP_USER_TIMEOUT to keepalive_timeout, so a send window that stays at zero
# for that long ends the connection and every stream on it, freeing their threads
# (measured: a relay that stops reading frees a Fetch thread ~5 s later; without it,
# never). A client that reads its socket but not one stream is cut per stream by
# services.rpc.stream_watchdog instead.
SERVER_KEEPALIVE_MS = 20_000
SERVER_KEEPALIVE_TIMEOUT_MS = 5_000
SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.so_reuseport", 0),
    ("grpc.keepalive_time_ms", SERVER_KEEPALIVE_MS),
    ("grpc.keepalive_timeout_ms", SERVER_KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
    ("grpc.http2.max_ping_strikes", 0),
]


class BindError(RuntimeError):
    """The gRPC port could not be bound (in use, or an address this host lacks)."""


class GrpcServer:
    def __init__(
        self,
        node: ChordNode,
        bind_address: str,
        max_workers: int,
        max_concurrent_rpcs: int,
        services: Sequence[tuple[str, Callable[[grpc.Server], None]]] = (),
        interceptors: Sequence[grpc.ServerInterceptor[Any, Any]] = (),
        security: RingSecurity | None = None,
        admission: Admission | None = None,
        transfer_workers: int = 48,
        stream_idle_timeout: float = 30.0,
    ) -> None:
        """``services``: more (full name, register function) pairs served beside Chord.
        ``interceptors`` run outside the ring-secret check (so they see refused calls
        too); ``admission`` verifies joiners and notifiers (see services.rpc.admission).
        Chord calls get ``max_workers`` threads of their own and at most
        ``max_concurrent_rpcs`` at once; file transfers ``transfer_workers`` threads;
        a stream idle for ``stream_idle_timeout`` s is cut (services.rpc.capacity)."""
        security = security or RingSecurity()
        self.watchdog = StreamWatchdog(stream_idle_timeout)
        self.capacity = CapacityGate(
            peer_classes(max_workers, max_concurrent_rpcs, transfer_workers),
            fallback="other",
            watchdog=self.watchdog,
        )
        # Ours, innermost: the ones given wrap them (and so count refused calls too).
        self.interceptors: list[grpc.ServerInterceptor[Any, Any]] = [
            self.capacity,
            *security.interceptors(),
        ]
        self._server = grpc.server(
            # Every call runs on its class's pool; this default one serves none.
            futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="grpc"),
            interceptors=[*interceptors, *self.interceptors],
            maximum_concurrent_rpcs=None,  # the classes' limits (CapacityGate) instead
            # Without this, two peers could silently share one port (SO_REUSEPORT)
            # and "port already in use" would go unnoticed.
            options=[*SERVER_OPTIONS, *MESSAGE_OPTIONS],
        )
        pb_grpc.add_ChordServicer_to_server(ChordServicer(node, admission), self._server)
        for _, register in services:
            register(self._server)
        self.health = HealthService()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        names = (CHORD_SERVICE, *(name for name, _ in services))
        reflection.enable_server_reflection(
            (*names, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        self.set_serving(False)
        self._started = False  # the owner's thread (Peer: start, stop)
        problem = _bind_problem(bind_address)
        if problem is not None:
            raise BindError(f"cannot listen for gRPC on {bind_address}: {problem}")
        try:
            self.port = security.add_port(self._server, bind_address)
        except RuntimeError as exc:
            raise BindError(f"cannot listen for gRPC on {bind_address}: {exc}") from None
        if self.port == 0:
            raise BindError(
                f"cannot listen for gRPC on {bind_address}: address in use or unavailable"
            )

    def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", CHORD_SERVICE):
            self.health.set(service, status)

    def start(self) -> None:
        self._server.start()
        self._started = True

    def stop(self, grace: float) -> None:
        """Stop serving and release the port and every thread, started or not."""
        self.set_serving(False)  # watchers hear it during the grace period
        if not self._started:
            # grpc releases a port taken by add_port only through start() and stop()
            # (measured: stop() alone, or dropping the server, keeps it bound). It is
            # NOT_SERVING and stops at once, cancelling any call that came in (no grace:
            # no thread waiting it out either).
            self._server.start()
            self._started = True  # a second stop must not start it again
            self._server.stop(None).wait(1)
        else:
            self._server.stop(grace).wait(grace + 1)
        self.health.close()
        self.watchdog.stop()
        self.capacity.shutdown()


RpcObserver = Callable[[str, str], None]  # (method, status code name) of a finished call
TransferScope = Callable[[], contextlib.AbstractContextManager[None]]


class CallCounter(HandlerInterceptor):
    """Reports every served call's method and final status code to ``observe`` (the
    metrics), and runs the streaming calls named in ``transfers`` (file bytes moving)
    inside ``transfer()`` so they count as active transfers while they last."""

    def __init__(
        self, observe: RpcObserver, transfer: TransferScope, transfers: frozenset[str]
    ) -> None:
        self._observe = observe
        self._transfer = transfer
        self._transfers = transfers

    def wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], method: str
    ) -> grpc.RpcMethodHandler[Any, Any]:
        scope = self._transfer if method in self._transfers else contextlib.nullcontext
        return rewrap(
            handler, lambda behaviour, shape: self._counted(behaviour, shape, method, scope)
        )

    def _counted(
        self, behaviour: Behaviour, shape: Shape, method: str,
        scope: Callable[[], contextlib.AbstractContextManager[None]],
    ) -> Behaviour:  # fmt: skip
        if shape.non_blocking:
            # The behaviour returns at once; the call ends when grpc says so.
            def non_blocking_call(request: Any, context: grpc.ServicerContext, send: Any) -> Any:
                context.add_callback(lambda: self._observe(method, _code(context, "CANCELLED")))
                return behaviour(request, context, send)

            return non_blocking_call
        if shape.streaming:

            def stream_call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                code = "CANCELLED"  # closed early: the caller went away
                try:
                    with scope():
                        yield from behaviour(request, context)
                    code = _code(context, "OK")
                except Exception:
                    code = _code(context, "UNKNOWN")
                    raise
                finally:
                    self._observe(method, code)

            return stream_call

        def unary_call(request: Any, context: grpc.ServicerContext) -> Any:
            code = "UNKNOWN"  # an exception that is not an abort ends as UNKNOWN
            try:
                with scope():
                    reply = behaviour(request, context)
                code = _code(context, "OK")
                return reply
            except Exception:
                code = _code(context, "UNKNOWN")
                raise
            finally:
                self._observe(method, code)

        return unary_call


def _code(context: grpc.ServicerContext, default: str) -> str:
    """The status the handler set (abort or set_code), else ``default``."""
    code = context.code()  # type: ignore[attr-defined]  # in grpcio, not in its stubs
    return code.name if isinstance(code, grpc.StatusCode) else default


def _bind_problem(bind_address: str) -> str | None:
    """Why gRPC could not bind ``bind_address`` ('Address already in use', ...), or None.

    Probed with a plain socket first because grpc reports a failed bind only as
    "Failed to bind ... set GRPC_VERBOSITY=debug", after printing its own log line to
    stderr. Like grpc, the probe uses SO_REUSEADDR (so a restart is not blocked by
    TIME_WAIT) and succeeds if any resolved address can be bound.
    """
    host, _, port = bind_address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        infos = socket.getaddrinfo(
            host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (OSError, ValueError) as exc:
        return str(exc)
    problem = None
    for family, kind, proto, _, address in infos:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
                probe.listen()
            return None
        except OSError as exc:
            problem = problem or exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
    return problem
