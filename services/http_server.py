"""Serve the Flask app with waitress on a background thread."""

from __future__ import annotations

import threading

from flask import Flask
from waitress.server import create_server


class HttpBindError(RuntimeError):
    pass


class ApiServer:
    def __init__(self, app: Flask, host: str, port: int, threads: int = 4) -> None:
        try:
            # create_server binds immediately, so a busy port is reported before joining.
            self._server = create_server(app, host=host, port=port, threads=threads, ident="chord")
        except OSError as exc:
            raise HttpBindError(
                f"cannot listen for REST on {host}:{port}: {exc.strerror}"
            ) from None
        self._thread = threading.Thread(target=self._server.run, name="rest", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.close()
