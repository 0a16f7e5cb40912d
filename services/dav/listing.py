"""The ring's names as a folder tree, for PROPFIND and for telling folders from files.

Until folders are records in the ring (the issue on disks and folders), a folder exists
when a file's name lies below it (``a/b`` for ``a/b/c.txt``) or when a WebDAV client made
it with MKCOL on this peer. The second kind is kept here, in memory, like the FUSE mount
keeps the folders made through it: another peer does not see an empty folder until a
file is stored in it, and a restart forgets it (docs/webdav.md says so).

The file list comes from a ring walk (every peer's listing, newest version per name),
kept for ``ttl`` seconds: a PROPFIND of a folder does not walk the ring each time, and
what this peer writes itself is applied to the kept copy at once, so a client that
writes here and lists here sees its own writes. A file written through another peer
appears within ``ttl``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from chord.names import enclosing_folders
from services.files.client import FileInfo

log = logging.getLogger("chord.dav")

MAX_MADE_FOLDERS = 10_000  # empty folders kept in memory; MKCOL beyond this: 507


class TooManyFolders(Exception):
    pass


@dataclass(frozen=True)
class Entry:
    """What a path is: a file (its newest version) or a folder (info None)."""

    path: str  # ring name, '' for the root
    info: FileInfo | None

    @property
    def is_folder(self) -> bool:
        return self.info is None


class RingListing:
    """A kept snapshot of the ring's live files plus the folders made here. Thread-safe:
    one lock guards the snapshot, the folder sets and the log of own writes; the ring
    walk runs outside it.

    Only the first use waits for a walk. Later, a snapshot older than ``ttl`` is still
    answered from while one background walk replaces it (a burst of PUTs never waits for
    a walk). A walk that started before one of this peer's own writes ended would undo
    it, so own writes are logged with their time and applied again over every walk that
    started before them."""

    def __init__(
        self,
        walk: Callable[[], list[FileInfo]],
        ttl: float,
        clock: Callable[[], float],
        start: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        """``start`` runs a background walk (default: a daemon thread); tests pass a
        function that runs it at once."""
        self._walk, self._ttl, self._clock = walk, ttl, clock
        self._start = start or _in_thread
        self._lock = threading.Lock()
        self._files: dict[str, FileInfo] = {}  # guarded by _lock
        self._folders: set[str] = set()  # implied by file names; guarded by _lock
        self._made: set[str] = set()  # made by MKCOL here; guarded by _lock
        self._own: list[tuple[float, str, FileInfo | None]] = []  # own writes; _lock
        self._taken: float | None = None  # when _files was walked; guarded by _lock
        self._walking = False  # a background walk is running; guarded by _lock
        self._first = threading.Lock()  # the first walk, which callers wait for

    # ------------------------------------------------------------------- reading
    def _fresh(self) -> None:
        with self._lock:
            taken, walking = self._taken, self._walking
            stale = taken is not None and self._clock() - taken >= self._ttl
            if stale and not walking:
                self._walking = True
        if taken is None:
            with self._first:  # one walk for every caller arriving before it is done
                if self._taken is None:
                    self._refresh()
        elif stale and not walking:
            self._start(self._background)

    def _background(self) -> None:
        try:
            self._refresh()
        except Exception:  # the kept snapshot stays; the next use retries
            log.warning("the ring listing for WebDAV could not be refreshed", exc_info=True)
        finally:
            with self._lock:
                self._walking = False

    def _refresh(self) -> None:
        started = self._clock()
        walked = {info.name: info for info in self._walk()}
        with self._lock:
            self._own = [entry for entry in self._own if entry[0] >= started]
            for _, name, info in self._own:  # own writes the walk may have missed
                if info is None:
                    walked.pop(name, None)
                else:
                    walked[name] = info
            self._files = walked
            self._folders = {a for name in walked for a in enclosing_folders(name)}
            self._taken = started

    def file(self, name: str) -> FileInfo | None:
        self._fresh()
        with self._lock:
            return self._files.get(name)

    def is_folder(self, name: str) -> bool:
        if name == "":
            return True
        self._fresh()
        with self._lock:
            return name in self._folders or name in self._made

    def children(self, folder: str) -> list[Entry]:
        """The files and folders directly in ``folder``, by name."""
        self._fresh()
        prefix = folder + "/" if folder else ""
        with self._lock:
            files = [
                Entry(name, info)
                for name, info in self._files.items()
                if name.startswith(prefix) and "/" not in name[len(prefix) :]
            ]
            folders = {
                name
                for name in self._folders | self._made
                if name.startswith(prefix) and name and "/" not in name[len(prefix) :]
            }
        names = {entry.path for entry in files}
        entries = files + [Entry(name, None) for name in folders if name not in names]
        return sorted(entries, key=lambda entry: entry.path)

    # ------------------------------------------------------------------- writing
    def stored(self, info: FileInfo) -> None:
        with self._lock:
            self._own.append((self._clock(), info.name, info))
            self._files[info.name] = info
            self._folders.update(enclosing_folders(info.name))

    def deleted(self, name: str) -> None:
        with self._lock:
            self._own.append((self._clock(), name, None))
            if self._files.pop(name, None) is not None:
                self._folders = {a for n in self._files for a in enclosing_folders(n)}

    def make_folder(self, name: str) -> None:
        with self._lock:
            if len(self._made) >= MAX_MADE_FOLDERS:
                raise TooManyFolders(
                    f"this peer keeps at most {MAX_MADE_FOLDERS} empty folders in memory"
                )
            self._made.add(name)
            self._made.update(enclosing_folders(name))

    def forget_folder(self, name: str) -> None:
        """The folder and every folder below it are no longer made here."""
        with self._lock:
            self._made = {f for f in self._made if f != name and not f.startswith(name + "/")}


def _in_thread(run: Callable[[], None]) -> None:
    threading.Thread(target=run, name="dav-listing", daemon=True).start()
