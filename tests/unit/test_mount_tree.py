"""The mount's directory tree from the ring listing: folders, mkdir, the TTL cache."""

from __future__ import annotations

from typing import Any

from clientlib.mount.tree import Entry, Tree


class FakeApi:
    def __init__(self, names: list[str]) -> None:
        self.names, self.calls = names, 0

    def call(self, method: str, path: str, query: Any = None) -> Any:
        self.calls += 1
        rows = [
            {"name": n, "size": len(n), "sha256": "ab", "version": 1, "created": 1e9}
            for n in self.names
        ]
        return {"files": rows, "peers": 1}


def tree(names: list[str]) -> tuple[Tree, FakeApi, list[float]]:
    now = [0.0]
    api = FakeApi(names)
    return Tree(api, ttl=2.0, clock=lambda: now[0]), api, now  # type: ignore[arg-type]


def test_names_with_slashes_are_folders() -> None:
    t, _, _ = tree(["a.txt", "docs/2026/plan.md", "docs/x"])
    assert t.list_dir("") == ["a.txt", "docs"]
    assert t.list_dir("docs") == ["2026", "x"]
    assert t.is_dir("docs/2026") and not t.is_dir("docs/x")
    assert t.file("docs/2026/plan.md") == Entry("docs/2026/plan.md", 17, "ab", 1, 1e9)
    assert t.list_dir("nope") is None and t.file("docs") is None


def test_the_listing_is_cached_for_the_ttl_and_own_writes_show_at_once() -> None:
    t, api, now = tree(["a"])
    t.file("a"), t.list_dir(""), t.is_dir("b")
    assert api.calls == 1
    t.stored(Entry("new/b", 1, "cd", 2, 5.0))
    assert t.list_dir("new") == ["b"] and api.calls == 1
    t.removed("a")
    t.removed("new/b")  # its folder stays: emptied here, as if made here
    assert t.list_dir("") == ["new"] and t.list_dir("new") == []
    now[0] = 3.0  # expired: the ring is walked again (and knows nothing of "new/b")
    assert t.list_dir("") == ["a", "new"] and api.calls == 2


def test_mkdir_is_local_until_a_file_is_written_in_it() -> None:
    t, api, now = tree(["x"])
    t.mkdir("empty")
    t.mkdir("empty/deeper")
    assert t.list_dir("") == ["empty", "x"] and t.list_dir("empty/deeper") == []
    now[0] = 3.0
    assert t.is_dir("empty/deeper")  # survives a new listing
    api.names.append("empty/deeper/f")
    now[0] = 6.0
    t.refresh()
    assert t.made == set()  # now a folder because of its file
    assert t.rmdir("empty") is False
    t.mkdir("gone")
    assert t.rmdir("gone") and not t.is_dir("gone")


def test_a_version_keeps_the_time_it_was_shown_with() -> None:
    t, api, now = tree(["a"])
    assert t.file("a") == Entry("a", 1, "ab", 1, 1e9)
    t.stored(Entry("a", 1, "ab", 1, 7.0))  # as this mount stored it (the holder says 1e9)
    now[0] = 3.0
    assert t.file("a") == Entry("a", 1, "ab", 1, 7.0) and api.calls == 2
    t.stored(Entry("a", 1, "ab", 0, 7.0))  # another version: the holder's time is shown
    now[0] = 6.0
    assert t.file("a") == Entry("a", 1, "ab", 1, 1e9) and api.calls == 3
