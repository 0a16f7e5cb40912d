"""Several "hosts" on one machine: Linux network namespaces joined by a bridge.

Each host is a namespace with one veth interface (``eth0``) and its own address in a
private /24; the other ends of the veth pairs sit on a bridge in the root namespace,
which has no address there, so test traffic never leaves the namespaces. A partition
moves some hosts' veth ends to a second bridge: the two groups then share no link, as
if a switch between them failed. Root only; every name carries a per-run tag, and
``close()`` deletes everything it created, whatever state the test left.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"


def unavailable_reason() -> str | None:
    """Why namespaces cannot be used here, or None if they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` command is not installed"
    probe = f"chordprobe{secrets.token_hex(3)}"
    try:
        ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"`ip netns add` failed: {exc.stderr.strip()}"
    ip("netns", "del", probe)
    return None


def ip(*args: str) -> str:
    return subprocess.run(
        ["ip", *args], check=True, capture_output=True, text=True, timeout=20
    ).stdout


def unused_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.0.0.0/8 that no address or route of this machine overlaps."""
    used = ip("-4", "addr") + ip("-4", "route", "show", "table", "all")
    nets = [ipaddress.ip_network(w, strict=False) for w in used.split() if _is_v4_net(w)]
    for _ in range(100):
        candidate = ipaddress.ip_network(
            f"10.{secrets.randbelow(200) + 50}.{secrets.randbelow(256)}.0/24"
        )
        if not any(candidate.overlaps(net) for net in nets):
            return candidate  # type: ignore[return-value]
    raise RuntimeError("no unused 10.x.y.0/24 found")


def _is_v4_net(word: str) -> bool:
    try:
        return ipaddress.ip_network(word, strict=False).version == 4 and word[0].isdigit()
    except ValueError:
        return False


_libc = ctypes.CDLL(None, use_errno=True)


def run_in(namespace: str, action: Callable[[], T]) -> T:
    """Run ``action`` in a thread that has entered ``namespace``'s network namespace,
    so the sockets it opens (urllib, http.client) live there."""
    outcome: dict[str, object] = {}

    def enter_and_run() -> None:
        try:
            fd = os.open(f"{NETNS_DIR}/{namespace}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    raise OSError(errno, f"setns {namespace}: {os.strerror(errno)}")
            finally:
                os.close(fd)
            outcome["value"] = action()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=enter_and_run, name=f"in-{namespace}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


@dataclass
class Host:
    index: int
    namespace: str
    veth: str  # the root-namespace end
    address: str


@dataclass
class Hosts:
    count: int
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    hosts: list[Host] = field(default_factory=list)
    created: list[tuple[str, str]] = field(default_factory=list)  # (kind, name), in order

    def __post_init__(self) -> None:
        self.subnet = unused_subnet()
        self.bridge = f"cbr{self.tag}a"
        self.bridge2 = f"cbr{self.tag}b"

    def setup(self) -> None:
        for bridge in (self.bridge, self.bridge2):
            ip("link", "add", bridge, "type", "bridge")
            self.created.append(("link", bridge))
            ip("link", "set", bridge, "up")
        addresses = list(self.subnet.hosts())
        for i in range(1, self.count + 1):
            namespace, veth = f"chordt-{self.tag}-h{i}", f"cv{self.tag}h{i}"
            ip("netns", "add", namespace)
            self.created.append(("netns", namespace))
            ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
            self.created.append(("link", veth))
            ip("link", "set", f"{veth}p", "netns", namespace)
            ip("-n", namespace, "link", "set", f"{veth}p", "name", "eth0")
            address = str(addresses[i - 1])
            ip("-n", namespace, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
            ip("-n", namespace, "link", "set", "eth0", "up")
            ip("-n", namespace, "link", "set", "lo", "up")
            ip("link", "set", veth, "master", self.bridge)
            ip("link", "set", veth, "up")
            self.hosts.append(Host(i, namespace, veth, address))

    def partition(self, group: Iterable[Host]) -> None:
        """Cut ``group`` off from the other hosts (its veth ends go to the second bridge)."""
        for host in group:
            ip("link", "set", host.veth, "master", self.bridge2)

    def heal(self) -> None:
        for host in self.hosts:
            ip("link", "set", host.veth, "master", self.bridge)

    def command(self, host: Host, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", host.namespace, *argv]

    def close(self) -> None:
        """Delete every namespace, veth and bridge made, newest first; never raises.
        Processes still running in a namespace must be ended by the caller first."""
        for kind, name in reversed(self.created):
            with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                if kind == "netns":
                    ip("netns", "del", name)
                elif _link_exists(name):  # a veth dies with its namespace's end
                    ip("link", "del", name)
        self.created.clear()

    def leftovers(self) -> list[str]:
        """Names of this run still present (for the teardown check)."""
        found = [n for n in ip("netns", "list").split() if self.tag in n]
        found += [n for n in ip("-o", "link").split() if self.tag in n]
        return found


def _link_exists(name: str) -> bool:
    return (
        subprocess.run(
            ["ip", "link", "show", name], capture_output=True, timeout=20, check=False
        ).returncode
        == 0
    )
