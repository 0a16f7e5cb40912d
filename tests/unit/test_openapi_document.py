"""The OpenAPI document (services/rest/openapi.yaml) on its own: valid OpenAPI 3.1 with
valid JSON Schemas, every error answer in the Error shape, auth where the contract puts it,
and a file-name pattern that accepts and rejects exactly what docs/rest-api.md says."""

from __future__ import annotations

import re
import sys
import unicodedata
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
import yaml
from schemathesis.core.result import Ok

from chord.names import name_problem

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "services" / "rest" / "openapi.yaml"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}

# docs/rest-api.md, "Endpoints": every (path, method) the contract names.
CONTRACT_OPERATIONS = {
    ("/health", "get"),
    ("/get_successor", "get"),
    ("/get_predecessor", "get"),
    ("/finger_table", "get"),
    ("/lookup", "get"),
    ("/ring", "get"),
    ("/members", "get"),
    ("/upload_file", "post"),
    ("/download_file", "get"),
    ("/download_file", "post"),
    ("/search_file", "get"),
    ("/search_file", "post"),
    ("/show_files", "get"),
    ("/delete_file", "delete"),
    ("/delete_file", "post"),
    ("/degraded_files", "get"),
    ("/status", "get"),
    ("/metrics", "get"),
    ("/shutdown", "post"),
    ("/openapi.json", "get"),
    ("/", "get"),
    ("/ui/{asset}", "get"),
}
# docs/rest-api.md, the error table: status -> the codes it may carry.
ERROR_CODES = {
    400: {"bad-request"},
    401: {"unauthorized"},
    403: {"forbidden"},
    404: {"not-found"},
    405: {"method-not-allowed"},
    409: {"conflict"},
    413: {"too-large"},
    415: {"unsupported-media-type"},
    416: {"range-not-satisfiable"},
    422: {"checksum-mismatch"},
    429: {"too-many-requests"},  # issue 8: rate and transfer limits per client
    503: {"unavailable", "not-ready", "lookup-failed"},
    507: {"no-space"},
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def resolve(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        pointer = node["$ref"]
        assert pointer.startswith("#/"), pointer
        node = document
        for part in pointer[2:].split("/"):
            node = node[part]
    return node


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    schema = schemathesis.openapi.from_dict(document)
    schema.validate()  # the OpenAPI 3.1 meta-schema (raises on any violation)
    loaded = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # every $ref resolves
        loaded.append(result.ok())
    assert len(loaded) == len(operations(document))


def test_every_schema_is_valid_json_schema_2020_12(document: dict[str, Any]) -> None:
    """The 3.1 meta-schema does not look inside Schema Objects; check each one."""
    found = 0

    def walk(node: Any, where: str) -> None:
        nonlocal found
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "schema" and isinstance(value, dict):
                    found += 1
                    jsonschema_rs.meta.validate(value)
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(document["paths"], "#/paths")
    walk(document["components"], "#/components")
    for name, schema in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name
    assert found > 20


def test_document_names_every_contract_operation_and_no_other(document: dict[str, Any]) -> None:
    assert set(operations(document)) == CONTRACT_OPERATIONS


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for op in operations(document).values()]
    assert len(ids) == len(set(ids))


def test_every_error_status_uses_the_error_schema(document: dict[str, Any]) -> None:
    """Each 4xx/5xx answer is the Error schema, its code restricted to the contract's codes
    for that status. The one exception is the ring-core issue's /health 503 shape."""
    error_ref = "#/components/schemas/Error"
    checked = 0
    for (path, method), operation in operations(document).items():
        for status, response in operation["responses"].items():
            if not status.startswith(("4", "5")):
                continue
            code = int(status)
            if (path, code) == ("/health", 503):
                continue
            assert code in ERROR_CODES, f"{method} {path}: {status} is not in the error table"
            content = resolve(document, response)["content"]
            assert set(content) == {"application/json"}, f"{method} {path} {status}"
            schema = content["application/json"]["schema"]
            parts = schema.get("allOf", [schema])
            assert {"$ref": error_ref} in parts, f"{method} {path} {status}: not the Error schema"
            restriction = [p for p in parts if p != {"$ref": error_ref}]
            assert len(restriction) == 1, f"{method} {path} {status}"
            error = restriction[0]["properties"]["error"]
            allowed = {error["const"]} if "const" in error else set(error["enum"])
            assert allowed == ERROR_CODES[code], f"{method} {path} {status}: {allowed}"
            checked += 1
    assert checked > 30
    enum = set(document["components"]["schemas"]["Error"]["properties"]["error"]["enum"])
    assert enum == set().union(*ERROR_CODES.values())


def test_special_error_headers_are_documented(document: dict[str, Any]) -> None:
    responses = document["components"]["responses"]
    assert "WWW-Authenticate" in responses["Unauthorized"]["headers"]
    assert "Content-Range" in responses["RangeNotSatisfiable"]["headers"]


def test_auth_is_required_exactly_where_the_contract_says(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiToken"] == {**schemes["apiToken"], "type": "http", "scheme": "bearer"}
    assert schemes["adminToken"] == {**schemes["adminToken"], "type": "http", "scheme": "bearer"}
    assert document.get("security", []) == []  # reads never need a token
    secured = {
        key: op["security"] for key, op in operations(document).items() if op.get("security")
    }
    assert secured == {
        ("/upload_file", "post"): [{"apiToken": []}],
        ("/delete_file", "delete"): [{"apiToken": []}],
        ("/delete_file", "post"): [{"apiToken": []}],
        ("/shutdown", "post"): [{"adminToken": []}],
    }
    for key in secured:
        assert "401" in operations(document)[key]["responses"], key
    assert "403" in operations(document)[("/shutdown", "post")]["responses"]


def test_ids_are_40_lowercase_hex(document: dict[str, Any]) -> None:
    pattern = re.compile(document["components"]["schemas"]["Hex40"]["pattern"])
    assert pattern.search("0123456789abcdef" * 2 + "01234567")
    for bad in ("0" * 39, "0" * 41, "A" * 40, "g" * 40, " " + "0" * 39):
        assert not pattern.search(bad), bad


VALID_NAMES = [
    "a",
    "hello.txt",
    "файл.txt",
    "报告 2026.pdf",
    "docs/2026/plan.md",
    ".hidden",
    "..x",
    "a..b",
    " x",
    "a/.b/c",
    "x" * 255,
    "emoji 🎉.png",
    "non\u00a0breaking",  # only ASCII spaces count as "spaces" in a segment
]
INVALID_NAMES = [
    "",
    "../x",
    "/etc/passwd",
    "..",
    ".",
    "a/..",
    "a/./b",
    "a//b",
    "a/",
    "a\\b",
    "nul\x00",
    "tab\tname",
    "del\x7f",
    "c1\x85",
    "c1\x9f",
    "x" * 256,
    "...",
    "   ",
    "a/ . /b",
    "evil\u202egnp.exe",
    "zero\u200bwidth",
    "\ufeffbom",
    "soft\u00adhyphen",
    "line\u2028sep",
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_file_name_schema_accepts(document: dict[str, Any], name: str) -> None:
    validator = jsonschema_rs.validator_for(document["components"]["schemas"]["FileName"])
    assert validator.is_valid(name)


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_file_name_schema_rejects(document: dict[str, Any], name: str) -> None:
    validator = jsonschema_rs.validator_for(document["components"]["schemas"]["FileName"])
    assert not validator.is_valid(name)


def test_search_result_nulls_follow_found(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    validator = jsonschema_rs.validator_for(
        {"$ref": "#/components/schemas/SearchResult", "components": {"schemas": schemas}}
    )
    ref = {"id": "0" * 40, "address": "127.0.0.1:7000", "api": "127.0.0.1:17000"}
    absent = {
        "name": "x",
        "key": "1" * 40,
        "found": False,
        "owner": ref,
        "replicas": [],
        "hops": 0,
        "size": None,
        "sha256": None,
        "version": None,
    }
    present = {**absent, "found": True, "size": 3, "sha256": "a" * 64, "version": 1}
    assert validator.is_valid(absent)
    assert validator.is_valid(present)
    assert not validator.is_valid({**absent, "size": 3})
    assert not validator.is_valid({**present, "version": None})


def test_file_name_pattern_says_what_chord_names_says(document: dict[str, Any]) -> None:
    """Each character inside a name (all of the BMP, every format character beyond it and
    a sample of the rest): the schema and chord.names agree, except for the format
    characters beyond the BMP, which an ECMA-262 pattern without the u flag cannot name;
    the description lists those instead."""
    schema = document["components"]["schemas"]["FileName"]
    validator = jsonschema_rs.validator_for(schema)
    codes = [*range(0xD800), *range(0xE000, 0x10000), *range(0x10000, sys.maxunicode + 1, 97)]
    # Planes 1-3 and 14 hold every character assigned beyond the BMP but private use.
    assigned = [*range(0x10000, 0x40000), *range(0xE0000, 0xF0000)]
    codes += [c for c in assigned if unicodedata.category(chr(c)) == "Cf"]
    disagree = sorted(
        code
        for code in set(codes)
        if validator.is_valid(f"a{chr(code)}b") != (name_problem(f"a{chr(code)}b") is None)
    )
    assert all(code > 0xFFFF and unicodedata.category(chr(code)) == "Cf" for code in disagree)
    starts = [code for code in disagree if code - 1 not in disagree]
    description = " ".join(schema["description"].split())
    assert [c for c in starts if f"U+{c:04X}" not in description] == []
