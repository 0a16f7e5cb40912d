"""The mount behaves like a folder for ordinary programs (issue 13).

Real programs run in subprocesses against a real mount (FUSE) of a real 3-peer ring, and
every result is compared byte for byte through REST on *another* peer than the one the
mount talks to. One ring and one mount serve the whole module; teardown always unmounts
and ends every process, pass or fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mounttest import TOKEN, Mount, rest_download, run, start_mount

from clientlib.mount import fuse_problem
from services.launcher import LocalRing, PeerProcess

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(fuse_problem() is not None, reason=f"FUSE unavailable: {fuse_problem()}"),
]


@dataclass
class Setup:
    ring: LocalRing
    mount: Mount

    @property
    def mnt(self) -> Path:
        return self.mount.path

    @property
    def other(self) -> PeerProcess:
        """A peer the mount does not talk to: what it stored is read back there."""
        return self.ring.peers[2]

    def stored(self, name: str) -> bytes:
        return rest_download(self.other, name)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    env = {"CHORD_API_TOKEN": TOKEN}
    with LocalRing(tmp_path_factory.mktemp("programs-ring"), successors=4, env=env) as ring:
        ring.start_ring(3, timeout=30)
        mount = start_mount(ring.peers[0], tmp_path_factory.mktemp("programs") / "ring")
        try:
            yield Setup(ring, mount)
        finally:
            mount.stop()
            print(mount.log.read_text())


def test_shell_redirect_stores_what_echo_wrote(setup: Setup) -> None:
    """`echo > f` opens with O_CREAT|O_TRUNC, dups the descriptor and closes the first:
    that first close must not store an empty file (it used to, and the real content was
    then refused with 409: data lost while the shell said 0)."""
    run("sh", "-c", f"echo hello > {setup.mnt}/notes.txt")
    assert setup.stored("notes.txt") == b"hello\n"
