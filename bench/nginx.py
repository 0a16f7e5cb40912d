"""What a user would run instead to share a file over HTTP: nginx serving it (sendfile on),
and curl as the client of both nginx and the peers, so REST downloads are judged against
it in the same run (issue 15)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools.launcher import free_port

CONFIG = """
daemon off;
master_process off;
worker_processes 1;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    sendfile on;
    tcp_nopush on;
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None
    )


@contextmanager
def nginx_serving(root: Path) -> Iterator[int]:
    """nginx serving ``root`` on a free loopback port (yielded) until the block ends."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed (Debian nginx-light)")
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as prefix:
        port = free_port()
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(CONFIG.format(prefix=prefix, port=port, root=root))
        server = subprocess.Popen(
            [binary, "-c", str(conf), "-p", prefix],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 10
            while curl_status(f"http://127.0.0.1:{port}/") == 0:
                if server.poll() is not None or time.monotonic() > deadline:
                    error = server.stderr.read().decode() if server.stderr else ""
                    raise RuntimeError(f"nginx did not start: {error}")
                time.sleep(0.05)
            yield port
        finally:
            server.terminate()
            server.wait(timeout=10)


def curl_status(url: str) -> int:
    done = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return int(done.stdout or 0)


def curl_download_mb_s(url: str, size: int, tries: int = 2) -> float:
    """curl GET ``url`` to /dev/null; MB/s of the best of ``tries``, each checked whole."""
    best = 0.0
    for _ in range(tries):
        done = subprocess.run(
            ["curl", "-sSf", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", url],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        got, seconds = done.stdout.split()
        if int(got) != size:
            raise RuntimeError(f"{url} gave {got} bytes, expected {size}")
        best = max(best, size / float(seconds) / 1e6)
    return best


def curl_upload(url: str, path: Path, name: str) -> tuple[float, str]:
    """curl -F name=… -F file=@path (name first: streamed); (MB/s, the answer's body)."""
    done = subprocess.run(
        ["curl", "-sSf", "-F", f"name={name}", "-F", f"file=@{path}", "-w", "\n%{time_total}", url],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    body, _, seconds = done.stdout.rpartition("\n")
    return path.stat().st_size / float(seconds) / 1e6, body
