"""``client.py mount`` against a live 3-peer ring, through the kernel (FUSE).

Ordinary programs (cp, sha256sum, ls, rm, mv, mkdir) work on the mounted folder, as a
user runs them. The mount runs as a subprocess; teardown always unmounts and kills it,
even after a failure. Skipped (with the reason) where FUSE cannot work.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clientlib.mount import fuse_problem
from clientlib.upload import upload
from devtools.launcher import LocalRing
from tests.integration.mounttest import (
    MIB,
    TOKEN,
    api,
    eventually,
    peer_api,
    rest_download,
    run,
    sha,
    start_mount,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(fuse_problem() is not None, reason=f"FUSE unavailable: {fuse_problem()}"),
]

TWENTY = random.Random(9).randbytes(20 * MIB + 777)


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRing]:
    env = {"CHORD_API_TOKEN": TOKEN}
    with LocalRing(tmp_path_factory.mktemp("mount-ring"), successors=4, env=env) as local:
        local.start_ring(3, timeout=30)
        yield local


@pytest.fixture(scope="module")
def mnt(ring: LocalRing, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    mount = start_mount(ring.peers[0], tmp_path_factory.mktemp("mnt") / "ring")
    try:
        yield mount.path
    finally:
        mount.stop()
        print(mount.log.read_text())


# ----------------------------------------------------------------------------- the tests
def test_cp_in_then_sha256_through_the_mount_and_rest(
    ring: LocalRing, mnt: Path, tmp_path: Path
) -> None:
    source = tmp_path / "twenty.bin"
    source.write_bytes(TWENTY)
    started = time.monotonic()
    run("cp", str(source), str(mnt / "big" / "twenty.bin"), check=False)  # no folder yet
    (mnt / "big").mkdir()
    run("cp", str(source), str(mnt / "big" / "twenty.bin"))
    print(f"cp 20 MiB in: {time.monotonic() - started:.2f} s")
    through_mount = run("sha256sum", str(mnt / "big" / "twenty.bin")).stdout.split()[0]
    assert through_mount == sha(TWENTY)
    assert sha(rest_download(ring.peers[2], "big/twenty.bin")) == sha(TWENTY)
    info = os.stat(mnt / "big" / "twenty.bin")
    assert info.st_size == len(TWENTY) and abs(info.st_mtime - time.time()) < 120


def test_rest_uploads_appear_in_ls_and_folders(ring: LocalRing, mnt: Path, tmp_path: Path) -> None:
    source = tmp_path / "hello.txt"
    source.write_text("hello from REST\n")
    upload(peer_api(ring.peers[1]), source, "rest/deep/hello.txt")
    eventually(lambda: "rest" in os.listdir(mnt), "the folder in ls")
    assert os.listdir(mnt / "rest") == ["deep"] and (mnt / "rest" / "deep").is_dir()
    assert run("ls", str(mnt / "rest" / "deep")).stdout.split() == ["hello.txt"]
    assert run("cat", str(mnt / "rest" / "deep" / "hello.txt")).stdout == "hello from REST\n"
    run("cp", str(mnt / "rest" / "deep" / "hello.txt"), str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text() == "hello from REST\n"


def test_rm_mv_mkdir_rmdir(ring: LocalRing, mnt: Path) -> None:
    (mnt / "ops").mkdir()
    (mnt / "ops" / "a.txt").write_bytes(b"first\n")
    run("mv", str(mnt / "ops" / "a.txt"), str(mnt / "ops" / "b.txt"))
    assert sorted(os.listdir(mnt / "ops")) == ["b.txt"]
    assert rest_download(ring.peers[1], "ops/b.txt") == b"first\n"
    search = peer_api(ring.peers[1]).get("/search_file", name="ops/a.txt")
    assert not search["found"]
    run("rm", str(mnt / "ops" / "b.txt"))
    assert not peer_api(ring.peers[2]).get("/search_file", name="ops/b.txt")["found"]
    assert not (mnt / "ops" / "b.txt").exists()
    run("mv", str(mnt / "big" / "twenty.bin"), str(mnt / "big" / "moved.bin"))  # ring to ring
    assert sha(rest_download(ring.peers[2], "big/moved.bin")) == sha(TWENTY)
    (mnt / "ops" / "c.txt").write_bytes(b"in a folder\n")
    run("mv", str(mnt / "ops"), str(mnt / "ops2"))  # a folder: every file under it
    assert os.listdir(mnt / "ops2") == ["c.txt"] and not (mnt / "ops").exists()
    assert rest_download(ring.peers[1], "ops2/c.txt") == b"in a folder\n"
    (mnt / "empty").mkdir()
    assert (mnt / "empty").is_dir()
    with pytest.raises(OSError) as raised:
        (mnt / "big").rmdir()
    assert raised.value.errno == errno.ENOTEMPTY
    (mnt / "empty").rmdir()
    assert not (mnt / "empty").exists()


def test_writing_an_existing_file_replaces_it_by_default(ring: LocalRing, mnt: Path) -> None:
    (mnt / "over.txt").write_bytes(b"one\n")
    first = peer_api(ring.peers[2]).get("/search_file", name="over.txt")["version"]
    (mnt / "over.txt").write_bytes(b"two\n")
    with open(mnt / "over.txt", "ab") as appended:
        appended.write(b"three\n")
    assert rest_download(ring.peers[2], "over.txt") == b"two\nthree\n"
    assert peer_api(ring.peers[2]).get("/search_file", name="over.txt")["version"] > first


def test_no_clobber_mount_never_replaces_and_ctrl_c_unmounts(
    ring: LocalRing, tmp_path: Path
) -> None:
    mount = start_mount(ring.peers[1], tmp_path / "safe", "--no-clobber")
    mine = mount.path / "conflict.txt"
    try:
        mine.write_bytes(b"mine\n")
        with pytest.raises(FileExistsError):
            mine.write_bytes(b"other\n")  # open(O_TRUNC) fails at once
        with pytest.raises(FileExistsError):
            open(mine, "ab").close()  # so does O_APPEND
        assert run("sh", "-c", f"echo other > {mine}", check=False).returncode != 0
        run("touch", str(mine))  # an open that changes nothing is fine
        (mount.path / "new.txt").write_bytes(b"new\n")
        with pytest.raises(FileExistsError):
            os.replace(mount.path / "new.txt", mine)  # nor does a rename replace it
        assert rest_download(ring.peers[2], "conflict.txt") == b"mine\n"
        assert rest_download(ring.peers[2], "new.txt") == b"new\n"
        # Someone else stores the name while this mount writes it: close() says EEXIST.
        other = tmp_path / "race.txt"
        other.write_bytes(b"theirs\n")
        handle = open(mount.path / "race.txt", "wb")  # noqa: SIM115 - closed below, on purpose
        handle.write(b"ours\n")
        upload(peer_api(ring.peers[2]), other, "race.txt")
        with pytest.raises(OSError) as raised:
            handle.close()
        assert raised.value.errno == errno.EEXIST
        assert rest_download(ring.peers[0], "race.txt") == b"theirs\n"
        mount.process.send_signal(signal.SIGINT)
        assert mount.process.wait(timeout=10) == 0
        assert not os.path.ismount(mount.path)
        log = mount.log.read_text()
        assert "Traceback" not in log and "--no-clobber (EEXIST)" in log
    finally:
        mount.stop()


def test_a_file_stays_readable_with_its_owner_killed(
    ring: LocalRing, mnt: Path, tmp_path: Path
) -> None:
    """Last: it kills a peer. The mount's own peer stays; the file's owner goes."""
    first = peer_api(ring.peers[0])
    name = next(
        f"kill/{i}.bin"
        for i in range(1000)
        if first.get("/lookup", name=f"kill/{i}.bin")["owner"]["api"] != api(ring.peers[0])
    )
    data = random.Random(3).randbytes(24 * MIB + 5)
    source = tmp_path / "victim.bin"
    source.write_bytes(data)
    stored = upload(first, source, name)
    assert stored["size"] == len(data)
    owner_api = first.get("/search_file", name=name)["owner"]["api"]
    owner = next(p for p in ring.peers if api(p) == owner_api)
    eventually(lambda: (mnt / name).exists(), "the new file in the listing")
    with open(mnt / name, "rb") as handle:  # open before, read mostly after the kill
        head = handle.read(MIB)
        ring.kill(owner)
        rest = handle.read()
    assert sha(head + rest) == sha(data)
    shutil.copyfile(mnt / name, tmp_path / "again.bin")  # a fresh open after the kill
    assert sha((tmp_path / "again.bin").read_bytes()) == sha(data)
