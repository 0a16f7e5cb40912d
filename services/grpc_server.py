"""The peer's gRPC server: Chord service, standard health service, reflection.

``maximum_concurrent_rpcs`` makes an overloaded peer answer RESOURCE_EXHAUSTED at
once instead of queueing calls until every caller's deadline has passed.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Sequence
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from chord.node import ChordNode
from proto import chord_pb2 as pb
from proto import chord_pb2_grpc as pb_grpc
from services.servicer import ChordServicer

CHORD_SERVICE = pb.DESCRIPTOR.services_by_name["Chord"].full_name


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
    ) -> None:
        """``services``: more (full name, register function) pairs served beside Chord."""
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
            maximum_concurrent_rpcs=max_concurrent_rpcs,
            # Without this, two peers could silently share one port (SO_REUSEPORT)
            # and "port already in use" would go unnoticed.
            options=[("grpc.so_reuseport", 0)],
        )
        pb_grpc.add_ChordServicer_to_server(ChordServicer(node), self._server)
        for _, register in services:
            register(self._server)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        names = (CHORD_SERVICE, *(name for name, _ in services))
        reflection.enable_server_reflection(
            (*names, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        self.set_serving(False)
        problem = _bind_problem(bind_address)
        if problem is not None:
            raise BindError(f"cannot listen for gRPC on {bind_address}: {problem}")
        try:
            self.port = self._server.add_insecure_port(bind_address)
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

    def stop(self, grace: float) -> None:
        self.set_serving(False)
        self._server.stop(grace).wait(grace + 1)


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
