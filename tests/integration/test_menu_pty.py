"""The console menu of a real ``run_node.py``, driven through a pseudo-terminal.

A second peer (started with LocalRing) joins it so the ring views have something to
show. Every option is used, with garbage choices, bad paths, a Unicode file name
uploaded and downloaded byte for byte, an upload conflict, Ctrl-C at prompts (back to
the menu, the peer keeps running) and finally Ctrl-D: the peer leaves and exits 0.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest

from devtools.launcher import ROOT, LocalRing, http_json, wait_for

pytestmark = pytest.mark.integration

CHOOSE = "Choose 1-13: "
EXTRA = (*LocalRing.extra_args, "--replicas", "2", "--repair-interval", "0.3")


@pytest.fixture
def menu_peer(tmp_path: Path) -> Iterator[tuple[pexpect.spawn, int, int]]:
    """The menu's peer on ports the kernel picks (no race with other processes for a
    port chosen in advance): (the terminal, gRPC port, REST port)."""
    port_file = tmp_path / "ports.json"
    args = [
        "run_node.py",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--api-port",
        "0",
        "--port-file",
        str(port_file),
        "--data-dir",
        str(tmp_path / "menu-peer"),
        "--log-level",
        "warning",
        *EXTRA,
    ]
    env = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
    child = pexpect.spawn(
        sys.executable,
        args,
        cwd=str(ROOT),
        env=env,
        encoding="utf-8",
        timeout=20,
        dimensions=(40, 160),
        logfile=open(tmp_path / "pty.log", "w"),  # noqa: SIM115
    )
    try:
        assert wait_for(port_file.exists, 60), "the menu's peer reported no ports"
        report = json.loads(port_file.read_text())
        yield child, int(report["port"]), int(report["api_port"])
    finally:
        if child.isalive():
            child.kill(signal.SIGKILL)
            child.wait()
        child.close()
        if child.logfile is not None:
            child.logfile.close()


def test_every_option_through_a_terminal(
    menu_peer: tuple[pexpect.spawn, int, int],
    make_ring: Callable[..., LocalRing],
    tmp_path: Path,
    rng: random.Random,
) -> None:
    child, port, api_port = menu_peer
    address = f"127.0.0.1:{port}"
    api = f"http://127.0.0.1:{api_port}"

    def choose(option: str) -> None:
        child.expect_exact(CHOOSE)
        child.sendline(option)

    # ------------------------------------------------------ garbage is explained
    for garbage in ("abc", "99", ""):
        choose(garbage)
        child.expect_exact("Please enter a number from 1 to 13.")

    # a second peer joins; wait until both agree on the two-peer ring
    ring = make_ring()
    other = ring.start_peer(join=address, args=EXTRA)

    def joined() -> bool:
        state = ring.state(other)
        mine = http_json(api + "/get_predecessor")[1]
        return (
            state is not None
            and [s.address for s in state.successors[:1]] == [address]
            and (mine.get("predecessor") or {}).get("address") == other.address
        )

    assert wait_for(joined, 20), "the second peer did not settle next to the menu's peer"

    # ---------------------------------------------------------------- the views
    choose("1")
    child.expect(rf"predecessor +\w+ +{re.escape(other.address)}")
    choose("2")
    child.expect(rf"1 +\w+ +{re.escape(other.address)}")
    choose("3")
    child.expect("fingers +start +node")
    choose("4")
    child.expect(r"joined +yes")
    child.expect(r"storage used +0 B of unlimited")

    # ------------------------------------------------------------------- upload
    body = rng.randbytes(3 * (1 << 20) + 12345)
    source = tmp_path / "отчёт ✓ 2026.bin"
    source.write_bytes(body)
    choose("6")
    child.expect_exact("Local file to upload")
    child.sendline(str(tmp_path / "no-such-file"))
    child.expect_exact("No such file")
    child.sendline(str(tmp_path))
    child.expect_exact("is a folder; give the path of a file.")
    child.sendline(str(source))
    child.expect_exact("Name in the ring (empty: отчёт ✓ 2026.bin): ")
    child.sendline("../escape")
    child.expect_exact("Not a valid file name")
    child.sendline("")
    child.expect_exact("Uploaded 'отчёт ✓ 2026.bin'.")
    child.expect(r"holders +\S+@127\.0\.0\.1:\d+, \S+@127\.0\.0\.1:\d+")

    # same name, other bytes: a conflict, not overwritten
    other_source = tmp_path / "other.bin"
    other_source.write_bytes(b"something else")
    choose("6")
    child.sendline(str(other_source))
    child.expect_exact("Name in the ring")
    child.sendline("отчёт ✓ 2026.bin")
    child.expect_exact("already exists with other content. Overwrite? [y/N] ")
    child.sendline("n")
    child.expect_exact("Not uploaded.")

    choose("5")
    child.expect(r"отчёт ✓ 2026\.bin +3\.0 MiB +1 +(primary|replica) +ok")
    choose("8")
    child.expect_exact("File name to search for")
    child.sendline("отчёт ✓ 2026.bin")
    child.expect(r"found +yes")

    # ----------------------------------------------------------------- download
    out = tmp_path / "downloads"
    out.mkdir()
    (out / "taken.bin").write_bytes(b"keep me")
    choose("7")
    child.expect_exact("File name in the ring")
    child.sendline("not there")
    child.expect_exact("Not found: 'not there' is not in the ring")
    choose("7")
    child.sendline("отчёт ✓ 2026.bin")
    child.expect_exact("Save as (empty: отчёт ✓ 2026.bin): ")
    child.sendline(str(out / "taken.bin"))
    child.expect_exact("already exists; give another path")
    child.sendline(str(out))
    child.expect_exact("SHA-256 verified.")
    assert (out / "отчёт ✓ 2026.bin").read_bytes() == body
    assert (out / "taken.bin").read_bytes() == b"keep me"
    assert not list(out.glob("*.part"))

    # ------------------------------------------- Ctrl-C: back to the menu, alive
    choose("6")
    child.expect_exact("Local file to upload")
    child.sendintr()
    child.expect_exact("Cancelled. (To leave: choose 13, or press Ctrl-D.)")
    child.expect_exact(CHOOSE)
    child.sendintr()
    child.expect_exact("Cancelled.")
    assert child.isalive()

    # ------------------------------------------------------ ring-wide views, rm
    choose("10")
    child.expect(r"2 peer\(s\) in ring order")
    child.expect(rf"{re.escape(other.address)} .* ok")
    choose("11")
    child.expect(r"No degraded files|name +version +copies +wanted")
    choose("12")
    child.expect_exact("Key (40 hex digits) or file name: ")
    child.sendline("some name")
    child.expect(r"owner +\w+@127\.0\.0\.1:\d+")
    choose("9")
    child.sendline("отчёт ✓ 2026.bin")
    child.expect_exact("from the whole ring? [y/N] ")
    child.sendline("y")
    child.expect_exact("Deleted 'отчёт ✓ 2026.bin'.")

    # ---------------------------------------------------- Ctrl-D: leave, exit 0
    child.expect_exact(CHOOSE)
    child.sendeof()
    child.expect_exact("End of input: leaving the ring...")
    child.expect(pexpect.EOF)
    child.wait()
    assert child.exitstatus == 0, child.before
    assert other.running()


def test_refused_names_are_explained_and_nothing_is_stored(
    menu_peer: tuple[pexpect.spawn, int, int], tmp_path: Path
) -> None:
    """The menu applies the ring's one set of name rules (chord.names): each refused name
    gets its reason and the question again; only the accepted one is stored."""
    child, _, api_port = menu_peer
    api = f"http://127.0.0.1:{api_port}"
    source = tmp_path / "a\\b.txt"  # a legal local file name, not a legal ring name
    source.write_bytes(b"menu bytes\n")
    child.expect_exact(CHOOSE)
    child.sendline("6")
    child.expect_exact("Local file to upload")
    child.sendline(str(source))
    child.expect_exact("Name in the ring (empty: a\\b.txt): ")
    child.sendline("")  # the default, the local name, is refused too
    child.expect_exact("Not a valid file name: a file name must not contain '\\'")
    for name, says in (
        ("evil\u202egnp.exe", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("zero\u200bwidth.txt", "U+200B ZERO WIDTH SPACE"),
        ("docs/   /x.txt", "only of dots and spaces"),
    ):
        child.expect_exact("Name in the ring")
        child.sendline(name)
        child.expect_exact(says)
    child.expect_exact("Name in the ring")
    child.sendline("menu/accepted.txt")
    child.expect_exact("Uploaded 'menu/accepted.txt'.")
    child.expect_exact(CHOOSE)
    status, listing = http_json(api + "/show_files?scope=ring")
    assert status == 200 and [f["name"] for f in listing["files"]] == ["menu/accepted.txt"]
    child.sendeof()
    child.expect(pexpect.EOF)
    child.wait()
    assert child.exitstatus == 0


def signals_blocked(pid: int) -> dict[int, bool]:
    """For each thread of ``pid``: are SIGINT and SIGTERM both blocked in it?"""
    wanted = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    blocked = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        status = (task / "status").read_text()
        mask = int(re.search(r"^SigBlk:\s*([0-9a-f]+)$", status, re.M).group(1), 16)  # type: ignore[union-attr]
        blocked[int(task.name)] = mask & wanted == wanted
    return blocked


def test_ctrl_c_always_reaches_the_menu(
    menu_peer: tuple[pexpect.spawn, int, int], make_ring: Callable[..., LocalRing]
) -> None:
    """The kernel gives a process-wide signal to any thread not blocking it; one taken
    by a gRPC or HTTP thread left input() waiting for Enter (CI: no "Cancelled." in
    20 s). Every thread but the main one blocks SIGINT and SIGTERM, in the menu's
    peer and in a peer without a menu, and Ctrl-C answers every time."""
    child, port, _ = menu_peer
    child.expect_exact(CHOOSE)
    other = make_ring().start_peer(join=f"127.0.0.1:{port}", args=EXTRA)
    for pid in (child.pid, other.process.pid):
        threads = signals_blocked(pid)
        assert len(threads) > 5, threads  # gRPC, HTTP and maintenance threads exist
        assert threads.pop(pid) is False  # the main thread takes the signals
        assert all(threads.values()), f"threads of {pid} that could take Ctrl-C: {threads}"
    for _ in range(10):
        child.sendintr()
        child.expect_exact("Cancelled.", timeout=5)
        child.expect_exact(CHOOSE, timeout=5)
    assert child.isalive()
