"""The WSGI side of the server: the environ of a request, its body as ``wsgi.input``,
and running the app on a worker thread.

Threads never wait on a client without a deadline. The body a thread reads arrives from
the event loop (``RequestBody``); a read that gets no byte for ``body_timeout`` raises
ClientDisconnected (a 400 the client will not see). The response is produced by the
thread only while the connection can take it (``Producer``): when WRITE_HIGH bytes are
waiting for a slow reader, the thread is released and the loop hands the rest of the
production to a thread again once the client has read enough.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes

import h11
from werkzeug.exceptions import ClientDisconnected

from services.web.limits import BODY_LOW

SMALL_BODY = 256 << 10  # a response up to this size (with a Content-Length) goes in one piece

Environ = dict[str, Any]
WsgiApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]


def build_environ(
    request: h11.Request, body: RequestBody, client: tuple[str, int], server: tuple[str, int]
) -> Environ:
    target = request.target.decode("latin-1")
    if "://" in target:  # absolute-form: keep the path and query only
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    path, _, query = target.partition("?")
    environ: Environ = {
        "REQUEST_METHOD": request.method.decode("ascii"),
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query,
        "RAW_URI": target,
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{request.http_version.decode('ascii')}",
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,  # read() returns b"" at the end, chunked or not
    }
    for raw_name, raw_value in request.headers:
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


class RequestBody:
    """``wsgi.input``: bytes fed by the event loop, read by the app's thread."""

    def __init__(self, timeout: float, want_more: Callable[[], None]) -> None:
        self._timeout = timeout
        self._want_more = want_more  # called (from the reader) when the buffer runs low
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self.buffered = 0
        self._done = False
        self._failed: str | None = None

    # ------------------------------------------------------------ event loop side
    def feed(self, data: bytes) -> None:
        with self._cond:
            self._chunks.append(data)
            self.buffered += len(data)
            self._cond.notify_all()

    def finish(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def fail(self, why: str) -> None:
        with self._cond:
            if not self._done:
                self._failed = why
            self._cond.notify_all()

    @property
    def complete(self) -> bool:
        return self._done

    # ------------------------------------------------------------ app side
    def _take(self, size: int) -> bytes:
        """Up to ``size`` bytes (-1: all there are), waiting for at least one."""
        with self._cond:
            if not self._chunks and not self._done:
                self._want_more()
                if not self._cond.wait_for(
                    lambda: self._chunks or self._done or self._failed, self._timeout
                ):
                    raise ClientDisconnected(f"no request body byte for {self._timeout:g} s")
            if not self._chunks:
                if self._failed is not None and not self._done:
                    raise ClientDisconnected(self._failed)
                return b""
            first = self._chunks.popleft()
            if 0 <= size < len(first):
                self._chunks.appendleft(first[size:])
                first = first[:size]
            self.buffered -= len(first)
            low = self.buffered < BODY_LOW
        if low:
            self._want_more()
        return first

    def read(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        if size < 0:
            parts = []
            while part := self._take(-1):
                parts.append(part)
            return b"".join(parts)
        parts, wanted = [], size
        while wanted > 0:
            part = self._take(wanted)
            if not part:
                break
            parts.append(part)
            wanted -= len(part)
        return b"".join(parts)

    def read1(self, size: int = -1) -> bytes:
        return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        line = bytearray()
        while size is None or size < 0 or len(line) < size:
            part = self._take(1 if size is None or size < 0 else size - len(line))
            if not part:
                break
            cut = part.find(b"\n")
            if cut >= 0:
                with self._cond:  # give back what follows the newline
                    self._chunks.appendleft(part[cut + 1 :])
                    self.buffered += len(part) - cut - 1
                line += part[: cut + 1]
                break
            line += part
        return bytes(line)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


class Responder(Protocol):
    """What a worker thread tells the connection; every method is thread-safe."""

    @property
    def closed(self) -> bool: ...

    def start(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> None: ...

    def data(self, chunk: bytes) -> bool: ...  # False: the connection is full for now

    def end(self) -> None: ...

    def whole(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None: ...  # a small response in one hand-over

    def abort(self, why: str) -> None: ...

    def park(self, resume: Callable[[], None]) -> bool: ...  # True: resume() once writable


class Producer:
    """Runs the app for one request, then pulls its response iterable chunk by chunk
    into the connection, a step at a time on some worker thread (``step``)."""

    def __init__(
        self, app: WsgiApp, environ: Environ, responder: Responder, head_only: bool
    ) -> None:
        self.app = app
        self.environ = environ
        self.responder = responder
        self.head_only = head_only
        self._ran = False
        self._result: Iterable[bytes] | None = None
        self._chunks: Iterator[bytes] | None = None
        self._started = False
        self._pending: tuple[int, bytes, list[tuple[bytes, bytes]]] | None = None

    def _start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None and self._started:
            raise exc_info[1].with_traceback(exc_info[2])
        code, _, reason = status.partition(" ")
        self._pending = (
            int(code),
            reason.encode("latin-1"),
            [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        )
        return self._write

    def _write(self, data: bytes) -> None:  # the legacy write() callable: rare, blocking
        self._send_head()
        if data and not self.head_only:
            self.responder.data(bytes(data))

    def _send_head(self) -> None:
        if not self._started:
            if self._pending is None:
                raise RuntimeError("the app returned a body before calling start_response")
            self._started = True
            self.responder.start(*self._pending)

    def step(self, resume: Callable[[], None]) -> None:
        """Produce until the response is done, the connection is full (then park, to be
        ``resume``d later on a thread) or gone."""
        try:
            if not self._ran:
                self._ran = True
                self._result = self.app(self.environ, self._start_response)
                self._chunks = iter(self._result)
                if self._small_response():  # HEAD answers too
                    return
            if self._chunks is None:  # closed already (an earlier step ended it)
                return
            while not self.responder.closed:
                chunk = next(self._chunks, None)
                if chunk is None:
                    self._send_head()
                    self.responder.end()
                    self._close()
                    return
                if not chunk:
                    continue
                self._send_head()
                if not self.responder.data(chunk) and self.responder.park(resume):
                    return  # the loop calls resume() when the client has read enough
            self._close()
        except Exception as exc:  # the app's own errors became responses in Flask
            self.responder.abort(f"{type(exc).__name__}: {exc}")
            self._close()

    def _small_response(self) -> bool:
        """Most answers are one small JSON body with a Content-Length: hand the head and
        the body over in one go, one wake-up of the event loop instead of three."""
        if self._pending is None:  # start_response comes with the first chunk
            return False
        declared = [v for k, v in self._pending[2] if k.lower() == b"content-length"]
        if not self.head_only and not (declared and int(declared[0]) <= SMALL_BODY):
            return False
        body = b"" if self.head_only else b"".join(self._chunks or ())
        self._started = True
        self.responder.whole(*self._pending, body)
        self._close()
        return True

    def _close(self) -> None:
        result, self._result = self._result, None
        self._chunks = None
        close = getattr(result, "close", None)
        if close is not None:
            close()
