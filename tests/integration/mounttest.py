"""Helpers for the mount's integration tests: ``client.py mount`` as a subprocess that is
always unmounted and ended (pass or fail), REST reads from any peer to check what the
mount stored, and polling with deadlines."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import signal
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from clientlib.peer import PeerApi, parse_address
from devtools.launcher import PeerProcess, wait_for

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "mount-test-api-token"
MIB = 1 << 20


def needs(program: str) -> pytest.MarkDecorator:
    """Skip unless ``program`` (a Debian package's tool the tests drive) is installed."""
    return pytest.mark.skipif(
        shutil.which(program) is None,
        reason=f"{program} is not installed (make install adds the Debian package as root)",
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def api(peer: PeerProcess) -> str:
    return f"{peer.host}:{peer.api_port}"


def peer_api(peer: PeerProcess) -> PeerApi:
    return PeerApi(parse_address(api(peer)), TOKEN, 10.0)


def run(
    *command: str, check: bool = True, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=None if env is None else {**os.environ, **env},
    )
    if check:
        assert done.returncode == 0, (command, done.returncode, done.stdout, done.stderr)
    return done


def rest_get(peer: PeerProcess, name: str) -> tuple[int, bytes]:
    """``GET /download_file?name=`` on ``peer``'s REST API: (status, body)."""
    conn = http.client.HTTPConnection(peer.host, peer.api_port, timeout=30)
    try:
        conn.request("GET", "/download_file?" + urllib.parse.urlencode({"name": name}))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def rest_download(peer: PeerProcess, name: str) -> bytes:
    status, body = rest_get(peer, name)
    assert status == 200, (name, status, body[:300])
    return body


def eventually(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    assert wait_for(check, timeout, interval=0.1), f"{what} not within {timeout} s"


@dataclass
class Mount:
    path: Path
    process: subprocess.Popen[str]
    log: Path

    def stop(self) -> None:
        """Unmount and end the process, whatever state they are in."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if os.path.ismount(self.path):
            subprocess.run(["fusermount3", "-u", "-z", str(self.path)], timeout=10, check=False)


def start_mount(peer: PeerProcess, where: Path, *extra: str) -> Mount:
    """``client.py mount where`` via ``peer``; returns once the kernel shows the mount."""
    where.mkdir(parents=True, exist_ok=True)
    log = where.with_name(where.name + ".log")
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "client.py"),
                "mount",
                str(where),
                "--node",
                api(peer),
                "--token",
                TOKEN,
                *extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )
    mount = Mount(where, process, log)
    if not wait_for(lambda: os.path.ismount(where) or process.poll() is not None, 20):
        mount.stop()
        pytest.fail(f"not mounted after 20 s:\n{log.read_text()}")
    if process.poll() is not None:
        pytest.fail(f"mount exited with {process.returncode}:\n{log.read_text()}")
    return mount
