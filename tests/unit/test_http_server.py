"""The REST server (services.web.api_server, services.web) in-process with a tiny Flask app:
keep-alive, pipelining, HEAD, streamed and chunked bodies, 100-continue, big responses."""

from __future__ import annotations

import hashlib
import http.client
import socket
from collections.abc import Iterator

import pytest
from flask import Flask, Response, jsonify, request

from services.web.api_server import ApiServer
from services.web.limits import HttpLimits


def inline(method: str, path: str) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
    if method == "GET" and path == "/health":
        return 200, [(b"content-type", b"application/json"), (b"content-length", b"2")], b"{}"
    return None


@pytest.fixture(scope="module")
def server() -> Iterator[ApiServer]:
    app = Flask("t")

    @app.get("/json")
    def json_answer() -> Response:
        return jsonify(path=request.path, args=request.args.to_dict())

    @app.post("/echo_sha")
    def echo_sha() -> Response:
        digest, size = hashlib.sha256(), 0
        while chunk := request.stream.read(1 << 16):
            digest.update(chunk)
            size += len(chunk)
        return jsonify(size=size, sha256=digest.hexdigest())

    @app.get("/big")
    def big() -> Response:
        def chunks() -> Iterator[bytes]:
            for i in range(32):
                yield bytes([i]) * (1 << 20)

        return Response(chunks(), headers={"Content-Length": str(32 << 20)})

    served = ApiServer(app, "127.0.0.1", 0, HttpLimits(workers=2, transfer_workers=2), inline)
    served.start()
    yield served
    served.stop()


def test_keep_alive_serves_many_requests_on_one_connection(server: ApiServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    for path in ("/health", "/json?a=1", "/health", "/json", "/nothing"):
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        assert response.status == (404 if path == "/nothing" else 200), (path, body)
    connection.request("HEAD", "/json")
    head = connection.getresponse()
    assert head.status == 200 and head.read() == b""
    connection.close()


def test_pipelined_requests_are_answered_in_order(server: ApiServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(
            b"GET /json?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /json?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.count(b"HTTP/1.1 200") == 3
    assert answer.index(b'"n":"1"') < answer.index(b"{}") < answer.index(b'"n":"3"')


@pytest.mark.parametrize("chunked", [False, True])
def test_request_bodies_stream_to_the_app(server: ApiServer, chunked: bool) -> None:
    data = bytes(range(256)) * 20_000  # 5 MB: more than the server buffers before pausing
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    if chunked:
        connection.request(
            "POST",
            "/echo_sha",
            body=iter([data[:1000], data[1000:]]),
            encode_chunked=True,
            headers={"Expect": "100-continue"},
        )
    else:
        connection.request("POST", "/echo_sha", body=data)
    answer = connection.getresponse().read()
    assert b'"size":%d' % len(data) in answer
    assert hashlib.sha256(data).hexdigest().encode() in answer


def test_a_big_response_arrives_whole(server: ApiServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/big")
    response = connection.getresponse()
    body = response.read()
    assert len(body) == 32 << 20 and body[-1] == 31
