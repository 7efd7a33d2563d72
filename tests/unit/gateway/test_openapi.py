"""`/openapi.json` is a contract: every route's success response has a schema a client can rely on."""

from __future__ import annotations

from typing import Any

import pytest

from services.core.settings import Settings
from services.gateway.app import create_app

# Routes that answer with something other than JSON declare their media type instead of a model.
STREAMED = {
    ("get", "/v1/runs/{run_id}/events/stream"): "text/event-stream",
    ("get", "/v1/runs/{run_id}/artifacts/{path}"): "application/octet-stream",
    ("get", "/metrics"): "text/plain",
}


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    # Building the schema touches no server: the database and the bus are only used in the lifespan.
    settings = Settings(database_url="postgresql+psycopg://loopd@127.0.0.1:9/loopd", bus_url="local://")
    return create_app(settings).openapi()


def operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in openapi["paths"].items() for method, op in ops.items()]


def test_every_route_is_described(openapi: dict[str, Any]) -> None:
    assert len(operations(openapi)) >= 23


def test_each_success_response_has_a_schema(openapi: dict[str, Any]) -> None:
    components = openapi["components"]["schemas"]
    for method, path, op in operations(openapi):
        successes = {code: r for code, r in op["responses"].items() if code.startswith("2")}
        assert successes, f"{method} {path} declares no success response"
        for code, response in successes.items():
            content = response.get("content") or {}
            where = f"{method} {path} {code}"
            streamed = STREAMED.get((method, path))
            if streamed is not None:
                assert list(content) == [streamed], where
                assert content[streamed]["schema"].get("type") == "string", where
                continue
            assert list(content) == ["application/json"], where
            ref = content["application/json"]["schema"].get("$ref", "")
            assert ref.startswith("#/components/schemas/"), f"{where} has no response model"
            model = components[ref.rsplit("/", 1)[1]]
            assert model.get("properties"), f"{where}: {ref} describes no fields"


def test_errors_are_described_as_the_error_envelope(openapi: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in openapi["components"]["schemas"]
    for method, path, op in operations(openapi):
        for code, response in op["responses"].items():
            if code.startswith("2"):
                continue
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, f"{method} {path} {code}"


def test_events_are_a_union_tagged_by_type(openapi: dict[str, Any]) -> None:
    page = openapi["components"]["schemas"]["EventPage"]
    union = page["properties"]["data"]["items"]
    assert union["discriminator"]["propertyName"] == "type"
    mapping = union["discriminator"]["mapping"]
    assert {"run.created", "model.response", "tool.call", "tool.result", "run.waiting"} <= set(mapping)
    assert mapping["tool.result"] == "#/components/schemas/ToolResultEvent"
