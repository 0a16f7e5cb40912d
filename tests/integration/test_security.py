"""Security with real peer processes: a ring secret keeps out peers without it (one
clear start-up line), protected mode, admission of reachable addresses only, mutual TLS
from a ring CA, REST limits (429), and no secret or token in any log line or answer."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
import pytest

from config.settings import API_PORT_OFFSET
from devtools.launcher import ROOT, LocalRing, PeerProcess, free_port, wait_for
from proto import chord_pb2 as pb
from proto import chord_pb2_grpc as pb_grpc
from services.rpc.security import SECRET_METADATA_KEY, RingSecurity
from tests.integration.chordtest import Finished, random_host

pytestmark = pytest.mark.integration

SECRET = "ring-secret-0123456789abcdef"
WRONG_SECRET = "not-the-ring-secret-fedcba9876"
API_TOKEN = "api-token-5f0e8c1d"
ADMIN_TOKEN = "admin-token-9b7a6c5d"
STARTUP_SLACK = 8.0


def run(args: Sequence[str], data_dir: Path, env: dict[str, str] | None = None) -> Finished:
    """run_node.py to completion with extra environment (a hang fails the test)."""
    command = [sys.executable, str(ROOT / "run_node.py"), *args, "--no-menu"]
    command += ["--data-dir", str(data_dir)]
    started = time.monotonic()
    done = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=40,
        env={**os.environ, **(env or {})},
    )
    return Finished(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def error_line(done: Finished) -> str:
    lines = done.error_lines
    assert done.returncode != 0, done
    assert lines and lines[-1].startswith("run_node.py: error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[-1]


def request(
    peer: PeerProcess,
    method: str,
    path: str,
    token: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    wanted = dict(headers or {})
    if token is not None:
        wanted["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(peer.api_url + path, data=body, method=method, headers=wanted)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def multipart(name: str, content: bytes) -> tuple[bytes, dict[str, str]]:
    boundary = "----chord-security-test"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


# ------------------------------------------------------------------ ring secret


def test_ring_secret_keeps_others_out_and_nothing_leaks(
    tmp_path: Path, rng: random.Random, make_ring: Callable[..., LocalRing]
) -> None:
    ring = make_ring(env={"CHORD_RING_SECRET": SECRET}, security=RingSecurity(secret=SECRET))
    tokens = ["--api-token", API_TOKEN, "--admin-token", ADMIN_TOKEN, "--log-level", "debug"]
    first = ring.start_peer(random_host(rng), args=tokens)
    second = ring.start_peer(random_host(rng), join=first.address, args=tokens)
    ring.wait_ideal(timeout=30)

    bodies: list[bytes] = []
    # A peer without the secret, then one with a wrong one: a one-line start-up error.
    for env in ({}, {"CHORD_RING_SECRET": WRONG_SECRET}):
        host = random_host(rng)
        done = run(
            ["--host", host, "--port", str(free_port(host)), "--join", first.address],
            tmp_path / f"outsider{len(env)}",
            env={"CHORD_RING_SECRET": "", **env},
        )
        line = error_line(done)
        assert "requires a secret" in line and "--ring-secret" in line, line
        assert done.seconds < STARTUP_SLACK, f"took {done.seconds:.1f}s"
        bodies.append((done.stdout + done.stderr).encode())
    # A raw call with the wrong secret is refused.
    with grpc.insecure_channel(first.address) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            pb_grpc.ChordStub(channel).GetState(
                pb.Empty(), timeout=5, metadata=[(SECRET_METADATA_KEY, WRONG_SECRET)]
            )
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED

    # REST: every kind of answer, failures included.
    body, headers = multipart("leak-check.txt", b"hello")
    calls = [
        ("GET", "/status", None, None, {}),
        ("GET", "/metrics", None, None, {}),
        ("GET", "/openapi.json", None, None, {}),
        ("GET", "/", None, None, {}),
        ("GET", "/finger_table", None, None, {}),
        ("GET", "/show_files?scope=ring", None, None, {}),
        ("POST", "/upload_file", None, body, headers),  # no token: 401
        ("POST", "/upload_file", "wrong-token-123", body, headers),  # 401
        ("POST", "/upload_file", API_TOKEN, body, headers),  # 201
        ("GET", "/download_file?name=leak-check.txt", None, None, {}),
        ("GET", "/download_file?name=missing.txt", None, None, {}),  # 404
        ("POST", "/shutdown", API_TOKEN, None, {}),  # 403: not the admin token
        ("DELETE", "/delete_file?name=leak-check.txt", "wrong-token-123", None, {}),
        ("GET", "/no/such/route", None, None, {}),
    ]
    statuses = []
    for method, path, token, data, extra in calls:
        status, answer_headers, answer = request(first, method, path, token, data, extra)
        statuses.append(status)
        bodies.append(answer + json.dumps(answer_headers).encode())
    assert statuses[6:9] == [401, 401, 201] and statuses[11] == 403, statuses
    metrics = request(first, "GET", "/metrics")[2].decode()
    assert "UNAUTHENTICATED" in metrics  # refused calls are counted, by status
    ring.close()  # logs complete (graceful leave logged too)

    logs = [p.log_path.read_bytes() for p in (first, second)]
    for secret in (SECRET, WRONG_SECRET, API_TOKEN, ADMIN_TOKEN):
        for text in (*logs, *bodies):
            assert secret.encode() not in text, f"{secret!r} leaked"
    assert b"refused" in logs[0] and SECRET_METADATA_KEY.encode() in logs[0]


# ----------------------------------------------------------------- protected mode


def test_protected_mode_refuses_an_open_non_loopback_bind(tmp_path: Path) -> None:
    port = free_port()
    base = ["--host", "0.0.0.0", "--advertise-host", "127.0.0.1", "--port", str(port)]
    done = run(base, tmp_path / "open", env={"CHORD_RING_SECRET": ""})
    line = error_line(done)
    assert done.returncode == 2
    assert "ring_secret" in line and "--insecure" in line and "0.0.0.0" in line, line
    assert done.seconds < STARTUP_SLACK


@pytest.mark.parametrize("way", ["secret", "insecure"])
def test_a_secret_or_insecure_lets_it_start(
    way: str, tmp_path: Path, popen: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port("0.0.0.0")
    args = ["--host", "0.0.0.0", "--advertise-host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "CHORD_RING_SECRET": SECRET if way == "secret" else ""}
    if way == "insecure":
        args.append("--insecure")
    log = (tmp_path / "log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run_node.py"),
            *args,
            "--no-menu",
            "--data-dir",
            str(tmp_path / "d"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=env,
    )
    popen.append(process)

    def healthy() -> bool:
        assert process.poll() is None, (tmp_path / "log").read_text()
        with contextlib.suppress(OSError):
            url = f"http://127.0.0.1:{port + API_PORT_OFFSET}/health"
            with urllib.request.urlopen(url, timeout=1) as response:
                status: int = response.status
                return status == 200
        return False

    assert wait_for(healthy, 20), (tmp_path / "log").read_text()
    process.terminate()
    assert process.wait(timeout=15) == 0


# ----------------------------------------------------------------------- admission


def test_a_peer_advertising_an_address_nobody_listens_on_is_refused(
    tmp_path: Path, rng: random.Random, make_ring: Callable[..., LocalRing]
) -> None:
    ring = make_ring()
    seed = ring.start_peer(random_host(rng))
    host = random_host(rng)
    elsewhere = random_host(rng, taken=[host, seed.host])
    port = free_port(host)
    done = run(
        [
            "--host",
            host,
            "--advertise-host",
            elsewhere,
            "--port",
            str(port),
            "--join",
            seed.address,
            "--rpc-timeout",
            "1",
        ],
        tmp_path / "liar",
    )
    line = error_line(done)
    assert f"{elsewhere}:{port}" in line and "did not answer" in line, line
    # The exact reason crossed the wire (not just PERMISSION_DENIED's "permission-denied").
    assert "refused this peer (unreachable-address)" in line, line
    assert done.seconds < STARTUP_SLACK
    state = ring.state(seed)
    assert state is not None and state.predecessor is None and not state.successors


# ----------------------------------------------------------------------- REST limits


def test_mutating_requests_are_rate_limited(
    rng: random.Random, make_ring: Callable[..., LocalRing]
) -> None:
    peer = make_ring().start_peer(random_host(rng), args=["--rate-limit-per-minute", "3"])
    statuses = [request(peer, "DELETE", f"/delete_file?name=f{i}.txt")[0] for i in range(3)]
    assert 429 not in statuses, statuses
    status, headers, body = request(peer, "DELETE", "/delete_file?name=f.txt")
    assert status == 429
    assert int(headers["Retry-After"]) >= 1
    answer = json.loads(body)
    assert answer["error"] == "too-many-requests" and answer["detail"]
    assert request(peer, "GET", "/status")[0] == 200  # reads are not limited


def test_concurrent_transfers_per_client_are_limited(
    rng: random.Random, make_ring: Callable[..., LocalRing]
) -> None:
    host = random_host(rng)
    peer = make_ring().start_peer(host, args=["--max-transfers-per-client", "1", "--replicas", "1"])
    # Bigger than waitress' output buffer (16 MiB) plus the socket buffers, so a
    # download the client does not read stays in progress.
    body, headers = multipart("big.bin", os.urandom(40 << 20))
    assert request(peer, "POST", "/upload_file", body=body, headers=headers)[0] == 201
    slow = http.client.HTTPConnection(host, peer.api_port, timeout=10)
    try:
        slow.request("GET", "/download_file?name=big.bin")
        first = slow.getresponse()  # headers only: the body stays unread
        assert first.status == 200
        status, answer_headers, answer = request(peer, "GET", "/download_file?name=big.bin")
        assert status == 429 and answer_headers["Retry-After"] == "1"
        assert json.loads(answer)["error"] == "too-many-requests"
    finally:
        slow.close()

    def free_again() -> bool:
        return (
            request(peer, "GET", "/download_file?name=big.bin", headers={"Range": "bytes=0-9"})[0]
            == 206
        )

    assert wait_for(free_again, 15, interval=0.2)


# ------------------------------------------------------------------------- mTLS


def make_certificates(directory: Path) -> dict[str, Path]:
    """A throwaway ring CA with one peer certificate for 127.0.0.1, and a second CA
    with its own certificate (an outsider): openssl CLI, EC P-256, valid one day."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make test certificates")
    directory.mkdir(parents=True, exist_ok=True)
    ext = directory / "peer.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    files: dict[str, Path] = {}
    for ca in ("ring", "other"):
        ca_key, ca_cert = directory / f"{ca}-ca.key", directory / f"{ca}-ca.pem"
        key, csr, cert = (directory / f"{ca}-peer.{x}" for x in ("key", "csr", "pem"))
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        commands = [
            [
                "req",
                "-x509",
                *ec,
                "-keyout",
                ca_key,
                "-out",
                ca_cert,
                "-days",
                "1",
                "-subj",
                f"/CN={ca} CA",
            ],
            ["req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=peer"],
            [
                "x509",
                "-req",
                "-in",
                csr,
                "-CA",
                ca_cert,
                "-CAkey",
                ca_key,
                "-CAcreateserial",
                "-out",
                cert,
                "-days",
                "1",
                "-extfile",
                ext,
            ],
        ]
        for args in commands:
            subprocess.run([openssl, *map(str, args)], check=True, capture_output=True)
        files.update({f"{ca}_ca": ca_cert, f"{ca}_key": key, f"{ca}_cert": cert})
    return files


def test_mutual_tls_ring(tmp_path: Path, make_ring: Callable[..., LocalRing]) -> None:
    certs = make_certificates(tmp_path / "pki")
    tls_env = {
        "CHORD_TLS_CERT": str(certs["ring_cert"]),
        "CHORD_TLS_KEY": str(certs["ring_key"]),
        "CHORD_TLS_CA": str(certs["ring_ca"]),
    }
    security = RingSecurity.from_settings(
        __import__("config.settings").settings.load_settings({}, None, tls_env)
    )
    ring = make_ring(env=tls_env, security=security)
    first = ring.start_peer("127.0.0.1")
    ring.start_peer("127.0.0.1", join=first.address)
    ring.wait_ideal(timeout=30)

    # Plaintext to a TLS peer: no answer at all.
    with grpc.insecure_channel(first.address) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            pb_grpc.ChordStub(channel).Ping(pb.Empty(), timeout=3)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

    cases = {
        "no-certificate": {"CHORD_TLS_CERT": "", "CHORD_TLS_KEY": "", "CHORD_TLS_CA": ""},
        "foreign-ca": {
            "CHORD_TLS_CERT": str(certs["other_cert"]),
            "CHORD_TLS_KEY": str(certs["other_key"]),
            "CHORD_TLS_CA": str(certs["other_ca"]),
        },
        "foreign-cert": {  # trusts the ring CA, but its own certificate is not the ring's
            "CHORD_TLS_CERT": str(certs["other_cert"]),
            "CHORD_TLS_KEY": str(certs["other_key"]),
            "CHORD_TLS_CA": str(certs["ring_ca"]),
        },
    }
    for name, env in cases.items():
        done = run(
            [
                "--host",
                "127.0.0.1",
                "--port",
                str(free_port()),
                "--join",
                first.address,
                "--join-timeout",
                "3",
            ],
            tmp_path / name,
            env=env,
        )
        line = error_line(done)
        assert first.address in line, (name, line)
        assert done.seconds < 3 + STARTUP_SLACK, (name, done.seconds)
    assert ring.ideal_problems() == []
