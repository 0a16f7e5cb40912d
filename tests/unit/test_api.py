"""The REST app over a simulated ring: shapes fixed by the ring-core issue, JSON errors."""

from __future__ import annotations

import bisect
import re

import pytest
from flask.testing import FlaskClient

from chord.sim.network import SimNetwork
from services.rest import create_app
from tests.unit.sim_ring import ideal_sim_ring, ring_context

HEX40 = re.compile(r"^[0-9a-f]{40}$")


@pytest.fixture
def net() -> SimNetwork:
    return ideal_sim_ring(5)


@pytest.fixture
def client(net: SimNetwork) -> FlaskClient:
    return create_app(ring_context(net.members()[0])).test_client()


def assert_ref(ref: dict[str, str]) -> None:
    assert set(ref) == {"id", "address", "api"}
    assert HEX40.match(ref["id"]), ref


def test_health_names_the_peer(client: FlaskClient) -> None:
    body = client.get("/health").get_json()
    assert body["status"] == "ok"
    assert_ref(body["node"])


def test_health_is_503_while_not_joined(net: SimNetwork) -> None:
    idle = net.add("127.0.0.9:7000")
    response = create_app(ring_context(idle)).test_client().get("/health")
    assert response.status_code == 503


def test_successor_and_predecessor_shapes(client: FlaskClient, net: SimNetwork) -> None:
    node = net.members()[0]
    body = client.get("/get_successor").get_json()
    assert set(body) == {"node", "successor", "successors"}
    assert body["successor"]["id"] == node.successor.hex
    assert [s["id"] for s in body["successors"]] == [s.hex for s in node.state().successors]
    pred = client.get("/get_predecessor").get_json()
    assert set(pred) == {"node", "predecessor"}
    assert_ref(pred["predecessor"])


def test_finger_table_has_m_entries_with_hex_starts(client: FlaskClient, net: SimNetwork) -> None:
    body = client.get("/finger_table").get_json()
    assert len(body["fingers"]) == net.ring.bits
    for i, finger in enumerate(body["fingers"]):
        assert finger["index"] == i
        assert HEX40.match(finger["start"])
        assert_ref(finger["node"])


def test_lookup_by_name_and_key_finds_the_owner(client: FlaskClient, net: SimNetwork) -> None:
    ids = sorted(n.me.id for n in net.members())
    key = net.ring.hash("report.pdf")
    owner = ids[bisect.bisect_left(ids, key) % len(ids)]
    by_name = client.get("/lookup", query_string={"name": "report.pdf"}).get_json()
    assert int(by_name["owner"]["id"], 16) == owner
    by_key = client.get("/lookup", query_string={"key": by_name["key"]}).get_json()
    assert by_key["owner"] == by_name["owner"]


@pytest.mark.parametrize(
    "query",
    [{}, {"key": "zz"}, {"key": "ab" * 20, "name": "x"}, {"key": "f" * 40}, {"key": "AB" * 20}],
)
def test_lookup_rejects_bad_parameters_with_json(
    client: FlaskClient, query: dict[str, str]
) -> None:
    response = client.get("/lookup", query_string=query)
    assert response.status_code == 400
    assert set(response.get_json()) == {"error", "detail"}


def test_unknown_path_is_json_404(client: FlaskClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not-found"


def test_wrong_method_is_json_405_with_allow(client: FlaskClient) -> None:
    response = client.post("/health")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert set(response.get_json()) == {"error", "detail"}
