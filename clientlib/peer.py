"""HTTP to one peer's REST API with the standard library's ``http.client``.

Every failure becomes a :class:`ClientError` whose message fits on one line: an
unreachable peer, an HTTP error (with the API's JSON ``error`` / ``detail``), a body that
is not JSON. ``client.py`` prints it and exits 1.

A 429 (this client is over the peer's rate or transfer limit) is not a failure yet: the
request is sent again after the answer's ``Retry-After``, up to ``RETRIES`` times, each
wait announced in one line (``notify``, stderr by default). A wait longer than
``MAX_RETRY_WAIT`` is not sat through: the 429 is reported instead.
"""

from __future__ import annotations

import email.utils
import http.client
import itertools
import json
import socket
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Query = Mapping[str, str | int]
RETRIES = 5  # sends after the first 429, per request
MAX_RETRY_WAIT = 30.0  # seconds; a peer asking for longer gets a report instead
DEFAULT_RETRY_WAIT = 1.0  # a 429 without a usable Retry-After


class ClientError(Exception):
    """A failure reported in one line; the client exits 1."""


class HttpError(ClientError):
    """The peer answered with an error status."""

    def __init__(self, status: int, code: str, detail: str, where: str) -> None:
        self.status, self.code, self.detail = status, code, detail
        hint = " (give --token or set CHORD_TOKEN)" if status == 401 else ""
        super().__init__(f"{where} answered {status} {code}: {detail}{hint}")


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str) -> Address:
    """``host:port``, ``[v6]:port`` or ``http://host:port`` -> Address; ValueError if not."""
    text = text.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ValueError(f"expected HOST:PORT (a peer's REST address), got {text!r}")
    return Address(parts.hostname, port)


def describe_os_error(exc: BaseException, timeout: float) -> str:
    """A short reason for a network failure, without the exception's class soup."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is a peer's REST API listening there?)"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed after {len(exc.partial)} more bytes"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the peer closed the connection without answering"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__


def error_from(response: http.client.HTTPResponse, where: str) -> HttpError:
    """Build the error for a non-success response from its JSON body (or its text)."""
    raw = response.read(65536)
    code, detail = (response.reason or "error").lower().replace(" ", "-"), ""
    try:
        body = json.loads(raw)
    except ValueError:
        detail = raw.decode("utf-8", "replace").strip().splitlines()[0] if raw.strip() else ""
    else:
        if isinstance(body, dict):
            code = str(body.get("error") or body.get("status") or code)
            detail = str(body.get("detail") or "")
    return HttpError(response.status, code, detail or "(no detail)", where)


def retry_after(value: str | None, now: datetime | None = None) -> float:
    """Seconds a ``Retry-After`` header asks to wait: delay-seconds or an HTTP-date."""
    text = (value or "").strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_WAIT
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class PeerApi:
    """One peer's REST API: ``PeerApi(Address("127.0.0.1", 27000), token, timeout)``."""

    def __init__(
        self,
        address: Address,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = RETRIES,
        notify: Callable[[str], None] = to_stderr,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.address, self.token, self.timeout = address, token, timeout
        self.retries, self.notify, self.sleep = retries, notify, sleep

    def __repr__(self) -> str:
        return f"PeerApi({self.address})"

    def at(self, address: Address) -> PeerApi:
        """Another peer, asked the same way (token, timeout, retries)."""
        return PeerApi(address, self.token, self.timeout, self.retries, self.notify, self.sleep)

    def backoff(self, response: http.client.HTTPResponse, attempt: int, path: str) -> bool:
        """After a 429 with tries left and a bearable Retry-After: read the answer, say so
        in one line and wait. True: send the request again (the body from its start)."""
        if response.status != 429 or attempt > self.retries:
            return False
        wait = retry_after(response.getheader("Retry-After"))
        if wait > MAX_RETRY_WAIT:
            return False
        error = error_from(response, self.where(path))
        response.read()  # the whole answer, so a kept connection can be used again
        self.notify(f"{error}; retrying in {wait:g} s (retry {attempt} of {self.retries})")
        self.sleep(wait)
        return True

    def where(self, path: str) -> str:
        return f"{self.address}{path}"

    def connect(self) -> http.client.HTTPConnection:
        host, port = self.address.host, self.address.port
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "chord-client.py"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def unreachable(self, exc: BaseException) -> ClientError:
        return ClientError(
            f"cannot reach the peer at {self.address}: {describe_os_error(exc, self.timeout)}"
        )

    def send(
        self,
        method: str,
        path: str,
        query: Query | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        connection: http.client.HTTPConnection | None = None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send one request and return the connection and the (unread) response; a 429 is
        sent again after its Retry-After (see ``backoff``)."""
        target = path + ("?" + urllib.parse.urlencode(query) if query else "")
        body = None if json_body is None else json.dumps(json_body).encode()
        extra = dict(headers or {})
        if body is not None:
            extra["Content-Type"] = "application/json"
        for attempt in itertools.count(1):
            conn = connection or self.connect()
            try:
                conn.request(method, target, body=body, headers=self.headers(extra))
                response = conn.getresponse()
                if not self.backoff(response, attempt, path):
                    return conn, response
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise self.unreachable(exc) from None
            if connection is None:
                conn.close()
        raise AssertionError("unreachable")  # itertools.count never ends

    def call(
        self,
        method: str,
        path: str,
        query: Query | None = None,
        json_body: Any = None,
        ok: tuple[int, ...] = (200,),
    ) -> Any:
        """One JSON request; a status outside ``ok`` raises :class:`HttpError`."""
        conn, response = self.send(method, path, query, json_body)
        try:
            if response.status not in ok:
                raise error_from(response, self.where(path))
            return read_json(response, self.where(path))
        except (OSError, http.client.HTTPException) as exc:
            raise self.unreachable(exc) from None
        finally:
            conn.close()

    def get(self, path: str, **query: str | int) -> Any:
        return self.call("GET", path, query or None)


def read_json(response: http.client.HTTPResponse, where: str) -> Any:
    raw = response.read()
    try:
        return json.loads(raw)
    except ValueError:
        raise ClientError(f"{where} did not answer with JSON: is it a peer's REST port?") from None
