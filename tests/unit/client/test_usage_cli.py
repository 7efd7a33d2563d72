"""`loopd usage` and `Client.usage`: the query they send, and the report as tables or JSON."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import httpx
import loopd.cli_context
import pytest
from loopd import Client, UsageReport
from loopd.cli import app
from typer.testing import CliRunner


def figures(tokens_in: int, tokens_out: int, cost: float, tools: int, seconds: float) -> dict[str, Any]:
    return {
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "tokens": tokens_in + tokens_out,
        "cost_usd": cost,
        "tool_calls": tools,
        "sandbox_seconds": seconds,
    }


REPORT: dict[str, Any] = {
    "tenant": "acme",
    "since": "2026-03-01",
    "until": "2026-03-31",
    "total": figures(130, 30, 1.25, 4, 12.5),
    "tenants": [{"tenant": "acme", **figures(130, 30, 1.25, 4, 12.5)}],
    "agents": [
        {"tenant": "acme", "agent_id": None, **figures(30, 10, 0.25, 1, 2.0)},
        {"tenant": "acme", "agent_id": "coder", **figures(100, 20, 1.0, 3, 10.5)},
    ],
    "days": [
        {"tenant": "acme", "day": "2026-03-02", **figures(30, 10, 0.25, 1, 2.0)},
        {"tenant": "acme", "day": "2026-03-03", **figures(100, 20, 1.0, 3, 10.5)},
    ],
}


class Gateway:
    """Answers /v1/usage with REPORT and remembers what was asked."""

    def __init__(self) -> None:
        self.asked: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request)
        return httpx.Response(200, json=REPORT)


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Gateway:
    fake = Gateway()

    def make_client(url: str, *, api_key: str | None = None) -> Client:
        return Client(url, api_key=api_key, transport=httpx.MockTransport(fake))

    monkeypatch.setattr(loopd.cli_context, "Client", make_client)
    return fake


def test_the_client_asks_for_a_range_and_reads_the_report(gateway: Gateway) -> None:
    with Client("http://loopd.test", transport=httpx.MockTransport(gateway)) as client:
        report = client.usage(since=date(2026, 3, 1), until=date(2026, 3, 31), all_tenants=True)
        client.usage()
    first, plain = gateway.asked
    assert first.url.path == "/v1/usage"
    assert dict(first.url.params) == {"since": "2026-03-01", "until": "2026-03-31", "all_tenants": "true"}
    assert dict(plain.url.params) == {}
    assert isinstance(report, UsageReport) and report.agents[1].agent_id == "coder"
    assert report.days[0].day == date(2026, 3, 2) and report.total.tokens == 160


def test_usage_prints_the_totals_then_a_row_per_agent_and_per_day(gateway: Gateway) -> None:
    result = CliRunner().invoke(app, ["usage", "--since", "2026-03-01"])
    assert result.exit_code == 0, result.output
    assert dict(gateway.asked[0].url.params) == {"since": "2026-03-01"}
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "usage of tenant acme from 2026-03-01 to 2026-03-31: 160 tokens, 1.25 USD, 4 tool calls,"
        " 12.5 sandbox seconds"
    )
    [inline] = [line for line in lines if "(inline spec)" in line]
    [coder] = [line for line in lines if "coder" in line]
    [day] = [line for line in lines if "2026-03-03" in line]
    assert [cell.strip() for cell in inline.split("│")[1:-1]] == ["(inline spec)", "30/10", "0.25", "1", "2"]
    assert "100/20" in coder and "10.5" in coder and "100/20" in day


def test_usage_as_json_is_the_report(gateway: Gateway) -> None:
    result = CliRunner().invoke(app, ["usage", "--json", "--all-tenants"])
    assert result.exit_code == 0, result.output
    assert dict(gateway.asked[0].url.params) == {"all_tenants": "true"}
    assert json.loads(result.stdout)["agents"][1]["agent_id"] == "coder"


def test_a_day_that_is_not_a_date_is_refused_before_any_request(gateway: Gateway) -> None:
    result = CliRunner().invoke(app, ["usage", "--until", "march"])
    assert result.exit_code == 2 and gateway.asked == []
