"""The mount behaves like a folder for ordinary programs (issue 13).

Real programs (sh, sed, vim, cp, tar, rsync, git, mv, touch, truncate) run in
subprocesses against a real mount (FUSE) of a real 3-peer ring, and every result is
compared byte for byte through REST on *another* peer than the one the mount talks to.
One ring and one mount serve the whole module; teardown always unmounts and ends every
process, pass or fail. Files a program only creates and closes (``touch``) are stored when
the kernel releases them, just after ``close()`` returns, so checks poll with a deadline.
"""

from __future__ import annotations

import errno
import os
import random
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clientlib.mount import fuse_problem
from devtools.launcher import LocalRing, PeerProcess
from tests.integration.mounttest import (
    MIB,
    TOKEN,
    Mount,
    eventually,
    needs,
    peer_api,
    rest_get,
    run,
    start_mount,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(fuse_problem() is not None, reason=f"FUSE unavailable: {fuse_problem()}"),
]

QUOTA_MIB = 16  # per peer: room for every test here, not for FULL


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

    def check(self, name: str, data: bytes) -> None:
        """``name`` holds exactly ``data`` in the ring (read through REST on another peer)."""
        found: list[tuple[int, bytes]] = []

        def stored() -> bool:
            found[:] = [rest_get(self.other, name)]
            return found[0] == (200, data)

        if not stored():  # an empty file created here is stored at its release: wait
            eventually(stored, f"{name!r} stored as {data[:40]!r}… (last: {found[0][:2]!r}…)")

    def absent(self, name: str) -> None:
        eventually(lambda: rest_get(self.other, name)[0] == 404, f"{name!r} gone from the ring")

    def check_tree(self, local: Path, prefix: str) -> None:
        """Every file under ``local`` is in the ring as ``prefix/<relative path>``, and the
        mount lists exactly those files there."""
        files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
        for relative in files:
            self.check(f"{prefix}/{relative}", (local / relative).read_bytes())
        shown = self.mnt / prefix
        listed = sorted(p.relative_to(shown).as_posix() for p in shown.rglob("*") if p.is_file())
        assert listed == files


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    env = {"CHORD_API_TOKEN": TOKEN}
    with LocalRing(tmp_path_factory.mktemp("programs-ring"), successors=4, env=env) as ring:
        ring.start_ring(3, args=["--quota-mib", str(QUOTA_MIB)], timeout=30)
        mount = start_mount(ring.peers[0], tmp_path_factory.mktemp("programs") / "ring")
        try:
            yield Setup(ring, mount)
        finally:
            mount.stop()
            print(mount.log.read_text())


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small source tree: nested folders, an empty file, a hidden one, binary bytes and a
    name that is not ASCII."""
    root = tmp_path_factory.mktemp("tree") / "src"
    rng = random.Random(13)
    files = {
        "README.md": b"# demo\n",
        "empty.txt": b"",
        ".hidden": b"dot file\n",
        "docs/guide.txt": b"line\n" * 200,
        "docs/deep/more/notes é.txt": "données\n".encode(),
        "bin/blob.bin": rng.randbytes(300 * 1024 + 7),
    }
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return root


def sh(script: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run("sh", "-c", script, cwd=cwd)


# ------------------------------------------------------------------- the shell's writes
def test_shell_redirect_stores_what_echo_wrote(setup: Setup) -> None:
    """`echo > f` opens with O_CREAT|O_TRUNC, dups the descriptor and closes the first:
    that first close must not store an empty file (it used to, and the real content was
    then refused with 409: data lost while the shell said 0)."""
    sh(f"echo hello > '{setup.mnt}/notes.txt'")
    setup.check("notes.txt", b"hello\n")
    sh(f"echo again > '{setup.mnt}/notes.txt'")  # an existing file: replaced
    setup.check("notes.txt", b"again\n")
    sh(f"cat '{setup.mnt}/notes.txt' '{setup.mnt}/notes.txt' > '{setup.mnt}/twice.txt'")
    setup.check("twice.txt", b"again\nagain\n")


def test_append_fetches_the_stored_bytes_first(setup: Setup, tmp_path: Path) -> None:
    source = tmp_path / "log.txt"
    source.write_bytes(b"from REST\n")
    peer = setup.ring.peers[1]
    run(
        "curl",
        "-sf",
        "-H",
        f"Authorization: Bearer {TOKEN}",
        "-F",
        "name=log.txt",
        "-F",
        f"file=@{source}",
        f"http://{peer.host}:{peer.api_port}/upload_file",
    )
    eventually(lambda: (setup.mnt / "log.txt").exists(), "the REST upload in the mount")
    sh(f"echo appended >> '{setup.mnt}/log.txt'")
    setup.check("log.txt", b"from REST\nappended\n")
    sh(f"printf 'one\\n' >> '{setup.mnt}/fresh.log' && printf 'two\\n' >> '{setup.mnt}/fresh.log'")
    setup.check("fresh.log", b"one\ntwo\n")


def test_touch_and_colon_redirect_store_empty_files(setup: Setup) -> None:
    run("touch", str(setup.mnt / "touched.txt"))
    sh(f": > '{setup.mnt}/colon.txt'")
    setup.check("touched.txt", b"")
    setup.check("colon.txt", b"")
    sh(f"echo keep > '{setup.mnt}/kept.txt'")
    version = peer_api(setup.other).get("/search_file", name="kept.txt")["version"]
    run("touch", str(setup.mnt / "kept.txt"))  # existing: nothing to store again
    assert (setup.mnt / "kept.txt").read_bytes() == b"keep\n"
    assert peer_api(setup.other).get("/search_file", name="kept.txt")["version"] == version
    sh(f": > '{setup.mnt}/kept.txt'")  # truncating an existing file does store it empty
    setup.check("kept.txt", b"")


def test_truncate_grows_and_shrinks(setup: Setup) -> None:
    path = setup.mnt / "sized.bin"
    path.write_bytes(b"0123456789")
    run("truncate", "-s", "14", str(path))
    setup.check("sized.bin", b"0123456789" + bytes(4))
    run("truncate", "-s", "3", str(path))
    setup.check("sized.bin", b"012")
    os.truncate(path, 5)  # by name, no descriptor
    setup.check("sized.bin", b"012\0\0")
    assert path.stat().st_size == 5


# ---------------------------------------------------------------- editors, sed, renames
def test_sed_in_place(setup: Setup) -> None:
    (setup.mnt / "pets.txt").write_bytes(b"a cat\nthe cat sat\n")
    run("sed", "-i", "s/cat/dog/", str(setup.mnt / "pets.txt"))
    setup.check("pets.txt", b"a dog\nthe dog sat\n")
    assert not [n for n in os.listdir(setup.mnt) if n.startswith("sed")]  # its temp file


@needs("vim")
def test_vim_edits_and_saves(setup: Setup) -> None:
    path = setup.mnt / "edit.txt"
    path.write_bytes(b"old line\nkeep\nold again\n")
    # Another descriptor holds the file open meanwhile (as the kernel's pending release
    # of the write above may): vim saves only if the mtime it read has not moved, and
    # in -es mode its "changed since reading" question ends in "no" with exit code 0.
    with open(path, "ab"):
        run(
            "vim",
            "-u",
            "NONE",
            "-i",
            "NONE",
            "-n",
            "-es",
            "-c",
            "%s/old/new/g",
            "-c",
            "wq",
            str(path),
        )
    setup.check("edit.txt", b"new line\nkeep\nnew again\n")
    assert sorted(n for n in os.listdir(setup.mnt) if "edit" in n) == ["edit.txt"]


def test_rename_over_an_existing_file(setup: Setup) -> None:
    folder = setup.mnt / "ro"
    folder.mkdir()
    (folder / "target.txt").write_bytes(b"old\n")
    (folder / ".target.txt.swp").write_bytes(b"new\n")  # an editor's hidden temp file
    setup.check("ro/.target.txt.swp", b"new\n")
    os.replace(folder / ".target.txt.swp", folder / "target.txt")
    setup.check("ro/target.txt", b"new\n")
    setup.absent("ro/.target.txt.swp")
    (folder / "src.txt").write_bytes(b"from mv\n")
    run("mv", "-f", str(folder / "src.txt"), str(folder / "target.txt"))
    setup.check("ro/target.txt", b"from mv\n")
    setup.absent("ro/src.txt")
    assert os.listdir(folder) == ["target.txt"]


def test_mv_of_a_folder_moves_everything_under_it(setup: Setup) -> None:
    (setup.mnt / "proj" / "sub" / "empty").mkdir(parents=True)
    (setup.mnt / "proj" / "a.txt").write_bytes(b"a\n")
    (setup.mnt / "proj" / "sub" / "b.txt").write_bytes(b"b\n")
    run("mv", str(setup.mnt / "proj"), str(setup.mnt / "proj2"))
    setup.check("proj2/a.txt", b"a\n")
    setup.check("proj2/sub/b.txt", b"b\n")
    setup.absent("proj/a.txt")
    setup.absent("proj/sub/b.txt")
    assert not (setup.mnt / "proj").exists() and (setup.mnt / "proj2" / "sub" / "empty").is_dir()
    (setup.mnt / "dest").mkdir()
    run("mv", str(setup.mnt / "proj2"), str(setup.mnt / "dest"))  # into a folder
    setup.check("dest/proj2/sub/b.txt", b"b\n")
    assert sorted(os.listdir(setup.mnt / "dest" / "proj2")) == ["a.txt", "sub"]


def test_modes_owners_and_times_are_tolerated(setup: Setup) -> None:
    path = setup.mnt / "meta.txt"
    path.write_bytes(b"meta\n")
    run("chmod", "600", str(path))
    run("chown", f"{os.getuid()}:{os.getgid()}", str(path))
    run("touch", "-d", "2001-02-03 04:05:06", str(path))
    os.utime(path, (1e9, 1e9))
    setup.check("meta.txt", b"meta\n")


# --------------------------------------------------------------------- open descriptors
def test_reads_see_what_is_being_written(setup: Setup) -> None:
    path = setup.mnt / "ryw.txt"
    with open(path, "w+b") as writer:
        writer.write(b"written, not yet closed\n")
        writer.flush()
        writer.seek(0)
        assert writer.read() == b"written, not yet closed\n"
        with open(path, "rb") as reader:  # another open of the same name
            assert reader.read() == b"written, not yet closed\n"
        assert path.stat().st_size == 24
    setup.check("ryw.txt", b"written, not yet closed\n")


def test_unlinking_a_file_open_for_writing(setup: Setup) -> None:
    path = setup.mnt / "doomed.txt"
    with open(path, "wb") as handle:
        handle.write(b"first\n")
        handle.flush()
        path.unlink()
        assert not path.exists()
        handle.write(b"second\n")  # still a valid descriptor, as on a local disk
    setup.absent("doomed.txt")
    assert "doomed.txt" not in os.listdir(setup.mnt)
    path.write_bytes(b"reborn\n")  # the name is free again
    setup.check("doomed.txt", b"reborn\n")


# ------------------------------------------------------------------- trees of files
def test_cp_r_of_a_tree(setup: Setup, tree: Path) -> None:
    run("cp", "-r", str(tree), str(setup.mnt / "cpdst"))
    setup.check_tree(tree, "cpdst")


def test_tar_extracts_a_tree(setup: Setup, tree: Path, tmp_path: Path) -> None:
    archive = tmp_path / "tree.tar"
    run("tar", "-C", str(tree), "-cf", str(archive), ".")
    (setup.mnt / "tardst").mkdir()
    run("tar", "-C", str(setup.mnt / "tardst"), "-xf", str(archive))
    setup.check_tree(tree, "tardst")


@needs("rsync")
def test_rsync_a_of_a_tree(setup: Setup, tree: Path) -> None:
    run("rsync", "-a", f"{tree}/", f"{setup.mnt}/rsyncdst/")
    setup.check_tree(tree, "rsyncdst")
    (tree / "README.md").write_bytes(b"# changed\n")  # again: rsync replaces that file
    try:
        run("rsync", "-a", "--checksum", f"{tree}/", f"{setup.mnt}/rsyncdst/")
        setup.check("rsyncdst/README.md", b"# changed\n")
    finally:
        (tree / "README.md").write_bytes(b"# demo\n")


@needs("git")
def test_git_init_add_commit(setup: Setup, tmp_path: Path) -> None:
    repo = setup.mnt / "repo"
    env = {
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "HOME": str(tmp_path),
    }
    run("git", "-c", "init.defaultBranch=main", "init", "-q", str(repo), env=env)
    (repo / "README.md").write_bytes(b"# in the ring\n")
    (repo / "src").mkdir()
    (repo / "src" / "main.py").write_bytes(b"print('hi')\n")
    run("git", "add", ".", cwd=repo, env=env)
    run("git", "commit", "-q", "-m", "first", cwd=repo, env=env)
    head = run("git", "rev-parse", "HEAD", cwd=repo, env=env).stdout
    assert run("git", "log", "--format=%s", cwd=repo, env=env).stdout == "first\n"
    assert run("git", "status", "--porcelain", cwd=repo, env=env).stdout == ""
    setup.check("repo/README.md", b"# in the ring\n")
    setup.check("repo/.git/HEAD", b"ref: refs/heads/main\n")
    setup.check("repo/.git/refs/heads/main", head.encode())
    clone = tmp_path / "clone"  # every object readable back out of the mount
    run("git", "clone", "-q", str(repo), str(clone), env=env)
    assert (clone / "src" / "main.py").read_bytes() == b"print('hi')\n"


# ------------------------------------------------------------------------- errors
def test_an_invalid_name_is_einval_and_logged(setup: Setup) -> None:
    attempts: tuple[Callable[[], object], ...] = (
        lambda: open(setup.mnt / "evil\u202egnp.exe", "wb").close(),
        lambda: (setup.mnt / "zero\u200bwidth").mkdir(),
        lambda: (setup.mnt / "...").mkdir(),
    )
    for attempt in attempts:
        with pytest.raises(OSError) as raised:
            attempt()
        assert raised.value.errno == errno.EINVAL
    (setup.mnt / "fine.txt").write_bytes(b"fine\n")
    with pytest.raises(OSError) as raised:
        os.rename(setup.mnt / "fine.txt", setup.mnt / "bad\ufeffname.txt")
    assert raised.value.errno == errno.EINVAL
    setup.check("fine.txt", b"fine\n")
    log = setup.mount.log.read_text()
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in log and "(EINVAL)" in log


def test_a_full_ring_is_enospc_from_close(setup: Setup, tmp_path: Path) -> None:
    full = random.Random(5).randbytes((QUOTA_MIB + 1) * MIB)
    handle = open(setup.mnt / "full.bin", "wb")  # noqa: SIM115 - close() is what is tested
    handle.write(full)
    with pytest.raises(OSError) as raised:
        handle.close()
    assert raised.value.errno == errno.ENOSPC
    source = tmp_path / "full.bin"
    source.write_bytes(full)
    done = run("cp", str(source), str(setup.mnt / "full2.bin"), check=False)
    assert done.returncode != 0 and "No space left on device" in done.stderr
    assert not peer_api(setup.other).get("/search_file", name="full.bin")["found"]
    assert "full.bin: not stored" in setup.mount.log.read_text()
    eventually(lambda: "full2.bin" not in os.listdir(setup.mnt), "the refused file unlisted")
