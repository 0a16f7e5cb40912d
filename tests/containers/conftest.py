"""Fixtures for the container tests: podman made ready once per session (or every test
skipped with one reason), the image built once, and every run's containers, volumes,
networks and namespaces removed at the end, pass or fail."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from containertest import Run, build_image, engine_unavailable, sweep_killed_runs

# The first test may install podman and make the base image first (about two minutes on a
# new machine); the flows themselves take well under a minute each.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="session")
def run() -> Iterator[Run]:
    reason = engine_unavailable()
    if reason:
        pytest.skip(reason)
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
