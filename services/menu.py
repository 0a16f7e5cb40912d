"""Console menu for a running peer. Every answer is validated: a typo gets a
message and the menu again, never an exit (the ancestor's menu died on "abc")."""

from __future__ import annotations

from collections.abc import Callable

from tabulate import tabulate

from chord.ids import from_hex, to_hex
from chord.lookup import LookupFailed
from chord.node import ChordNode, NodeState
from chord.node_ref import NodeRef

Input = Callable[[str], str]
Output = Callable[[str], None]


def node_row(node: ChordNode, ref: NodeRef | None) -> list[str]:
    if ref is None:
        return ["-", "(unknown)", "-"]
    return [node.ring.short(ref.id), ref.address, f"http://{ref.api}" if ref.api else "-"]


def finger_rows(node: ChordNode, state: NodeState) -> list[list[str]]:
    """Consecutive fingers with the same node are folded into one row (with m = 160
    most of the 160 entries point at the successor)."""
    rows: list[list[str]] = []
    start = 0
    for i in range(1, len(state.fingers) + 1):
        if i == len(state.fingers) or state.fingers[i] != state.fingers[start]:
            span = str(start) if i - 1 == start else f"{start}-{i - 1}"
            short = node.ring.short(state.finger_starts[start])
            rows.append([span, short, *node_row(node, state.fingers[start])[:2]])
            start = i
    return rows


class Menu:
    OPTIONS = (
        "Show this peer and its neighbours",
        "Show the successor list",
        "Show the finger table",
        "Look up a key or a file name",
        "Leave the ring and exit",
    )

    def __init__(self, node: ChordNode, read: Input = input, write: Output = print) -> None:
        self.node = node
        self.read = read
        self.write = write

    def run(self) -> None:
        """Loop until the user chooses to leave (or closes stdin)."""
        while True:
            self.write("\n" + "\n".join(f"  {i}. {text}" for i, text in enumerate(self.OPTIONS, 1)))
            try:
                choice = self.read(f"Choose 1-{len(self.OPTIONS)}: ").strip()
            except EOFError:
                return
            if not choice.isdigit() or not 1 <= int(choice) <= len(self.OPTIONS):
                self.write(f"Please enter a number from 1 to {len(self.OPTIONS)}.")
                continue
            if int(choice) == len(self.OPTIONS):
                return
            (self.show_peer, self.show_successors, self.show_fingers, self.lookup)[
                int(choice) - 1
            ]()

    def show_peer(self) -> None:
        state = self.node.state()
        rows = [
            ["this peer", *node_row(self.node, state.me)],
            ["predecessor", *node_row(self.node, state.predecessor)],
            ["successor", *node_row(self.node, state.successor)],
        ]
        self.write(tabulate(rows, headers=["", "id", "gRPC address", "REST URL"]))

    def show_successors(self) -> None:
        state = self.node.state()
        rows = [[i, *node_row(self.node, s)] for i, s in enumerate(state.successors, 1)]
        self.write(
            tabulate(rows, headers=["#", "id", "gRPC address", "REST URL"])
            if rows
            else "No successors: this peer is alone in its ring."
        )

    def show_fingers(self) -> None:
        rows = finger_rows(self.node, self.node.state())
        self.write(tabulate(rows, headers=["fingers", "start", "node", "gRPC address"]))

    def lookup(self) -> None:
        text = self.read("Key (40 hex digits) or file name: ").strip()
        if not text:
            self.write("Nothing to look up.")
            return
        try:
            key = from_hex(text)
        except ValueError:
            key = self.node.ring.hash(text)
        if key >= self.node.ring.size:
            key = self.node.ring.hash(text)
        try:
            found = self.node.lookup(key)
        except LookupFailed as exc:
            self.write(f"Lookup failed: {exc}")
            return
        self.write(
            tabulate(
                [
                    ["key", to_hex(key)],
                    ["owner", found.owner.describe(self.node.ring)],
                    ["hops", found.hops],
                    ["timeouts", found.timeouts],
                ],
                tablefmt="plain",
            )
        )
