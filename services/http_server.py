"""Serve the Flask app with waitress on a background thread.

waitress reads a whole request body before it calls the app: into memory up to
``inbuf_overflow`` bytes, into a temporary file beyond that. So an upload costs disk,
not memory, and ``max_request_body_size`` is the real upload limit; it is set just
above the app's own limit so the app (which counts the file's bytes exactly) answers
413 with its JSON error. The few errors waitress answers itself (a body over that limit,
a malformed request line, oversized headers) get the same JSON shape.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from flask import Flask
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer, create_server
from waitress.task import ErrorTask

from services.rest.errors import CODES

MIB = 1 << 20
# Multipart framing and the text fields around the file part.
BODY_SLACK = 1 * MIB
# Measured on loopback with a 256 MiB upload (see the rest-api notes): socket reads of
# 256 KiB instead of waitress' 8 KiB cut the per-read overhead of spooling a big body.
RECV_BYTES = 256 << 10
INBUF_OVERFLOW = 1 * MIB  # bodies up to this stay in memory, larger ones go to a temp file
SEND_BYTES = 256 << 10


class HttpBindError(RuntimeError):
    pass


class JsonErrorTask(ErrorTask):
    """waitress' own error responses, as ``{"error", "detail"}`` like the app's."""

    def execute(self) -> None:
        request: Any = self.request  # the parser that failed (the stubs say otherwise)
        error = request.error
        body = json.dumps(
            {"error": CODES.get(error.code, "error"), "detail": f"{error.reason}: {error.body}"}
        ).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers = [("Content-Type", "application/json")]
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JsonErrorChannel(HTTPChannel):
    error_task_class = JsonErrorTask


def _listeners(server: Any) -> list[BaseWSGIServer]:
    if isinstance(server, MultiSocketServer):  # several addresses: one listener each
        entries: list[Any] = list((server.map or {}).values())
        return [entry for entry in entries if isinstance(entry, BaseWSGIServer)]
    return [server]


class ApiServer:
    def __init__(
        self, app: Flask, host: str, port: int, threads: int = 4, max_body: int = 10240 * MIB
    ) -> None:
        try:
            # create_server binds immediately, so a busy port is reported before joining.
            self._server = create_server(
                app,
                host=host,
                port=port,
                threads=threads,
                ident="chord",
                max_request_body_size=max_body + BODY_SLACK,
                recv_bytes=RECV_BYTES,
                send_bytes=SEND_BYTES,
                inbuf_overflow=INBUF_OVERFLOW,
            )
        except OSError as exc:
            raise HttpBindError(
                f"cannot listen for REST on {host}:{port}: {exc.strerror}"
            ) from None
        for listener in _listeners(self._server):
            listener.channel_class = JsonErrorChannel
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="rest", daemon=True)

    def _serve(self) -> None:
        try:
            self._server.run()
        except OSError:
            # stop() closes the listening sockets under the loop's select(): EBADF then
            # is the expected way out, not an error worth a traceback on stderr.
            if not self._stopping:
                raise

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._server.close()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
