"""Port 0: let the kernel choose the peer's ports, with no window for anyone to take them.

A peer's ID is SHA-1 of its advertised address, so its gRPC port must be known before
anything is built. For a setting of 0 a placeholder socket is bound (SO_REUSEADDR, never
listening) to get a port from the kernel and to hold it: an outgoing connection's
ephemeral port is never one that a socket is bound to, and the peer's own servers can
still bind it (both sides use SO_REUSEADDR and the placeholder does not listen). The
placeholders are closed once the servers listen. The bound ports are then reported in
the log and, atomically, in ``port_file`` for whoever started the peer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
from pathlib import Path

from config.settings import Settings


class PortClaims(contextlib.AbstractContextManager["PortClaims"]):
    """The placeholder sockets of one start-up; closing them releases the claim."""

    def __init__(self) -> None:
        self._sockets: list[socket.socket] = []

    def claim(self, host: str) -> int:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        placeholder = socket.socket(family, kind, proto)
        try:
            placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            placeholder.bind(address)
        except OSError:
            placeholder.close()
            raise
        self._sockets.append(placeholder)
        return int(placeholder.getsockname()[1])

    def close(self) -> None:
        for placeholder in self._sockets:
            placeholder.close()
        self._sockets.clear()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def with_claimed_ports(settings: Settings, claims: PortClaims) -> Settings:
    """``settings`` with every port of 0 replaced by one claimed for it."""
    port, api_port = settings.port, settings.resolved_api_port
    if port == 0:
        port = claims.claim(settings.host)
    if api_port == 0:
        api_port = claims.claim(settings.host)
    return dataclasses.replace(settings, port=port, api_port=api_port)


def write_port_file(settings: Settings, node_id: str) -> None:
    """The bound ports as JSON in ``settings.port_file``, written whole then renamed, so a
    reader never sees half a file."""
    if settings.port_file is None:
        return
    target = Path(settings.port_file)
    report = {
        "address": settings.address,
        "api_address": settings.api_address,
        "port": settings.port,
        "api_port": settings.resolved_api_port,
        "id": node_id,
    }
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(report) + "\n")
    partial.replace(target)
