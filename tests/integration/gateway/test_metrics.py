"""The gateway's /metrics serves loopd's own metrics, requests counted by route template."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def sample(text: str, name: str, labels: dict[str, str]) -> float | None:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return found.value
    return None


async def test_requests_show_up_under_their_route_template(api: httpx.AsyncClient) -> None:
    labels = {"method": "GET", "route": "/v1/runs/{run_id}", "status": "404"}
    before = sample((await api.get("/metrics")).text, "loopd_http_requests_total", labels) or 0.0
    for n in range(2):
        assert (await api.get(f"/v1/runs/run_missing_{n}")).status_code == 404

    response = await api.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert sample(response.text, "loopd_http_requests_total", labels) == before + 2
    assert "run_missing_0" not in response.text
    assert "loopd_brain_step_commit_seconds" in response.text
