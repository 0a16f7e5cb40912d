"""The protocol core stays pure: nothing under chord/ may reach the network, threads,
clocks, randomness, files or processes (see chord/__init__.py). Checked on the source
with ``ast``, so an import hidden inside a function is caught too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CHORD = Path(__file__).resolve().parents[2] / "chord"

FORBIDDEN = frozenset(
    {
        "grpc",
        "flask",
        "socket",
        "threading",
        "time",
        "random",
        "asyncio",
        "requests",
        "sqlite3",
        "subprocess",
        "os",
    }
)


def forbidden_imports(source: str, filename: str) -> list[str]:
    """``file:line: import name`` for every import of a forbidden top-level module."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            if name.split(".")[0] in FORBIDDEN:
                found.append(f"{filename}:{node.lineno}: imports {name}")
    return found


def chord_sources() -> list[Path]:
    return sorted(CHORD.rglob("*.py"))


def test_core_modules_are_all_scanned() -> None:
    names = {path.relative_to(CHORD).as_posix() for path in chord_sources()}
    expected = {
        "ids.py",
        "node_ref.py",
        "transport.py",
        "successors.py",
        "fingers.py",
        "lookup.py",
        "node.py",
        "invariants.py",
        "sim/network.py",
    }
    assert expected <= names


@pytest.mark.parametrize("path", chord_sources(), ids=lambda p: p.relative_to(CHORD).as_posix())
def test_core_module_imports_nothing_impure(path: Path) -> None:
    relative = path.relative_to(CHORD.parent).as_posix()
    assert forbidden_imports(path.read_text(encoding="utf-8"), relative) == []


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("import os\n", 1),
        ("import os.path\n", 1),
        ("from os import path\n", 1),
        ("import json, socket\n", 1),
        ("x = 1\ndef f():\n    import threading\n", 3),
        ("import time as clock\n", 1),
        ("from grpc.aio import server\n", 1),
        ("try:\n    pass\nexcept ImportError:\n    import random\n", 4),
    ],
)
def test_checker_catches_forbidden_imports(source: str, line: int) -> None:
    assert [f.split(":")[1] for f in forbidden_imports(source, "x.py")] == [str(line)]


@pytest.mark.parametrize(
    "source",
    [
        "import hashlib\n",
        "from dataclasses import dataclass\n",
        "from . import os\n",  # a sibling module that happens to share the name
        "from .time import Clock\n",
        "import ostruct\n",  # prefix only, not the module os
        "from chord.transport import Clock\n",
    ],
)
def test_checker_allows_pure_imports(source: str) -> None:
    assert forbidden_imports(source, "x.py") == []
