"""Rough edges a first user meets, each answered in the one JSON error shape
(``{"error", "message", "field"}``) with what to do instead: a gzip body without
Content-Encoding, a GET where only POST exists, a trailing '/', an unknown path."""

from __future__ import annotations

import gzip

import orjson
import pytest
from integration.gateway.gateway_support import AUTH, RunningGateway, client_event

pytestmark = pytest.mark.integration


def test_a_gzip_body_without_content_encoding_is_told_to_add_it(gateway: RunningGateway) -> None:
    body = gzip.compress(orjson.dumps(client_event()))
    response = gateway.client.post(
        "/telemetry/events",
        content=body,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    document = response.json()
    assert document["error"] == "undeclared_encoding"
    assert document["field"] == "Content-Encoding"
    assert "add 'Content-Encoding: gzip'" in document["message"]


def test_get_on_a_post_route_is_a_json_405(gateway: RunningGateway) -> None:
    response = gateway.client.get("/telemetry/events", headers=AUTH)
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["error"] == "method_not_allowed"
    assert document["field"] == "method"
    assert "POST" in document["message"]
    assert "POST" in response.headers["allow"]


def test_a_trailing_slash_is_a_json_404_naming_the_path(gateway: RunningGateway) -> None:
    response = gateway.client.post(
        "/telemetry/events/", content=orjson.dumps(client_event()),
        headers={**AUTH, "Content-Type": "application/json"}, follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 404
    document = response.json()
    assert document["error"] == "not_found"
    assert "without the trailing '/': /telemetry/events" in document["message"]
    unknown = gateway.client.get("/nowhere", headers=AUTH)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "not_found"
    assert "/openapi.json" in unknown.json()["message"]
