"""Fixtures for the container tests: podman made ready once per session, the image built
once, and every run's containers, volumes, networks and namespaces removed at the end,
pass or fail.

Where the tests cannot run (not root, no podman and nothing to install it with, or the
install failed), they are deselected at collection and the run's summary says why in one
line, rather than one skip line per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.containers.containertest import Run, build_image, engine_unavailable, sweep_killed_runs

HERE = Path(__file__).resolve().parent
_not_run: list[str] = []  # the reason, once the container tests were deselected


@pytest.hookimpl(trylast=True)  # after -k / -m have deselected what they deselect
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if HERE in Path(item.path).parents]
    if not ours:
        return
    reason = engine_unavailable()  # may install podman first (a minute or two, once)
    if reason:
        items[:] = [item for item in items if item not in ours]
        config.hook.pytest_deselected(items=ours)
        _not_run.append(f"{len(ours)} {reason}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _not_run:
        terminalreporter.write_line(f"tests/containers: {line}")


@pytest.fixture(scope="session")
def run() -> Iterator[Run]:
    sweep_killed_runs()
    this = Run()
    try:
        yield this
    finally:
        this.cleanup()
        leftovers = this.cleanup()  # a second pass finds nothing unless removal failed
        assert not leftovers, f"left behind by this run: {leftovers}"


@pytest.fixture(scope="session")
def image(run: Run) -> str:
    """The image ID of the repository's Dockerfile, built as users build it."""
    image_id, seconds = build_image(run)
    print(f"image built in {seconds:.1f}s")
    return image_id
