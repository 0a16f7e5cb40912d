"""The dashboard's routes on the Flask app (no browser): the page and its assets are
served from the repository with a strict CSP, nothing outside ui/ is reachable, and
reads (only reads) may be made from another peer's page."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from services.rest import create_app
from services.rest.dashboard import UI
from tests.unit.sim_ring import ideal_sim_ring, ring_context


@pytest.fixture
def client() -> FlaskClient:
    return create_app(ring_context(ideal_sim_ring(3).members()[0])).test_client()


def test_root_serves_the_page_with_a_strict_csp(client: FlaskClient) -> None:
    reply = client.get("/")
    assert reply.status_code == 200 and reply.mimetype == "text/html"
    assert b'<script type="module" src="/ui/app.js">' in reply.data
    csp = reply.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_every_asset_the_page_names_is_served(client: FlaskClient) -> None:
    page = (UI / "index.html").read_text(encoding="utf-8")
    scripts = {p.name for p in UI.glob("*.js")}
    named = set(re.findall(r'(?:src|href)="/ui/([^"]+)"', page))
    imported = set()
    for script in scripts:  # every module another one imports exists too
        imported |= set(re.findall(r'from "\./([^"]+)"', (UI / script).read_text()))
    assert named and imported <= scripts
    for asset in named | imported:
        reply = client.get(f"/ui/{asset}")
        assert reply.status_code == 200, asset
        assert "Content-Security-Policy" in reply.headers
    assert "javascript" in (client.get("/ui/app.js").mimetype or "")


@pytest.mark.parametrize("path", ["/ui/../app.py", "/ui/%2e%2e/app.py", "/ui/nope.js", "/ui/"])
def test_nothing_outside_ui_is_served(client: FlaskClient, path: str) -> None:
    reply = client.get(path)
    body = reply.get_json()
    assert reply.status_code == 404 and body == {"error": "not-found", "detail": body["detail"]}


def test_no_asset_writes_markup_from_data() -> None:
    """Text reaches the DOM through text nodes and attributes only."""
    for script in UI.glob("*.js"):
        source = script.read_text(encoding="utf-8")
        for risky in (".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert risky not in source, f"{script.name} uses {risky}"


def test_reads_allow_any_origin_writes_do_not(client: FlaskClient) -> None:
    assert client.get("/health").headers["Access-Control-Allow-Origin"] == "*"
    assert client.get("/finger_table").headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Origin" not in client.post("/health").headers
    preflight = client.options("/health", headers={"Origin": "http://elsewhere"})
    assert "Access-Control-Allow-Methods" not in preflight.headers
