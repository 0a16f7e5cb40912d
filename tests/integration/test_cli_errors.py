"""run_node.py refuses bad input quickly, with one clear line on stderr and a
non-zero exit: unreachable or non-Chord seeds, busy ports, malformed addresses,
an ID collision, and a ring with a different number of identifier bits."""

from __future__ import annotations

import contextlib
import http.server
import random
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chord.ids import Ring
from config.settings import API_PORT_OFFSET
from devtools.launcher import LocalRing, PeerProcess, free_port, port_is_free
from tests.integration.chordtest import Finished, random_address, random_host, run_node, seeded_port

pytestmark = pytest.mark.integration

# Python and grpc take ~0.5 s to start here; on a busy 2-core CI runner allow more.
STARTUP_SLACK = 6.0


def one_error_line(done: Finished) -> str:
    """The single 'run_node.py: error: ...' line (argparse may print its usage line
    first); nothing else on stderr, no traceback."""
    lines = done.error_lines
    errors = [line for line in lines if line.startswith("run_node.py: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], f"stderr: {done.stderr!r}"
    assert len(lines) == 1 or (len(lines) == 2 and lines[0].startswith("usage:")), (
        f"more than one line of stderr: {done.stderr!r}"
    )
    assert "Traceback" not in done.stderr
    return errors[0]


@contextlib.contextmanager
def listening_socket(host: str) -> Iterator[int]:
    """A TCP socket that accepts connections and never says a word."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        sock.listen()
        yield int(sock.getsockname()[1])


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_server(host: str) -> Iterator[int]:
    server = http.server.ThreadingHTTPServer((host, 0), _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------- seeds


def test_unreachable_seed(tmp_path: Path, rng: random.Random) -> None:
    host = random_host(rng)
    dead_seed = f"{host}:{free_port(host)}"  # nobody listens there
    me = random_host(rng)
    done = run_node(
        ["--host", me, "--port", str(free_port(me)), "--join", dead_seed, "--join-timeout", "2"],
        tmp_path / "d",
    )
    message = one_error_line(done)
    assert done.returncode != 0
    assert dead_seed in message, message
    assert done.seconds < 2 + STARTUP_SLACK, f"took {done.seconds:.1f}s"


@pytest.mark.parametrize("kind", ["http-server", "silent-tcp", "peer-rest-port"])
def test_seed_that_is_not_a_chord_peer(
    kind: str, tmp_path: Path, rng: random.Random, make_ring: Callable[..., LocalRing]
) -> None:
    host = random_host(rng)
    with contextlib.ExitStack() as stack:
        if kind == "http-server":
            port = stack.enter_context(http_server(host))
        elif kind == "silent-tcp":
            port = stack.enter_context(listening_socket(host))
        else:
            peer = make_ring().start_peer(host)
            port = peer.api_port
        seed = f"{host}:{port}"
        me = random_host(rng)
        done = run_node(
            ["--host", me, "--port", str(free_port(me)), "--join", seed, "--join-timeout", "2"],
            tmp_path / "d",
        )
    message = one_error_line(done)
    assert done.returncode != 0
    assert seed in message, message
    assert done.seconds < 2 + STARTUP_SLACK, f"took {done.seconds:.1f}s"
    if kind != "silent-tcp":
        # An HTTP/1.x answer is final: said at once (no retrying until the join deadline),
        # with the likely mix-up named.
        assert "not a Chord peer" in message and "REST port" in message, message
        assert done.seconds < STARTUP_SLACK, f"took {done.seconds:.1f}s"
    if kind == "peer-rest-port":
        assert peer.running() and peer.get("/health")[0] == 200


# --------------------------------------------------------------------- ports


@pytest.mark.parametrize("which", ["grpc", "rest"])
def test_port_already_in_use(which: str, tmp_path: Path, rng: random.Random) -> None:
    host = random_host(rng)
    with listening_socket(host) as busy:
        if which == "grpc":
            args = ["--port", str(busy), "--api-port", str(free_port(host, avoid=[busy]))]
        else:
            args = ["--port", str(free_port(host, avoid=[busy])), "--api-port", str(busy)]
        done = run_node(["--host", host, *args], tmp_path / "d", timeout=20)
    message = one_error_line(done)
    assert done.returncode != 0
    assert "in use" in message.lower() and str(busy) in message, message
    assert ("gRPC" if which == "grpc" else "REST") in message, message
    assert done.seconds < STARTUP_SLACK, f"took {done.seconds:.1f}s"


# ------------------------------------------------------------ malformed input


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--join", "nonsense"], "join"),
        (["--join", "127.0.0.1:99999"], "join"),
        (["--join", "127.0.0.1:"], "join"),
        (["--port", "abc"], "port"),
        (["--port", "-1"], "port"),
        (["--port", "65536"], "port"),
        (["--bits", "0"], "bits"),
        (["--host", "not a host"], "host"),
        (["127.0.0.1", "7000", "127.0.0.1"], "HOST PORT"),
        (["127.0.0.1"], "HOST PORT"),
        (["127.0.0.1", "7000", "--port", "7001"], "contradicts"),
        (["--host", "0.0.0.0"], "advertise_host"),
        (["--host", "0.0.0.0", "--advertise-host", "0.0.0.0"], "advertise_host"),
        (["--port", "7000", "--join", "127.0.0.1:7000"], "join itself"),
        (["--local-ring", "0"], "--local-ring"),
        (["--no-such-flag"], "unrecognized"),
    ],
)
def test_bad_command_line_exits_2_with_one_line(
    args: list[str], names: str, tmp_path: Path
) -> None:
    done = run_node(args, tmp_path / "d", timeout=20)
    message = one_error_line(done)
    assert done.returncode == 2, done
    assert names in message, message
    assert done.seconds < STARTUP_SLACK, f"took {done.seconds:.1f}s"
    assert not (tmp_path / "d").exists(), "a refused command line must not create anything"


# ---------------------------------------------------------------- admission


def colliding_address(
    rng: random.Random, ring: Ring, target: int, taken_hosts: set[str]
) -> tuple[str, int]:
    """A loopback host:port (both ports free) whose ID on ``ring`` is ``target``."""
    for _ in range(100):
        host = random_host(rng, taken_hosts)
        for _ in range(40 * ring.size):
            port = rng.randint(20000, 22700)
            if (
                ring.hash(f"{host}:{port}") == target
                and port_is_free(host, port)
                and port_is_free(host, port + API_PORT_OFFSET)
            ):
                return host, port
    raise AssertionError(f"no address found with ID {target} on a ring of 2^{ring.bits}")


def test_id_collision_is_refused(
    tmp_path: Path, rng: random.Random, seed: str, make_ring: Callable[..., LocalRing]
) -> None:
    """With m = 6 two addresses can share an ID: the second must be refused, naming
    the peer that has the ID, and the ring must carry on."""
    ring = make_ring(bits=6)
    peers: list[PeerProcess] = []
    for _ in range(3):
        host, port = random_address(rng, ring.ring, [p.ref.id for p in peers])
        join = rng.choice(peers).address if peers else None
        peers.append(ring.start_peer(host, port, join=join))
    ring.wait_ideal(timeout=20)

    holder = rng.choice(peers)
    via = rng.choice(peers)
    host, port = colliding_address(rng, ring.ring, holder.ref.id, {p.host for p in peers})
    args = ["--host", host, "--port", str(port), "--bits", "6", "--join", via.address]
    done = run_node([*args, "--join-timeout", "10"], tmp_path / "d")
    message = one_error_line(done)
    assert done.returncode != 0, f"[seed {seed}] {host}:{port} was admitted: {done}"
    assert holder.address in message and "already" in message, message
    # A refusal is final: no retrying until the join timeout.
    assert done.seconds < STARTUP_SLACK, f"took {done.seconds:.1f}s"

    assert all(p.running() for p in peers)
    ring.wait_ideal(timeout=10)
    assert holder.get("/health")[0] == 200


@pytest.mark.parametrize(("ring_bits", "joiner_bits"), [(160, 6), (8, 160)])
def test_joining_a_ring_with_other_bits_is_refused(
    ring_bits: int,
    joiner_bits: int,
    tmp_path: Path,
    rng: random.Random,
    make_ring: Callable[..., LocalRing],
) -> None:
    ring = make_ring(bits=ring_bits)
    host, port = random_address(rng, ring.ring)
    member = ring.start_peer(host, port)
    me = random_host(rng, {host})
    args = ["--host", me, "--port", str(seeded_port(rng, me)), "--bits", str(joiner_bits)]
    done = run_node([*args, "--join", member.address, "--join-timeout", "10"], tmp_path / "d")
    message = one_error_line(done)
    assert done.returncode != 0, done
    assert "bits" in message and str(ring_bits) in message, message
    assert done.seconds < STARTUP_SLACK, f"a refusal must be immediate, took {done.seconds:.1f}s"
    assert member.running() and member.get("/health")[0] == 200
