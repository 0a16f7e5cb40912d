"""The ring as a WebDAV drive (issue 20), checked by the clients people use.

One 3-peer ring with an API token serves the module. litmus (the standard WebDAV
conformance suite) runs its basic, copymove, props, locks and http suites against one
peer; rclone copies a tree of 200 files in 20 folders up and checks it byte for byte;
``rclone mount`` (FUSE) takes ``cp``, ``mv`` and ``rm``; curl sends what desktop clients
send (chunked PUTs, Range GETs, Basic auth) and what hostile pages send (cross-site
writes). Every result is read back through REST on *another* peer.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clientlib.mount import fuse_problem
from devtools.launcher import LocalRing, PeerProcess
from tests.integration.mounttest import MIB, eventually, needs, rest_get, run

pytestmark = pytest.mark.integration

TOKEN = "webdav-test-api-token"
SUITES = ("basic", "copymove", "props", "locks", "http")


@dataclass
class Drive:
    ring: LocalRing

    @property
    def entry(self) -> PeerProcess:
        return self.ring.peers[0]

    @property
    def other(self) -> PeerProcess:
        """Not the peer the WebDAV clients talk to: results are read back here."""
        return self.ring.peers[2]

    @property
    def url(self) -> str:
        return f"http://{self.entry.host}:{self.entry.api_port}/dav/"

    def curl(self, *args: str, token: bool = True) -> tuple[int, str]:
        """(HTTP status, body) of curl with ``args`` (Basic auth with the token)."""
        auth = ["-u", f"me:{TOKEN}"] if token else []
        done = run("curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *auth, *args)
        body, _, status = done.stdout.rpartition("\n")
        return int(status), body

    def stored(self, name: str, data: bytes) -> None:
        found: list[tuple[int, bytes]] = []

        def check() -> bool:
            found[:] = [rest_get(self.other, name)]
            return found[0] == (200, data)

        eventually(check, f"{name!r} in the ring (last: {found[-1][:2] if found else None!r})")

    def absent(self, name: str) -> None:
        eventually(lambda: rest_get(self.other, name)[0] == 404, f"{name!r} gone from the ring")


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drive]:
    env = {"CHORD_API_TOKEN": TOKEN}
    with LocalRing(tmp_path_factory.mktemp("dav-ring"), successors=4, env=env) as ring:
        ring.start_ring(3, timeout=30)
        yield Drive(ring)


def rclone_env(drive: Drive) -> dict[str, str]:
    obscured = run("rclone", "obscure", TOKEN).stdout.strip()
    return {
        "RCLONE_CONFIG": "/dev/null",
        "RCLONE_CONFIG_RING_TYPE": "webdav",
        "RCLONE_CONFIG_RING_URL": drive.url,
        "RCLONE_CONFIG_RING_VENDOR": "other",
        "RCLONE_CONFIG_RING_USER": "me",
        "RCLONE_CONFIG_RING_PASS": obscured,
    }


# ------------------------------------------------------------------------- litmus
@needs("litmus")
def test_litmus_suites_all_pass(drive: Drive, tmp_path: Path) -> None:
    assert drive.curl("-X", "MKCOL", drive.url + "litmus")[0] == 201  # litmus works below it
    done = subprocess.run(
        ["litmus", "-k", drive.url + "litmus/", "me", TOKEN],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "TESTS": " ".join(SUITES)},
    )
    found = re.findall(
        r"summary for `(\w+)': of (\d+) tests run: \d+ passed, (\d+) failed", done.stdout
    )
    summaries = {suite: (int(ran), int(failed)) for suite, ran, failed in found}
    print(done.stdout)
    failures = [line for line in done.stdout.splitlines() if "FAIL" in line]
    assert sorted(summaries) == sorted(SUITES), (done.stdout[-3000:], done.stderr[-2000:])
    assert all(failed == 0 for _, failed in summaries.values()), failures
    assert all(ran > 0 for ran, _ in summaries.values()), summaries


# ------------------------------------------------------------------------- rclone
@needs("rclone")
def test_rclone_copies_a_tree_and_check_finds_no_difference(drive: Drive, tmp_path: Path) -> None:
    rng = random.Random(20)
    source = tmp_path / "tree"
    files: dict[str, bytes] = {}
    for folder in range(20):
        for index in range(10):
            relative = f"folder {folder:02d}/file-{index}.bin"
            files[relative] = rng.randbytes(rng.choice([0, 1, 700, 5000, 70_000]))
    files["folder 00/ünïcode name.txt"] = "é\n".encode()
    for relative, data in files.items():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_bytes(data)
    env = rclone_env(drive)
    run("rclone", "copy", "--transfers", "8", str(source), "ring:rclone", env=env)
    check = run("rclone", "check", "--download", str(source), "ring:rclone", env=env)
    assert "0 differences found" in check.stderr, check.stderr
    assert f"{len(files)} matching files" in check.stderr, check.stderr
    for relative, data in rng.sample(sorted(files.items()), 25):
        assert rest_get(drive.other, f"rclone/{relative}") == (200, data), relative
    listed = run("rclone", "lsf", "-R", "--files-only", "ring:rclone", env=env).stdout.split("\n")
    assert sorted(line for line in listed if line) == sorted(files)


@needs("rclone")
@pytest.mark.skipif(fuse_problem() is not None, reason=f"FUSE unavailable: {fuse_problem()}")
def test_rclone_mount_takes_cp_mv_and_rm(drive: Drive, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = rclone_env(drive)
    process = subprocess.Popen(
        [
            "rclone",
            "mount",
            "ring:",
            str(mnt),
            "--vfs-cache-mode",
            "writes",
            "--vfs-write-back",
            "0s",
            "--dir-cache-time",
            "1s",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        eventually(lambda: os.path.ismount(mnt), "rclone mount", timeout=20)
        local = tmp_path / "report.pdf"
        data = random.Random(3).randbytes(3 * MIB + 11)
        local.write_bytes(data)
        run("cp", str(local), str(mnt / "report.pdf"))
        drive.stored("report.pdf", data)
        (mnt / "moved").mkdir()
        run("mv", str(mnt / "report.pdf"), str(mnt / "moved" / "renamed.pdf"))
        drive.stored("moved/renamed.pdf", data)
        drive.absent("report.pdf")
        run("sh", "-c", f"echo written by the shell > '{mnt}/moved/note.txt'")
        drive.stored("moved/note.txt", b"written by the shell\n")
        run("rm", str(mnt / "moved" / "renamed.pdf"))
        drive.absent("moved/renamed.pdf")
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True, timeout=30)
        process.terminate()
        try:
            out, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
        print(out.decode(errors="replace")[-3000:])


# --------------------------------------------------------------------------- curl
def test_reads_are_anonymous_writes_need_the_token(drive: Drive, tmp_path: Path) -> None:
    body = tmp_path / "auth.txt"
    body.write_bytes(b"token please\n")
    status, answer = drive.curl("-T", str(body), drive.url + "auth.txt", token=False)
    assert status == 401 and '"error"' in answer
    headers = run(
        "curl", "-sS", "-D", "-", "-o", "/dev/null", "-T", str(body), drive.url + "auth.txt"
    ).stdout
    assert re.search(r"(?i)^www-authenticate: basic", headers, re.M), headers
    assert (
        drive.curl("-T", str(body), "-u", "me:wrong-token", drive.url + "auth.txt", token=False)[0]
        == 401
    )
    assert drive.curl("-T", str(body), drive.url + "auth.txt")[0] == 201
    bearer = ["-H", f"Authorization: Bearer {TOKEN}"]
    assert drive.curl("-T", str(body), *bearer, drive.url + "auth.txt", token=False)[0] == 204
    drive.stored("auth.txt", b"token please\n")
    assert drive.curl(drive.url + "auth.txt", token=False) == (200, "token please\n")
    status, _ = drive.curl("-X", "PROPFIND", "-H", "Depth: 1", drive.url, token=False)
    assert status == 207
    assert drive.curl("-X", "DELETE", drive.url + "auth.txt", token=False)[0] == 401
    drive.stored("auth.txt", b"token please\n")


def test_cross_site_writes_are_refused(drive: Drive, tmp_path: Path) -> None:
    body = tmp_path / "csrf.txt"
    body.write_bytes(b"from a web page\n")
    for header in ("Sec-Fetch-Site: cross-site", "Origin: http://evil.example"):
        status, answer = drive.curl("-T", str(body), "-H", header, drive.url + "csrf.txt")
        assert status == 403 and "cross-site" in answer, (header, answer)
    assert rest_get(drive.other, "csrf.txt")[0] == 404


def test_chunked_put_streams_and_range_get_reads_a_slice(drive: Drive, tmp_path: Path) -> None:
    """What Windows and macOS send: a PUT without Content-Length (chunked)."""
    data = random.Random(5).randbytes(9 * MIB + 333)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    with source.open("rb") as stdin:
        done = subprocess.run(
            [
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-u",
                f"me:{TOKEN}",
                "-H",
                "Transfer-Encoding: chunked",
                "-T",
                "-",
                drive.url + "chunked/big.bin",
            ],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.stdout == "409", done  # the folder does not exist yet (RFC 4918 9.7.1)
    assert drive.curl("-X", "MKCOL", drive.url + "chunked")[0] == 201
    with source.open("rb") as stdin:
        done = subprocess.run(
            [
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-u",
                f"me:{TOKEN}",
                "-H",
                "Transfer-Encoding: chunked",
                "-T",
                "-",
                drive.url + "chunked/big.bin",
            ],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.stdout == "201", done
    drive.stored("chunked/big.bin", data)
    sliced = subprocess.run(
        ["curl", "-sS", "-r", "4194000-4194999", drive.url + "chunked/big.bin"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    assert sliced == data[4194000:4195000]


def test_names_the_ring_refuses_get_a_clear_4xx(drive: Drive, tmp_path: Path) -> None:
    body = tmp_path / "x.txt"
    body.write_bytes(b"x")
    status, answer = drive.curl("-T", str(body), drive.url + "back%5Cslash.txt")
    assert status == 400 and "\\" in answer, answer
    for name in (".DS_Store", "._report.pdf"):
        status, answer = drive.curl("-T", str(body), drive.url + name)
        assert status == 403 and "macOS" in answer, (name, answer)
    assert drive.curl("-T", str(body), drive.url + "colon:ok.txt")[0] == 201
    drive.stored("colon:ok.txt", b"x")


def test_empty_file_and_folder_listing(drive: Drive, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert drive.curl("-X", "MKCOL", drive.url + "listing")[0] == 201
    assert drive.curl("-X", "MKCOL", drive.url + "listing/sub")[0] == 201
    assert drive.curl("-T", str(empty), drive.url + "listing/empty.txt")[0] == 201
    drive.stored("listing/empty.txt", b"")
    status, xml = drive.curl("-X", "PROPFIND", "-H", "Depth: 1", drive.url + "listing/")
    assert status == 207
    hrefs = sorted(re.findall(r"<(?:\w+:)?href>([^<]+)</", xml))
    assert hrefs == ["/dav/listing/", "/dav/listing/empty.txt", "/dav/listing/sub/"], xml
    # A file stored through REST on another peer shows up in the listing (within its TTL).
    other = drive.other
    run(
        "curl",
        "-sf",
        "-H",
        f"Authorization: Bearer {TOKEN}",
        "-F",
        "name=listing/rest.txt",
        "-F",
        f"file=@{empty}",
        f"http://{other.host}:{other.api_port}/upload_file",
    )

    def listed() -> str:
        return drive.curl("-X", "PROPFIND", "-H", "Depth: 1", drive.url + "listing/")[1]

    eventually(lambda: "listing/rest.txt" in listed(), "the REST upload listed over WebDAV")
    assert drive.curl("-X", "DELETE", drive.url + "listing/")[0] == 204
    drive.absent("listing/empty.txt")
    drive.absent("listing/rest.txt")
    assert drive.curl("-X", "PROPFIND", "-H", "Depth: 0", drive.url + "listing/")[0] == 404


def test_a_browser_gets_a_folder_page_with_its_assets(drive: Drive, tmp_path: Path) -> None:
    page = tmp_path / "page.txt"
    page.write_bytes(b"shown in the folder page\n")
    assert drive.curl("-X", "MKCOL", drive.url + "browse")[0] == 201
    assert drive.curl("-T", str(page), drive.url + "browse/page.txt")[0] == 201
    status, html = drive.curl("-H", "Accept: text/html", drive.url + "browse/", token=False)
    assert status == 200 and "page.txt" in html and "<html" in html.lower(), html[:500]
    assets = re.findall(r'(?:href|src)="(/:dir_browser/[^"]+)"', html)
    assert assets, html[:800]
    base = drive.url.removesuffix("/dav/")
    for asset in assets:
        status_only = run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", base + asset)
        assert status_only.stdout == "200", asset
