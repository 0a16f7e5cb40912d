"""The WebDAV half of ``python -m bench.transfer --via dav``: a file put and got over
WebDAV (``PUT`` / ``GET /dav/NAME``) against the same file through the REST API
(``POST /upload_file`` / ``GET /download_file``), on one ring, in the same run. The two
paths alternate (REST, DAV, REST, DAV) and the best of each is kept, so a machine that
gets busier during the run does not favour one of them. Target: DAV >= 0.8 x REST.
"""

from __future__ import annotations

import hashlib
import http.client
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bench.rest_transfer import download as rest_download
from bench.rest_transfer import file_pieces
from bench.rest_transfer import upload as rest_upload
from devtools.launcher import LocalRing

MIB = 1 << 20
T = TypeVar("T")
ROUNDS = 2


def dav_put(host: str, port: int, name: str, pieces: list[bytes], size: int) -> str:
    """PUT /dav/NAME with Content-Length, the body sent piece by piece; the ETag."""
    connection = http.client.HTTPConnection(host, port, timeout=600)
    connection.putrequest("PUT", "/dav/" + urllib.parse.quote(name))
    connection.putheader("Content-Type", "application/octet-stream")
    connection.putheader("Content-Length", str(size))
    connection.endheaders()
    for piece in file_pieces(pieces, size):
        connection.send(piece)
    response = connection.getresponse()
    response.read()
    if response.status not in (201, 204):
        raise RuntimeError(f"PUT answered {response.status}")
    return (response.getheader("ETag") or "").strip('"')


def dav_get(host: str, port: int, name: str) -> tuple[int, str]:
    """GET /dav/NAME into a reused 1 MiB buffer: (bytes, ETag)."""
    connection = http.client.HTTPConnection(host, port, timeout=600)
    connection.request("GET", "/dav/" + urllib.parse.quote(name))
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"GET answered {response.status}: {response.read()[:300]!r}")
    buffer = memoryview(bytearray(MIB))
    total = 0
    while n := response.readinto(buffer):
        total += n
    return total, (response.getheader("ETag") or "").strip('"')


def expected_sha(pieces: list[bytes], size: int) -> str:
    digest = hashlib.sha256()
    for piece in file_pieces(pieces, size):
        digest.update(piece)
    return digest.hexdigest()


def measure_dav(
    size: int, peers: int, copies: int, data_root: str | None, env: dict[str, str]
) -> dict[str, float]:
    pieces = [bytes([i]) * MIB for i in range(1, 17)]
    sha = expected_sha(pieces, size)
    best = {"rest_up": 0.0, "dav_up": 0.0, "rest_down": 0.0, "dav_down": 0.0}
    mb = size / 1e6

    def timed(key: str, call: Callable[..., T], *args: object) -> T:
        begin = time.perf_counter()
        result = call(*args)
        best[key] = max(best[key], mb / (time.perf_counter() - begin))
        return result

    with tempfile.TemporaryDirectory(prefix="bench-dav-", dir=data_root) as workdir:
        ring = LocalRing(
            Path(workdir),
            extra_args=("--replicas", str(copies), "--log-level", "warning"),
            env=env,
        )
        try:
            first = ring.start_ring(peers)[0]
            host, port = first.host, first.api_port
            for round_ in range(ROUNDS):
                name = f"bench/rest-{round_}.bin"
                stored = timed("rest_up", rest_upload, host, port, name, pieces, size)
                assert stored["sha256"] == sha, stored
                got = timed("rest_down", rest_download, host, port, name)
                assert got == (size, sha), got
                dav_name = f"bench/dav-{round_}.bin"
                etag = timed("dav_up", dav_put, host, port, dav_name, pieces, size)
                assert etag == sha, etag
                got = timed("dav_down", dav_get, host, port, dav_name)
                assert got == (size, sha), got
            rss = max(p.memory_mib("VmHWM") for p in ring.peers)
        finally:
            ring.close()
    return {
        "size_mib": size / MIB,
        "peers": peers,
        "copies": copies,
        "rest_upload_mb_s": best["rest_up"],
        "dav_put_mb_s": best["dav_up"],
        "dav_put_ratio": best["dav_up"] / best["rest_up"],
        "rest_download_mb_s": best["rest_down"],
        "dav_get_mb_s": best["dav_down"],
        "dav_get_ratio": best["dav_down"] / best["rest_down"],
        "peak_rss_mib_max": rss,
    }
