"""The OpenAPI document against the real thing.

* The document's (path, method) pairs are exactly the Flask app's routes.
* A peer serves the document at /openapi.json, equal to services/rest/openapi.yaml.
* schemathesis runs every operation against a live 3-peer ring (real processes, tokens
  configured) with all its checks: no undocumented 5xx, response schemas, documented status
  codes and content types, headers, auth, positive and negative data. /shutdown gets a wrong
  admin token, so it must answer 401 and no peer may leave.

Replay a failure: the run is derandomized (same cases every time) and seeded with
SCHEMATHESIS_SEED; schemathesis prints a curl command for every failing case. Explore:
CHORD_SCHEMATHESIS_SEED=<n> CHORD_SCHEMATHESIS_EXAMPLES=<n> pytest tests/integration/test_openapi.py
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import requests
import schemathesis
import yaml
from schemathesis import Case
from schemathesis.checks import CheckFunction
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.transport.serialization import Binary

from devtools.launcher import ROOT, LocalRing
from tests.unit.sim_ring import full_peer_app

pytestmark = pytest.mark.integration

DOCUMENT_PATH = ROOT / "services" / "rest" / "openapi.yaml"
API_TOKEN = "schemathesis-api-token"
ADMIN_TOKEN = "schemathesis-admin-token"
WRONG_ADMIN_TOKEN = "not-the-admin-token"  # /shutdown must answer 401 to it
# Schemathesis sends hundreds of writes a minute from one address: the per-client limits
# (429, tested in test_security) would answer them before the auth check it verifies.
TOKEN_ARGS = (
    "--api-token",
    API_TOKEN,
    "--admin-token",
    ADMIN_TOKEN,
    "--rate-limit-per-minute",
    "1000000",
    "--max-transfers-per-client",
    "1000",
)
SEED_FILE = ("hello.txt", b"hello, chord\n")  # the document's example name: found by examples
# Derandomized and seeded: every run sends the same cases. Explore with other seeds or
# more examples through these variables (the defaults keep the run well under a minute
# on 2 shared cores: 19 operations, 3 generation phases each).
SCHEMATHESIS_SEED = int(os.environ.get("CHORD_SCHEMATHESIS_SEED", "20260521"))
MAX_EXAMPLES = int(os.environ.get("CHORD_SCHEMATHESIS_EXAMPLES", "40"))
IGNORED_METHODS = {"HEAD", "OPTIONS"}  # Flask adds them to every route by itself


def load_document() -> dict[str, Any]:
    loaded = yaml.safe_load(DOCUMENT_PATH.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def document_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method in methods
    }


# ---------------------------------------------------------------- routes == document


def app_operations(tmp_path: Path) -> set[tuple[str, str]]:
    """Every (path, method) a full peer's REST app routes."""
    with full_peer_app(tmp_path, API_TOKEN, ADMIN_TOKEN) as app:
        rules = list(app.url_map.iter_rules())
    found = set()
    for rule in rules:
        if rule.endpoint == "static":
            continue
        for method in rule.methods or ():
            if method not in IGNORED_METHODS:
                # Flask's <path:asset> is OpenAPI's {asset}
                found.add((re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method))
    return found


def test_document_paths_equal_the_apps_routes(tmp_path: Path) -> None:
    in_app, in_document = app_operations(tmp_path), document_operations(load_document())
    assert in_app == in_document, (
        f"routed but not documented: {sorted(in_app - in_document)}; "
        f"documented but not routed: {sorted(in_document - in_app)}"
    )


# ---------------------------------------------------------------- a live ring


def upload(api_url: str, name: str, data: bytes, token: str) -> requests.Response:
    return requests.post(
        f"{api_url}/upload_file",
        files=[("file", (name, data)), ("name", (None, name))],  # the file first, as forms do
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


@pytest.fixture(scope="module")
def live_ring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRing]:
    """Three peers with an API and an admin token, and one file (the document's example
    name) so the example phase downloads and searches something that exists."""
    # successors=64, the most a peer allows: `replicas` is documented as 1..64 (the
    # peer's successors), so every schema-valid value must be accepted here.
    ring = LocalRing(tmp_path_factory.mktemp("openapi") / "ring", successors=64)
    try:
        first = ring.start_ring(3, args=TOKEN_ARGS, timeout=30)[0]
        stored = upload(first.api_url, *SEED_FILE, token=API_TOKEN)
        assert stored.status_code == 201, stored.text
        yield ring
    finally:
        ring.close()


def peer_problems(ring: LocalRing) -> list[str]:
    problems = []
    for peer in ring.peers:
        if not peer.running():
            problems.append(f"{peer.address} exited with {peer.process.returncode}")
            continue
        status, body = peer.get("/health")
        if status != 200:
            problems.append(f"{peer.address} /health: {status} {body}")
    return problems


def test_peer_serves_the_document(live_ring: LocalRing) -> None:
    peer = live_ring.peers[0]
    with urllib.request.urlopen(peer.api_url + "/openapi.json", timeout=5) as response:
        assert response.status == 200
        assert response.headers.get_content_type() == "application/json"
        served = json.loads(response.read())
    assert served == load_document()


# ---------------------------------------------------------------- schemathesis

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SCHEMATHESIS_SEED,
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,  # derandomized: the same cases on every run
            "database": "none",  # no .hypothesis replay database: runs do not depend on history
        },
        "auth": {
            "openapi": {
                "apiToken": {"bearer": API_TOKEN},
                # Deliberately wrong: /shutdown must refuse it (401) and the ring stays whole.
                "adminToken": {"bearer": WRONG_ADMIN_TOKEN},
            }
        },
        "checks": {
            # A schema-valid Range outside the file is answered 416 by the contract.
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "416", "429", "5xx"]
            },
            # The contract documents 503 (no live holder / not ready / lookup failed) and
            # 507 (quota full); any other 5xx is a server bug. Whether a 503/507 is
            # documented for the operation is status_code_conformance's job.
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503", "507"]},
        },
    }
)
SCHEMA = schemathesis.openapi.from_dict(load_document(), config=CONFIG)


def as_the_contract_orders(case: Case[Any]) -> None:
    """A rule of POST /upload_file that OpenAPI cannot state, applied to every generated
    upload so the other checks see the contract's request: `name`, `replicas`, `overwrite`
    are form fields or query parameters, not both (400); when both were generated, the
    form field stays. (The fields may come before or after the `file` part: schemathesis'
    own order is sent as it is.)"""
    body = case.body
    if case.operation.path != "/upload_file" or not isinstance(body, dict):
        return
    if isinstance(case.query, dict):
        case.query = {k: v for k, v in case.query.items() if k not in body}


def _header_schemas(operation: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    schemas = {}
    for parameter in operation.get("parameters", []):
        if "$ref" in parameter:
            parameter = document["components"]["parameters"][parameter["$ref"].split("/")[-1]]
        if parameter["in"] == "header":
            schemas[parameter["name"].lower()] = parameter["schema"]
    return schemas


DOCUMENT = load_document()
HEADER_VALIDATORS = {
    (path, method.upper()): {
        name: jsonschema_rs.validator_for(schema)
        for name, schema in _header_schemas(operation, DOCUMENT).items()
    }
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
}
RANGE = re.compile(r"bytes=([0-9]+)-([0-9]+)")


def invalid_by_the_contract(case: Case[Any]) -> list[str]:
    """Why a case schemathesis generated as schema-valid is still invalid by the contract,
    in ways the document states in words only (or schemathesis mislabelled), so that a 400
    for it is right. positive_data_acceptance is skipped for such a case, nothing else."""
    headers = {k.lower(): v for k, v in (case.headers or {}).items()}
    reasons = _name_reasons(case) + _header_reasons(case, headers)
    body = case.body
    if (
        isinstance(body, dict)
        and case.operation.path != "/upload_file"
        and {"filename", "name"} <= body.keys()
        and body["filename"] != body["name"]
    ):
        reasons.append('"filename" and "name" disagree')  # 400 by the document's words
    match = RANGE.fullmatch(headers.get("range") or "")
    if match and int(match[2]) < int(match[1]):
        reasons.append("Range ends before it starts")  # 400 by the document's words
    return reasons


def _name_reasons(case: Case[Any]) -> list[str]:
    """A file name schema-valid but too long in bytes, or with a format character that
    the document's pattern cannot name."""
    reasons = []
    names = []
    if case.operation.path != "/lookup":  # a lookup name is any string
        if isinstance(case.query, dict):
            names.append(case.query.get("name"))
        if isinstance(case.body, dict):
            names += [case.body.get("filename"), case.body.get("name")]
    for name in names:
        # maxLength counts characters; the limit is 255 bytes of UTF-8.
        if isinstance(name, str) and len(name.encode("utf-8", "surrogatepass")) > 255:
            reasons.append(f"name of {len(name.encode('utf-8', 'surrogatepass'))} bytes")
        # The pattern names the BMP's format characters only (ECMA-262 without the u
        # flag cannot name the others); the document lists the rest in words.
        if isinstance(name, str) and any(
            ord(c) > 0xFFFF and unicodedata.category(c) == "Cf" for c in name
        ):
            reasons.append("a format character beyond the BMP in the name")
    return reasons


def _header_reasons(case: Case[Any], headers: dict[str, Any]) -> list[str]:
    """Headers schemathesis labelled positive that do not match their schema."""
    reasons = []
    validators = HEADER_VALIDATORS.get((case.operation.path, case.operation.method.upper()), {})
    for name, validator in validators.items():
        value = headers.get(name)
        if isinstance(value, str) and not validator.is_valid(value):
            # schemathesis 4.32's coverage phase labels e.g. `Range: 0` positive although
            # it does not match the header's pattern.
            reasons.append(f"{name}: {value!r} does not match its schema")
    return reasons


def moot_by_the_contract(case: Case[Any]) -> bool:
    """A download with If-None-Match or If-Range: the contract (RFC 9110 §13.2.2) answers
    a matching If-None-Match with 304 and ignores the Range under an If-Range that does not
    name the file's ETag, before it ever parses the Range, so a malformed Range in such a
    case is not an error. negative_data_rejection is skipped for these cases only; every
    other check runs, and invalid Ranges are still checked in all the cases without them."""
    headers = {name.lower() for name in case.headers or {}}
    return case.operation.path == "/download_file" and bool(headers & {"if-none-match", "if-range"})


UPLOAD_FORM = jsonschema_rs.validator_for(
    {
        **DOCUMENT["paths"]["/upload_file"]["post"]["requestBody"]["content"][
            "multipart/form-data"
        ]["schema"],
        "components": DOCUMENT["components"],
    }
)


def only_the_file_is_invalid(case: Case[Any]) -> bool:
    """An upload whose `file` part was generated as a non-string (an object, a number…)
    but is otherwise valid. On the wire every part is bytes, so the peer cannot tell (it
    stores those bytes): such a negative case is not negative. negative_data_rejection is
    skipped for it; invalid names, replicas, overwrite and unknown fields stay checked."""
    body = case.body
    if case.operation.path != "/upload_file" or not isinstance(body, dict):
        return False
    if isinstance(body.get("file", b""), bytes | str | Binary):
        return False
    return UPLOAD_FORM.is_valid({**body, "file": ""})


@SCHEMA.parametrize()
def test_schemathesis(case: Case[Any], live_ring: LocalRing) -> None:
    peer = live_ring.peers[0]
    as_the_contract_orders(case)
    excluded: list[CheckFunction] = []
    if invalid_by_the_contract(case):
        excluded.append(positive_data_acceptance)
    if moot_by_the_contract(case) or only_the_file_is_invalid(case):
        excluded.append(negative_data_rejection)
    case.call_and_validate(base_url=peer.api_url, timeout=30, excluded_checks=excluded)
    if case.operation.path == "/shutdown":
        problems = peer_problems(live_ring)
        assert not problems, f"a wrong admin token shut a peer down: {problems}"


def test_no_peer_was_shut_down(live_ring: LocalRing) -> None:
    """Runs after the schemathesis tests (file order): the wrong admin token left all three
    peers in the ring."""
    assert not peer_problems(live_ring)
    assert len(live_ring.live()) == 3


def test_schemathesis_covers_every_operation() -> None:
    """Nothing is excluded: every documented operation gets schemathesis cases."""
    operations = set()
    for result in SCHEMA.get_all_operations():
        assert isinstance(result, Ok), result
        operations.add((result.ok().path, result.ok().method.upper()))
    assert operations == document_operations(load_document())
