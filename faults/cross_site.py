"""A hostile web page on another origin, opened in headless Chromium: it tries to upload
and delete through the victim's REST API with the user's browser (fetch in no-cors mode,
which needs no preflight, and plain HTML form posts), and to shut the peer down.

The page is served from 127.0.0.3 (another site than the victim's 127.x.y.z address);
Chromium is Debian's (``/usr/bin/chromium``) driven by Playwright, as in
tests/integration/test_dashboard.py.
"""

from __future__ import annotations

import contextlib
import html
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

CHROMIUM = os.environ.get("CHORD_CHROMIUM", "/usr/bin/chromium")
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
ORIGIN_HOST = "127.0.0.3"

PAGE = """<!doctype html><html><body>
<form id="up" method="POST" enctype="multipart/form-data" action="{victim}/upload_file"
      target="sink"><input type="hidden" name="name" value="{planted}-form"></form>
<form id="del" method="POST" action="{victim}/delete_file?name={target_q}" target="sink2"></form>
<iframe name="sink"></iframe><iframe name="sink2"></iframe>
<script>
(async () => {{
  const victim = {victim_js};
  const form = new FormData();
  form.append("name", {planted_js});
  form.append("file", new Blob(["planted by another site"]), "planted.txt");
  const tries = [
    ["POST", victim + "/upload_file", form],
    ["POST", victim + "/delete_file?name=" + {target_js}, null],
    ["POST", victim + "/delete_file", new Blob([JSON.stringify({{filename: {target_raw}}})],
      {{type: "text/plain"}})],
    ["DELETE", victim + "/delete_file?name=" + {target_js}, null],
    ["POST", victim + "/shutdown", null],
  ];
  const outcome = [];
  for (const [method, url, body] of tries) {{
    try {{
      await fetch(url, {{method, body, mode: "no-cors", credentials: "include"}});
      outcome.push("sent");
    }} catch (error) {{ outcome.push(String(error)); }}
  }}
  document.getElementById("up").submit();
  document.getElementById("del").submit();
  await new Promise(done => setTimeout(done, 1500));  // let the form posts land
  window.__outcome = outcome;
}})();
</script></body></html>"""


def available() -> bool:
    if shutil.which(CHROMIUM) is None:
        return False
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _page_server(body: bytes) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((ORIGIN_HOST, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{ORIGIN_HOST}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def attack(victim_url: str, target: str, planted: str) -> dict[str, Any]:
    """Open the hostile page once and wait for its requests; returns what the page saw
    (the browser cannot read no-cors answers, so the checks are made on the ring)."""
    from playwright.sync_api import sync_playwright

    page_html = PAGE.format(
        victim=html.escape(victim_url),
        planted=html.escape(planted),
        target_q=quote(target, safe=""),
        victim_js=_js(victim_url),
        planted_js=_js(planted),
        target_js=_js(quote(target, safe="")),
        target_raw=_js(target),
    )
    with _page_server(page_html.encode()) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function("window.__outcome !== undefined", timeout=30_000)
            outcome = page.evaluate("window.__outcome")
        finally:
            browser.close()
    return {"page_origin": url.rstrip("/"), "fetches": outcome}


def _js(text: str) -> str:
    import json

    return json.dumps(text)
