"""The ring's files as a directory tree, from ``GET /show_files?scope=ring``.

Names with ``/`` become folders: a folder exists while some file lies under it, or when it
was made with ``mkdir`` in this mount (kept in memory only, until a file is written in it
or it is removed; the ring has no folders). A folder this mount emptied stays the same
way. The listing walks the whole ring, so it is kept for ``ttl`` seconds and shared by
every ``getattr``/``readdir`` meanwhile; this mount's own writes and deletes edit the
cached copy at once, so they show without waiting for the next walk.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from chord.names import enclosing_folders
from chord.names import parent_folder as parent
from clientlib.peer import PeerApi

ROOT = ""


@dataclass(frozen=True)
class Entry:
    """One ring file as the listing showed it."""

    name: str
    size: int
    sha256: str
    version: Any
    created: float


def ancestors(path: str) -> list[str]:
    """``a/b/c`` -> ``["a/b", "a", ""]``."""
    return [*enclosing_folders(path), ROOT] if path else []


def entry_of(row: dict[str, Any], now: float) -> Entry | None:
    name, size = row.get("name"), row.get("size")
    if not isinstance(name, str) or not isinstance(size, int):
        return None
    created = row.get("created")
    stamp = float(created) if isinstance(created, int | float) else now
    return Entry(name, size, str(row.get("sha256") or ""), row.get("version"), stamp)


class Tree:
    """The cached listing plus the folders made here; thread-safe."""

    def __init__(self, api: PeerApi, ttl: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self.api, self.ttl, self.clock = api, ttl, clock
        self.lock = threading.Lock()
        self.files: dict[str, Entry] = {}
        self.children: dict[str, set[str]] = {ROOT: set()}
        self.made: set[str] = set()  # folders made with mkdir, not (yet) holding a file
        self.fetched = -float("inf")

    # ------------------------------------------------------------------- the listing
    def refresh(self, force: bool = False) -> None:
        """Walk the ring again if the copy is older than ``ttl`` (or ``force``)."""
        with self.lock:
            if not force and self.clock() - self.fetched < self.ttl:
                return
            rows = self.api.call("GET", "/show_files", {"scope": "ring"}).get("files") or []
            now = time.time()
            fresh = (entry_of(r, now) for r in rows)
            self.files = {e.name: self.same_time(e) for e in fresh if e is not None}
            self.made -= {d for name in self.files for d in ancestors(name)}
            self.made -= set(self.files)
            self.rebuild()
            self.fetched = self.clock()

    def same_time(self, entry: Entry) -> Entry:
        """A version already known keeps the time it was shown with (the holder's
        ``created`` differs from the time this mount stored it with by a few ms, and
        editors take a changed mtime for a file changed by someone else)."""
        known = self.files.get(entry.name)
        if known is not None and (known.sha256, known.version) == (entry.sha256, entry.version):
            return replace(entry, created=known.created)
        return entry

    def rebuild(self) -> None:
        children: dict[str, set[str]] = {ROOT: set()}
        for path in [*self.files, *self.made]:
            child = path
            for folder in ancestors(path):
                children.setdefault(folder, set()).add(child.rsplit("/", 1)[-1])
                child = folder
        for folder in self.made:
            children.setdefault(folder, set())
        self.children = children

    # --------------------------------------------------------------------- questions
    def file(self, path: str) -> Entry | None:
        self.refresh()
        with self.lock:
            return self.files.get(path)

    def is_dir(self, path: str) -> bool:
        self.refresh()
        with self.lock:
            return path in self.children

    def list_dir(self, path: str) -> list[str] | None:
        self.refresh()
        with self.lock:
            names = self.children.get(path)
            return None if names is None else sorted(names)

    def under(self, folder: str) -> list[Entry]:
        """Every file below ``folder``."""
        self.refresh()
        with self.lock:
            return [e for n, e in self.files.items() if n.startswith(folder + "/")]

    # ------------------------------------------------------------- this mount's edits
    def stored(self, entry: Entry) -> None:
        with self.lock:
            self.files[entry.name] = entry
            self.made -= set(ancestors(entry.name))
            self.rebuild()

    def removed(self, name: str) -> None:
        """``name`` was deleted here; its folder stays (as if made here) even if it was
        the last file in it, so a shell inside the folder is not left in a void."""
        with self.lock:
            self.files.pop(name, None)
            folder = parent(name)
            if folder and not any(n.startswith(folder + "/") for n in self.files):
                self.made.add(folder)
            self.rebuild()

    def mkdir(self, path: str) -> None:
        with self.lock:
            self.made.add(path)
            self.rebuild()

    def rmdir(self, path: str) -> bool:
        """Forget a folder made here; False if it is not one."""
        with self.lock:
            if path not in self.made:
                return False
            self.made.discard(path)
            self.rebuild()
            return True

    def rename_dir(self, old: str, new: str) -> None:
        with self.lock:
            self.made = {
                new + m[len(old) :] if m == old or m.startswith(old + "/") else m for m in self.made
            }
            self.rebuild()
