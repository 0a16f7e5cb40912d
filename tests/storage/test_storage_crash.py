"""Crash safety: a peer process killed with SIGKILL at chosen points of a write.

The child signals "ready" on stdout once it reached the crash point and then blocks (or
keeps writing); the test kills it, reopens the data dir and checks that nothing partial is
visible. No sleeps: the handshake is a pipe read with a deadline.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.storage import StorageEngine
from tests.storage.storage_helpers import CS, blob_files, payload, read_all, sha, tmp_files

REPO = Path(__file__).resolve().parents[2]
KEPT = payload(100_000, seed=1)

CHILD = r"""
import random, sys
from pathlib import Path
from services.storage import StorageEngine
from services.storage.index import Index

data_dir, mode, chunk = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
engine = StorageEngine(data_dir, chunk_size=chunk)
engine.put_bytes("kept", 1, 1, random.Random(1).randbytes(100_000), role="primary")

def ready_then_hang(*_args):
    print("ready", flush=True)
    sys.stdin.read()  # the parent kills us while we wait here

if mode == "before-insert":   # blob renamed into blobs/, record not yet inserted
    Index.put = ready_then_hang
elif mode == "in-transaction":  # record inserted inside an open sqlite transaction
    Index.heal_sha = ready_then_hang

writer = engine.writer("partial", 2, 1, role="primary")
writer.write(b"x" * (3 * chunk + 17))
if mode == "mid-write":
    ready_then_hang()
elif mode == "streaming":
    print("ready", flush=True)
    for _ in range(1000):  # bounded, in case the kill never came
        writer.write(b"y" * chunk)
    sys.stdin.read()
writer.commit()
"""


def wait_ready(proc: subprocess.Popen[bytes], deadline: float) -> None:
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    buffer = b""
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not selector.select(remaining):
            pytest.fail("child never reached its crash point")
        more = os.read(proc.stdout.fileno(), 100)
        if not more:
            stderr = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"child exited early ({proc.wait()}): {stderr}")
        buffer += more
    assert buffer == b"ready\n"


def crash_child(data_dir: Path, mode: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), mode, str(CS)],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        try:
            wait_ready(proc, time.monotonic() + 30)
        finally:
            proc.kill()  # SIGKILL: no cleanup, no atexit, no finally blocks in the child
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("mode", ["mid-write", "streaming", "before-insert", "in-transaction"])
def test_kill_during_write_leaves_nothing_partial(data_dir: Path, mode: str) -> None:
    crash_child(data_dir, mode)
    if mode in ("mid-write", "streaming"):
        assert tmp_files(data_dir), "the crash should have left a tmp file behind"
    else:
        assert len(blob_files(data_dir)) == 2, "the crash should have left an orphan blob"
    with StorageEngine(data_dir, chunk_size=CS) as engine:  # index opens cleanly
        assert engine.get("partial") is None
        assert tmp_files(data_dir) == []
        assert blob_files(data_dir) == {sha(KEPT): len(KEPT)}  # no orphans
        kept = engine.get("kept")
        assert kept is not None and not kept.damaged
        assert read_all(engine, kept) == KEPT
        assert engine.usage() == (len(KEPT), None)
        # The name is free for a real write after recovery.
        record = engine.put_bytes("partial", 2, 1, b"whole", role="primary")
        assert read_all(engine, record) == b"whole"
