"""The web dashboard in a real browser: headless Chromium (Debian package ``chromium``)
driven by Playwright against a live ring of 4 peer processes (k = 3, an API token set).

The tests run in order on one ring: the ring view places the peers right, a file uploaded
through the page shows up on its owner's peer page with the right holders, and a peer
killed with SIGKILL leaves the ring view while the degraded count rises and falls back
to 0 after repair. Every wait is a browser-side poll with a deadline; nothing sleeps.
Screenshots go to test-artifacts/ (or $CHORD_TEST_ARTIFACTS); their paths are printed.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devtools.launcher import ROOT, LocalRing, PeerProcess
from tests.integration.rest_http import Api

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: run `make install`"
)
CHROMIUM = os.environ.get("CHORD_CHROMIUM", "/usr/bin/chromium")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None,
        reason=f"no Chromium at {CHROMIUM}: `make install` as root installs Debian's "
        "`chromium` (or apt-get install chromium; CHORD_CHROMIUM=path picks another)",
    ),
]

TOKEN = "dashboard-test-token"
ARGS = (*LocalRing.extra_args, "--repair-interval", "0.3", "--replicas", "3")
# Chromium in a container, offline: no sandbox (root), no GPU, no background traffic.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000
ARTIFACTS = Path(os.environ.get("CHORD_TEST_ARTIFACTS", ROOT / "test-artifacts"))
# A valid file name that is also markup: it must show up as text and run nothing.
NAME = '<img src=x onerror="window.__xss=1"> отчёт & "notes".txt'


@dataclass
class Dash:
    ring: LocalRing
    peers: list[PeerProcess]

    @property
    def url(self) -> str:
        return self.peers[0].api_url  # the dashboard's own peer: never killed here

    def holders(self, name: str, k: int = 3) -> list[PeerProcess]:
        """Who should hold ``name``: the owner of its key and the next k-1 peers."""
        ordered = sorted(self.ring.live(), key=lambda p: p.ref.id)
        key = self.ring.ring.hash(name)
        first = next((i for i, p in enumerate(ordered) if p.ref.id >= key), 0)
        return [ordered[(first + i) % len(ordered)] for i in range(min(k, len(ordered)))]


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dash]:
    ring = LocalRing(
        tmp_path_factory.mktemp("dash-ring"), extra_args=ARGS, env={"CHORD_API_TOKEN": TOKEN}
    )
    try:
        yield Dash(ring, ring.start_ring(4, timeout=30))
    finally:
        ring.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, dash: Dash) -> Iterator[Any]:
    # bypass_csp: Playwright's wait_for_function evaluates strings, which the page's CSP
    # forbids; it also makes the XSS check below meaningful (CSP would hide a leak).
    context = browser.new_context(viewport={"width": 1366, "height": 900}, bypass_csp=True)
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def console(msg: Any) -> None:  # a 401 is the delete test's point, not a problem
        if msg.type == "error" and "status of 401" not in msg.text:
            problems.append(f"console {msg.type}: {msg.text}")

    tab.on("console", console)
    tab.goto(f"{dash.url}/?poll=500#/ring")  # poll faster than the default 1.5 s
    yield tab
    context.close()
    assert not problems, problems


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def marks(page: Any) -> dict[str, tuple[float, float, str]]:
    """Each peer mark on the ring: ID -> (cx, cy, label)."""
    found: list[list[Any]] = page.eval_on_selector_all(
        "#ring-peers .peer",
        """marks => marks.map(m => [m.dataset.id, +m.querySelector('circle').getAttribute('cx'),
            +m.querySelector('circle').getAttribute('cy'), m.querySelector('text').textContent])""",
    )
    return {ident: (x, y, label) for ident, x, y, label in found}


def test_ring_shows_every_peer_at_its_angle(page: Any, dash: Dash) -> None:
    page.wait_for_function("document.querySelectorAll('#ring-peers .peer').length === 4")
    shown = marks(page)
    assert set(shown) == {p.ref.hex for p in dash.peers}
    for peer in dash.peers:
        x, y, label = shown[peer.ref.hex]
        expected = 2 * math.pi * peer.ref.id / 2**160  # clockwise from 12 o'clock
        actual = math.atan2(x, -y) % (2 * math.pi)
        gap = min(abs(actual - expected), 2 * math.pi - abs(actual - expected))
        assert gap < 1e-3, (peer.short_id, actual, expected)
        assert label == peer.short_id and math.hypot(x, y) == pytest.approx(200, abs=0.05)
    # The selected peer (this page's) draws its fingers as chords: with 4 peers, 1 to 3.
    page.wait_for_function("document.querySelectorAll('#ring-chords line').length > 0")
    # Keyboard: Tab reaches a peer mark, Enter selects it.
    other = page.locator(f'#ring-peers .peer[data-id="{dash.peers[1].ref.hex}"]')
    other.focus()
    page.keyboard.press("Enter")
    sync_api.expect(other).to_have_attribute("aria-pressed", "true")
    sync_api.expect(page.locator("#ring-selected")).to_contain_text(dash.peers[1].short_id)


def test_upload_from_the_page_reaches_the_owners_page(page: Any, dash: Dash) -> None:
    expect = sync_api.expect
    data = os.urandom(300_000)
    page.get_by_role("link", name="Files").click()
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_label("File", exact=True).set_input_files(
        {"name": "local.bin", "mimeType": "application/octet-stream", "buffer": data}
    )
    page.get_by_label("Name in the ring (optional)").fill(NAME)
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status")).to_contain_text("Stored")
    expect(page.locator("#upload-progress")).to_have_attribute("value", "100")

    holders = dash.holders(NAME)
    owner = holders[0]
    row = page.locator("#ring-files tr").filter(has_text="отчёт")
    expect(row).to_contain_text("3/3 ok")
    expect(row.locator("td.name")).to_have_text(NAME)  # shown as text, not markup
    screenshot(page, "dashboard-files.png")
    href = row.get_by_role("link", name=NAME).get_attribute("href")
    assert page.request.get(dash.url + href).body() == data  # the download link
    row.get_by_role("link", name=owner.short_id).click()  # the owner column

    expect(page.locator("#peer-title")).to_contain_text(f"Peer {owner.short_id}")
    mine = page.locator("#peer-files tr").filter(has_text="отчёт")
    expect(mine.locator("td").nth(1)).to_have_text("primary")
    expect(mine.locator("td.holders")).to_have_text(re.compile(r"^[0-9a-f]{8}(, [0-9a-f]{8}){2}$"))
    shown = set(mine.locator("td.holders").inner_text().split(", "))
    assert shown == {p.short_id for p in holders}
    assert page.evaluate("window.__xss") is None
    expect(page.locator("#peer-fingers tr").first).to_be_visible()
    screenshot(page, "dashboard-peer.png")


def test_delete_needs_the_token_and_removes_the_row(page: Any, dash: Dash) -> None:
    peer = dash.peers[0]
    assert Api(peer.host, peer.api_port, TOKEN).put_file("doomed.txt", b"bye").status == 201
    page.get_by_role("link", name="Files").click()
    page.on("dialog", lambda dialog: dialog.accept())  # "Delete doomed.txt from the ring?"
    delete = page.get_by_role("button", name="Delete doomed.txt")
    delete.click()  # no token in this tab yet
    sync_api.expect(page.locator("#files-status")).to_contain_text("Could not delete")
    page.get_by_label("API token").fill(TOKEN)
    delete.click()
    sync_api.expect(page.locator("#files-status")).to_have_text("Deleted doomed.txt.")
    sync_api.expect(page.locator("#ring-files tr").filter(has_text="doomed.txt")).to_have_count(0)


def test_killed_peer_leaves_the_ring_view_and_repair_clears_degraded(page: Any, dash: Dash) -> None:
    # Repair takes well under a second here (--repair-interval 0.3): poll every 100 ms
    # so the page sees the degraded state at all.
    page.goto(f"{dash.url}/?poll=100#/ring")
    page.wait_for_function("document.querySelectorAll('#ring-peers .peer').length === 4")
    page.wait_for_function("document.querySelectorAll('#ring-ticks .file').length > 0")
    sync_api.expect(page.locator("#degraded-count")).to_have_text("0")
    tick = page.locator("#ring-ticks .file").filter(has=page.locator("title", has_text="отчёт"))
    tick.focus()  # focus (or hover) lights up the file's holders
    holders = {p.ref.hex for p in dash.holders(NAME)}
    lit = page.locator("#ring-peers .peer.holder")
    sync_api.expect(lit).to_have_count(3)
    assert {lit.nth(i).get_attribute("data-id") for i in range(3)} == holders
    screenshot(page, "dashboard-ring.png")
    # Every value the degraded counter takes from now on (it may be > 0 only briefly).
    page.evaluate(
        """() => {
            const counter = document.getElementById('degraded-count');
            window.__degraded = [];
            new MutationObserver(() => window.__degraded.push(+counter.textContent))
                .observe(counter, {childList: true, characterData: true, subtree: true});
        }"""
    )
    victim = next(p for p in dash.holders(NAME) if p is not dash.peers[0])
    dash.ring.kill(victim)

    page.wait_for_function(
        """id => { const ids = [...document.querySelectorAll('#ring-peers .peer')]
                       .map(m => m.dataset.id);
                   return ids.length === 3 && !ids.includes(id); }""",
        arg=victim.ref.hex,
    )
    page.wait_for_function("window.__degraded.some(n => n > 0)")
    sync_api.expect(page.locator("#degraded-count")).to_have_text("0")
    sync_api.expect(page.locator("#ring-ticks .file.degraded")).to_have_count(0)
    screenshot(page, "dashboard-ring-repaired.png")
