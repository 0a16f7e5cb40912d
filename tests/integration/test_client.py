"""client.py against a live 3-peer ring: every command, its output and its exit code.

The client runs as a subprocess, as a user runs it. One ring serves the whole module
(files uploaded by one test are named apart from the others'); the shutdown test starts
a fourth peer of its own so the ring stays whole.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from clientlib.download import Remote
from devtools.launcher import LocalRing, PeerProcess, free_port, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
API_TOKEN = "client-test-api-token"
ADMIN_TOKEN = "client-test-admin-token"
BIG = random.Random(5).randbytes(5 * 1024 * 1024 + 4321)
BIG_SHA = hashlib.sha256(BIG).hexdigest()


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRing]:
    env = {"CHORD_API_TOKEN": API_TOKEN, "CHORD_ADMIN_TOKEN": ADMIN_TOKEN}
    with LocalRing(tmp_path_factory.mktemp("client-ring"), successors=4, env=env) as local:
        local.start_ring(3, timeout=30)
        yield local


def api(peer: PeerProcess) -> str:
    return f"{peer.host}:{peer.api_port}"


def client(
    ring: LocalRing,
    *args: str,
    node: str | None = None,
    token: str | None = API_TOKEN,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "CHORD_TOKEN": token} if token else {"PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, str(ROOT / "client.py"), "--node", node or api(ring.peers[0]), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd or ROOT,
    )


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def failed(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The one-line error message of a failed run."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 or code == 2, result.stderr
    return lines[-1]


@pytest.fixture(scope="module")
def big(ring: LocalRing, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 5 MiB file uploaded once for the download tests."""
    path = tmp_path_factory.mktemp("up") / "big.bin"
    path.write_bytes(BIG)
    stored = ok_json(client(ring, "--json", "upload", str(path), "--name", "dl/big.bin"))
    assert stored["sha256"] == BIG_SHA and stored["size"] == len(BIG)
    return dict(stored)


# -------------------------------------------------------------------------- ring commands
@pytest.mark.parametrize(
    ("command", "table_text", "json_key"),
    [
        (["health"], "ok", "status"),
        (["status"], "successor 1", "status"),
        (["ring"], "3 peers", "peers"),
        (["finger-table"], "gRPC address", "fingers"),
        (["fingers", "--all"], "gRPC address", "fingers"),
        (["lookup", "report.pdf"], "hops", "owner"),
        (["ls"], "sha256", "files"),
        (["ls", "--all"], "on 3 peers", "files"),
        (["degraded"], "wanted", "files"),
    ],
)
def test_read_commands_print_a_table_or_json(
    ring: LocalRing, command: list[str], table_text: str, json_key: str
) -> None:
    table = client(ring, *command)
    assert table.returncode == 0, table.stderr
    assert table_text in table.stdout
    assert json_key in ok_json(client(ring, *command, "--json"))


def test_ring_lists_every_peer_reachable(ring: LocalRing) -> None:
    peers = ok_json(client(ring, "ring", "--json", node=api(ring.peers[1])))["peers"]
    assert sorted(p["api"] for p in peers) == sorted(api(p) for p in ring.peers[:3])
    assert all(p["reachable"] for p in peers)


# ------------------------------------------------------------------------- file commands
def test_upload_search_ls_download_rm(ring: LocalRing, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("hello ring\n" * 1000)
    table = client(ring, "upload", str(source), "--name", "docs/файл.txt", "--replicas", "2")
    assert table.returncode == 0, table.stderr
    assert "docs/файл.txt" in table.stdout and "holders" in table.stdout

    found = ok_json(client(ring, "search", "docs/файл.txt", "--json"))
    assert found["found"] and found["size"] == source.stat().st_size
    assert 1 + len(found["replicas"]) == 2
    assert "sha256" in client(ring, "search", "docs/файл.txt").stdout

    listed = ok_json(client(ring, "ls", "--all", "--json", node=api(ring.peers[2])))
    assert "docs/файл.txt" in [f["name"] for f in listed["files"]]

    saved = ok_json(client(ring, "--json", "download", "docs/файл.txt", str(tmp_path / "copy")))
    assert (tmp_path / "copy").read_bytes() == source.read_bytes()
    assert saved["resumed_from"] == 0
    default_dest = client(ring, "download", "docs/файл.txt", cwd=tmp_path)  # ./файл.txt
    assert default_dest.returncode == 0, default_dest.stderr
    assert (tmp_path / "файл.txt").read_bytes() == source.read_bytes()

    assert "deleted docs/файл.txt" in client(ring, "rm", "docs/файл.txt").stdout
    assert failed(client(ring, "search", "docs/файл.txt")).endswith("not found in the ring")
    assert "not-found" in failed(client(ring, "rm", "docs/файл.txt"))


def test_big_upload_then_download_is_byte_identical(
    ring: LocalRing, big: dict[str, Any], tmp_path: Path
) -> None:
    node = api(ring.peers[1])
    run = client(ring, "download", "dl/big.bin", str(tmp_path), "--json", "--progress", node=node)
    saved = ok_json(run)
    assert saved["path"] == str(tmp_path / "big.bin") and saved["sha256"] == BIG_SHA
    assert (tmp_path / "big.bin").read_bytes() == BIG
    assert "100%" in run.stderr  # the tqdm bar, on stderr only when asked (not a TTY here)
    quiet = client(ring, "download", "dl/big.bin", str(tmp_path / "quiet.bin"), node=node)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_parallel_download_uses_several_holders(
    ring: LocalRing, big: dict[str, Any], tmp_path: Path
) -> None:
    dest = tmp_path / "par.bin"
    saved = ok_json(client(ring, "--json", "download", "dl/big.bin", str(dest), "--parallel", "3"))
    assert dest.read_bytes() == BIG
    assert len(saved["sources"]) >= 2 and sum(saved["sources"].values()) == len(BIG)
    assert not list(tmp_path.glob("*.part*"))


def write_partial(dest: Path, prefix: bytes, sha256: str = BIG_SHA) -> None:
    """What an interrupted run leaves: ``<dest>.part`` and its sidecar."""
    dest.with_name(dest.name + ".part").write_bytes(prefix)
    record = Remote("dl/big.bin", len(BIG), sha256, None).record()
    found = json.loads(Path(dest.with_name(dest.name + ".search")).read_text())
    record["version"] = found["version"]
    dest.with_name(dest.name + ".part.json").write_text(json.dumps(record))


@pytest.mark.parametrize("parallel", ["1", "3"])
def test_an_interrupted_download_resumes(
    ring: LocalRing, big: dict[str, Any], tmp_path: Path, parallel: str
) -> None:
    dest = tmp_path / "resumed.bin"
    dest.with_name("resumed.bin.search").write_text(json.dumps(big))
    write_partial(dest, BIG[:1_234_567])
    saved = ok_json(
        client(ring, "--json", "download", "dl/big.bin", str(dest), "--parallel", parallel)
    )
    assert saved["resumed_from"] == 1_234_567
    assert sum(saved["sources"].values()) == len(BIG) - 1_234_567
    assert dest.read_bytes() == BIG
    assert not dest.with_name("resumed.bin.part").exists()
    assert not dest.with_name("resumed.bin.part.json").exists()


def test_a_part_of_another_version_starts_over(
    ring: LocalRing, big: dict[str, Any], tmp_path: Path
) -> None:
    dest = tmp_path / "again.bin"
    dest.with_name("again.bin.search").write_text(json.dumps(big))
    write_partial(dest, b"old version bytes", sha256="0" * 64)
    saved = ok_json(client(ring, "--json", "download", "dl/big.bin", str(dest)))
    assert saved["resumed_from"] == 0 and dest.read_bytes() == BIG


def test_a_checksum_mismatch_removes_the_part(
    ring: LocalRing, big: dict[str, Any], tmp_path: Path
) -> None:
    dest = tmp_path / "bad.bin"
    dest.with_name("bad.bin.search").write_text(json.dumps(big))
    write_partial(dest, b"\0" * 100_000)  # the right version, the wrong bytes
    message = failed(client(ring, "download", "dl/big.bin", str(dest)))
    assert "checksum mismatch" in message and "removed" in message
    assert not dest.exists()
    assert not dest.with_name("bad.bin.part").exists()
    assert not dest.with_name("bad.bin.part.json").exists()


def test_upload_conflict_and_overwrite(ring: LocalRing, tmp_path: Path) -> None:
    source = tmp_path / "v.txt"
    source.write_text("one")
    ok_json(client(ring, "--json", "upload", str(source), "--name", "conflict.txt"))
    source.write_text("two")
    assert "409 conflict" in failed(client(ring, "upload", str(source), "--name", "conflict.txt"))
    stored = ok_json(
        client(ring, "--json", "upload", str(source), "--name", "conflict.txt", "--overwrite")
    )
    assert stored["sha256"] == hashlib.sha256(b"two").hexdigest()


# --------------------------------------------------------------- errors and exit codes
@pytest.mark.parametrize(
    "args",
    [
        [],
        ["nonsense-command"],
        ["download"],
        ["download", "x", "--parallel", "0"],
        ["--timeout", "-1", "health"],
        ["--node", "not an address", "health"],
        ["lookup"],
        ["upload", "f", "--replicas", "many"],
    ],
)
def test_usage_errors_exit_2(ring: LocalRing, args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "client.py"), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert "usage:" in result.stderr and "Traceback" not in result.stderr


def test_not_found_exits_1(ring: LocalRing, tmp_path: Path) -> None:
    assert "no file named 'absent.bin'" in failed(
        client(ring, "download", "absent.bin", str(tmp_path / "x"))
    )
    assert not list(tmp_path.iterdir())
    assert "not found" in failed(client(ring, "search", "absent.bin"))


def test_unreachable_peer_is_one_line(ring: LocalRing) -> None:
    port = free_port()
    for command in (["health"], ["ls"], ["download", "a"], ["upload", str(ROOT / "client.py")]):
        message = failed(client(ring, *command, node=f"127.0.0.1:{port}"))
        assert message == (
            f"client.py: error: cannot reach the peer at 127.0.0.1:{port}: "
            "connection refused (is a peer's REST API listening there?)"
        )


def test_http_errors_show_the_apis_detail(ring: LocalRing, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("a")
    assert "401 unauthorized" in failed(client(ring, "upload", str(source), token=None))
    assert "401 unauthorized" in failed(client(ring, "upload", str(source), token="wrong-token"))
    # Refused before it is sent (the same rules as the peer's): a usage error.
    message = failed(client(ring, "upload", str(source), "--name", "../escape"), code=2)
    assert "invalid file name '../escape'" in message
    assert "400 bad-request" in failed(client(ring, "lookup", "--key", "xyz"))


def test_local_file_problems(ring: LocalRing, big: dict[str, Any], tmp_path: Path) -> None:
    assert "cannot read" in failed(client(ring, "upload", str(tmp_path / "missing")))
    (tmp_path / "big.bin").write_bytes(b"mine")
    assert "use --force" in failed(client(ring, "download", "dl/big.bin", str(tmp_path)))
    assert (tmp_path / "big.bin").read_bytes() == b"mine"
    ok_json(client(ring, "--json", "download", "dl/big.bin", str(tmp_path), "--force"))
    assert (tmp_path / "big.bin").read_bytes() == BIG


# ------------------------------------------------------------------ refused names
REFUSED = {
    "bidi override": ("evil\u202egnp.exe", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    "zero width": ("zero\u200bwidth.txt", "U+200B ZERO WIDTH SPACE"),
    "only spaces": ("docs/   /x.txt", "only of dots and spaces"),
    "backslash": ("a\\b.txt", "'\\'"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_names_are_usage_errors_and_send_nothing(
    ring: LocalRing, tmp_path: Path, case: str
) -> None:
    name, says = REFUSED[case]
    source = tmp_path / "plain.txt"
    source.write_text("x")
    for command in (
        ["upload", str(source), "--name", name],
        ["download", name],
        ["search", name],
        ["rm", name],
    ):
        message = failed(client(ring, *command, cwd=tmp_path), code=2)
        assert message.startswith("client.py: error: invalid file name") and says in message
    # A local file whose own name the ring refuses: named by --name, or refused.
    odd = tmp_path / (name if "/" not in name else "   ")
    odd.write_text("odd")
    assert "give --name" in failed(client(ring, "upload", str(odd)), code=2)
    names = [f["name"] for f in ok_json(client(ring, "ls", "--all", "--json"))["files"]]
    assert name not in names and not list(tmp_path.glob("*.part*"))


# ------------------------------------------------------------ download to DIR/
def test_download_into_a_directory_given_with_a_slash(
    ring: LocalRing, big: dict[str, Any], tmp_path: Path
) -> None:
    into = tmp_path / "into"
    into.mkdir()
    saved = ok_json(client(ring, "--json", "download", "dl/big.bin", f"{into}/"))
    assert saved["path"] == str(into / "big.bin") and (into / "big.bin").read_bytes() == BIG
    missing = tmp_path / "newdir"
    message = failed(client(ring, "download", "dl/big.bin", f"{missing}/"))
    assert message == f"client.py: error: cannot save 'dl/big.bin' to {missing}/: no such directory"
    assert not missing.exists() and not list(tmp_path.glob("newdir*"))


# ------------------------------------------------------------------ 429 retries
RATE = 30  # writes per minute: one token every 2 s once the bucket is empty


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerProcess]:
    """A one-peer ring with a low write rate, apart from the module's ring."""
    env = {"CHORD_API_TOKEN": API_TOKEN}
    with LocalRing(tmp_path_factory.mktemp("limited-ring"), env=env) as local:
        yield local.start_ring(1, args=("--rate-limit-per-minute", str(RATE)))[0]


def drain_the_bucket(peer: PeerProcess) -> None:
    """Spend every write token this client has (deletes of nothing: each costs one)."""
    conn = http.client.HTTPConnection(peer.host, peer.api_port, timeout=10)
    try:
        while True:
            conn.request("DELETE", "/delete_file?name=nothing.txt")
            response = conn.getresponse()
            response.read()
            if response.status == 429:
                return
    finally:
        conn.close()


def test_a_429_is_waited_out_and_retried(
    ring: LocalRing, limited: PeerProcess, tmp_path: Path
) -> None:
    source = tmp_path / "rated.bin"
    source.write_bytes(BIG)
    node = api(limited)
    drain_the_bucket(limited)
    up = client(ring, "--json", "upload", str(source), node=node)
    assert ok_json(up)["sha256"] == BIG_SHA
    assert "429 too-many-requests" in up.stderr and "retrying in 2 s (retry 1 of 5)" in up.stderr
    drain_the_bucket(limited)
    gone = client(ring, "rm", "rated.bin", node=node)
    assert gone.returncode == 0 and "deleted rated.bin" in gone.stdout
    assert "retrying in" in gone.stderr


class BusyProxy(ThreadingHTTPServer):
    """Forwards to a peer, but answers the first ``busy`` downloads 429 first."""

    def __init__(self, target: PeerProcess, busy: int) -> None:
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.target, self.busy, self.refused = target, busy, 0


class ProxyHandler(BaseHTTPRequestHandler):
    server: BusyProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/download_file") and self.server.busy > self.server.refused:
            self.server.refused += 1
            body = b'{"error": "too-many-requests", "detail": "busy proxy"}'
            self.send_response(429)
            for key, value in (
                ("Retry-After", "1"),
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
            ):
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
            return
        target = self.server.target
        conn = http.client.HTTPConnection(target.host, target.api_port, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            conn.request("GET", self.path, headers=headers)
            answer = conn.getresponse()
            body = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("connection", "transfer-encoding"):
                    self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        finally:
            conn.close()


def test_a_429_on_a_download_is_retried(
    ring: LocalRing, big: dict[str, Any], tmp_path: Path
) -> None:
    proxy = BusyProxy(ring.peers[0], busy=2)
    threading.Thread(target=proxy.serve_forever, args=(0.05,), daemon=True).start()
    try:
        node = f"127.0.0.1:{proxy.server_address[1]}"
        run = client(ring, "--json", "download", "dl/big.bin", str(tmp_path / "b.bin"), node=node)
        assert ok_json(run)["sha256"] == BIG_SHA and (tmp_path / "b.bin").read_bytes() == BIG
        assert proxy.refused == 2 and run.stderr.count("retrying in 1 s") == 2
    finally:
        proxy.shutdown()
        proxy.server_close()


# ---------------------------------------------------------------------------- shutdown
def test_shutdown_needs_the_admin_token(ring: LocalRing) -> None:
    target = ring.peers[2]
    assert "401" in failed(client(ring, "shutdown", node=api(target), token=None))
    assert "403 forbidden" in failed(client(ring, "shutdown", node=api(target)))  # API token
    assert "401" in failed(client(ring, "shutdown", node=api(target), token="not-the-admin"))
    assert target.running() and target.get("/health")[0] == 200


def test_shutdown_with_the_admin_token_makes_the_peer_leave(ring: LocalRing) -> None:
    extra = ring.start_peer(join=ring.peers[0].address)
    answer = ok_json(client(ring, "--json", "shutdown", node=api(extra), token=ADMIN_TOKEN))
    assert answer["status"] == "leaving"
    assert wait_for(lambda: not extra.running(), timeout=30)
    assert extra.process.returncode == 0
    assert client(ring, "health").returncode == 0
