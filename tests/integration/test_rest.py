"""The REST API of real peer processes, end to end through HTTP (stdlib client only).

One module-scoped ring of 3 peers (k = 3, an API token set through CHORD_API_TOKEN,
uploads capped at 21 MiB) serves every test; the shutdown test adds a fourth peer and
runs last. Each bad request is checked for its status and JSON error body, for leaving
nothing stored anywhere in the ring, and for the peer still answering afterwards.
Nothing sleeps: every convergence is polled with a deadline.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from devtools.launcher import LocalRing, PeerProcess, wait_for
from tests.integration.rest_http import Api, Part, Reply, multipart

pytestmark = pytest.mark.integration

MIB = 1 << 20
API_TOKEN = "rest-test-api-token"
LIMIT_MIB = 21
ARGS = (
    *LocalRing.extra_args,
    "--repair-interval",
    "0.3",
    "--replicas",
    "3",
    "--max-upload-mib",
    str(LIMIT_MIB),
)
UNICODE_NAMES = ["файл.txt", "报告 2026.pdf", "docs/2026/plan.md"]
BAD_NAMES = [
    "../x",
    "/etc/passwd",
    "..",
    "a\x00b",
    "bell\x07",
    "c1\x9b",
    "a//b",
    "x" * 256,
    "evil\u202egnp.exe",
    "zero\u200bwidth",
    "\ufeffbom",
    "   ",
    "docs/ . /x",
]


@dataclass
class RestRing:
    ring: LocalRing
    peers: list[PeerProcess]

    def api(self, index: int = 0, token: str | None = API_TOKEN) -> Api:
        peer = self.peers[index]
        return Api(peer.host, peer.api_port, token)

    def names(self) -> set[str]:
        reply = self.api().get("/show_files", scope="ring")
        assert reply.status == 200, reply.body
        return {row["name"] for row in reply.json["files"]}

    def settled(self) -> None:
        """No transfer is left open on any peer (aborted uploads were discarded)."""

        def idle() -> bool:
            return all(self.api(i).get("/status").json["active_transfers"] == 0 for i in range(3))

        assert wait_for(idle, 10), "a transfer stayed open"


@pytest.fixture(scope="module")
def rest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestRing]:
    ring = LocalRing(
        tmp_path_factory.mktemp("rest-ring"), extra_args=ARGS, env={"CHORD_API_TOKEN": API_TOKEN}
    )
    try:
        yield RestRing(ring, ring.start_ring(3, timeout=30))
    finally:
        ring.close()


@pytest.fixture
def unchanged(rest: RestRing) -> Iterator[None]:
    """The test must leave the ring's files as they were, and every peer serving."""
    before = rest.names()
    yield
    for index in range(3):
        assert rest.api(index).get("/health").status == 200
    rest.settled()
    assert rest.names() == before


def assert_error(reply: Reply, status: int, code: str) -> dict[str, str]:
    assert reply.status == status, (reply.status, reply.body[:300])
    assert reply.header("Content-Type") == "application/json"
    body = reply.json
    assert set(body) == {"error", "detail"} and body["error"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    error: dict[str, str] = body
    return error


def sha1_hex(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


# ------------------------------------------------------------------- happy paths


@pytest.mark.parametrize("name", UNICODE_NAMES)
def test_unicode_names_round_trip(rest: RestRing, name: str) -> None:
    data = f"content of {name}\n".encode() * 100
    api = rest.api()
    # The name travels once as the part's filename (raw UTF-8), once as a form field.
    reply = api.put_file(name, data) if "/" in name else api.upload([("file", data, name)])
    assert reply.status == 201, reply.body
    body = reply.json
    assert body["name"] == name and body["key"] == sha1_hex(name)
    assert body["size"] == len(data) and body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["version"] >= 1 and len(body["holders"]) == 3 and body["hops"] >= 0
    assert reply.header("Location") == f"/download_file?name={quote(name, safe='')}"

    got = rest.api(1).get("/download_file", name=name)
    assert got.status == 200 and got.body == data
    assert got.header("ETag") == f'"{body["sha256"]}"'
    assert got.header("X-Content-SHA256") == body["sha256"]
    assert got.header("X-Chord-Version") == str(body["version"])
    assert got.header("Content-Length") == str(len(data))
    assert got.header("Accept-Ranges") == "bytes"
    base = name.rsplit("/", 1)[-1]
    assert f"filename*=UTF-8''{quote(base, safe='')}" in (got.header("Content-Disposition") or "")
    posted = rest.api(2).post_json("/download_file", {"filename": name})
    assert posted.status == 200 and posted.body == data


def test_twenty_mib_round_trip(rest: RestRing) -> None:
    data = random.Random(20).randbytes(20 * MIB)
    reply = rest.api(1).put_file("big/twenty.bin", data)
    assert reply.status == 201, reply.body
    got = rest.api(2).get("/download_file", name="big/twenty.bin")
    assert got.status == 200 and got.body == data
    assert got.header("X-Content-SHA256") == hashlib.sha256(data).hexdigest()


def test_search(rest: RestRing) -> None:
    api = rest.api()
    assert api.put_file("search-me.txt", b"hello").status == 201
    for reply in (
        api.get("/search_file", name="search-me.txt"),
        api.post_json("/search_file", {"name": "search-me.txt"}),
    ):
        body = reply.json
        assert reply.status == 200 and body["found"] is True
        assert body["key"] == sha1_hex("search-me.txt") and body["size"] == 5
        assert body["owner"]["id"] and len(body["replicas"]) == 2 and body["version"] >= 1
    absent = api.get("/search_file", name="never-uploaded.txt")
    assert absent.status == 200
    assert absent.json["found"] is False
    assert absent.json["size"] is absent.json["sha256"] is absent.json["version"] is None


def test_listings_and_ring_walk(rest: RestRing) -> None:
    api = rest.api()
    assert api.put_file("listed.txt", b"x" * 10).status == 201
    mine = api.get("/show_files").json
    assert set(mine) == {"node", "files"}
    row = next(r for r in mine["files"] if r["name"] == "listed.txt")  # k = 3 of 3 peers
    assert set(row) == {"name", "key", "size", "sha256", "version", "role", "damaged", "created"}
    assert row["role"] in {"primary", "replica"} and row["damaged"] is False

    ring = api.get("/show_files", scope="ring").json
    assert ring["peers"] == 3
    rows = [r for r in ring["files"] if r["name"] == "listed.txt"]
    assert len(rows) == 1 and rows[0]["copies"] == 3 and rows[0]["size"] == 10
    assert abs(rows[0]["created"] - row["created"]) < 60  # the mount's mtime
    holders = {h["id"] for h in rows[0]["holders"]}  # k = 3 of 3 peers: every one
    assert holders == {p.ref.hex for p in rest.peers} and rows[0]["degraded"] is False
    assert ring["wanted"] == 3 and ring["degraded"] == 0

    walk = rest.api(1).get("/ring").json
    assert walk["count"] == 3 and len(walk["peers"]) == 3 and walk["bits"] == 160
    assert walk["peers"][0]["id"] == rest.peers[1].ref.hex  # starts at the peer asked
    assert all(p["reachable"] for p in walk["peers"])
    ids = [int(p["id"], 16) for p in walk["peers"]]
    assert sum(a > b for a, b in zip(ids, ids[1:] + ids[:1], strict=True)) == 1  # ring order
    primaries = sum(p["files"]["primary"] for p in walk["peers"])
    assert primaries == len(ring["files"])


def test_delete(rest: RestRing) -> None:
    api = rest.api()
    for index, via in enumerate(("DELETE", "POST")):
        name = f"doomed-{index}.txt"
        assert api.put_file(name, b"bye").status == 201
        if via == "DELETE":
            reply = api.call("DELETE", "/delete_file", query={"name": name})
        else:
            reply = api.post_json("/delete_file", {"filename": name})
        assert reply.status == 200, reply.body
        body = reply.json
        assert body["deleted"] is True and body["name"] == name and body["key"] == sha1_hex(name)
        assert api.get("/search_file", name=name).json["found"] is False
        assert_error(api.get("/download_file", name=name), 404, "not-found")
        assert name not in rest.names()
    assert_error(
        api.call("DELETE", "/delete_file", query={"name": "doomed-0.txt"}), 404, "not-found"
    )


def test_conflict_and_overwrite(rest: RestRing) -> None:
    api = rest.api()
    first = api.put_file("versioned.txt", b"one")
    assert first.status == 201
    version = first.json["version"]
    same = api.put_file("versioned.txt", b"one")  # idempotent
    assert same.status == 201 and same.json["version"] == version
    assert_error(api.put_file("versioned.txt", b"two"), 409, "conflict")
    assert api.get("/download_file", name="versioned.txt").body == b"one"
    newer = api.upload([("file", b"two", "versioned.txt")], query={"overwrite": "yes"})
    assert newer.status == 201 and newer.json["version"] == version + 1
    assert api.get("/download_file", name="versioned.txt").body == b"two"


def test_peer_endpoints(rest: RestRing) -> None:
    api = rest.api()
    status = api.get("/status").json
    assert set(status) == {
        "node",
        "joined",
        "uptime_s",
        "storage",
        "files",
        "degraded",
        "active_transfers",
        "replicas",
        "version",
    }
    assert status["joined"] is True and status["replicas"] == 3
    assert status["storage"]["quota_bytes"] is None and status["storage"]["used_bytes"] >= 0
    degraded = api.get("/degraded_files").json
    assert set(degraded) == {"node", "files"} and isinstance(degraded["files"], list)
    metrics = api.get("/metrics")
    assert metrics.status == 200 and (metrics.header("Content-Type") or "").startswith("text/plain")
    text = metrics.body.decode()
    for family in (
        "chord_rpcs_total",
        "chord_lookups_total",
        "chord_lookup_hops_bucket",
        "chord_bytes_in_total",
        "chord_bytes_out_total",
        "chord_stored_bytes",
        'chord_files{role="primary"}',
        "chord_degraded_files",
        "chord_active_transfers",
    ):
        assert family in text, family
    assert 'method="Chord/Ping"' in text
    spec = api.get("/openapi.json")
    assert spec.status == 200 and spec.json["openapi"].startswith("3.")


# -------------------------------------------------------------------- downloads


def test_ranges_and_validators(rest: RestRing) -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    api = rest.api()
    etag = f'"{hashlib.sha256(data).hexdigest()}"'
    assert api.put_file("ranged.bin", data).status == 201

    def get(headers: dict[str, str]) -> Reply:
        return api.call("GET", "/download_file", headers=headers, query={"name": "ranged.bin"})

    cases = [
        ("0-9", 0, 10),
        ("10240-", None, None),
        ("100-", 100, 10240),
        ("-5", 10235, 10240),
        ("-99999", 0, 10240),
        ("10000-99999", 10000, 10240),
    ]
    for spec, start, end in cases:
        reply = get({"Range": f"bytes={spec}"})
        if start is None:
            assert_error(reply, 416, "range-not-satisfiable")
            assert reply.header("Content-Range") == "bytes */10240"
            continue
        assert end is not None
        assert reply.status == 206 and reply.body == data[start:end], spec
        assert reply.header("Content-Range") == f"bytes {start}-{end - 1}/10240"
        assert reply.header("Content-Length") == str(end - start)
    assert_error(get({"Range": "bytes=-0"}), 416, "range-not-satisfiable")
    for bad in ("bytes=9-2", "pages=1-2", "bytes=0-1,5-6", "bytes=x"):
        assert_error(get({"Range": bad}), 400, "bad-request")
    cached = get({"If-None-Match": etag})
    assert cached.status == 304 and cached.body == b"" and cached.header("ETag") == etag
    assert get({"If-None-Match": '"other"'}).status == 200
    stale = get({"Range": "bytes=0-9", "If-Range": '"old-version"'})
    assert stale.status == 200 and stale.body == data  # the file changed: send all of it
    fresh = get({"Range": "bytes=0-9", "If-Range": etag})
    assert fresh.status == 206 and fresh.body == data[:10]


# ----------------------------------------------------------------- bad requests


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.usefixtures("unchanged")
def test_bad_names_are_refused_everywhere(rest: RestRing, name: str) -> None:
    api = rest.api()
    replies = [
        api.put_file(name, b"data"),
        api.get("/download_file", name=name),
        api.post_json("/download_file", {"filename": name}),
        api.get("/search_file", name=name),
        api.post_json("/search_file", {"filename": name}),
        api.call("DELETE", "/delete_file", query={"name": name}),
        api.post_json("/delete_file", {"filename": name}),
    ]
    if "\x00" not in name and "/" not in name:  # a filename header cannot carry those
        replies.append(api.upload([("file", b"data", name)]))
    for reply in replies:
        assert "invalid file name" in assert_error(reply, 400, "bad-request")["detail"]


BAD_UPLOADS: dict[str, tuple[list[Part], dict[str, str], int, str]] = {
    "field twice, once after the file": (
        [("name", b"t.txt", None), ("file", b"abc" * 1000, "t.txt"), ("name", b"u.txt", None)],
        {},
        400,
        "bad-request",
    ),
    "unknown field after the file": (
        [("name", b"t.txt", None), ("file", b"abc", "t.txt"), ("colour", b"red", None)],
        {},
        400,
        "bad-request",
    ),
    "field after the file and in the query": (
        [("file", b"abc", "t.txt"), ("replicas", b"2", None)],
        {"replicas": "2"},
        400,
        "bad-request",
    ),
    "bad option after the file": (
        [("name", b"t.txt", None), ("file", b"abc", "t.txt"), ("overwrite", b"maybe", None)],
        {},
        400,
        "bad-request",
    ),
    "backslash in the filename": ([("file", b"x", "..\\..\\win.ini")], {}, 400, "bad-request"),
    "quote in the filename": ([("file", b"x", "a%22b.txt")], {}, 400, "bad-request"),
    "two files": ([("file", b"1", "one.txt"), ("file", b"2", "two.txt")], {}, 400, "bad-request"),
    "unknown field": ([("colour", b"red", None), ("file", b"x", "c.txt")], {}, 400, "bad-request"),
    "no file part": ([("name", b"nofile.txt", None)], {}, 400, "bad-request"),
    "file part misnamed": ([("upload", b"x", "m.txt")], {}, 400, "bad-request"),
    "replicas zero": ([("file", b"x", "r0.txt")], {"replicas": "0"}, 400, "bad-request"),
    "replicas word": (
        [("replicas", b"two", None), ("file", b"x", "rw.txt")],
        {},
        400,
        "bad-request",
    ),
    "replicas too many": ([("file", b"x", "r9.txt")], {"replicas": "99"}, 400, "bad-request"),
    "overwrite junk": ([("file", b"x", "ow.txt")], {"overwrite": "maybe"}, 400, "bad-request"),
    "name twice": (
        [("name", b"a.txt", None), ("file", b"x", "b.txt")],
        {"name": "c.txt"},
        400,
        "bad-request",
    ),
    "empty filename": ([("file", b"x", "")], {}, 400, "bad-request"),
    "empty name field": ([("name", b"", None), ("file", b"x", "e.txt")], {}, 400, "bad-request"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
@pytest.mark.usefixtures("unchanged")
def test_bad_uploads_store_nothing(rest: RestRing, case: str) -> None:
    parts, query, status, code = BAD_UPLOADS[case]
    assert_error(rest.api().upload(parts, query=query), status, code)


@pytest.mark.usefixtures("unchanged")
def test_bad_bodies_and_content_types(rest: RestRing) -> None:
    api = rest.api()
    multipart = {"Content-Type": "multipart/form-data; boundary=zzz"}
    assert_error(
        api.call("POST", "/upload_file", b"--zzz\r\ngarbage", multipart), 400, "bad-request"
    )
    no_boundary = {"Content-Type": "multipart/form-data"}
    assert_error(api.call("POST", "/upload_file", b"x", no_boundary), 400, "bad-request")
    as_text = {"Content-Type": "text/plain"}
    assert_error(api.call("POST", "/upload_file", b"x", as_text), 415, "unsupported-media-type")
    assert_error(api.call("POST", "/download_file", b"x", as_text), 415, "unsupported-media-type")
    json_type = {"Content-Type": "application/json"}
    assert_error(api.call("POST", "/search_file", b"{oops", json_type), 400, "bad-request")
    assert_error(api.call("POST", "/search_file", b"[1]", json_type), 400, "bad-request")
    assert_error(api.post_json("/download_file", {"filename": 42}), 400, "bad-request")
    assert_error(api.post_json("/download_file", {"file": "x"}), 400, "bad-request")
    assert_error(api.get("/download_file"), 400, "bad-request")
    assert_error(api.get("/show_files", scope="galaxy"), 400, "bad-request")
    assert_error(api.get("/lookup", key="zz"), 400, "bad-request")


@pytest.mark.usefixtures("unchanged")
def test_too_large_uploads(rest: RestRing) -> None:
    api = rest.api()
    over = b"\0" * (LIMIT_MIB * MIB + 1)
    body = assert_error(api.upload([("file", over, "huge.bin")]), 413, "too-large")
    assert "nothing was stored" in body["detail"]
    # A declared length far over the limit is refused before the body is read (by
    # waitress itself), in the same JSON shape.
    peer = rest.peers[0]
    with socket.create_connection((peer.host, peer.api_port), timeout=10) as conn:
        conn.sendall(
            b"POST /upload_file HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            + f"Authorization: Bearer {API_TOKEN}\r\n\r\n".encode()
        )
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert json.loads(payload)["error"] == "too-large"


@pytest.mark.usefixtures("unchanged")
def test_unknown_routes_and_methods(rest: RestRing) -> None:
    api = rest.api()
    assert_error(api.get("/no/such/thing"), 404, "not-found")
    wrong = api.call("PUT", "/download_file")
    assert_error(wrong, 405, "method-not-allowed")
    assert {"GET", "POST"} <= set((wrong.header("Allow") or "").replace(" ", "").split(","))
    assert_error(api.call("GET", "/upload_file"), 405, "method-not-allowed")
    assert_error(api.call("GET", "/shutdown"), 405, "method-not-allowed")


# ---------------------------------------------------- curl: fields in any order


def spool_files(rest: RestRing) -> list[Path]:
    """What is left in every peer's upload spool (<data dir>/uploads)."""
    return [f for p in rest.peers for f in (p.log_path.parent / "uploads").iterdir()]


def curl(rest: RestRing, *args: str, path: str = "/upload_file") -> tuple[int, Any]:
    """Run the real curl against peer 0; its status and JSON answer."""
    peer = rest.peers[0]
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "-H",
            f"Authorization: Bearer {API_TOKEN}",
            "-w",
            "\n%{http_code}",
            *args,
            f"{peer.api_url}{path}",
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    body, _, status = done.stdout.rpartition(b"\n")
    return int(status), json.loads(body)


@pytest.fixture
def payload(tmp_path: Path, rng: random.Random) -> Path:
    path = tmp_path / "r.pdf"
    path.write_bytes(rng.randbytes(3 * MIB + 777))  # several 1 MiB pieces
    return path


CURL_ORDERS = {  # curl's arguments ("?…": the query string) and the name stored
    "fields first": (
        ["-F", "name=ord/first.pdf", "-F", "replicas=2", "-F", "file=@{f}"],
        "ord/first.pdf",
    ),
    "fields after": (
        ["-F", "file=@{f}", "-F", "name=ord/after.pdf", "-F", "overwrite=false"],
        "ord/after.pdf",
    ),
    "mixed": (["-F", "name=ord/mixed.pdf", "-F", "file=@{f}", "-F", "replicas=2"], "ord/mixed.pdf"),
    "name in the query": (["-F", "file=@{f}", "?name=ord/query.pdf"], "ord/query.pdf"),
    "no name": (["-F", "file=@{f};filename=ord-filename.pdf"], "ord-filename.pdf"),
}


@pytest.mark.parametrize("order", list(CURL_ORDERS))
def test_curl_uploads_with_fields_in_any_order(rest: RestRing, payload: Path, order: str) -> None:
    template, name = CURL_ORDERS[order]
    args = [a.format(f=payload) for a in template]
    query = args.pop() if args[-1].startswith("?") else ""
    status, body = curl(rest, *args, path="/upload_file" + query)
    assert status == 201, body
    assert body["name"] == name
    assert len(body["holders"]) == (2 if "replicas=2" in args else 3)
    got = rest.api(2).get("/download_file", name=name)
    assert got.status == 200 and got.body == payload.read_bytes()
    assert spool_files(rest) == []


def test_a_trailing_field_that_changes_the_write_wins(rest: RestRing, payload: Path) -> None:
    first = curl(rest, "-F", "name=ord/changed.pdf", "-F", "file=@/dev/null;filename=e")
    assert first[0] == 201, first
    # Same name, other bytes: a 409 unless the overwrite after the file part is honoured.
    status, body = curl(
        rest,
        "-F",
        "name=ord/changed.pdf",
        "-F",
        f"file=@{payload}",
        "-F",
        "overwrite=true",
        "-F",
        "replicas=1",
    )
    assert status == 201, body
    assert body["version"] == first[1]["version"] + 1 and len(body["holders"]) == 1
    assert rest.api(1).get("/download_file", name="ord/changed.pdf").body == payload.read_bytes()
    assert spool_files(rest) == []
    # The count settled after the bytes: the two released holders kept neither version.
    listings = [rest.api(i).get("/show_files").json["files"] for i in range(3)]
    holding = [rows for rows in listings if any(r["name"] == "ord/changed.pdf" for r in rows)]
    assert len(holding) == 1, holding
    # A trailing overwrite=false over other bytes: 409 and nothing changes.
    status, body = curl(
        rest,
        "-F",
        "name=ord/changed.pdf",
        "-F",
        "file=@/dev/null;filename=e",
        "-F",
        "overwrite=false",
    )
    assert status == 409, body
    assert rest.api(2).get("/download_file", name="ord/changed.pdf").body == payload.read_bytes()


REFUSED_BY_CURL = {
    "bidi override": ["-F", "file=@{f}", "-F", "name=evil\u202egnp.exe"],
    "zero width": ["-F", "name=zero\u200bwidth.txt", "-F", "file=@{f}"],
    "only spaces": ["-F", "file=@{f}", "-F", "name=docs/   /x"],
    "backslash filename": ["-F", "file=@{f};filename=..\\..\\win.ini"],
    "quote filename": ["-F", 'file=@{f};filename=a"b.txt'],
    "invalid UTF-8 in the query": ["-F", "file=@{f}", "?name=%C0%AE"],
    "over the limit, spooled": ["-F", "file=@{big}", "-F", "name=ord/huge.bin"],
    "over the limit, streamed": ["-F", "name=ord/huge.bin", "-F", "file=@{big}"],
}


@pytest.fixture(scope="module")
def too_big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "huge.bin"
    with path.open("wb") as out:
        out.truncate(LIMIT_MIB * MIB + 1)
    return path


@pytest.mark.parametrize("case", list(REFUSED_BY_CURL))
@pytest.mark.usefixtures("unchanged")
def test_curl_refusals_store_nothing_and_leave_no_spool(
    rest: RestRing, payload: Path, too_big: Path, case: str
) -> None:
    args = [a.format(f=payload, big=too_big) for a in REFUSED_BY_CURL[case]]
    query = args.pop() if args[-1].startswith("?") else ""
    status, body = curl(rest, *args, path="/upload_file" + query)
    assert status == (413 if "limit" in case else 400), body
    assert set(body) == {"error", "detail"} and body["detail"]
    if status == 400:
        assert "invalid file name" in body["detail"], body
    assert spool_files(rest) == []


@pytest.mark.usefixtures("unchanged")
def test_a_client_gone_mid_body_leaves_no_spool(rest: RestRing) -> None:
    """waitress reads a whole body before the app runs, so a client that hangs up
    half-way never reaches the upload code; checked anyway, spool and ring alike."""
    peer = rest.peers[0]
    head, _ = multipart([("file", b"\0" * MIB, "gone.bin"), ("name", b"gone.bin", None)])
    boundary = head[2 : head.index(b"\r\n")].decode()
    with socket.create_connection((peer.host, peer.api_port), timeout=10) as conn:
        conn.sendall(
            b"POST /upload_file HTTP/1.1\r\nHost: x\r\n"
            + f"Content-Length: {len(head)}\r\nAuthorization: Bearer {API_TOKEN}\r\n".encode()
            + f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
            + head[: len(head) // 2]
        )
    assert spool_files(rest) == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/download_file"),
        ("GET", "/search_file"),
        ("DELETE", "/delete_file"),
        ("GET", "/lookup"),
    ],
)
@pytest.mark.usefixtures("unchanged")
def test_invalid_utf8_in_a_query_name_is_refused(rest: RestRing, method: str, path: str) -> None:
    reply = rest.api().call(method, path + "?name=%C0%AE")
    body = assert_error(reply, 400, "bad-request")
    assert "0xC0" in body["detail"] and "UTF-8" in body["detail"]


@pytest.mark.usefixtures("unchanged")
def test_a_lone_surrogate_in_json_is_refused(rest: RestRing) -> None:
    for path in ("/download_file", "/search_file", "/delete_file"):
        reply = rest.api().call(
            "POST", path, b'{"filename": "a\\ud800b"}', {"Content-Type": "application/json"}
        )
        assert "valid Unicode" in assert_error(reply, 400, "bad-request")["detail"]


# -------------------------------------------------------------------------- auth


@pytest.mark.usefixtures("unchanged")
def test_writes_need_the_api_token(rest: RestRing) -> None:
    anonymous, wrong = rest.api(token=None), rest.api(token="not-the-token")
    for api in (anonymous, wrong):
        for reply in (
            api.put_file("secret.txt", b"x"),
            api.call("DELETE", "/delete_file", query={"name": "search-me.txt"}),
            api.post_json("/delete_file", {"filename": "search-me.txt"}),
        ):
            assert_error(reply, 401, "unauthorized")
            assert reply.header("WWW-Authenticate") == 'Bearer realm="chord"'
    # Reads never need one.
    assert anonymous.get("/show_files").status == 200
    assert anonymous.get("/search_file", name="x.txt").status == 200
    # The API token cannot shut a peer down; no token at all is 401.
    assert_error(rest.api().call("POST", "/shutdown"), 403, "forbidden")
    assert_error(anonymous.call("POST", "/shutdown"), 401, "unauthorized")
    assert_error(wrong.call("POST", "/shutdown"), 401, "unauthorized")


def test_admin_token_is_kept_private_and_works_for_writes(rest: RestRing) -> None:
    path = Path(rest.peers[0].log_path).parent / "admin_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    admin = rest.api(token=path.read_text().strip())
    assert admin.put_file("by-admin.txt", b"x").status == 201
    assert str(path) in rest.peers[0].log_tail(200)  # shown at start-up


# ---------------------------------------------------------------- shutdown (last)


def test_shutdown_leaves_gracefully(rest: RestRing) -> None:
    ring = rest.ring
    joiner = ring.start_peer(join=rest.peers[0].address)
    ring.wait_ideal(30)
    token = (Path(joiner.log_path).parent / "admin_token").read_text().strip()
    api = Api(joiner.host, joiner.api_port, token)
    reply = api.call("POST", "/shutdown")
    assert reply.status == 202, reply.body
    assert reply.json == {"status": "leaving", "node": reply.json["node"]}
    assert reply.json["node"]["id"] == joiner.ref.hex
    assert joiner.process.wait(timeout=20) == 0
    assert "left the ring" in joiner.log_tail(30)
    ring.wait_ideal(30, peers=rest.peers)
    assert rest.api().get("/ring").json["count"] == 3


def test_redirect_sends_curl_to_a_holder(rest: RestRing, payload: Path) -> None:
    """``redirect=true`` on a peer that holds no copy: 307 to a holder, which curl -L
    follows; the bytes are the file's. Without it, or on a holder, the peer answers."""
    status, body = curl(
        rest, "-F", "name=redir/one-copy.pdf", "-F", "replicas=1", "-F", f"file=@{payload}"
    )
    assert status == 201 and len(body["holders"]) == 1, body
    holder_api = body["holders"][0]["api"]
    holder = next(p for p in rest.peers if f"{p.host}:{p.api_port}" == holder_api)
    other = next(p for p in rest.peers if p is not holder)
    query = "/download_file?name=redir%2Fone-copy.pdf&redirect=true"

    def fetch(peer: PeerProcess, *args: str) -> tuple[bytes, str]:
        done = subprocess.run(
            [
                "curl",
                "-sSf",
                *args,
                "-w",
                "\n%{num_redirects} %{url_effective}",
                f"{peer.api_url}{query}",
            ],
            capture_output=True,
            timeout=60,
            check=True,
        )
        data, _, tail = done.stdout.rpartition(b"\n")
        return data, tail.decode()

    data, tail = fetch(other, "-L")
    assert data == payload.read_bytes()
    assert tail == f"1 {holder.api_url}{query}", tail
    head = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            f"{other.api_url}{query}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert head == f"307 {holder.api_url}{query}", head
    data, tail = fetch(holder)
    assert data == payload.read_bytes() and tail.startswith("0 ")
    assert (
        rest.api(1).get("/download_file", name="redir/one-copy.pdf", redirect="maybe").status == 400
    )
