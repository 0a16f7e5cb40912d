"""Sequential reads through ``client.py mount`` as a ratio to the REST download.

    python -m bench.mount [--mib 256] [--repeat 2]

A 3-peer ring (k = 3) on loopback stores one file of ``--mib`` MiB. Each round times
``client.py download`` (clientlib's single-stream download: bytes written to disk and
SHA-256 checked) and reading the file through a fresh mount in 1 MiB reads with SHA-256
(what ``sha256sum`` does; cold: nothing cached by the mount or the kernel), then again
through the same mount (warm: the kernel keeps its pages when the ETag is unchanged).
The ratio is cold mount MB/s to REST MB/s, best round of each; the target is >= 0.7.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from tabulate import tabulate

from clientlib.download import download
from clientlib.peer import PeerApi, parse_address
from clientlib.upload import upload
from devtools.launcher import LocalRing, wait_for

ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20


def write_random(path: Path, mib: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for _ in range(mib):
            block = os.urandom(MIB)
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def read_hashed(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        while block := handle.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def rest_download(api: PeerApi, dest: Path) -> str:
    return download(api, "bench/big.bin", dest, force=True).sha256


def timed(run: Callable[[], str], expect: str) -> float:
    started = time.perf_counter()
    got = run()
    took = time.perf_counter() - started
    if got != expect:
        raise SystemExit(f"sha256 mismatch: {got} != {expect}")
    return took


class Mounted:
    def __init__(self, node: str, where: Path, cache_mib: int) -> None:
        where.mkdir(parents=True, exist_ok=True)
        self.where = where
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "client.py"),
                "mount",
                str(where),
                "--node",
                node,
                "--cache-mib",
                str(cache_mib),
            ],
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
        if not wait_for(lambda: os.path.ismount(where) or self.process.poll() is not None, 20):
            self.close()
            raise SystemExit("the mount did not come up within 20 s")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if os.path.ismount(self.where):
            subprocess.run(["fusermount3", "-u", "-z", str(self.where)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256, help="file size in MiB (default 256)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds (default 2)")
    parser.add_argument("--cache-mib", type=int, default=256, help="the mount's --cache-mib")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-mount-") as scratch:
        work = Path(scratch)
        source = work / "source.bin"
        expect = write_random(source, args.mib)
        with LocalRing(work / "ring", successors=4) as ring:
            first = ring.start_ring(3)[0]
            node = f"{first.host}:{first.api_port}"
            api = PeerApi(parse_address(node), None, 60.0)
            upload(api, source, "bench/big.bin")
            source.unlink()
            rest, cold, warm = [], [], []
            for round_ in range(args.repeat):
                dest = work / "download.bin"
                rest.append(timed(partial(rest_download, api, dest), expect))
                dest.unlink()
                mount = Mounted(node, work / f"mnt{round_}", args.cache_mib)
                try:
                    target = mount.where / "bench" / "big.bin"
                    wait_for(target.exists, 10)
                    cold.append(timed(partial(read_hashed, target), expect))
                    warm.append(timed(partial(read_hashed, target), expect))
                finally:
                    mount.close()
    speed = {
        name: args.mib / min(times)
        for name, times in (("REST download", rest), ("mount, cold", cold), ("mount, warm", warm))
    }
    base = speed["REST download"]
    rows = [[name, f"{mbs:.0f}", f"{mbs / base:.2f}"] for name, mbs in speed.items()]
    print(tabulate(rows, headers=["sequential read", "MiB/s", "ratio to REST"]))
    print(f"\n{args.mib} MiB file, best of {args.repeat}; target: mount, cold >= 0.7")


if __name__ == "__main__":
    main()
