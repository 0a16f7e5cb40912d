"""The fast subset of the fault matrix (make test); the full one is make faults."""

from __future__ import annotations

import contextlib
import os
import random
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

BASE_SEED = int(
    os.environ.get("CHORD_TEST_SEED", "0").split(":")[0] or 0
) or random.SystemRandom().randrange(10**6)


@pytest.fixture
def seed() -> int:
    print(f"CHORD_TEST_SEED={BASE_SEED}")
    return BASE_SEED


@pytest.fixture(autouse=True)
def no_peer_left_behind(tmp_path: Path) -> Iterator[None]:
    """Every peer a scenario starts keeps its data under tmp_path: none may outlive it."""
    yield
    leftovers = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                text = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
                if "run_node.py" in text and str(tmp_path) in text:
                    leftovers.append(int(entry.name))
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"peer processes outlived the scenario (now killed): {leftovers}"
