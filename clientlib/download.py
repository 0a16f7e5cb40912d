"""Downloads that resume, verify and optionally fetch byte ranges from several holders.

Bytes go to ``<dest>.part``; the sidecar ``<dest>.part.json`` records which file version
(name, size, sha256, version) they belong to. The ``.part`` only ever grows at its end, so
its size is always a correct prefix: a later run with the same sidecar continues from it
with a ``Range`` request, any other sidecar starts over. The SHA-256 of the whole file is
checked before the ``.part`` is renamed into place; a mismatch removes it.

``--parallel N`` cuts the rest of the file into pieces fetched by N threads from the
holders the search named (owner and replicas, each over its own REST API), rotating the
first choice per piece and falling back to the others (and finally to the peer asked)
when one fails. Finished pieces are appended in order; at most 2N are in flight or
waiting, which bounds memory.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chord.names import last_segment
from clientlib import progress
from clientlib.peer import ClientError, PeerApi, describe_os_error, error_from, parse_address
from clientlib.ranges import chunk_size, parse_content_range, range_header, split_range

BLOCK = 1024 * 1024


class NotFound(ClientError):
    """No such file in the ring."""


@dataclass(frozen=True)
class Remote:
    """The version of a file the search found, and who holds it."""

    name: str
    size: int
    sha256: str
    version: Any
    holders: tuple[PeerApi, ...] = ()

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "version": self.version,
        }


@dataclass
class DownloadResult:
    name: str
    path: str
    size: int
    sha256: str
    version: Any
    resumed_from: int
    sources: dict[str, int] = field(default_factory=dict)


def find(api: PeerApi, name: str) -> Remote:
    """Search the ring for ``name``; NotFound if absent."""
    found = api.call("GET", "/search_file", {"name": name})
    if not found.get("found"):
        raise NotFound(f"no file named {name!r} in the ring")
    if not isinstance(found.get("size"), int) or not found.get("sha256"):
        raise ClientError(f"{api.where('/search_file')} gave no size or sha256 for {name!r}")
    refs = [found.get("owner"), *(found.get("replicas") or [])]
    holders: list[PeerApi] = []
    for ref in refs:
        if isinstance(ref, dict) and ref.get("api"):
            try:
                address = parse_address(str(ref["api"]))
            except ValueError:
                continue
            if all(h.address != address for h in holders):
                holders.append(api.at(address))
    return Remote(name, found["size"], found["sha256"], found.get("version"), tuple(holders))


def destination(name: str, dest: str | Path | None, force: bool) -> Path:
    """Where to save ``name``: ``dest``, or in it when it is a directory (the name's last
    segment). A ``dest`` ending in ``/`` must be an existing directory, as for ``cp``."""
    base = last_segment(name)
    text = "" if dest is None else str(dest)
    path = Path(text) if text else Path(base)
    if text.endswith(("/", os.sep)) and not path.is_dir():
        why = "not a directory" if path.exists() else "no such directory"
        raise ClientError(f"cannot save {name!r} to {text}: {why}")
    if path.is_dir():
        path = path / base
    if path.exists() and not force:
        raise ClientError(f"{path} already exists; use --force to replace it")
    if not path.parent.is_dir():
        raise ClientError(f"cannot write {path}: {path.parent} is not a directory")
    return path


class PartialFile:
    """``<dest>.part`` plus its sidecar: append-only bytes and their running SHA-256."""

    def __init__(self, dest: Path, remote: Remote) -> None:
        self.part = dest.with_name(dest.name + ".part")
        self.sidecar = dest.with_name(dest.name + ".part.json")
        self.resumed_from = self.usable_prefix(remote)
        self.handle = open(self.part, "r+b" if self.resumed_from else "w+b")  # noqa: SIM115
        self.handle.truncate(self.resumed_from)
        self.sidecar.write_text(json.dumps(remote.record()) + "\n")
        self.hasher = hashlib.sha256()
        while block := self.handle.read(BLOCK):
            self.hasher.update(block)
        self.offset = self.handle.tell()

    def usable_prefix(self, remote: Remote) -> int:
        """Size of a ``.part`` left by a run for this very version, else 0."""
        try:
            record = json.loads(self.sidecar.read_text())
            have = self.part.stat().st_size
        except (OSError, ValueError):
            return 0
        return have if record == remote.record() and have <= remote.size else 0

    def append(self, data: bytes) -> None:
        self.handle.write(data)
        self.hasher.update(data)
        self.offset += len(data)

    def restart(self) -> None:
        self.handle.seek(0)
        self.handle.truncate()
        self.hasher = hashlib.sha256()
        self.offset = 0

    def close(self) -> None:
        self.handle.close()

    def discard(self) -> None:
        self.close()
        self.part.unlink(missing_ok=True)
        self.sidecar.unlink(missing_ok=True)

    def commit(self, dest: Path) -> None:
        self.close()
        os.replace(self.part, dest)
        self.sidecar.unlink(missing_ok=True)


def served_sha256(response: http.client.HTTPResponse) -> str | None:
    value = response.getheader("X-Content-SHA256") or response.getheader("ETag") or ""
    return value.strip().removeprefix("W/").strip('"').lower() or None


def if_range(remote: Remote) -> dict[str, str]:
    """Range only if the peer still has this version (else it sends the whole new one)."""
    return {"If-Range": f'"{remote.sha256}"'}


def check_same_version(response: http.client.HTTPResponse, remote: Remote, where: str) -> None:
    served = served_sha256(response)
    if served is not None and served != remote.sha256:
        raise ClientError(
            f"{where} serves another version of {remote.name!r} (sha256 {served[:12]}…, "
            f"expected {remote.sha256[:12]}…); the file changed: run the command again"
        )


def interrupted(part: PartialFile, remote: Remote, reason: str) -> ClientError:
    return ClientError(
        f"download of {remote.name!r} interrupted at {part.offset} of {remote.size} bytes "
        f"({reason}); run the same command again to resume"
    )


# ---------------------------------------------------------------- one stream from the peer
def fetch_stream(api: PeerApi, remote: Remote, part: PartialFile, meter: Any) -> None:
    """The rest of the file from the peer asked, with ``Range`` from the ``.part``'s size."""
    headers = {"Range": range_header(part.offset), **if_range(remote)} if part.offset else {}
    where = api.where("/download_file")
    conn, response = api.send("GET", "/download_file", {"name": remote.name}, headers=headers)
    try:
        if response.status == 206:
            start, _stop, _total = parse_content_range(response.getheader("Content-Range", ""))
            if start != part.offset:
                raise ClientError(f"{where} sent bytes from {start}, asked from {part.offset}")
        elif response.status == 200:
            if part.offset:  # the peer ignored Range: take the whole body instead
                meter.reset(total=remote.size)
                part.restart()
        else:
            raise error_from(response, where)
        check_same_version(response, remote, where)
        copy_body(response, remote, part, meter, api.timeout)
    except ValueError as exc:
        raise ClientError(f"{where}: {exc}") from None
    finally:
        conn.close()


def copy_body(
    response: http.client.HTTPResponse,
    remote: Remote,
    part: PartialFile,
    meter: Any,
    timeout: float,
) -> None:
    while True:
        try:
            block = response.read(BLOCK)
        except (OSError, http.client.HTTPException) as exc:
            raise interrupted(part, remote, describe_os_error(exc, timeout)) from None
        if not block:
            break
        part.append(block)
        meter.update(len(block))
    if part.offset != remote.size:
        raise interrupted(part, remote, "the peer's stream ended early")


# ------------------------------------------------------------- ranges from several holders
class RangeFetcher:
    """Fetches one piece from the holders, each thread keeping one connection per holder."""

    def __init__(self, remote: Remote, holders: list[PeerApi], fallback: PeerApi) -> None:
        self.remote, self.holders, self.fallback = remote, holders, fallback
        self.local = threading.local()
        self.lock = threading.Lock()
        self.failed: set[str] = set()
        self.served: Counter[str] = Counter()
        self.connections: list[http.client.HTTPConnection] = []

    def order(self, index: int) -> list[PeerApi]:
        """This piece's candidates: the holders rotated by ``index``, failed ones last, then
        the peer asked (which serves any file, via the holders)."""
        if not self.holders:
            return [self.fallback]
        shift = index % len(self.holders)
        rotated = self.holders[shift:] + self.holders[:shift]
        with self.lock:
            rotated.sort(key=lambda api: str(api.address) in self.failed)
        if all(h.address != self.fallback.address for h in rotated):
            rotated.append(self.fallback)
        return rotated

    def fetch(self, index: int, piece: tuple[int, int]) -> bytes:
        last = "no holder"
        for api in self.order(index):
            try:
                data = self.fetch_from(api, piece)
            except ClientError as exc:
                last = str(exc)
                with self.lock:
                    self.failed.add(str(api.address))
                continue
            with self.lock:
                self.served[str(api.address)] += len(data)
            return data
        raise ClientError(f"no holder could serve bytes {piece[0]}-{piece[1] - 1}: {last}")

    def connection(self, api: PeerApi) -> http.client.HTTPConnection:
        cache: dict[str, http.client.HTTPConnection] = self.local.__dict__.setdefault("conns", {})
        key = str(api.address)
        if key not in cache:
            cache[key] = api.connect()
            with self.lock:
                self.connections.append(cache[key])
        return cache[key]

    def forget(self, api: PeerApi) -> None:
        conn = self.local.__dict__.get("conns", {}).pop(str(api.address), None)
        if conn is not None:
            conn.close()

    def fetch_from(self, api: PeerApi, piece: tuple[int, int]) -> bytes:
        start, stop = piece
        where = api.where("/download_file")
        _, response = api.send(
            "GET",
            "/download_file",
            {"name": self.remote.name},
            headers={"Range": range_header(start, stop), **if_range(self.remote)},
            connection=self.connection(api),
        )
        try:
            check_same_version(response, self.remote, where)
            whole = start == 0 and stop == self.remote.size
            if response.status not in ((200, 206) if whole else (206,)):
                raise error_from(response, where)
            if response.status == 206:
                got = parse_content_range(response.getheader("Content-Range", ""))[:2]
                if got != piece:
                    raise ClientError(f"{where} sent bytes {got}, asked for {piece}")
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.forget(api)
            raise api.unreachable(exc) from None
        except (ClientError, ValueError) as exc:
            self.forget(api)
            raise ClientError(str(exc)) from None
        if len(data) != stop - start:
            self.forget(api)
            raise ClientError(f"{where} sent {len(data)} bytes, asked for {stop - start}")
        return data

    def close(self) -> None:
        for conn in self.connections:
            conn.close()


def fetch_parallel(fetcher: RangeFetcher, part: PartialFile, workers: int, meter: Any) -> None:
    """Fetch the rest in pieces on ``workers`` threads; append them in order."""
    remote = fetcher.remote
    pieces: Iterator[tuple[int, tuple[int, int]]] = enumerate(
        split_range(part.offset, remote.size, chunk_size(remote.size - part.offset, workers))
    )
    pending: deque[Future[bytes]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="range") as pool:

        def submit_next() -> None:
            for index, piece in pieces:
                pending.append(pool.submit(fetcher.fetch, index, piece))
                return

        for _ in range(2 * workers):
            submit_next()
        try:
            while pending:
                data = pending.popleft().result()
                part.append(data)
                meter.update(len(data))
                submit_next()
        except BaseException as exc:
            for future in pending:
                future.cancel()
            if isinstance(exc, ClientError):
                raise interrupted(part, remote, str(exc)) from None
            raise


# ---------------------------------------------------------------------------- the whole job
def download(
    api: PeerApi,
    name: str,
    dest: str | Path | None = None,
    parallel: int = 1,
    force: bool = False,
    show_progress: bool = False,
) -> DownloadResult:
    remote = find(api, name)
    path = destination(name, dest, force)
    try:
        part = PartialFile(path, remote)
    except OSError as exc:
        raise ClientError(f"cannot write {path}: {exc.strerror or exc}") from None
    result = DownloadResult(
        name, str(path), remote.size, remote.sha256, remote.version, part.resumed_from
    )
    try:
        with progress.bar(remote.size, name, show_progress, initial=part.offset) as meter:
            transfer(api, remote, part, parallel, meter, result)
        verify_and_commit(part, remote, path)
    except OSError as exc:
        raise ClientError(f"cannot write {part.part}: {exc.strerror or exc}") from None
    finally:
        part.close()
    return result


def transfer(
    api: PeerApi,
    remote: Remote,
    part: PartialFile,
    parallel: int,
    meter: Any,
    result: DownloadResult,
) -> None:
    if part.offset >= remote.size:
        return
    if parallel <= 1:
        before = part.offset
        try:
            fetch_stream(api, remote, part, meter)
        finally:
            result.sources[str(api.address)] = max(0, part.offset - before)
        return
    fetcher = RangeFetcher(remote, list(remote.holders), api)
    try:
        fetch_parallel(fetcher, part, parallel, meter)
    finally:
        fetcher.close()
        result.sources.update(fetcher.served)


def verify_and_commit(part: PartialFile, remote: Remote, path: Path) -> None:
    digest = part.hasher.hexdigest()
    if digest != remote.sha256:
        part.discard()
        raise ClientError(
            f"checksum mismatch for {remote.name!r}: expected sha256 {remote.sha256}, "
            f"got {digest}; removed {part.part}, nothing saved (run again to start over)"
        )
    part.commit(path)
