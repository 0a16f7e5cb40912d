"""Streamed uploads and downloads for the menu, with a progress bar, cancellable by Ctrl-C.

A transfer runs in a worker thread while the main thread waits for it. Ctrl-C raises
KeyboardInterrupt in the main thread only (see run_node.py), so it can never land in
the middle of FileClient's bookkeeping: the wait catches it and sets ``cancel``; the
worker checks that between pieces and winds up cleanly (an upload stops feeding the
holders, which then refuse the short file; a download deletes its ``.part``).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

from clientlib.progress import bar as progress_bar
from services.common.signals import start_without_signals
from services.files.client import ChecksumMismatch, FileClient, FileInfo, PutResult

PIECE = 1 << 20  # bytes read from the local file at a time
T = TypeVar("T")


class Cancelled(Exception):
    """The user pressed Ctrl-C during a transfer, which then stopped."""


class Bar(Protocol):
    def update(self, n: float | None = 1) -> bool | None: ...

    def close(self) -> None: ...


# (total bytes, label) -> a progress bar
ProgressFactory = Callable[[int, str], Bar]


def tqdm_bar(total: int, label: str) -> Bar:
    return progress_bar(total, label, enabled=True)  # the menu runs on a terminal


def cancellable(work: Callable[[threading.Event], T]) -> T:
    """``work(cancel)`` in a worker thread; Ctrl-C meanwhile sets ``cancel`` and waits
    for the worker to return. Re-raises the worker's error, as Cancelled if the user
    cancelled (a transfer that finished anyway returns its result)."""
    cancel = threading.Event()
    done = threading.Event()
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(work(cancel))
        except BaseException as exc:  # handed to the main thread below
            errors.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=run, name="menu-transfer", daemon=True)
    try:
        # SIGINT is held back while the thread starts (and stays blocked in it, so that
        # it always reaches the main thread): an interrupt inside start() could
        # otherwise leave a running worker that we no longer wait for.
        start_without_signals(worker)
    except KeyboardInterrupt:
        cancel.set()
    while not done.is_set():
        try:
            done.wait(0.5)
        except KeyboardInterrupt:
            cancel.set()
    if errors:
        if cancel.is_set():
            raise Cancelled(str(errors[0])) from errors[0]
        raise errors[0]
    return results[0]


def upload(
    files: FileClient,
    source: BinaryIO,
    size: int,
    name: str,
    progress: ProgressFactory,
    *,
    overwrite: bool = False,
) -> PutResult:
    """Stream ``source`` (from its start) into the ring as ``name``: one piece in memory."""
    source.seek(0)
    bar = progress(size, "upload")

    def work(cancel: threading.Event) -> PutResult:
        def pieces() -> Iterator[bytes]:
            while not cancel.is_set():  # stopping early: the holders refuse a short file
                block = source.read(PIECE)
                if not block:
                    return
                bar.update(len(block))
                yield block

        return files.put(name, pieces(), size=size, overwrite=overwrite)

    try:
        return cancellable(work)
    finally:
        bar.close()


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def download(files: FileClient, name: str, dest: Path, progress: ProgressFactory) -> FileInfo:
    """Stream ``name`` into ``dest.part``, check the whole file's SHA-256, then rename it
    to ``dest`` (never replacing an existing file). The ``.part`` is removed on failure."""
    part = part_path(dest)
    bars: list[Bar] = []

    def work(cancel: threading.Event) -> FileInfo:
        info, stream = files.get(name)
        bars.append(progress(info.size, "download"))
        digest = hashlib.sha256()
        try:
            with open(part, "wb") as out:
                for block in stream:
                    if cancel.is_set():
                        raise Cancelled("download cancelled")
                    out.write(block)
                    digest.update(block)
                    bars[0].update(len(block))
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # stop the parallel fetches now, not when garbage collected
        if digest.hexdigest() != info.sha256:
            raise ChecksumMismatch(
                f"{name!r} arrived with SHA-256 {digest.hexdigest()[:12]}…, "
                f"expected {info.sha256[:12]}…"
            )
        if dest.exists():
            raise FileExistsError(f"{dest} appeared meanwhile; kept the download as {part}")
        os.replace(part, dest)
        return info

    try:
        return cancellable(work)
    except FileExistsError:
        raise
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    finally:
        for bar in bars:
            bar.close()
