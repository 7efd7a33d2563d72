"""Requests are counted by route template and status, never by raw path."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, HTTPException

from services.core.metrics import REGISTRY
from services.gateway.body_limit import BodyLimitMiddleware
from services.gateway.request_metrics import RequestMetricsMiddleware


def requests(method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("loopd_http_requests_total", labels) or 0.0


def answered(method: str, route: str) -> float:
    labels = {"method": method, "route": route}
    return REGISTRY.get_sample_value("loopd_http_request_duration_seconds_count", labels) or 0.0


def app() -> FastAPI:
    built = FastAPI()
    built.add_middleware(BodyLimitMiddleware, max_bytes=16)
    built.add_middleware(RequestMetricsMiddleware, routes=built.routes)

    @built.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        if thing_id == "missing":
            raise HTTPException(404)
        return {"id": thing_id}

    @built.post("/things")
    async def create(body: dict[str, str]) -> dict[str, str]:
        return body

    @built.get("/broken")
    async def broken() -> None:
        raise RuntimeError("boom")

    return built


def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_requests_are_counted_by_template_and_status() -> None:
    ok, missing = requests("GET", "/things/{thing_id}", 200), requests("GET", "/things/{thing_id}", 404)
    timed = answered("GET", "/things/{thing_id}")
    async with client() as http:
        for thing_id in ("a", "b", "c"):
            assert (await http.get(f"/things/{thing_id}")).status_code == 200
        assert (await http.get("/things/missing")).status_code == 404
    assert requests("GET", "/things/{thing_id}", 200) == ok + 3
    assert requests("GET", "/things/{thing_id}", 404) == missing + 1
    assert answered("GET", "/things/{thing_id}") == timed + 4
    assert (
        REGISTRY.get_sample_value(
            "loopd_http_requests_total", {"method": "GET", "route": "/things/a", "status": "200"}
        )
        is None
    )


async def test_unknown_paths_share_one_label() -> None:
    before = requests("GET", "unmatched", 404)
    async with client() as http:
        for n in range(3):
            assert (await http.get(f"/nowhere/{n}")).status_code == 404
    assert requests("GET", "unmatched", 404) == before + 3


async def test_a_body_turned_away_before_routing_keeps_its_route() -> None:
    before = requests("POST", "/things", 413)
    async with client() as http:
        assert (await http.post("/things", json={"name": "x" * 100})).status_code == 413
    assert requests("POST", "/things", 413) == before + 1


async def test_a_route_that_raises_counts_as_a_server_error() -> None:
    before = requests("GET", "/broken", 500)
    async with client() as http:
        assert (await http.get("/broken")).status_code == 500
    assert requests("GET", "/broken", 500) == before + 1
