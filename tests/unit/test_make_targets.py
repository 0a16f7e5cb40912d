"""Only ``make install`` installs: the targets that lint and test print no pip, npm or
apt-get command (``make -n`` shows what a target would run, running nothing)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALLERS = ("pip install", "npm ci", "npm install", "apt-get", "-m venv")
FAST_LAYERS = ["tests/unit", "tests/sim", "tests/property", "tests/storage"]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


def dry_run(*targets: str) -> str:
    done = subprocess.run(
        ["make", "-n", "--always-make", *targets],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


@pytest.mark.parametrize("target", ["lint", "mypy", "check", "test"])
def test_target_installs_nothing(target: str) -> None:
    commands = dry_run(target)
    assert "pytest" in commands or "mypy" in commands, commands
    assert [word for word in INSTALLERS if word in commands] == [], commands


def test_install_is_where_the_installers_are() -> None:
    """The same dry run does see them in ``make install`` (the check above can fail)."""
    commands = dry_run("install")
    assert "pip install" in commands and "apt-get" in commands and "npm" in commands


def test_check_runs_lint_and_the_fast_layers_only() -> None:
    commands = dry_run("check")
    assert "ruff check" in commands and "ruff format --check" in commands
    pytest_line = next(line for line in commands.splitlines() if "-m pytest" in line)
    assert pytest_line.split()[-len(FAST_LAYERS) :] == FAST_LAYERS
    assert '-m "not slow"' in pytest_line
