"""The fault scenarios. Each starts a ring, uploads the seeded files, injects its fault,
waits for convergence and returns the checker's verdict; :func:`run` wraps one in a
Harness and returns the JSON-ready result (one line per scenario)."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devtools.launcher import PeerProcess
from faults import abuse
from faults.harness import Harness, Options, Verdict
from services.storage.blobs import flip_byte

log = logging.getLogger("faults")


def _ready(h: Harness) -> list[str]:
    """Start the ring and upload every file; returns the names."""
    h.start()
    names = h.make_files(h.options.files)
    started = time.monotonic()
    h.upload(names)
    log.info("uploaded %d/%d files in %.1fs", len(h.acked), len(names), time.monotonic() - started)
    if h.converge() is None:
        raise RuntimeError("the ring did not settle after the uploads")
    h.converge_s = None
    return names


def _adjacent(h: Harness, count: int) -> list[PeerProcess]:
    ordered = h.live()
    first = h.rng.randrange(len(ordered))
    return [ordered[(first + i) % len(ordered)] for i in range(count)]


def baseline(h: Harness) -> Verdict:
    _ready(h)
    h.converge()
    return h.classify()


def leaves(h: Harness, count: int = 4) -> Verdict:
    _ready(h)
    for peer in h.rng.sample(h.live(), count):
        code = h.ring.terminate(peer, timeout=60)
        if code != 0:
            h.notes.append(f"{peer.address} exited with {code} on SIGTERM")
    h.converge()
    return h.classify()


def _kill(h: Harness, victims: list[PeerProcess]) -> Verdict:
    """kill -9 ``victims`` at once. Files whose k holders were all among them cannot
    survive: that is the predicted loss, and the loss must be exactly it."""
    peers = h.live()
    killed = {p.address for p in victims}
    predicted = {
        name for name in h.acked if {p.address for p in h.expected_holders(name, peers)} <= killed
    }
    h.expected_lost = predicted
    h.extra["killed"] = sorted(killed)
    h.extra["predicted_lost"] = len(predicted)
    for peer in victims:
        h.ring.kill(peer)
    h.converge()
    verdict = h.classify()
    h.extra["lost_as_predicted"] = set(verdict.lost) == predicted
    return verdict


def kill1(h: Harness) -> Verdict:
    _ready(h)
    return _kill(h, [h.rng.choice(h.live())])


def kill2(h: Harness) -> Verdict:
    _ready(h)
    return _kill(h, _adjacent(h, 2))


def kill3(h: Harness) -> Verdict:
    _ready(h)
    return _kill(h, _adjacent(h, 3))


def _half_uploaded_then_load(h: Harness, clients: int) -> tuple[threading.Event, threading.Thread]:
    """Start the ring, upload half the files, and let ``clients`` clients upload the other
    half and download acknowledged ones in the background until the event is set."""
    h.start()
    names = h.make_files(h.options.files)
    half = len(names) // 2
    h.upload(names[:half])
    stop = threading.Event()
    return stop, h.background_load(names[half:], clients, stop)


def sigstop(h: Harness) -> Verdict:
    """SIGSTOP one peer for stop_seconds while clients upload and download; SIGCONT.
    The stopped peer accepts connections but answers nothing: every call to it must
    end at its deadline, so no operation outlasts the clients' retry budget."""
    stop, load = _half_uploaded_then_load(h, h.options.clients)
    time.sleep(min(2.0, h.options.stop_seconds / 4))  # load flowing before the fault
    victim = h.rng.choice(h.live())
    h.extra["stopped"] = victim.address
    h.stop(victim)
    stopped_at = time.monotonic()
    time.sleep(max(0.0, h.options.stop_seconds - (time.monotonic() - stopped_at)))
    h.resume(victim)
    time.sleep(2.0)  # load goes on across the resume
    stop.set()
    load.join(h.options.op_budget() + 60)
    h.converge()
    return h.classify()


def churn(h: Harness) -> Verdict:
    """Every churn_every seconds for churn_seconds, a join, a graceful leave or a
    kill -9, while churn_clients clients upload new files and download acknowledged
    ones. The ring size stays within a few peers of its start."""
    stop, load = _half_uploaded_then_load(h, h.options.churn_clients)
    size = h.options.peers
    events: list[str] = []
    end = time.monotonic() + h.options.churn_seconds
    tick = time.monotonic()
    while time.monotonic() < end:
        live = h.live()
        choices = ["join"] if len(live) < size + 2 else []
        if len(live) > max(h.options.replicas + 1, size - 2):
            choices += ["leave", "kill"]
        action = h.rng.choice(choices or ["join"])
        try:
            if action == "join":
                peer = h.join()
            else:
                peer = h.rng.choice(live)
                if action == "leave":
                    h.ring.terminate(peer, timeout=30)
                else:
                    h.ring.kill(peer)
            events.append(f"{action} {peer.address}")
        except Exception as exc:  # a failed join is churn too; note it, go on
            events.append(f"{action} failed: {exc}"[:200])
        tick += h.options.churn_every
        time.sleep(max(0.0, tick - time.monotonic()))
    stop.set()
    load.join(h.options.op_budget() + 60)
    h.extra["churn_events"] = len(events)
    kinds = ("join", "leave", "kill")
    h.extra["churn_kinds"] = {k: sum(e.startswith(k) for e in events) for k in kinds}
    h.converge()
    return h.classify()


def corrupt(h: Harness, files: int = 10) -> Verdict:
    """Flip one byte in the stored blob of one replica of ``files`` files (bit rot on
    disk). Downloads through every peer must never return the damaged bytes, and the
    damaged copies must be repaired (the blob on disk whole again)."""
    _ready(h)
    peers = h.live()
    damaged: list[tuple[str, PeerProcess]] = []
    for name in h.rng.sample(sorted(h.acked), min(files, len(h.acked))):
        holder = h.rng.choice(h.expected_holders(name, peers))
        path = holder.blob_path(h.acked[name])
        size = path.stat().st_size
        flip_byte(path, h.rng.randrange(size))
        damaged.append((name, holder))
    h.extra["flipped"] = len(damaged)
    served_bad = unreadable = 0
    for name, _ in damaged:
        for entry in peers:  # through every peer, the damaged holder included
            try:
                _, stream = h.client(entry).get(name)
                served_bad += hashlib.sha256(b"".join(stream)).hexdigest() != h.acked[name]
            except Exception as exc:
                unreadable += 1
                log.info("%s via %s: %s", name, entry.address, exc)
    h.extra["served_damaged"] = served_bad
    h.extra["unreadable_reads"] = unreadable

    def repaired() -> bool:
        return all(sha_of_file(p.blob_path(h.acked[n])) == h.acked[n] for n, p in damaged)

    h.converge(extra=repaired)
    h.extra["repaired"] = repaired()
    return h.classify()


def restart(h: Harness) -> Verdict:
    """kill -9 one peer and restart it at once on the same address and data dir: the
    same ID, it rejoins, nothing is lost."""
    _ready(h)
    victim = h.rng.choice(h.live())
    h.ring.kill(victim)
    seed = h.rng.choice(h.live())
    reborn = h.ring.start_peer(victim.host, victim.port, join=seed.address)
    h.extra["restarted"] = victim.address
    h.extra["same_id"] = reborn.ref == victim.ref
    h.converge()
    h.extra["rejoined"] = reborn in h.live() and h.rings() == 1
    return h.classify()


def partition(h: Harness) -> Verdict:
    """Split the peers into two halves that drop every RPC to the other half (runtime
    fault rules, so no peer restarts), hold for partition_seconds, heal. Without a
    ring merge (issue 7) each half stays a ring of its own after the heal."""
    _ready(h)
    peers = h.live()
    side_a = sorted(p.address for p in h.rng.sample(peers, len(peers) // 2))
    side_b = sorted(p.address for p in peers if p.address not in side_a)
    h.write_rules(
        [
            {"action": "drop", "method": "*", "at": side_a, "peer": side_b},
            {"action": "drop", "method": "*", "at": side_b, "peer": side_a},
        ]
    )
    started = time.monotonic()
    during = 0
    while time.monotonic() - started < h.options.partition_seconds:
        during = max(during, h.rings(peers))
        time.sleep(1.0)
    h.extra["rings_during"] = during
    h.write_rules([])
    h.extra["partition_s"] = round(time.monotonic() - started, 1)
    # Without a merge it never converges: do not spend the whole converge_timeout on it.
    h.converge(timeout=min(h.options.converge_timeout, 90.0))
    return h.classify()


SCENARIOS: dict[str, Callable[[Harness], Verdict]] = {
    "baseline": baseline,
    "leave4": leaves,
    "kill1": kill1,
    "kill2-adjacent": kill2,
    "kill3-adjacent": kill3,
    "sigstop": sigstop,
    "churn": churn,
    "corrupt": corrupt,
    "restart": restart,
    "partition": partition,
    # Hostile clients against one peer (faults/abuse.py): the ring keeps serving.
    **{abuse.SCENARIO_PREFIX + kind: abuse.scenario(kind) for kind in abuse.ATTACKS},
}


def run(name: str, options: Options) -> dict[str, Any]:
    """Run one scenario on a fresh ring; every process it started is gone afterwards."""
    scenario = SCENARIOS[name]
    with Harness(options) as h:
        verdict = scenario(h)
        return h.result(name, verdict)


# ----------------------------------------------------------- on-disk helpers
def sha_of_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
