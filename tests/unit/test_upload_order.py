"""POST /upload_file with its fields in any order, through the Flask app with a stand-in
FileClient whose ``put`` consumes its data the way the real one does (to the end, and an
exception from the data aborts the write and is re-raised; options given after the bytes
are settled through ``settle`` once the data is exhausted). Checks which of the two paths
(stream, spool) each order takes, what the write is finally settled with, and that the
spool directory is empty after every request, whatever its outcome."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from flask.testing import FlaskClient

from services.files import client as fc
from services.files.client import FileInfo, PutResult
from services.files.replication import Replicator
from services.rest import ApiContext, PeerServices, create_app
from services.rest import store as store_module
from services.rest.auth import Tokens
from services.rest.spool import Spool, empty_dir
from services.rpc.transport import GrpcTransport
from services.storage import StorageEngine
from tests.unit.sim_ring import ideal_sim_ring

LIMIT = 4 << 20


@dataclass
class Call:
    name: str
    replicas: int | None
    overwrite: bool
    aborted: bool = False


@dataclass
class FakeFiles:
    """put as the real one behaves towards its data; conflicts like the holders'."""

    stored: dict[str, bytes] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    early_conflicts: bool = False  # refuse a taken name after the first piece, unread rest

    def put(
        self,
        name: str,
        data: Iterable[bytes],
        *,
        size: int | None = None,
        replicas: int | None = None,
        overwrite: bool = False,
        settle: Callable[[], tuple[int | None, bool]] | None = None,
    ) -> PutResult:
        call = Call(name, replicas, overwrite)
        self.calls.append(call)
        received = bytearray()
        # With settle the real put stages as an overwrite would: holders refuse nothing early.
        early = self.early_conflicts and settle is None
        try:
            for block in data:
                received += block
                if early and name in self.stored and not overwrite:
                    raise fc.Conflict(f"{name!r} already exists (refused early)")
        except fc.Conflict:
            raise
        except BaseException:
            call.aborted = True
            raise
        if settle is not None:
            call.replicas, call.overwrite = settle()
            overwrite = call.overwrite
        if name in self.stored and self.stored[name] != received and not overwrite:
            raise fc.Conflict(f"{name!r} already exists with other content (use overwrite)")
        self.stored[name] = bytes(received)
        digest = hashlib.sha256(received).hexdigest()
        info = FileInfo(name, 1, 1, len(received), digest, 1 << 20, (), False)
        return PutResult(info, (), 0)


@dataclass
class Peer:
    client: FlaskClient
    files: FakeFiles
    spool: Path
    spooled: list[Path]  # every spool file created


@pytest.fixture
def peer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Peer]:
    node = ideal_sim_ring(3).members()[0]
    storage = StorageEngine(tmp_path / "files", None)
    files = FakeFiles()
    spool = tmp_path / "uploads"
    spool.mkdir()
    spooled: list[Path] = []

    class RecordedSpool(Spool):
        def __init__(self, directory: Path | None) -> None:
            super().__init__(directory)
            spooled.append(self.path)

    monkeypatch.setattr(store_module, "Spool", RecordedSpool)
    services = PeerServices(
        files=files,  # type: ignore[arg-type]
        storage=storage,
        replicator=mock.create_autospec(Replicator, instance=True),
        transport=mock.create_autospec(GrpcTransport, instance=True),
        tokens=Tokens(api=None, admin="admin-token-x"),
        request_shutdown=lambda: None,
        replicas=3,
        successors=8,
        max_upload_bytes=LIMIT,
        spool_dir=spool,
    )
    app = create_app(ApiContext(node, node.lookup, peer=services))
    try:
        yield Peer(app.test_client(), files, spool, spooled)
    finally:
        storage.close()
        assert not list(spool.iterdir()), "a spool file outlived its upload"


Item = tuple[str, Any]  # ("file", (bytes, filename)) or (field, text)


BOUNDARY = "order-test-boundary"


def form(items: list[Item]) -> bytes:
    """The multipart body with its parts in the order given."""
    out = bytearray()
    for key, value in items:
        if key == "file":
            content, filename = value
            head = f'name="file"; filename="{filename}"\r\nContent-Type: application/octet-stream'
        else:
            content, head = value.encode(), f'name="{key}"'
        out += f"--{BOUNDARY}\r\nContent-Disposition: form-data; {head}\r\n\r\n".encode()
        out += content + b"\r\n"
    return bytes(out + f"--{BOUNDARY}--\r\n".encode())


def upload(peer: Peer, items: list[Item], query: str = "") -> Any:
    return peer.client.post(
        "/upload_file" + query,
        data=form(items),
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
    )


DATA = bytes(range(256)) * 9000  # a little over 2 MiB: several pieces
FILE = ("file", (DATA, "report.pdf"))


def test_everything_before_the_file_streams_without_a_copy(peer: Peer) -> None:
    reply = upload(peer, [("name", "docs/r.pdf"), ("replicas", "2"), ("overwrite", "no"), FILE])
    assert reply.status_code == 201, reply.json
    assert peer.files.calls == [Call("docs/r.pdf", 2, False)]
    assert peer.files.stored["docs/r.pdf"] == DATA and peer.spooled == []


def test_options_in_the_query_stream_without_a_copy(peer: Peer) -> None:
    reply = upload(peer, [FILE], "?name=q.pdf&replicas=1&overwrite=true")
    assert reply.status_code == 201, reply.json
    assert peer.files.calls == [Call("q.pdf", 1, True)] and peer.spooled == []


def test_a_name_first_streams_once_without_a_copy(peer: Peer) -> None:
    reply = upload(peer, [("name", "n.pdf"), FILE, ("overwrite", "false")])
    assert reply.status_code == 201, reply.json
    assert peer.files.calls == [Call("n.pdf", None, False)]
    assert peer.spooled == []  # issue 15: no whole-body copy when the name comes first


def test_a_trailing_option_settles_the_streamed_write(peer: Peer) -> None:
    reply = upload(peer, [("name", "m.pdf"), FILE, ("replicas", "2")])
    assert reply.status_code == 201, reply.json
    assert peer.files.calls == [Call("m.pdf", 2, False)]  # one write, settled with 2 copies
    assert peer.files.stored["m.pdf"] == DATA and peer.spooled == []


def test_a_trailing_overwrite_replaces_a_conflicting_file(peer: Peer) -> None:
    assert upload(peer, [("name", "c.txt"), ("file", (b"one", "c.txt"))]).status_code == 201
    reply = upload(peer, [("name", "c.txt"), ("file", (b"two", "c.txt")), ("overwrite", "1")])
    assert reply.status_code == 201, reply.json
    assert peer.files.stored["c.txt"] == b"two" and peer.files.calls[-1].overwrite


@pytest.mark.parametrize(
    ("items", "query", "name"),
    [
        ([FILE, ("name", "docs/late.pdf")], "", "docs/late.pdf"),
        ([FILE, ("replicas", "2"), ("name", "x/y.pdf")], "", "x/y.pdf"),
        ([("replicas", "2"), FILE], "", "report.pdf"),
        ([FILE], "", "report.pdf"),
        ([FILE], "?replicas=2", "report.pdf"),
    ],
)
def test_without_a_name_first_the_file_is_spooled(
    peer: Peer, items: list[Item], query: str, name: str
) -> None:
    reply = upload(peer, items, query)
    assert reply.status_code == 201, reply.json
    assert reply.json["name"] == name and peer.files.stored[name] == DATA
    assert [c.aborted for c in peer.files.calls] == [False] and len(peer.spooled) == 1


@pytest.mark.parametrize(
    ("items", "query", "says"),
    [
        ([("name", "a.pdf"), FILE, ("colour", "red")], "", "unknown form field"),
        ([("name", "a.pdf"), FILE, ("name", "b.pdf")], "", "given twice"),
        ([("name", "a.pdf"), FILE, ("replicas", "lots")], "", "replicas"),
        ([("name", "a.pdf"), FILE, ("replicas", "2")], "?replicas=2", "both"),
        ([("name", "a.pdf"), FILE, ("file", (b"2", "two.txt"))], "", "only one file"),
        ([FILE, ("name", "a\\b")], "", "'\\'"),
        ([FILE, ("name", "evil\u202egnp.exe")], "", "U+202E"),
        ([FILE, ("overwrite", "maybe")], "", "overwrite"),
        ([("file", (b"x", "..\\..\\win.ini"))], "", "'\\'"),
        ([("file", (b"x", "   "))], "", "dots and spaces"),
        ([FILE], "?name=%C0%AE", "0xC0"),
    ],
)
def test_bad_forms_store_nothing_in_any_order(
    peer: Peer, items: list[Item], query: str, says: str
) -> None:
    reply = upload(peer, items, query)
    assert reply.status_code == 400, reply.json
    assert set(reply.json) == {"error", "detail"} and says in reply.json["detail"]
    assert not peer.files.stored
    assert all(call.aborted for call in peer.files.calls)


@pytest.mark.parametrize("order", ["stream", "settled", "spool"])
def test_over_the_limit_is_413_on_every_path(peer: Peer, order: str) -> None:
    big = ("file", (b"\0" * (LIMIT + 1), "big.bin"))
    items: list[Item] = {
        "stream": [("name", "big.bin"), ("replicas", "1"), ("overwrite", "no"), big],
        "settled": [("name", "big.bin"), big],
        "spool": [big, ("name", "big.bin")],
    }[order]
    reply = upload(peer, items)
    assert reply.status_code == 413, reply.json
    assert not peer.files.stored


def test_a_refused_write_is_reported_after_the_form_is_read(peer: Peer) -> None:
    assert upload(peer, [("name", "d.txt"), ("file", (b"one", "d.txt"))]).status_code == 201
    reply = upload(peer, [("name", "d.txt"), ("file", (b"two", "d.txt")), ("overwrite", "no")])
    assert reply.status_code == 409 and reply.json["error"] == "conflict"
    assert peer.files.stored["d.txt"] == b"one"


def test_a_peer_start_empties_the_spool(tmp_path: Path) -> None:
    spool = tmp_path / "uploads"
    spool.mkdir()
    (spool / "upload-left-by-a-crash.part").write_bytes(b"x")
    empty_dir(spool)
    assert spool.is_dir() and not list(spool.iterdir())
    empty_dir(tmp_path / "new" / "uploads")  # created when missing
    assert (tmp_path / "new" / "uploads").is_dir()


@pytest.mark.parametrize(("trailing", "status"), [("true", 201), ("false", 409)])
def test_a_write_refused_before_the_form_ends_still_sees_the_trailing_fields(
    peer: Peer, trailing: str, status: int
) -> None:
    """A put that gives up before reading all its data (a future FileClient may): the
    rest of the form is still read, and an overwrite=true after the file is honoured."""
    assert upload(peer, [("name", "e.bin"), ("file", (b"one", "e.bin"))]).status_code == 201
    peer.files.early_conflicts = True
    reply = upload(peer, [("name", "e.bin"), FILE, ("overwrite", trailing)])
    assert reply.status_code == status, reply.json
    assert peer.files.stored["e.bin"] == (DATA if status == 201 else b"one")
