"""Serve the Flask app: an asyncio HTTP/1.1 front end (services.web) on a background
thread, the app on worker threads.

Why not waitress (used until issue 14): waitress accepts at most ``connection_limit``
connections (100) and keeps idle ones for ``channel_timeout`` (120 s), so ~100 idle
sockets made the API unreachable; a worker writing to a client that stopped reading
waits without a deadline (4 such downloads froze the API); it has no per-IP limits; and
it spools every request body whole before the app runs, which issue 15 must get rid of.
cheroot gives each request being read its own thread (a slow body holds one). Here one
event loop owns every socket: idle, slow and stalled clients cost a file descriptor and
a little memory, every wait on a client has a deadline, and a thread is taken only for
a whole request (an upload once its first 64 KiB are in, then streamed to the app, not
spooled). Measurements: docs/security.md ("Limits") and docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from flask import Flask

from services.web.connection import Connection
from services.web.limits import HttpLimits
from services.web.server import Core, Inline, fit_to_descriptors, listening_sockets

MIB = 1 << 20


class HttpBindError(RuntimeError):
    pass


def _nothing_inline(method: str, path: str) -> None:
    return None


class ApiServer:
    def __init__(
        self,
        app: Flask,
        host: str,
        port: int,
        limits: HttpLimits | None = None,
        inline: Inline = _nothing_inline,
    ) -> None:
        """Binds at once (a busy port is reported before the peer joins). ``inline``
        answers cheap requests on the event loop itself (GET /health)."""
        try:
            self._sockets = listening_sockets(host, port)
        except OSError as exc:
            raise HttpBindError(
                f"cannot listen for REST on {host}:{port}: {exc.strerror or exc}"
            ) from None
        bound = self._sockets[0].getsockname()
        self.port = int(bound[1])
        self.core = Core(
            app.wsgi_app, fit_to_descriptors(limits or HttpLimits()), (host, self.port), inline
        )
        self._servers: list[asyncio.Server] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="rest", daemon=True)

    def _serve(self) -> None:
        loop = self.core.loop
        asyncio.set_event_loop(loop)
        self.core.loop_thread = threading.get_ident()

        async def start() -> None:
            for sock in self._sockets:
                self._servers.append(
                    await loop.create_server(lambda: Connection(self.core), sock=sock)
                )

        loop.run_until_complete(start())
        loop.call_later(1.0, self.core.sweep)
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            for connection in list(self.core.connections):
                if connection.transport is not None:
                    connection.transport.abort()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        loop = self.core.loop
        if self._thread.is_alive():

            def close() -> None:
                for server in self._servers:
                    server.close()
                loop.stop()

            loop.call_soon_threadsafe(close)
            self._thread.join(timeout=2)
        else:  # never started: close what __init__ opened
            for sock in self._sockets:
                sock.close()
            loop.close()
        self.core.small.shutdown()
        self.core.transfers.shutdown()

    @property
    def stats(self) -> dict[str, Any]:
        return {"connections": self.core.table.total}
