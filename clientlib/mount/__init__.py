"""``client.py mount``: the ring as a folder, through FUSE (Debian ``fuse3`` + PyPI
``mfusepy``). The filesystem itself is :mod:`clientlib.mount.fs`; this module checks
that FUSE can work here, mounts in the foreground and returns when unmounted (Ctrl-C,
SIGTERM or ``fusermount3 -u``: libfuse unmounts cleanly in each case).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from clientlib.mount.fs import RingFs
from clientlib.peer import ClientError, PeerApi
from clientlib.ranges import MIB


def fuse_problem() -> str | None:
    """Why FUSE cannot be used here, or None if it can."""
    if not os.path.exists("/dev/fuse"):
        return (
            "/dev/fuse is missing (load the 'fuse' kernel module; a container needs "
            "--device /dev/fuse --cap-add SYS_ADMIN)"
        )
    if shutil.which("fusermount3") is None:
        return "fusermount3 is missing: install the Debian package fuse3 (apt-get install fuse3)"
    try:
        import mfusepy  # noqa: F401 - only: does it load?
    except ImportError:
        return "the Python package mfusepy is missing (make install, or pip install mfusepy)"
    except OSError as exc:  # mfusepy found no libfuse
        return f"libfuse cannot be loaded ({exc}): install the package fuse3"
    return None


def check_mountpoint(path: Path) -> None:
    if not path.is_dir():
        raise ClientError(f"cannot mount on {path}: not a directory")
    if os.path.ismount(path):
        raise ClientError(f"cannot mount on {path}: something is mounted there already")


def say(text: str) -> None:
    print(f"client.py: {text}", file=sys.stderr, flush=True)


def fuse_class() -> type[Any]:
    """mfusepy's FUSE, except that ``rename`` also gets renameat2's flags (mfusepy drops
    them): RENAME_NOREPLACE must not replace a file (``mv`` relies on it)."""
    from mfusepy import FUSE

    class RingFuse(FUSE):  # type: ignore[misc]  # mfusepy ships no types
        def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
            decode = self.encoding, self.errors
            return int(self.operations.rename(old.decode(*decode), new.decode(*decode), flags))

    return RingFuse


def mount(api: PeerApi, mountpoint: Path, clobber: bool = True, cache_mib: int = 256) -> int:
    """Serve the ring at ``mountpoint`` until unmounted; returns the exit code. ``clobber``
    False is ``--no-clobber``: no existing file is ever replaced."""
    problem = fuse_problem()
    if problem:
        raise ClientError(f"FUSE is unavailable: {problem}")
    check_mountpoint(mountpoint)
    fuse = fuse_class()

    logging.basicConfig(format="client.py mount: %(message)s", level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="chord-mount-") as spool:
        # No client-side 429 retries inside FUSE calls: the mount waits writes out itself
        # (mount.errors, with its own patience) and a read should fail fast, not sleep.
        quiet = PeerApi(api.address, api.token, api.timeout, retries=0)
        fs = RingFs(quiet, clobber, cache_mib * MIB, spool=spool)
        fs.tree.refresh(force=True)  # an unreachable peer fails here, before mounting
        say(
            f"the ring (via {api.address}) is mounted at {mountpoint}; "
            f"Ctrl-C or 'fusermount3 -u {mountpoint}' unmounts"
        )
        try:
            fuse(
                fs,
                str(mountpoint),
                raw_fi=True,
                foreground=True,
                fsname="chord",
                subtype="chord",
                default_permissions=True,
                max_threads=16,
            )
        except RuntimeError as exc:
            # libfuse reports an unmount by signal (Ctrl-C, SIGTERM) as a failed loop.
            if not fs.mounted or os.path.ismount(mountpoint):
                raise ClientError(f"FUSE could not mount {mountpoint} (code {exc})") from None
    say(f"unmounted {mountpoint}")
    return 0
