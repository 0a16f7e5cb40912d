"""Fixtures for tests that start real peer processes.

* ``seed`` / ``rng``: one base seed per session (``CHORD_TEST_SEED`` replays a run),
  combined with the test's name so each test is reproducible on its own.
* ``make_ring``: LocalRing factory; every ring it made is closed at teardown, pass or fail.
* ``popen``: for peers started by hand; each is killed at teardown if still running.
* A session guard fails the run if any run_node.py started under this session's
  temporary directory outlives the tests (and kills it).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.launcher import LocalRing

BASE_SEED = os.environ.get("CHORD_TEST_SEED") or str(random.SystemRandom().randrange(10**9))


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> str:
    """Named in assertion messages (and printed, so pytest shows it with a failure's
    captured output): rerun with CHORD_TEST_SEED=<the part before the colon>."""
    print(f"CHORD_TEST_SEED={BASE_SEED}")
    return f"{BASE_SEED}:{request.node.name}"


@pytest.fixture
def rng(seed: str) -> random.Random:
    return random.Random(seed)


@pytest.fixture
def make_ring(tmp_path: Path) -> Iterator[Callable[..., LocalRing]]:
    rings: list[LocalRing] = []

    def make(**options: Any) -> LocalRing:
        ring = LocalRing(tmp_path / f"ring{len(rings)}", **options)
        rings.append(ring)
        return ring

    yield make
    failures: list[BaseException] = []
    for ring in rings:  # close every ring even if closing one of them fails
        try:
            ring.close()
        except Exception as exc:
            failures.append(exc)
    if failures:
        raise failures[0]


@pytest.fixture
def popen() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Append every hand-started process; leftovers are killed at teardown."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _leftover_peers(marker: str) -> list[int]:
    """PIDs of run_node.py processes whose command line mentions ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            text = b" ".join(argv).decode(errors="replace")
            if "run_node.py" in text and marker in text:
                found.append(int(entry.name))
    return found


@pytest.fixture(scope="session", autouse=True)
def no_peer_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every peer these tests start keeps its data dir under the session's base temp
    dir, so any survivor is found by that path (and only ours are)."""
    # With the separator: "pytest-16" must not match another session's "pytest-163".
    base = os.path.join(str(tmp_path_factory.getbasetemp()), "")
    yield
    leftovers = _leftover_peers(base)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"peer processes outlived the tests (now killed): {leftovers}"
