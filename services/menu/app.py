"""The menu loop, its prompts and actions. Every answer is validated: a typo gets a
message and the question again, never an exit (the ancestor's menu died on "abc").

Keys: Ctrl-C (KeyboardInterrupt) cancels the prompt or transfer at hand and shows the
menu again; Ctrl-D (end of input) leaves, like the last option. Either way run()
returns and the caller leaves the ring gracefully.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from tabulate import tabulate

from chord.ids import from_hex, to_hex
from chord.lookup import LookupFailed
from chord.names import name_problem
from chord.transport import PeerUnreachable
from services.files.client import Conflict, FileError, PeerCallFailed
from services.menu import tables, transfers
from services.menu.transfers import Cancelled, ProgressFactory
from services.peer import overview
from services.peer.overview import PeerParts

log = logging.getLogger("chord.menu")

Input = Callable[[str], str]
Output = Callable[[str], None]


class Back(Exception):
    """The user gave up on this action (an empty answer): back to the menu."""


def explain(exc: BaseException) -> str:
    """A sentence for an error that ends an action (the peer keeps running)."""
    if isinstance(exc, PeerCallFailed):
        return f"A peer did not answer: {exc.details}"
    if isinstance(exc, FileError):
        label = exc.code.replace("-", " ").capitalize()
        return f"{label}: {exc}"
    if isinstance(exc, LookupFailed):
        return f"Lookup failed: {exc}"
    if isinstance(exc, PeerUnreachable):
        return f"A peer did not answer: {exc}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
    return f"Unexpected error ({type(exc).__name__}: {exc}); the peer keeps running"


class Menu:
    def __init__(
        self,
        peer: PeerParts,
        read: Input = input,
        write: Output = print,
        progress: ProgressFactory = transfers.tqdm_bar,
    ) -> None:
        self.peer = peer
        self.node = peer.node
        self.ring = peer.node.ring
        self.read = read
        self.write = write
        self.progress = progress
        self.actions: list[tuple[str, Callable[[], None] | None]] = [
            ("This peer, its predecessor and successor", self.show_peer),
            ("Successor list", self.show_successors),
            ("Finger table", self.show_fingers),
            ("Health of this peer", self.show_health),
            ("Files on this peer", self.show_files),
            ("Upload a file", self.upload),
            ("Download a file", self.download),
            ("Search for a file", self.search),
            ("Delete a file", self.delete),
            ("Ring overview (every peer)", self.show_ring),
            ("Degraded files", self.show_degraded),
            ("Look up a key or a file name", self.lookup),
            ("Leave the ring and quit", None),
        ]

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        """Loop until the user leaves (last option) or closes stdin (Ctrl-D)."""
        count = len(self.actions)
        while True:
            lines = [f"\nChord peer {self.node.describe()}"]
            lines += [f"  {i:2}. {label}" for i, (label, _) in enumerate(self.actions, 1)]
            self.write("\n".join(lines))
            try:
                choice = self.read(f"Choose 1-{count}: ").strip()
                if not choice.isdigit() or not 1 <= int(choice) <= count:
                    self.write(f"Please enter a number from 1 to {count}.")
                    continue
                action = self.actions[int(choice) - 1][1]
                if action is None:
                    self.write("Leaving the ring...")
                    return
                action()
            except EOFError:
                self.write("\nEnd of input: leaving the ring...")
                return
            except KeyboardInterrupt:
                self.write(f"\nCancelled. (To leave: choose {count}, or press Ctrl-D.)")
            except Back:
                self.write("Back to the menu.")
            except Exception as exc:  # nothing typed may end the peer
                if not isinstance(exc, FileError | LookupFailed | PeerUnreachable | OSError):
                    log.exception("menu action failed")
                self.write(explain(exc))

    # --------------------------------------------------------------- prompts
    def ask(self, prompt: str) -> str:
        return self.read(prompt).strip()

    def ask_name(self, prompt: str, default: str | None = None) -> str:
        """A file name in the ring; re-asks until valid. Empty: ``default``, or Back."""
        while True:
            name = self.ask(prompt) or default
            if not name:
                raise Back
            problem = name_problem(name)
            if problem is None:
                return name
            self.write(f"Not a valid file name: {problem}.")

    def confirm(self, prompt: str) -> bool:
        while True:
            answer = self.ask(prompt).lower()
            if answer in ("y", "yes"):
                return True
            if answer in ("", "n", "no"):
                return False
            self.write("Please answer y or n.")

    def open_source(self) -> tuple[BinaryIO, Path]:
        """A local file opened for reading; re-asks until one opens. Empty: Back."""
        while True:
            text = self.ask("Local file to upload (empty: back to the menu): ")
            if not text:
                raise Back
            path = Path(text).expanduser()
            try:
                if path.is_dir():
                    self.write(f"{path} is a folder; give the path of a file.")
                elif not path.exists():
                    self.write(f"No such file: {path}")
                elif not path.is_file():
                    self.write(f"{path} is not a regular file.")
                else:
                    return open(path, "rb"), path  # the caller closes it
            except (OSError, ValueError) as exc:
                self.write(f"Cannot read {path}: {getattr(exc, 'strerror', None) or exc}")

    def ask_destination(self, default: str) -> Path:
        """Where to save a download: a new file in an existing folder (a folder given:
        ``default`` inside it). Re-asks until usable; Ctrl-C goes back."""
        while True:
            text = self.ask(f"Save as (empty: {default}): ") or default
            path = Path(text).expanduser()
            try:
                if path.is_dir():
                    path = path / default
                if path.exists():
                    self.write(f"{path} already exists; give another path (Ctrl-C: back).")
                elif not path.parent.is_dir():
                    self.write(f"No such folder: {path.parent}")
                elif not os.access(path.parent, os.W_OK):
                    self.write(f"Cannot write to the folder {path.parent}.")
                else:
                    return path
            except (OSError, ValueError) as exc:
                self.write(f"Not a usable path: {exc}")

    # ----------------------------------------------------------------- views
    def show_peer(self) -> None:
        self.write(tables.neighbours(self.ring, self.node.state()))

    def show_successors(self) -> None:
        self.write(tables.successors(self.ring, self.node.state()))

    def show_fingers(self) -> None:
        self.write(tables.fingers(self.ring, self.node.state()))

    def show_health(self) -> None:
        status = overview.peer_status(self.node, self.peer.storage, self.peer.replicator)
        self.write(tables.status(self.ring, status))

    def show_files(self) -> None:
        self.write(tables.local_files(overview.local_files(self.peer.storage)))

    def show_ring(self) -> None:
        self.write("Walking the ring...")
        walk = overview.ring_walk(self.node, self.peer.files)
        self.write(tables.ring_overview(self.ring, walk, self.node.me))

    def show_degraded(self) -> None:
        self.write(tables.degraded(overview.degraded(self.peer.replicator)))

    # ------------------------------------------------------------- file ops
    def upload(self) -> None:
        source, path = self.open_source()
        with source:
            size = os.fstat(source.fileno()).st_size
            name = self.ask_name(f"Name in the ring (empty: {path.name}): ", default=path.name)
            overwrite = False
            while True:
                try:
                    result = transfers.upload(
                        self.peer.files, source, size, name, self.progress, overwrite=overwrite
                    )
                    break
                except Conflict:
                    question = f"{name!r} already exists with other content. Overwrite? [y/N] "
                    if overwrite or not self.confirm(question):
                        self.write("Not uploaded.")
                        return
                    overwrite = True
                except Cancelled:
                    self.write("Upload cancelled; nothing was stored.")
                    return
        self.write(f"Uploaded {name!r}.")
        self.write(tables.put_result(self.ring, result))

    def download(self) -> None:
        name = self.ask_name("File name in the ring (empty: back to the menu): ")
        info, _, _ = self.peer.files.stat(name)  # NotFound before asking where to save
        dest = self.ask_destination(name.rsplit("/", 1)[-1])
        try:
            info = transfers.download(self.peer.files, name, dest, self.progress)
        except Cancelled:
            self.write("Download cancelled; nothing was saved.")
            return
        self.write(
            f"Saved {name!r} v{info.version} ({tables.size_text(info.size)}) to {dest}; "
            "SHA-256 verified."
        )

    def search(self) -> None:
        name = self.ask_name("File name to search for (empty: back to the menu): ")
        self.write(tables.search_result(self.ring, self.peer.files.search(name)))

    def delete(self) -> None:
        name = self.ask_name("File name to delete (empty: back to the menu): ")
        if not self.confirm(f"Delete {name!r} from the whole ring? [y/N] "):
            self.write("Not deleted.")
            return
        self.peer.files.delete(name)
        self.write(f"Deleted {name!r}.")

    def lookup(self) -> None:
        text = self.ask("Key (40 hex digits) or file name: ")
        if not text:
            self.write("Nothing to look up.")
            return
        try:
            key = from_hex(text)
        except ValueError:
            key = self.ring.hash(text)
        if key >= self.ring.size:
            key = self.ring.hash(text)
        found = self.node.lookup(key)
        rows: list[list[object]] = [
            ["key", to_hex(key)],
            ["owner", found.owner.describe(self.ring)],
            ["hops", found.hops],
            ["timeouts", found.timeouts],
        ]
        self.write(tabulate(rows, tablefmt="plain"))
