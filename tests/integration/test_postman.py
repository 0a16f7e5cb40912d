"""The Postman collection (docs/postman/) run by newman against a live 3-peer ring.

newman comes from package-lock.json (``make install`` runs ``npm ci``). The test skips
only when node itself is absent; node without newman means the setup did not run, which
is a failure. Every request's assertions must pass, every request of the selected
folders must have run, and all peers must still answer /health afterwards.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devtools.launcher import ROOT, LocalRing

pytestmark = pytest.mark.integration

POSTMAN = ROOT / "docs" / "postman"
COLLECTION = POSTMAN / "chord.postman_collection.json"
ENVIRONMENT = POSTMAN / "chord.postman_environment.json"
NEWMAN = ROOT / "node_modules" / ".bin" / "newman"
# In collection order; "Admin (destructive)" (POST /shutdown with the admin token) is left out.
FOLDERS = ("Ring", "Files", "Peer", "Errors", "Cleanup")
EXCLUDED = "Admin (destructive)"
API_TOKEN = "postman-api-token"
ADMIN_TOKEN = "postman-admin-token"


def folder_requests(collection: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    folders = {item["name"]: item for item in collection["item"]}
    missing = [name for name in (*names, EXCLUDED) if name not in folders]
    assert not missing, f"{COLLECTION.name} has no folder(s) {missing}"
    return [request["name"] for name in names for request in folders[name]["item"]]


def describe_failures(report: dict[str, Any]) -> str:
    lines = []
    for failure in report["run"].get("failures", []):
        error = failure.get("error", {})
        source = failure.get("source", {}).get("name", "?")
        parent = failure.get("parent", {}).get("name", "")
        test = error.get("test") or error.get("name", "error")
        where = f"{parent} / {source}" if parent and parent != source else source
        lines.append(f"- [{where}] {test}: {error.get('message', '')}")
    return "\n".join(lines)


def executed_requests(report: dict[str, Any]) -> list[str]:
    """Names of the requests run, in order. The JSON report has one entry per HTTP
    request, and a script's pm.sendRequest repeats its request's entry (same id)."""
    names: dict[str, str] = {}
    for execution in report["run"].get("executions", []):
        names.setdefault(execution["id"], execution["item"]["name"])
    return list(names.values())


def test_newman_runs_the_collection(make_ring: Callable[..., LocalRing], tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: newman cannot run the Postman collection")
    assert NEWMAN.exists(), (
        f"node is installed but {NEWMAN.relative_to(ROOT)} is missing: run `make install` "
        "(it runs `npm ci` from package-lock.json)"
    )
    collection = json.loads(COLLECTION.read_text())
    expected = folder_requests(collection, FOLDERS)

    ring = make_ring()
    args = ("--replicas", "3", "--api-token", API_TOKEN, "--admin-token", ADMIN_TOKEN)
    peers = ring.start_ring(3, args=args, timeout=30)

    report_path = tmp_path / "newman.json"
    command = [
        str(NEWMAN),
        "run",
        str(COLLECTION),
        "--environment",
        str(ENVIRONMENT),
        "--env-var",
        f"baseUrl={peers[0].api_url}",
        "--env-var",
        f"otherUrl={peers[1].api_url}",
        "--env-var",
        f"apiToken={API_TOKEN}",
        "--env-var",
        f"adminToken={ADMIN_TOKEN}",
        *(arg for folder in FOLDERS for arg in ("--folder", folder)),
        "--working-dir",
        str(ROOT),
        "--timeout-request",
        "15000",
        "--color",
        "off",
        "--reporters",
        "cli,json",
        "--reporter-json-export",
        str(report_path),
    ]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"newman still running after 120 s:\n{exc.stdout!r}")
    assert report_path.exists(), (
        f"newman wrote no report (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    )
    report = json.loads(report_path.read_text())
    stats = report["run"]["stats"]
    failures = describe_failures(report)
    logs = "\n".join(f"--- {p.address}\n{p.log_tail(10)}" for p in peers)
    assert done.returncode == 0 and stats["assertions"]["failed"] == 0 and not failures, (
        f"newman exit {done.returncode}, {stats['assertions']['failed']} of "
        f"{stats['assertions']['total']} assertions failed:\n{failures}\n"
        f"newman's output:\n{done.stdout}\n{done.stderr}\npeer logs:\n{logs}"
    )
    for kind in ("requests", "testScripts", "prerequestScripts"):
        assert stats[kind]["failed"] == 0, f"{kind}: {stats[kind]}\n{done.stdout[-3000:]}"

    executed = executed_requests(report)
    assert executed == expected, f"newman ran {executed}, expected {expected}"
    assert stats["assertions"]["total"] >= 2 * len(expected), stats["assertions"]

    for peer in peers:
        assert peer.running(), f"{peer.address} exited:\n{peer.log_tail()}"
        status, body = peer.get("/health")
        assert status == 200, f"{peer.address} /health after newman: {status} {body}"
