"""The console menu survives any input (the ancestor's exited on a non-integer).

Driven with scripted answers over a simulated ring, a real storage engine and an
in-memory stand-in for the FileClient; tests/integration/test_menu_pty.py drives the
real program through a terminal.
"""

from __future__ import annotations

import hashlib
import re
import signal
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import services.menu.app as menu_app
from chord.node import ChordNode
from chord.node_ref import NodeRef
from services.files.client import (
    ChecksumMismatch,
    Conflict,
    FileInfo,
    NoSpace,
    NotFound,
    PutResult,
    SearchResult,
    Unavailable,
)
from services.files.replication import Replicator
from services.menu import Menu
from services.menu.transfers import Cancelled, cancellable
from services.storage import StorageEngine
from tests.unit.sim_ring import ideal_sim_ring

LEAVE = "13"


class MemoryFiles:
    """The FileClient calls the menu makes, over a dict. ``fail`` makes put raise."""

    rpc_timeout = 1.0

    def __init__(self, node: ChordNode) -> None:
        self.node = node
        self.held: dict[str, tuple[FileInfo, bytes]] = {}
        self.fail: Exception | None = None
        self.corrupt = False

    def _info(self, name: str, version: int, body: bytes) -> FileInfo:
        key = self.node.ring.hash(name)
        sha = hashlib.sha256(body).hexdigest()
        return FileInfo(name, key, version, len(body), sha, 1 << 20, (), False)

    def put(
        self, name: str, data: Iterable[bytes], *, size: int | None = None, overwrite: bool = False
    ) -> PutResult:
        body = b"".join(data)
        if self.fail is not None:
            raise self.fail
        if size is not None and len(body) != size:
            raise ChecksumMismatch("short")
        old = self.held.get(name)
        if old is not None and old[1] != body and not overwrite:
            raise Conflict(f"{name!r} already exists with other content (use overwrite)")
        version = (old[0].version + (1 if overwrite else 0)) if old else 1
        info = self._info(name, version, body)
        self.held[name] = (info, body)
        return PutResult(info, (self.node.me,), 0)

    def stat(self, name: str) -> tuple[FileInfo, list[NodeRef], None]:
        if name not in self.held:
            raise NotFound(f"{name!r} is not in the ring")
        return self.held[name][0], [self.node.me], None

    def get(self, name: str) -> tuple[FileInfo, Iterator[bytes]]:
        info, body = self.held[name]
        if self.corrupt:
            body = body[:-1] + b"?"
        return info, iter([body[: len(body) // 2], body[len(body) // 2 :]])

    def search(self, name: str) -> SearchResult:
        info = self.held.get(name, (None, b""))[0]
        key = self.node.ring.hash(name)
        return SearchResult(name, key, info is not None, self.node.me, (), 0, info)

    def delete(self, name: str) -> FileInfo:
        info = self.stat(name)[0]
        del self.held[name]
        return info

    def list_peer(self, peer: NodeRef, timeout: float | None = None) -> list[FileInfo]:
        return [info for info, _ in self.held.values()]


@dataclass
class SimPeer:
    node: ChordNode
    files: Any
    storage: StorageEngine
    replicator: Replicator


class Bar:
    def __init__(self, total: int, label: str) -> None:
        self.total, self.done = total, 0

    def update(self, n: float | None = 1) -> None:
        self.done += int(n or 0)

    def close(self) -> None:
        pass


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[SimPeer]:
    node = ideal_sim_ring(4).members()[0]
    files = MemoryFiles(node)
    with StorageEngine(tmp_path / "store") as storage:
        yield SimPeer(node, files, storage, Replicator(node, storage, files, 3))  # type: ignore[arg-type]


def scripted(peer: SimPeer, answers: list[str | type[BaseException]]) -> tuple[Menu, list[str]]:
    replies = iter(answers)
    output: list[str] = []

    def read(prompt: str) -> str:
        output.append(prompt)
        answer = next(replies, EOFError)
        if isinstance(answer, type):
            raise answer
        return answer

    return Menu(peer, read=read, write=output.append, progress=Bar), output


def run(peer: SimPeer, answers: list[str | type[BaseException]]) -> str:
    menu, output = scripted(peer, answers)
    menu.run()
    return "\n".join(output)


def test_bad_choices_are_explained_and_the_menu_goes_on(peer: SimPeer) -> None:
    text = run(peer, ["abc", "", "0", "99", "-1", " 1 ", LEAVE])
    assert text.count("Please enter a number from 1 to 13") == 5
    assert "predecessor" in text and "successor" in text
    assert text.rstrip().endswith("Leaving the ring...")


def test_every_view_renders(peer: SimPeer) -> None:
    peer.storage.put_bytes("kept.txt", peer.node.ring.hash("kept.txt"), 1, b"abc", role="primary")
    text = run(peer, ["1", "2", "3", "4", "5", "10", "11", "12", "report.pdf", "12", "", LEAVE])
    assert "gRPC address" in text and "fingers" in text
    assert "storage used" in text and "degraded files" in text
    assert "kept.txt" in text and "primary" in text
    assert "4 peer(s) in ring order" in text and "(this peer)" in text
    assert "No degraded files" in text
    assert "owner" in text and "hops" in text
    assert "Nothing to look up." in text


def test_end_of_input_leaves_from_any_prompt(peer: SimPeer) -> None:
    assert "End of input: leaving the ring" in run(peer, [])
    assert "End of input: leaving the ring" in run(peer, ["6"])  # mid-upload prompt


def test_ctrl_c_at_a_prompt_returns_to_the_menu(peer: SimPeer) -> None:
    text = run(peer, [KeyboardInterrupt, "6", KeyboardInterrupt, "2", LEAVE])
    assert text.count("Cancelled. (To leave: choose 13, or press Ctrl-D.)") == 2
    assert "Leaving the ring..." in text


def test_upload_and_download_round_trip(peer: SimPeer, tmp_path: Path) -> None:
    source = tmp_path / "отчёт 2026.txt"
    body = "données ✓\n".encode() * 50_000
    source.write_bytes(body)
    (tmp_path / "out").mkdir()
    taken = tmp_path / "out" / "taken"
    taken.write_bytes(b"mine")
    answers: list[str | type[BaseException]] = [
        "6",
        str(tmp_path / "missing"),
        str(tmp_path),
        "\x00",
        str(source),
        "../x",
        "",
        "7",
        "отчёт 2026.txt",
        str(taken),
        str(tmp_path / "nowhere" / "f"),
        str(tmp_path / "out"),
        LEAVE,
    ]
    text = run(peer, answers)
    assert text.count("No such file") == 2 and "is a folder" in text
    assert "Not a valid file name" in text
    assert "Uploaded 'отчёт 2026.txt'." in text
    assert "already exists; give another path" in text and "No such folder" in text
    assert "SHA-256 verified" in text
    assert (tmp_path / "out" / "отчёт 2026.txt").read_bytes() == body
    assert not list((tmp_path / "out").glob("*.part"))
    assert taken.read_bytes() == b"mine"


def test_unreadable_file_is_explained(
    peer: SimPeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "secret"
    source.write_bytes(b"x")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(source))

    monkeypatch.setattr(menu_app, "open", refuse, raising=False)
    assert "Permission denied" in run(peer, ["6", str(source), "", LEAVE])


def test_conflict_offers_overwrite(peer: SimPeer, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_bytes(b"one")
    run(peer, ["6", str(source), "", LEAVE])
    source.write_bytes(b"two")
    text = run(peer, ["6", str(source), "", "maybe", "n", "6", str(source), "", "y", LEAVE])
    assert "Please answer y or n." in text and "Not uploaded." in text
    assert peer.files.held["a.txt"][1] == b"two"
    assert peer.files.held["a.txt"][0].version == 2


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (NoSpace("a holder is full"), "No space: a holder is full"),
        (Unavailable("1 of 3 holders"), "Unavailable: 1 of 3 holders"),
        (ChecksumMismatch("arrived damaged"), "Checksum mismatch: arrived damaged"),
        (RuntimeError("bug"), "Unexpected error (RuntimeError: bug)"),
    ],
)
def test_upload_errors_are_messages(
    peer: SimPeer, tmp_path: Path, error: Exception, message: str
) -> None:
    source = tmp_path / "a.txt"
    source.write_bytes(b"one")
    peer.files.fail = error
    text = run(peer, ["6", str(source), "", "4", LEAVE])
    assert message in text
    assert "storage used" in text  # the menu went on


def test_download_errors_leave_nothing_behind(peer: SimPeer, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_bytes(b"hello world")
    dest = tmp_path / "copy.txt"
    text = run(peer, ["7", "absent", "6", str(source), "", LEAVE])
    assert "Not found: 'absent' is not in the ring" in text
    peer.files.corrupt = True
    text = run(peer, ["7", "a.txt", str(dest), LEAVE])
    assert "Checksum mismatch" in text
    assert not dest.exists() and not (tmp_path / "copy.txt.part").exists()


def test_search_and_delete(peer: SimPeer, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_bytes(b"hello")
    text = run(peer, ["6", str(source), "", "8", "a.txt", "9", "a.txt", "n", "9", "a.txt", "y"])
    assert re.search(r"^found +yes$", text, re.M) and re.search(
        r"^sha256 +[0-9a-f]{64}$", text, re.M
    )
    assert "Not deleted." in text and "Deleted 'a.txt'." in text
    assert re.search(r"^found +no$", run(peer, ["8", "a.txt"]), re.M)


def test_ctrl_c_during_a_transfer_cancels_it() -> None:
    started = threading.Event()

    def work(cancel: threading.Event) -> str:
        started.set()
        if cancel.wait(10):
            raise ChecksumMismatch("the holders refused the short file")
        return "finished"

    def interrupt() -> None:
        started.wait(10)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt, daemon=True).start()
        with pytest.raises(Cancelled):
            cancellable(work)
    finally:
        signal.signal(signal.SIGINT, previous)
