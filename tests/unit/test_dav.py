"""The WebDAV adapter's own parts, without a ring: the kept listing, the byte streams and
the gate (tokens, cross-site writes, transfer slots). The real clients (litmus, rclone,
curl) run against a real ring in tests/integration/test_webdav.py."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from wsgidav.dav_error import DAVError

from services.dav.app import credential, gate
from services.dav.listing import MAX_MADE_FOLDERS, RingListing, TooManyFolders
from services.dav.stream import PIECE, RingReader, as_dav_error, pieces_of
from services.files.client import FileInfo, NoSpace, NotFound
from services.rest.auth import Tokens
from services.rest.limits import ClientLimits

MIB = 1 << 20


def info(name: str, size: int = 1) -> FileInfo:
    return FileInfo(name, 0, 1, size, "0" * 64, MIB, (), False)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------ listing
def test_listing_shows_files_and_implied_and_made_folders() -> None:
    walked = [info("a.txt"), info("docs/b.txt"), info("docs/deep/c.txt")]
    listing = RingListing(lambda: walked, 2.0, Clock())
    assert [e.path for e in listing.children("")] == ["a.txt", "docs"]
    assert [(e.path, e.is_folder) for e in listing.children("docs")] == [
        ("docs/b.txt", False),
        ("docs/deep", True),
    ]
    assert listing.is_folder("docs/deep") and not listing.is_folder("a.txt")
    listing.make_folder("empty/inner")
    assert listing.is_folder("empty") and listing.is_folder("empty/inner")
    assert [e.path for e in listing.children("")] == ["a.txt", "docs", "empty"]
    listing.forget_folder("empty")
    assert not listing.is_folder("empty") and not listing.is_folder("empty/inner")


def test_listing_is_walked_once_per_ttl_and_applies_own_writes_at_once() -> None:
    walks: list[int] = []
    clock = Clock()

    def walk() -> list[FileInfo]:
        walks.append(1)
        return [info("x/one.txt")]

    listing = RingListing(walk, 2.0, clock, start=lambda run: run())
    listing.children("")
    listing.is_folder("x")
    assert len(walks) == 1
    listing.stored(info("y/two.txt"))
    assert listing.file("y/two.txt") is not None and listing.is_folder("y")
    listing.deleted("x/one.txt")
    assert listing.file("x/one.txt") is None and not listing.is_folder("x")
    clock.now = 2.5
    assert listing.file("x/one.txt") is not None  # walked again: the ring has it
    assert len(walks) == 2


def test_a_walk_that_started_before_an_own_write_does_not_undo_it() -> None:
    """The walk reads the ring, then this peer stores and deletes names, then the walk's
    result arrives: the listing keeps the writes."""
    clock = Clock()
    pending: list[Any] = []
    ring = [info("old.txt"), info("gone.txt")]

    def walk() -> list[FileInfo]:
        seen = list(ring)
        clock.now += 0.5  # the walk takes time; own writes happen meanwhile
        listing.stored(info("new.txt"))
        listing.deleted("gone.txt")
        return seen

    listing = RingListing(walk, 2.0, clock, start=pending.append)
    assert {e.path for e in listing.children("")} == {"old.txt", "new.txt"}
    clock.now = 10.0
    ring[:] = [info("old.txt"), info("gone.txt")]
    listing.children("")  # stale: answered from the kept snapshot, a walk is started
    assert len(pending) == 1
    pending.pop()()
    assert {e.path for e in listing.children("")} == {"old.txt", "new.txt"}


def test_listing_bounds_the_folders_it_keeps() -> None:
    listing = RingListing(list, 2.0, Clock())
    for index in range(MAX_MADE_FOLDERS):
        listing.make_folder(f"f{index}")
    with pytest.raises(TooManyFolders):
        listing.make_folder("one-more")


# ------------------------------------------------------------------------ streams
def test_pieces_are_regrouped_to_the_put_size_without_copying_whole_ones() -> None:
    whole = b"w" * PIECE
    blocks = [b"a" * 100, b"b" * (PIECE - 100), whole, b"c" * 10]
    pieces = list(pieces_of(blocks, 10 * MIB))
    assert [len(p) for p in pieces] == [PIECE, PIECE, 10]
    assert pieces[1] is whole
    assert b"".join(pieces) == b"".join(blocks)


def test_pieces_past_the_limit_raise_413_inside_the_iteration() -> None:
    pieces = pieces_of(iter([b"x" * 600, b"x" * 600]), 1000)
    with pytest.raises(DAVError) as raised:
        list(pieces)
    assert raised.value.value == 413


class FakeFiles:
    def __init__(self, data: bytes, piece: int) -> None:
        self.data, self.piece = data, piece
        self.opened: list[int] = []

    def open(self, info: FileInfo, having: list[Any], offset: int = 0) -> Iterator[bytes]:
        self.opened.append(offset)
        for start in range(offset, len(self.data), self.piece):
            yield self.data[start : start + self.piece]


def test_reader_seeks_before_reading_then_streams_from_there() -> None:
    data = bytes(range(256)) * 40
    files = FakeFiles(data, 1000)
    reader = RingReader(files, info("f", len(data)), [])  # type: ignore[arg-type]
    reader.seek(5000)
    out = b""
    while block := reader.read(300):
        out += block
    assert out == data[5000:] and files.opened == [5000]
    with pytest.raises(OSError):
        reader.seek(0)


def test_errors_keep_their_meaning_as_dav_statuses() -> None:
    assert as_dav_error(NotFound("gone")).value == 404
    assert as_dav_error(NoSpace("full")).value == 507
    assert as_dav_error(RuntimeError("bug")).value == 500


# --------------------------------------------------------------------------- gate
def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials_from_basic_or_bearer() -> None:
    assert credential(basic("me", "s3cret:x")) == ("me", "s3cret:x")
    assert credential("Bearer tok") == ("", "tok")
    assert credential("Basic !!!") is None
    assert credential("Digest x") is None
    assert credential(None) is None


class Called:
    def __init__(self) -> None:
        self.environ: dict[str, Any] | None = None
        self.closed = False

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.environ = environ
        start_response("200 OK", [])
        outer = self

        class Body:
            def __iter__(self) -> Iterator[bytes]:
                yield b"ok"

            def close(self) -> None:
                outer.closed = True

        return Body()


def call(app: Any, method: str, **headers: str) -> tuple[str, dict[str, str], bytes]:
    environ = {
        "REQUEST_METHOD": method,
        "REMOTE_ADDR": "10.0.0.1",
        "PATH_INFO": "/dav/f",
        "HTTP_HOST": "peer:17000",
        **headers,
    }
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    body = app(environ, start_response)
    data = b"".join(body)
    getattr(body, "close", lambda: None)()
    return answer["status"], answer["headers"], data


def test_gate_reads_anonymous_writes_need_the_token() -> None:
    inner = Called()
    app = gate(inner, Tokens(api="api-token", admin="admin-token"), ClientLimits())
    assert call(app, "PROPFIND")[0] == "200 OK"
    status, headers, body = call(app, "PUT")
    assert status.startswith("401") and headers["WWW-Authenticate"].startswith("Basic")
    assert json.loads(body)["error"]
    assert call(app, "PUT", HTTP_AUTHORIZATION=basic("me", "wrong"))[0].startswith("401")
    assert call(app, "PUT", HTTP_AUTHORIZATION=basic("me", "api-token"))[0] == "200 OK"
    assert inner.environ is not None and inner.environ["wsgidav.auth.user_name"] == "me"
    assert call(app, "MKCOL", HTTP_AUTHORIZATION="Bearer admin-token")[0] == "200 OK"


def test_gate_without_a_token_lets_writes_in_but_never_cross_site_ones() -> None:
    app = gate(Called(), Tokens(api=None, admin="admin-token"), ClientLimits())
    assert call(app, "DELETE")[0] == "200 OK"
    status, _, body = call(app, "DELETE", HTTP_SEC_FETCH_SITE="cross-site")
    assert status.startswith("403") and b"cross-site" in body
    assert call(app, "PUT", HTTP_ORIGIN="http://evil.example")[0].startswith("403")
    assert call(app, "PUT", HTTP_ORIGIN="http://peer:17000")[0] == "200 OK"
    assert call(app, "GET", HTTP_SEC_FETCH_SITE="cross-site")[0] == "200 OK"  # a read


def test_gate_holds_a_transfer_slot_until_the_body_is_closed() -> None:
    inner = Called()
    limits = ClientLimits(max_transfers=1)
    app = gate(inner, Tokens(api=None, admin="a"), limits)
    environ = {"REQUEST_METHOD": "GET", "REMOTE_ADDR": "10.0.0.2", "PATH_INFO": "/dav/f"}
    body = app(environ, lambda status, headers: None)
    status, _, _ = call(app, "GET", REMOTE_ADDR="10.0.0.2")
    assert status.startswith("429")  # the first GET still holds the client's only slot
    list(body)
    body.close()  # type: ignore[attr-defined]
    assert inner.closed
    assert call(app, "GET", REMOTE_ADDR="10.0.0.2")[0] == "200 OK"


def test_gate_refuses_an_xml_body_no_client_needs() -> None:
    app = gate(Called(), Tokens(api=None, admin="a"), ClientLimits())
    status, _, body = call(app, "PROPFIND", CONTENT_LENGTH=str(64 * MIB))
    assert status.startswith("413") and b"XML" in body
    assert call(app, "PUT", CONTENT_LENGTH=str(64 * MIB))[0] == "200 OK"  # a file's bytes
