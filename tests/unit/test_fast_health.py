"""GET /health answered before Flask gives exactly the Flask route's answer."""

from __future__ import annotations

from flask import jsonify

from services.rest import create_app
from services.rest.shapes import ref_json
from tests.unit.sim_ring import ideal_sim_ring, ring_context


def test_fast_health_equals_the_flask_answer_joined_or_not() -> None:
    node = ideal_sim_ring(2).members()[0]
    app = create_app(ring_context(node))
    client = app.test_client()
    with app.app_context():
        expected = jsonify(status="ok", node=ref_json(node.me)).get_data()
    answer = client.get("/health")
    assert (answer.status_code, answer.get_data()) == (200, expected)
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert answer.headers["Content-Type"] == "application/json"
    node.leave()
    answer = client.get("/health")
    assert answer.status_code == 503 and answer.get_json()["status"] == "unavailable"
    assert client.post("/health").status_code == 405  # other methods still reach Flask
