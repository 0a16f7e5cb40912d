"""Running the project's Dockerfile and compose.yaml for real, with rootful podman.

Podman comes from the machine, or, where ``../shared/tools/container-engine.sh`` sits beside
the repository (these test machines: no registry is reachable), from that script, which
installs and configures it and makes a stand-in for the Dockerfile's base image. Nothing
specific to these machines lives in the project's own files.

Every container, volume, network and namespace a test run makes is named
``chordtest-<pid>-<hex>-...`` (``Run.prefix``) and removed at the end, pass or fail; a run
that was killed is swept by the next one (its pid is gone). Traffic goes only to podman's
own networks, to loopback, and to network namespaces a test made.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
ENGINE_SCRIPT = ROOT.parent / "shared" / "tools" / "container-engine.sh"
PREFIX = "chordtest"
# Keep HEALTHCHECK in built images: buildah's default OCI image format has no place for it.
ENV = {**os.environ, "BUILDAH_FORMAT": "docker"}
# The tag every test run also gives its build, so the next build finds its layers cached
# (each run's own tag is removed at the end).
CACHE_TAG = "localhost/chord-dht-test:cache"
NETNS_DIR = Path("/run/netns")


# --------------------------------------------------------------------------- the engine
def engine_unavailable() -> str | None:
    """Why the container tests cannot run here, or None once podman is ready (installed
    and configured by the engine script first where that script is present)."""
    if os.geteuid() != 0:
        return "container tests skipped: they need root (rootful podman)"
    podman = shutil.which("podman")
    if not ENGINE_SCRIPT.is_file():
        if podman is None:
            return f"container tests skipped: no podman, and no {ENGINE_SCRIPT} to install it"
        return None  # a machine with its own podman; FROM is pulled from the registry
    # Only the cheap steps when podman is there (its config, the base image check).
    steps = "config base" if podman else "install config base"
    log = Path("/tmp/chordtest-container-engine.log")
    # One run of the script at a time on this machine (apt and image imports).
    with open("/tmp/chordtest-container-engine.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(log, "w") as out:
            result = subprocess.run(
                ["bash", str(ENGINE_SCRIPT)],
                cwd=ROOT,
                env={**ENV, "REPO": str(ROOT), "STEPS": steps},
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=900,
                check=False,
            )
    if result.returncode != 0 or shutil.which("podman") is None:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        return f"container tests skipped: {ENGINE_SCRIPT.name} failed ({tail[0]}; {log})"
    return None


def podman(
    *args: str,
    check: bool = True,
    timeout: float = 120,
    netns: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``podman ARGS``; in network namespace ``netns`` if given (nsenter switches only the
    network namespace, so the container's mounts stay visible to later podman calls)."""
    argv = ["podman", *args]
    if netns is not None:
        argv = ["nsenter", f"--net={NETNS_DIR / netns}", *argv]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env or ENV, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {result.returncode}:\n{quiet(result.stderr)}"
        )
    return result


def quiet(stderr: str) -> str:
    """podman's stderr without the lines about systemd timers for healthchecks (there is
    no systemd here; healthchecks run by `podman healthcheck run` only)."""
    return "\n".join(line for line in stderr.splitlines() if "systemd" not in line)


def inspect(name: str, template: str) -> str:
    return podman("inspect", "--format", template, name).stdout.strip()


def address_of(name: str) -> str:
    return inspect(name, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")


# --------------------------------------------------------------------------- one test run
class Run:
    """Names for one test run and the removal of everything carrying them."""

    def __init__(self) -> None:
        self.prefix = f"{PREFIX}-{os.getpid()}-{secrets.token_hex(2)}"
        self.image_tag = f"localhost/{self.prefix}:latest"

    def name(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    def cleanup(self) -> list[str]:
        """Remove this run's containers, volumes, networks, namespaces and image tag;
        returns what it removed (never raises)."""
        return remove_prefixed(lambda name: name.startswith(self.prefix))


def remove_prefixed(match: Callable[[str], bool]) -> list[str]:
    removed: list[str] = []
    for kind in ("ps", "volume", "network"):
        with contextlib.suppress(Exception):
            doomed = [name for name in listed(kind) if match(name)]
            if doomed:
                command = {
                    "ps": ["rm", "--force", "--volumes", "--time", "0"],
                    "volume": ["volume", "rm", "--force"],
                    "network": ["network", "rm", "--force"],
                }[kind]
                podman(*command, *doomed, check=False, timeout=180)
                removed += doomed
    with contextlib.suppress(Exception):
        for ns in listed("netns"):
            if match(ns):
                subprocess.run(["ip", "netns", "del", ns], check=False, timeout=30)
                removed.append(ns)
    with contextlib.suppress(Exception):
        # CNI keeps a directory of address leases per network after the network is gone.
        for lease_dir in Path("/var/lib/cni/networks").glob(f"{PREFIX}-*"):
            if match(lease_dir.name):
                shutil.rmtree(lease_dir, ignore_errors=True)
    with contextlib.suppress(Exception):
        images = podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        for tag in images:  # untagged only: the layers stay cached under CACHE_TAG
            if match(tag.removeprefix("localhost/")):
                podman("untag", tag, tag, check=False)
                removed.append(tag)
    return removed


def listed(kind: str) -> list[str]:
    if kind == "netns":
        return sorted(p.name for p in NETNS_DIR.glob(f"{PREFIX}-*")) if NETNS_DIR.exists() else []
    args = {
        "ps": ["ps", "--all", "--format", "{{.Names}}"],
        "volume": ["volume", "ls", "--format", "{{.Name}}"],
        "network": ["network", "ls", "--format", "{{.Name}}"],
    }[kind]
    return podman(*args).stdout.split()


def sweep_killed_runs() -> list[str]:
    """Remove what runs killed before their cleanup left: their pid no longer runs pytest
    (gone, a zombie with no command line, or reused by another program)."""
    pattern = re.compile(rf"^{PREFIX}-(\d+)-[0-9a-f]{{4}}")

    def dead(name: str) -> bool:
        found = pattern.match(name)
        if found is None:
            return False
        try:
            return b"pytest" not in Path(f"/proc/{found[1]}/cmdline").read_bytes()
        except OSError:
            return True

    return remove_prefixed(dead)


# --------------------------------------------------------------------------- the image
def build_image(run: Run, tag: str | None = None) -> tuple[str, float]:
    """Build the repository's Dockerfile as users do; returns (image ID, seconds)."""
    started = time.monotonic()
    iid = Path(f"/tmp/{run.prefix}.iid")
    previous = podman("image", "inspect", "--format", "{{.Id}}", CACHE_TAG, check=False)
    try:
        podman(
            "build",
            "--quiet",
            "--iidfile",
            str(iid),
            "-t",
            tag or run.image_tag,
            "-t",
            CACHE_TAG,
            str(ROOT),
            timeout=900,
        )
        image_id = iid.read_text().strip()
    finally:
        iid.unlink(missing_ok=True)
    old = previous.stdout.strip()
    if previous.returncode == 0 and old != image_id:
        # The build the cache tag named before, now untagged: removed with its layers not
        # shared, so builds do not pile up. Refused (and kept) while another run's tag or
        # container still uses it.
        podman("rmi", old, check=False)
    return image_id, time.monotonic() - started


# --------------------------------------------------------------------------- HTTP
def get_json(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def status_of(url: str, timeout: float = 3) -> int | None:
    """The HTTP status of GET url, None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait_for(what: str, check: Callable[[], T | None], timeout: float, every: float = 0.25) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` and the
    last exception after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except Exception as exc:  # not there yet
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r})")
        time.sleep(every)


def ring_view(api: str) -> list[tuple[str, bool]]:
    """[(address, reachable)] of GET /ring at ``api`` (host:port), in ring order."""
    return [(p["address"], p["reachable"]) for p in get_json(f"http://{api}/ring")["peers"]]


def ring_formed(apis: Sequence[str], addresses: set[str]) -> bool:
    """Every API answers /ring with exactly ``addresses``, all reachable, in one order."""
    orders = []
    for api in apis:
        view = ring_view(api)
        if {a for a, _ in view} != addresses or not all(ok for _, ok in view):
            return False
        orders.append([a for a, _ in view])
    first = orders[0]
    return all(  # each view starts at its own peer: the same cycle rotated
        " ".join(o) in " ".join(first + first) for o in orders
    )


def curl_upload(api: str, name: str, path: Path, token: str | None = None) -> dict[str, Any]:
    """``curl -F name=N -F file=@PATH http://API/upload_file``, as docs/rest-api.md shows."""
    argv = ["curl", "-sS", "--fail-with-body", "-F", f"name={name}", "-F", f"file=@{path}"]
    if token:
        argv += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(
        [*argv, f"http://{api}/upload_file"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, f"upload of {name} through {api}: {out.stdout}{out.stderr}"
    return dict(json.loads(out.stdout))


def curl_download(api: str, name: str, dest: Path) -> str:
    """Download through ``api`` with curl; returns the SHA-256 of the bytes received."""
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--fail",
            "-G",
            "--data-urlencode",
            f"name={name}",
            "-o",
            str(dest),
            f"http://{api}/download_file",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, f"download of {name} through {api}: {out.stderr}"
    return hashlib.sha256(dest.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- namespaces
_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def in_netns(netns: str, action: Callable[[], T]) -> T:
    """Run ``action`` in a thread inside network namespace ``netns`` (its sockets, e.g.
    urllib's, are opened there)."""
    outcome: dict[str, Any] = {}

    def enter() -> None:
        try:
            fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {netns}")
            finally:
                os.close(fd)
            outcome["value"] = action()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=enter, daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    started = time.monotonic()
    yield lambda: time.monotonic() - started
