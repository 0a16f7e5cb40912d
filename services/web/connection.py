"""One REST connection on the event loop: HTTP/1.1 parsed by h11, every wait on the
client bounded, the app run on a worker thread only once the request is there.

States and the deadline each one has (checked by the server's sweep every second):

    idle     waiting for a request             http_idle_timeout, then closed
    head     a request head is arriving        http_header_timeout, then 408
    preload  its body is arriving, no app yet  its first 64 KiB within http_body_timeout
    running  the app has it                    body: http_body_timeout between bytes the
                                               app waits for; response: no byte taken by
                                               the client for http_send_timeout, then cut

So idle connections, slow heads and slow bodies (before BODY_PRELOAD bytes) cost a file
descriptor and a little memory; a thread is taken only for a whole request, or an
upload that has sent its first 64 KiB, and given back while a slow reader drains.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import h11

from services.rest.errors import CODES
from services.web.limits import BODY_HIGH, BODY_PRELOAD, MAX_HEAD_BYTES, WRITE_HIGH, WRITE_LOW
from services.web.wsgi import Producer, RequestBody, build_environ

if TYPE_CHECKING:
    from services.web.server import Core

REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def error_body(status: int, detail: str) -> bytes:
    return json.dumps({"error": CODES.get(status, "error"), "detail": detail}).encode()


def refusal(status: int, detail: str) -> bytes:
    """A whole response written before any request was read (connection refused)."""
    body = error_body(status, detail)
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
    )
    return head.encode() + body


def _body_length(request: h11.Request) -> int | None:
    """The declared body length (h11 has checked it), 0 without a body, None if chunked.
    Raises ValueError for both at once (RFC 9112 6.1: a smuggling attempt, as a rule)."""
    names = {name for name, _ in request.headers}
    if b"transfer-encoding" in names:
        if b"content-length" in names:
            raise ValueError("Content-Length and Transfer-Encoding together")
        return None
    for name, value in request.headers:
        if name == b"content-length":
            return int(value)
    return 0


def _head_size(request: h11.Request) -> int:
    return len(request.target) + sum(len(n) + len(v) + 4 for n, v in request.headers)


class Connection(asyncio.Protocol):
    def __init__(self, core: Core) -> None:
        self.core = core
        self.transport: asyncio.Transport | None = None
        self.ip = ""
        self.port = 0
        self.environ: dict[str, Any] = {}
        self.admitted = False
        self.state = "idle"
        self.since = time.monotonic()  # when the current state's clock started
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.body: RequestBody | None = None
        self.dispatched = False
        self.head_only = False
        self.head_sent = False
        self.reading_paused = False  # by us: body buffered enough, or a pipelined request
        self.last_read = self.since
        # Shared with worker threads (under _lock):
        self._lock = threading.Lock()
        self._closed = False
        self._writable = True
        self._in_flight = 0  # response bytes handed over by a worker, not yet written
        self._parked: Callable[[], None] | None = None
        self._progress_at = self.since
        self._buffered_seen = 0

    # ------------------------------------------------------------ connection
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.ip, self.port = str(peer[0]), int(peer[1])
        why = self.core.table.admit(self.ip)
        if why is not None:
            transport.write(refusal(429 if "from" in why else 503, f"too many connections: {why}"))
            transport.close()
            return
        self.admitted = True
        transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
        self.core.connections.add(self)
        self._go_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        with self._lock:
            self._closed = True
            parked, self._parked = self._parked, None
        if self.body is not None:
            self.body.fail("the client went away")
        if parked is not None:
            parked()  # the producer sees the connection closed and ends its response
        if self.admitted:
            self.admitted = False
            self.core.connections.discard(self)
            self.core.table.leave(self.ip, self)

    def close_idle(self) -> None:
        """Evicted to make room for a new connection (only ever when idle)."""
        self.core.loop.call_soon_threadsafe(self._close)

    def _close(self, abort: bool = False) -> None:
        if self.transport is not None and not self.transport.is_closing():
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    def _go_idle(self) -> None:
        self.state = "idle"
        self.since = time.monotonic()
        self.body = None
        self.dispatched = self.head_only = self.head_sent = False
        self.core.table.idle(self, True)

    # ------------------------------------------------------------ reading
    def data_received(self, data: bytes) -> None:
        self.last_read = time.monotonic()
        if self.state == "idle":
            self.state = "head"
            self.since = self.last_read
            self.core.table.idle(self, False)
        self.h11.receive_data(data)
        self._process()

    def eof_received(self) -> bool:
        self.h11.receive_data(b"")
        self._process()
        return True  # keep the socket open to answer a request that is complete

    def _process(self) -> None:
        while self.transport is not None and not self.transport.is_closing():
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._fail(exc.error_status_hint, f"malformed request: {exc}")
                return
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED:  # a pipelined request: after this response
                self._pause_reading()
                return
            if not self._on_event(event):
                return

    def _on_event(self, event: object) -> bool:
        """One event of the request in progress; False once the client has closed."""
        if isinstance(event, h11.Request):
            self._on_request(event)
        elif isinstance(event, h11.Data):
            self._on_body(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            if self.body is not None:
                self.body.finish()
            if not self.dispatched and not self._answer_inline():
                self._dispatch()
        elif isinstance(event, h11.ConnectionClosed):
            if self.body is not None:
                self.body.fail("the client closed the connection")
            if self.state in ("idle", "head", "preload"):
                self._close()
            return False
        return True

    def _pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None and not self._closed:
            self.reading_paused = False
            self.last_read = time.monotonic()  # the body clock restarts now
            self.transport.resume_reading()

    def _on_request(self, request: h11.Request) -> None:
        assert self.transport is not None
        self.state = "preload"
        self.since = self.last_read = time.monotonic()
        self.head_only = request.method == b"HEAD"
        self.body = RequestBody(self.core.limits.body_timeout, self._body_wanted)
        client = (self.ip, self.port)
        self.environ = build_environ(request, self.body, client, self.core.address)
        if _head_size(request) > MAX_HEAD_BYTES:  # h11 only bounds a head still arriving
            self._fail(431, f"the request head is larger than {MAX_HEAD_BYTES} bytes")
            return
        try:
            length = _body_length(request)
        except ValueError as exc:
            self._fail(400, f"malformed request: {exc}")
            return
        if length is not None and length > self.core.limits.max_body:
            self._fail(
                413,
                f"the body is larger than this peer's limit of {self.core.limits.max_body} bytes",
            )
            return
        if length == 0:
            return  # h11's EndOfMessage follows at once: the request goes on from there
        if self.h11.they_are_waiting_for_100_continue:
            self._send(h11.InformationalResponse(status_code=100, headers=[]))

    def _answer_inline(self) -> bool:
        """Answer on the loop itself if ``inline`` knows the answer (GET /health): no
        thread at all. Only for a request that is whole (h11 is then ready to reply)."""
        answer = self.core.inline(self.environ["REQUEST_METHOD"], self.environ["PATH_INFO"])
        if answer is None:
            return False
        self.dispatched = True
        self.state = "running"
        status, headers, body = answer
        self._write_whole(status, HTTPStatus(status).phrase.encode(), headers, body)
        return True

    def _on_body(self, data: bytes) -> None:
        if self.body is None:
            return
        self.body.feed(data)
        if not self.dispatched and self.body.buffered >= BODY_PRELOAD:
            self._dispatch()
        if self.dispatched and self.body.buffered >= BODY_HIGH:
            self._pause_reading()  # until the app has read it down to BODY_LOW

    def _body_wanted(self) -> None:
        """From the app's thread: it has read the buffer low; read the socket again."""
        self.core.loop.call_soon_threadsafe(self._resume_reading)

    def _dispatch(self) -> None:
        self.dispatched = True
        self.state = "running"
        self.since = time.monotonic()
        producer = Producer(self.core.app, self.environ, self, self.head_only)
        pool = self.core.pool_for(self.environ["PATH_INFO"])

        def resume() -> None:
            if not pool.submit(lambda: producer.step(resume)):
                self.abort("no thread for the rest of this response")

        if not pool.submit(lambda: producer.step(resume)):
            self._fail(
                503,
                f"every {pool.name} thread is busy and {pool.queue} requests wait; "
                "retry in a second",
            )

    # ------------------------------------------------------------ writing (loop)
    def _send(self, event: Any) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        try:
            data = self.h11.send(event)
        except h11.LocalProtocolError:
            self._close(abort=True)
            return
        if data:
            self.transport.write(data)

    def _fail(self, status: int, detail: str) -> None:
        """Answer an error ourselves (the app never saw the request) and close."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE) and not self.head_sent:
            body = error_body(status, detail)
            headers = [
                (b"content-type", b"application/json"),
                (b"connection", b"close"),
                (b"content-length", str(len(body)).encode()),
            ]
            try:
                events = (
                    h11.Response(status_code=status, headers=headers),
                    h11.Data(data=body),
                    h11.EndOfMessage(),
                )
                self.transport.write(b"".join(self.h11.send(e) or b"" for e in events))
            except h11.LocalProtocolError:  # h11 saw no whole request head: answer raw
                self.transport.write(refusal(status, detail))
        self._close()

    def _write_head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.head_sent = True
        self._send(h11.Response(status_code=status, headers=headers, reason=reason))

    def _write_whole(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """Head, body and end in one write (one send(2) for a small answer)."""
        self.head_sent = True
        events: list[h11.Event] = [h11.Response(status_code=status, headers=headers, reason=reason)]
        if body and not self.head_only:
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        try:
            data = b"".join(self.h11.send(event) or b"" for event in events)
        except h11.LocalProtocolError:
            self._close(abort=True)
            return
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        self._end_cycle()

    def _write_data(self, chunk: bytes) -> None:
        with self._lock:
            self._in_flight -= len(chunk)
        if not self.head_only:
            self._send(h11.Data(data=chunk))
        self._maybe_resume()

    def _write_end(self) -> None:
        self._send(h11.EndOfMessage())
        self._end_cycle()

    def _end_cycle(self) -> None:
        """The response is written: next request on this connection, or close."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is not h11.DONE:
            self._close()  # closing flushes what is buffered first
            return
        self.h11.start_next_cycle()
        self._go_idle()
        self._resume_reading()
        self.core.loop.call_soon(self._process)  # a pipelined request may wait in h11

    def _abort_response(self, why: str) -> None:
        if not self.head_sent:
            self._fail(500, "the peer hit an unexpected error; see its log")
        else:
            self._close(abort=True)  # a truncated body: the client must see it failed

    def pause_writing(self) -> None:
        with self._lock:
            self._writable = False

    def resume_writing(self) -> None:
        with self._lock:
            self._writable = True
        self._progress_at = time.monotonic()
        self._maybe_resume()

    def _maybe_resume(self) -> None:
        with self._lock:
            ready = self._writable and self._in_flight < WRITE_LOW
            parked = self._parked if ready else None
            if parked is not None:
                self._parked = None
        if parked is not None:
            parked()

    # ------------------------------------------------------------ Responder (threads)
    @property
    def closed(self) -> bool:
        return self._closed

    def start(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self._later(self._write_head, status, reason, headers)

    def data(self, chunk: bytes) -> bool:
        with self._lock:
            self._in_flight += len(chunk)
            room = self._writable and self._in_flight < WRITE_HIGH
        self._later(self._write_data, chunk)
        return room

    def end(self) -> None:
        self._later(self._write_end)

    def whole(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        self._later(self._write_whole, status, reason, headers, body)

    def abort(self, why: str) -> None:
        self._later(self._abort_response, why)

    def park(self, resume: Callable[[], None]) -> bool:
        with self._lock:
            if self._closed:
                return False
            if self._writable and self._in_flight < WRITE_HIGH:
                return False  # room again already: go on producing
            self._parked = resume
            return True

    def _later(self, fn: Callable[..., None], *args: Any) -> None:
        if threading.get_ident() == self.core.loop_thread:
            fn(*args)
        else:
            self.core.loop.call_soon_threadsafe(fn, *args)

    # ------------------------------------------------------------ deadlines (loop)
    def check(self, now: float) -> None:
        limits = self.core.limits
        if self.state == "idle" and now - self.since > limits.idle_timeout:
            self._close()
        elif self.state == "head" and now - self.since > limits.header_timeout:
            self._fail(408, f"the request head took longer than {limits.header_timeout:g} s")
        elif self.state == "preload" and now - self.since > limits.body_timeout:
            # Before a thread is given: the first BODY_PRELOAD bytes (or the whole body)
            # within body_timeout, i.e. >= 3.2 KB/s. A body trickling at 1 byte/s is cut.
            self._fail(408, f"the request body's start took longer than {limits.body_timeout:g} s")
        elif self.state == "running" and self._body_stalled(now):
            self._fail(408, f"no request body byte for {limits.body_timeout:g} s")
        elif self.state == "running" and self._send_stalled(now):
            self._close(abort=True)

    def _body_stalled(self, now: float) -> bool:
        body = self.body
        waiting = body is not None and not body.complete and not self.reading_paused
        return waiting and now - self.last_read > self.core.limits.body_timeout

    def _send_stalled(self, now: float) -> bool:
        if self.transport is None:
            return False
        buffered = self.transport.get_write_buffer_size()
        if self._writable or buffered < self._buffered_seen:
            self._progress_at = now
        self._buffered_seen = buffered
        return now - self._progress_at > self.core.limits.send_timeout
