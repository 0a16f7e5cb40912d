"""The REST half of ``python -m bench.transfer --via rest``.

Through one peer's REST API of a 4-peer ring (k = 3): a multipart upload streamed with
http.client, a download read with readinto, as ratios to raw loopback TCP measured in the
same run; and small-request throughput (``GET /health`` from 16 concurrent keep-alive
clients) as a ratio to a bare waitress hello-world measured in the same run with the same
load generator and the same number of server threads.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench.nginx import curl_download_mb_s, curl_upload, nginx_serving
from devtools.launcher import LocalRing, free_port

MIB = 1 << 20
ROUNDS = 3  # download rounds, nginx and the peers alternating
CLIENTS = 16  # concurrent keep-alive connections
LOAD_PROCESSES = 4  # the load generator's processes (threads in one would share a GIL)
LOAD_SECONDS = 3.0
API_THREADS = 4  # services.web.api_server.ApiServer's default
HELLO_SERVER = """
import logging, sys
from waitress import serve
logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # as the peers do
BODY = b'{"status": "ok"}'
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(BODY)))])
    return [BODY]
serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=int(sys.argv[2]), ident="hello")
"""
LOAD_WORKER = """
import http.client, sys, threading, time
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
threads, seconds = int(sys.argv[4]), float(sys.argv[5])
counts = [0] * threads
start = time.monotonic() + 0.2
def run(i):
    connection = http.client.HTTPConnection(host, port, timeout=10)
    while time.monotonic() < start:
        time.sleep(0.001)
    while time.monotonic() < start + seconds:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        if response.status == 200:
            counts[i] += 1
workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
[w.start() for w in workers]
[w.join() for w in workers]
print(sum(counts) / seconds)
"""


def requests_per_s(host: str, port: int, path: str) -> float:
    """GET ``path`` from CLIENTS keep-alive connections spread over LOAD_PROCESSES."""
    per_process = CLIENTS // LOAD_PROCESSES
    command = [sys.executable, "-c", LOAD_WORKER, host, str(port), path, str(per_process)]
    workers = [
        subprocess.Popen([*command, str(LOAD_SECONDS)], stdout=subprocess.PIPE, text=True)
        for _ in range(LOAD_PROCESSES)
    ]
    return sum(float(w.communicate(timeout=60)[0]) for w in workers)


def hello_waitress_per_s() -> float:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", HELLO_SERVER, str(port), str(API_THREADS)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return requests_per_s("127.0.0.1", port, "/")
    finally:
        server.terminate()
        server.wait(timeout=10)


def file_pieces(pieces: list[bytes], size: int) -> Iterator[bytes]:
    """The benchmark file's ``size`` bytes: the 1 MiB ``pieces`` over and over."""
    sent = 0
    while sent < size:
        piece = pieces[(sent // MIB) % len(pieces)][: size - sent]
        sent += len(piece)
        yield piece


def upload(host: str, port: int, name: str, pieces: list[bytes], size: int) -> dict[str, object]:
    """POST /upload_file as multipart/form-data, the body streamed piece by piece."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n{name}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    connection = http.client.HTTPConnection(host, port, timeout=600)
    connection.putrequest("POST", "/upload_file")
    connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    connection.putheader("Content-Length", str(len(head) + size + len(tail)))
    connection.endheaders()
    connection.send(head)
    for piece in file_pieces(pieces, size):
        connection.send(piece)
    connection.send(tail)
    response = connection.getresponse()
    body = response.read()
    if response.status != 201:
        raise RuntimeError(f"upload answered {response.status}: {body[:300]!r}")
    answer: dict[str, object] = json.loads(body)
    return answer


def download(host: str, port: int, name: str) -> tuple[int, str]:
    """GET /download_file into a reused 1 MiB buffer: (bytes, X-Content-SHA256)."""
    connection = http.client.HTTPConnection(host, port, timeout=600)
    connection.request("GET", "/download_file?" + urllib.parse.urlencode({"name": name}))
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"download answered {response.status}: {response.read()[:300]!r}")
    buffer = memoryview(bytearray(MIB))
    total = 0
    while n := response.readinto(buffer):
        total += n
    return total, response.getheader("X-Content-SHA256") or ""


def write_payload(path: Path, pieces: list[bytes], size: int) -> str:
    """The benchmark's file on disk (for curl and nginx); its SHA-256."""
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for piece in file_pieces(pieces, size):
            out.write(piece)
            digest.update(piece)
    return digest.hexdigest()


def measure_rest(
    size: int, peers: int, copies: int, data_root: str | None, raw: float, env: dict[str, str]
) -> dict[str, float]:
    """curl against the peers and against nginx serving the same file from the same place
    (the data root), in one run; REST downloads from a peer holding a copy and from the
    one peer that holds none."""
    hello = hello_waitress_per_s()
    pieces = [bytes([i]) * MIB for i in range(1, 17)]
    with tempfile.TemporaryDirectory(prefix="bench-rest-", dir=data_root) as workdir:
        www = Path(workdir) / "www"
        sha = write_payload(www / "big.bin", pieces, size)
        ring = LocalRing(
            Path(workdir) / "ring",
            extra_args=("--replicas", str(copies), "--log-level", "warning"),
            env=env,
        )
        try:
            first = ring.start_ring(peers)[0]
            host, port = first.host, first.api_port
            health = requests_per_s(host, port, "/health")
            upload_mb_s, answer = curl_upload(
                f"http://{host}:{port}/upload_file", www / "big.bin", "bench/rest.bin"
            )
            stored = json.loads(answer)
            if stored.get("sha256") != sha:
                raise RuntimeError(f"stored {stored}, expected sha256 {sha}")
            holding = {h["api"] for h in stored["holders"]}
            holder = next(p for p in ring.peers if f"{p.host}:{p.api_port}" in holding)
            others = [p for p in ring.peers if f"{p.host}:{p.api_port}" not in holding]
            query = "/download_file?" + urllib.parse.urlencode({"name": "bench/rest.bin"})
            # nginx and the peers in turn, best of ROUNDS each: a machine that gets busier
            # during the run then weighs on both sides of each ratio alike.
            best = {"nginx": 0.0, "holder": 0.0, "other": 0.0}
            with nginx_serving(www) as nginx_port:
                urls = {
                    "nginx": f"http://127.0.0.1:{nginx_port}/big.bin",
                    "holder": f"{holder.api_url}{query}",
                }
                if others:
                    urls["other"] = f"{others[0].api_url}{query}"
                for _ in range(ROUNDS):
                    for what, url in urls.items():
                        best[what] = max(best[what], curl_download_mb_s(url, size, tries=1))
            nginx, from_holder, from_other = best["nginx"], best["holder"], best["other"]
            rss = max(p.memory_mib("VmHWM") for p in ring.peers)
        finally:
            ring.close()
    return {
        "size_mib": size / MIB,
        "peers": peers,
        "copies": copies,
        "raw_tcp_mb_s": raw,
        "nginx_curl_mb_s": nginx,
        "rest_upload_mb_s": upload_mb_s,
        "rest_upload_ratio": upload_mb_s / raw,
        "rest_download_holder_mb_s": from_holder,
        "rest_download_holder_vs_nginx": from_holder / nginx,
        "rest_download_other_mb_s": from_other,
        "rest_download_other_vs_nginx": from_other / nginx,
        "hello_waitress_req_s": hello,
        "health_req_s": health,
        "health_ratio": health / hello,
        "peak_rss_mib_max": rss,
    }
