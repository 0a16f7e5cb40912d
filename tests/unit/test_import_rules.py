"""Each package imports only what its ``__init__`` docstring says it may: an allowlist per
package, read from the source with ``ast`` (imports inside functions included), so a
new dependency is a decision written down here, not an accident.

chord/ is the pure protocol core: its allowlist is the standard library's pure modules
(no sockets, threads, clocks, randomness, files or processes) and chord/ itself.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What this repository's own modules are called (everything else is the standard library
# or a third-party distribution).
FIRST_PARTY = frozenset(
    {"chord", "services", "config", "clientlib", "devtools", "proto", "faults", "bench"}
    | {"tests", "server", "client", "run_node"}
)

# The standard library modules that compute and nothing else: no I/O, threads, clocks,
# randomness or processes. (json only turns values into text and back.)
PURE_STDLIB = frozenset(
    {
        "__future__",
        "abc",
        "bisect",
        "collections",
        "contextlib",
        "copy",
        "dataclasses",
        "enum",
        "functools",
        "hashlib",
        "heapq",
        "itertools",
        "json",
        "math",
        "numbers",
        "operator",
        "re",
        "statistics",
        "string",
        "struct",
        "types",
        "typing",
        "unicodedata",
    }
)


@dataclass(frozen=True)
class Rule:
    """What the modules of one package may import."""

    first_party: frozenset[str]  # module prefixes of this repository
    third_party: frozenset[str] = frozenset()  # top-level names of installed distributions
    stdlib: frozenset[str] | None = None  # None: any standard library module

    def allows(self, module: str) -> bool:
        top = module.split(".")[0]
        if top in FIRST_PARTY:
            return any(module == p or module.startswith(p + ".") for p in self.first_party)
        if top in sys.stdlib_module_names:
            return self.stdlib is None or top in self.stdlib
        return top in self.third_party


def rule(
    *first_party: str, third_party: tuple[str, ...] = (), stdlib: frozenset[str] | None = None
) -> Rule:
    return Rule(frozenset(first_party), frozenset(third_party), stdlib)


# The longest matching package decides. Every package's own modules are allowed to it.
# Kept as a table (fmt: skip below): one package's whole rule reads in two or three lines.
RULES: dict[str, Rule] = {
    "chord": rule("chord", stdlib=PURE_STDLIB),
    "config": rule("config", "devtools.fault_rules", third_party=("yaml",)),
    "clientlib": rule("clientlib", "chord.names", third_party=("tqdm", "mfusepy")),
    "services": rule("services"),
    "services.common": rule("services.common"),
    "services.storage": rule(
        "services.storage", "chord.ids", "chord.names", "chord.replication"
    ),
    "services.rpc": rule(
        "services.rpc", "services.common", "chord", "config", "proto",
        third_party=("grpc", "grpc_health", "grpc_reflection"),
    ),
    "services.files": rule(
        "services.files", "services.rpc", "services.storage", "services.common", "chord",
        "proto", third_party=("grpc",),
    ),
    "services.rest": rule(
        "services.rest", "services.files", "services.storage", "services.common",
        "services.dav", "services.peer.overview", "services.rpc.transport", "chord",
        third_party=("flask", "werkzeug", "prometheus_client", "yaml"),
    ),
    "services.dav": rule(
        "services.dav", "services.files.client", "services.peer.overview",
        "services.rest.auth", "services.rest.context", "services.rest.errors",
        "services.rest.limits", "services.rest.origin", "chord",
        third_party=("wsgidav", "werkzeug"),
    ),
    "services.web": rule(
        "services.web", "services.rest.errors", "services.dav.options",
        third_party=("h11", "flask", "werkzeug"),
    ),
    "services.menu": rule(
        "services.menu", "services.files", "services.peer.overview", "services.common",
        "chord", "clientlib.progress", third_party=("tabulate",),
    ),
    "services.peer": rule(
        "services", "chord", "config", "proto", "devtools.fault_injection",
        third_party=("grpc",),
    ),
    "devtools": rule(
        "devtools", "chord", "config", "services.rpc", "services.storage",
        third_party=("grpc", "tabulate"),
    ),
    "devtools.sim": rule("devtools.sim", "chord.sim", third_party=("tabulate", "matplotlib")),
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def rule_for(module: str) -> Rule | None:
    packages = [p for p in RULES if module == p or module.startswith(p + ".")]
    return RULES[max(packages, key=len)] if packages else None


def imports(source: str, module: str, is_package: bool) -> Iterator[tuple[int, list[str]]]:
    """(line, names) per import: each name a way to read it (``from a import b`` may
    import module a.b or name b of a: either being allowed is enough)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, [alias.name]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                yield node.lineno, [f"{base}.{alias.name}", base]


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    found = rule_for(module)
    assert found is not None, f"no import rule covers {module}"
    return [
        f"{module}:{line}: imports {names[-1] if len(names) > 1 else names[0]}"
        for line, names in imports(source, module, is_package)
        if not any(found.allows(name) for name in names if name)
    ]


def checked_sources() -> list[Path]:
    roots = {name.split(".")[0] for name in RULES}
    return sorted(p for root in roots for p in (ROOT / root).rglob("*.py"))


@pytest.mark.parametrize("path", checked_sources(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_module_imports_only_what_its_package_allows(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert violations(source, module_name(path), path.name == "__init__.py") == []


def test_every_package_has_a_rule_and_a_docstring() -> None:
    for init in (p for p in checked_sources() if p.name == "__init__.py"):
        module = module_name(init)
        assert rule_for(module) is not None, module
        assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), module


def test_core_modules_are_all_scanned() -> None:
    names = {module_name(path) for path in checked_sources()}
    assert {"chord.ids", "chord.node", "chord.lookup", "chord.sim.network"} <= names


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
        ("import multiprocessing\n", 1),
        ("from services.rpc import transport\n", 1),
        ("from ...services import rpc\n", 1),  # relative, out of chord/
        ("import tabulate\n", 1),
    ],
)
def test_chord_rule_catches_impure_imports(source: str, line: int) -> None:
    assert [v.split(":")[1] for v in violations(source, "chord.sim.x")] == [str(line)]


@pytest.mark.parametrize(
    "source",
    [
        "import hashlib\n",
        "from dataclasses import dataclass\n",
        "from collections.abc import Iterable\n",
        "from . import network\n",
        "from .network import SimNetwork\n",
        "from chord.transport import Clock\n",
        "from ..ids import Ring\n",
    ],
)
def test_chord_rule_allows_pure_imports(source: str) -> None:
    assert violations(source, "chord.sim.x") == []


def test_other_packages_follow_their_own_rules() -> None:
    assert violations("import grpc\n", "services.storage.engine") != []
    assert violations("from services.rest import app\n", "services.files.client") != []
    assert violations("from services.peer import overview\n", "services.rest.ring") == []
    assert violations("from services.peer import peer\n", "services.rest.ring") != []
    assert violations("import services.rest\n", "config.settings") != []
    assert violations("from devtools.fault_rules import parse_rules\n", "config.x") == []
