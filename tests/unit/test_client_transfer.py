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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from clientlib.download import PartialFile, Remote, download
from clientlib.peer import Address, ClientError, HttpError, PeerApi
from clientlib.upload import upload

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


class FakePeer(BaseHTTPRequestHandler):
    behaviour: Behaviour
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def reply_json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        b = self.behaviour
        if url.path == "/search_file":
            refs = [{"id": "0" * 40, "address": "x:1", "api": api} for api in b.holders]
            found = query.get("name") == "f.bin"
            self.reply_json(200, {
                "name": query.get("name"), "found": found, "owner": refs[0] if refs else None,
                "replicas": refs[1:], "size": len(b.content) if found else None,
                "sha256": hashlib.sha256(b.content).hexdigest() if found else None,
                "version": 1 if found else None, "hops": 0,
            })  # fmt: skip
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
