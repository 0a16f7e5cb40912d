"""clientlib's transfers against small in-process fake peers (stdlib http.server).

Real peers are exercised by tests/integration/test_client.py; these fakes make the
failures that are hard to provoke there: a holder that errors, a stream cut short, a
holder serving another version.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from clientlib.download import PartialFile, Remote, destination, download
from clientlib.peer import Address, ClientError, HttpError, PeerApi, retry_after
from clientlib.upload import upload, upload_stream

CONTENT = bytes((i * 7919) % 256 for i in range(3 * 1024 * 1024 + 123))
SHA = hashlib.sha256(CONTENT).hexdigest()


@dataclass
class Behaviour:
    content: bytes = CONTENT
    broken: bool = False  # answer 500 to downloads
    cut_after: int | None = None  # close the stream after this many bytes
    holders: list[str] = field(default_factory=list)  # REST addresses the search names
    served: int = 0
    uploads: list[dict[str, Any]] = field(default_factory=list)
    busy: int = 0  # answer this many more requests with 429
    retry_after: str = "1"
    requests: int = 0


class FakePeer(BaseHTTPRequestHandler):
    behaviour: Behaviour
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def reply_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def too_busy(self) -> bool:
        b = self.behaviour
        b.requests += 1
        if b.busy <= 0:
            return False
        b.busy -= 1
        detail = {"error": "too-many-requests", "detail": "slow down"}
        self.reply_json(429, detail, {"Retry-After": b.retry_after})
        return True

    def do_GET(self) -> None:
        if self.too_busy():
            return
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        b = self.behaviour
        if url.path == "/search_file":
            refs = [{"id": "0" * 40, "address": "x:1", "api": api} for api in b.holders]
            found = query.get("name") == "f.bin"
            self.reply_json(
                200,
                {
                    "name": query.get("name"),
                    "found": found,
                    "owner": refs[0] if refs else None,
                    "replicas": refs[1:],
                    "size": len(b.content) if found else None,
                    "sha256": hashlib.sha256(b.content).hexdigest() if found else None,
                    "version": 1 if found else None,
                    "hops": 0,
                },
            )
        elif url.path == "/download_file":
            self.download(b)
        else:
            self.reply_json(404, {"error": "not-found", "detail": "no such route"})

    def download(self, b: Behaviour) -> None:
        if b.broken:
            self.reply_json(500, {"error": "internal-error", "detail": "broken on purpose"})
            return
        start, stop, status = 0, len(b.content), 200
        if rng := self.headers.get("Range"):
            first, _, last = rng.removeprefix("bytes=").partition("-")
            start, stop, status = int(first), int(last) + 1 if last else len(b.content), 206
        body = b.content[start:stop]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-SHA256", hashlib.sha256(b.content).hexdigest())
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(b.content)}")
        self.end_headers()
        if b.cut_after is not None:
            self.wfile.write(body[: b.cut_after])
            self.close_connection = True
            return
        self.wfile.write(body)
        b.served += len(body)

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        raw = self.rfile.read(length)
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + raw
        )
        parts: dict[str, Any] = {
            str(p.get_param("name", header="content-disposition")): p.get_payload(decode=True)
            for p in message.iter_parts()
        }
        if self.too_busy():
            return
        if self.headers.get("Authorization") != "Bearer good":
            self.reply_json(401, {"error": "unauthorized", "detail": "token required"})
            return
        self.behaviour.uploads.append(parts)
        self.reply_json(201, {"name": parts["name"].decode(), "size": len(parts["file"])})


@pytest.fixture
def peers() -> Iterator[list[tuple[PeerApi, Behaviour]]]:
    servers, made = [], []
    for _ in range(3):
        behaviour = Behaviour()
        handler = type("Handler", (FakePeer,), {"behaviour": behaviour})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        made.append((PeerApi(Address("127.0.0.1", server.server_port), "good", 5.0), behaviour))
    holders = [str(api.address) for api, _ in made]
    for _, behaviour in made:
        behaviour.holders = holders
    yield made
    for server in servers:
        server.shutdown()
        server.server_close()


def test_parallel_download_falls_back_when_a_holder_fails(
    peers: list[tuple[PeerApi, Behaviour]], tmp_path: Path
) -> None:
    peers[1][1].broken = True
    result = download(peers[0][0], "f.bin", tmp_path / "out", parallel=3)
    assert (tmp_path / "out").read_bytes() == CONTENT
    assert set(result.sources) == {str(peers[0][0].address), str(peers[2][0].address)}
    assert sum(result.sources.values()) == len(CONTENT)
    assert not list(tmp_path.glob("*.part*"))


def test_an_interrupted_download_resumes_from_the_part(
    peers: list[tuple[PeerApi, Behaviour]], tmp_path: Path
) -> None:
    api, behaviour = peers[0]
    behaviour.cut_after = 1_000_000
    with pytest.raises(ClientError, match=r"interrupted at 1000000 of .* run the same command"):
        download(api, "f.bin", tmp_path / "out")
    assert (tmp_path / "out.part").read_bytes() == CONTENT[:1_000_000]
    assert json.loads((tmp_path / "out.part.json").read_text())["sha256"] == SHA
    behaviour.cut_after = None
    result = download(api, "f.bin", tmp_path / "out")
    assert result.resumed_from == 1_000_000
    assert behaviour.served == len(CONTENT) - 1_000_000
    assert (tmp_path / "out").read_bytes() == CONTENT
    assert not (tmp_path / "out.part").exists() and not (tmp_path / "out.part.json").exists()


def test_a_part_of_another_version_is_discarded(
    peers: list[tuple[PeerApi, Behaviour]], tmp_path: Path
) -> None:
    api, _ = peers[0]
    (tmp_path / "out.part").write_bytes(b"x" * 1000)
    stale = Remote("f.bin", len(CONTENT), "ab" * 32, 0)
    (tmp_path / "out.part.json").write_text(json.dumps(stale.record()))
    assert download(api, "f.bin", tmp_path / "out", parallel=2).resumed_from == 0
    assert (tmp_path / "out").read_bytes() == CONTENT


def test_wrong_bytes_in_the_part_fail_the_checksum(
    peers: list[tuple[PeerApi, Behaviour]], tmp_path: Path
) -> None:
    api, _ = peers[0]
    remote = Remote("f.bin", len(CONTENT), SHA, 1)
    PartialFile(tmp_path / "out", remote).close()  # writes the sidecar
    (tmp_path / "out.part").write_bytes(b"\0" * 5000)
    with pytest.raises(ClientError, match=r"checksum mismatch .* removed"):
        download(api, "f.bin", tmp_path / "out", parallel=3)
    assert list(tmp_path.iterdir()) == []


def test_a_holder_serving_another_version_is_skipped(
    peers: list[tuple[PeerApi, Behaviour]], tmp_path: Path
) -> None:
    peers[2][1].content = b"other" + CONTENT[5:]
    result = download(peers[0][0], "f.bin", tmp_path / "out", parallel=3)
    assert (tmp_path / "out").read_bytes() == CONTENT
    assert str(peers[2][0].address) not in result.sources


def test_every_holder_failing_leaves_a_resumable_part(
    peers: list[tuple[PeerApi, Behaviour]], tmp_path: Path
) -> None:
    for _, behaviour in peers:
        behaviour.broken = True
    with pytest.raises(ClientError, match=r"no holder could serve .*broken on purpose"):
        download(peers[0][0], "f.bin", tmp_path / "out", parallel=2)
    assert (tmp_path / "out.part.json").exists()


def test_upload_streams_a_multipart_body(
    peers: list[tuple[PeerApi, Behaviour]], tmp_path: Path
) -> None:
    api, behaviour = peers[0]
    source = tmp_path / "in.bin"
    source.write_bytes(CONTENT)
    assert upload(api, source, "dir/файл.bin", 2, True) == {
        "name": "dir/файл.bin",
        "size": len(CONTENT),
    }
    assert behaviour.uploads[0] == {
        "name": "dir/файл.bin".encode(),
        "replicas": b"2",
        "overwrite": b"true",
        "file": CONTENT,
    }
    upload(api, source)
    assert behaviour.uploads[1]["overwrite"] == b"false"  # always sent: no copy on the peer
    bad = PeerApi(api.address, "wrong", 5.0)
    with pytest.raises(HttpError, match=r"401 unauthorized: token required .*--token"):
        upload(bad, source)


def test_local_file_problems_are_one_line_errors(
    peers: list[tuple[PeerApi, Behaviour]], tmp_path: Path
) -> None:
    api, _ = peers[0]
    with pytest.raises(ClientError, match=r"cannot read .*missing: No such file"):
        upload(api, tmp_path / "missing")
    with pytest.raises(ClientError, match=r"not a regular file|Is a directory"):
        upload(api, tmp_path)
    (tmp_path / "out").write_bytes(b"mine")
    with pytest.raises(ClientError, match=r"already exists; use --force"):
        download(api, "f.bin", tmp_path / "out")
    with pytest.raises(ClientError, match=r"no file named 'nope'"):
        download(api, "nope", tmp_path / "other")


def test_a_silent_peer_times_out_in_one_line() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        api = PeerApi(Address("127.0.0.1", silent.getsockname()[1]), None, 0.2)
        with pytest.raises(ClientError, match=r"cannot reach the peer at .*: no answer within 0.2"):
            api.get("/health")


# ---------------------------------------------------------------------- 429 retries


def patient(api: PeerApi) -> tuple[PeerApi, list[float], list[str]]:
    """``api`` with its waits and notices recorded instead of slept and printed."""
    waits: list[float] = []
    notices: list[str] = []
    recorded = PeerApi(api.address, api.token, 5.0, notify=notices.append, sleep=waits.append)
    return recorded, waits, notices


@pytest.mark.parametrize("parallel", [1, 3])
def test_a_429_is_retried_after_its_retry_after(
    peers: list[tuple[PeerApi, Behaviour]], tmp_path: Path, parallel: int
) -> None:
    api, waits, notices = patient(peers[0][0])
    for _, behaviour in peers:
        behaviour.busy, behaviour.retry_after = 2, "2"
    download(api, "f.bin", tmp_path / "out", parallel=parallel)
    assert (tmp_path / "out").read_bytes() == CONTENT
    assert waits and set(waits) == {2.0} and len(notices) == len(waits)
    assert "429 too-many-requests: slow down; retrying in 2 s (retry 1 of 5)" in notices[0]


def test_an_upload_is_sent_again_from_the_start(
    peers: list[tuple[PeerApi, Behaviour]], tmp_path: Path
) -> None:
    api, waits, _ = patient(peers[0][0])
    behaviour = peers[0][1]
    behaviour.busy = 1
    source = tmp_path / "in.bin"
    source.write_bytes(CONTENT)
    assert upload(api, source, "again.bin")["size"] == len(CONTENT)
    assert waits == [1.0] and behaviour.requests == 2
    assert [u["file"] for u in behaviour.uploads] == [CONTENT]


def test_retries_are_bounded(peers: list[tuple[PeerApi, Behaviour]], tmp_path: Path) -> None:
    api, waits, notices = patient(peers[0][0])
    peers[0][1].busy = 100
    with pytest.raises(HttpError, match="429 too-many-requests"):
        api.call("GET", "/search_file", {"name": "f.bin"})
    assert len(waits) == 5 and len(notices) == 5 and peers[0][1].requests == 6


def test_a_long_retry_after_is_reported_not_waited(
    peers: list[tuple[PeerApi, Behaviour]], tmp_path: Path
) -> None:
    api, waits, _ = patient(peers[0][0])
    peers[0][1].busy, peers[0][1].retry_after = 1, "3600"
    with pytest.raises(HttpError, match="429"):
        api.call("GET", "/search_file", {"name": "f.bin"})
    assert waits == []


def test_an_unseekable_upload_source_is_not_retried(
    peers: list[tuple[PeerApi, Behaviour]],
) -> None:
    api, waits, _ = patient(peers[0][0])
    peers[0][1].busy = 1

    class Stream:
        def __init__(self) -> None:
            self.left = b"abc"

        def read(self, size: int = -1) -> bytes:
            block, self.left = self.left[:size], self.left[size:]
            return block

    with pytest.raises(HttpError, match="429"):
        upload_stream(api, Stream(), 3, "stream.bin")
    assert waits == []


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 0 ", 0.0),
        (None, 1.0),
        ("soon", 1.0),
        ("-1", 1.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    ],
)
def test_retry_after_values(value: str | None, seconds: float) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert retry_after(value, now) == seconds


# ------------------------------------------------------------------- destinations


def test_a_trailing_slash_demands_an_existing_directory(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    assert destination("a/b/c.txt", f"{tmp_path}/dir/", False) == tmp_path / "dir" / "c.txt"
    assert destination("c.txt", str(tmp_path / "dir"), False) == tmp_path / "dir" / "c.txt"
    assert destination("c.txt", str(tmp_path / "new.txt"), False) == tmp_path / "new.txt"
    with pytest.raises(ClientError, match="no such directory"):
        destination("c.txt", f"{tmp_path}/absent/", False)
    with pytest.raises(ClientError, match="not a directory"):
        destination("c.txt", f"{tmp_path}/file/", False)
    assert not (tmp_path / "absent").exists()
