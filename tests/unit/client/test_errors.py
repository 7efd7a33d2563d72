"""Failed responses and broken connections become typed errors with a stable code."""

from __future__ import annotations

import httpx
import pytest
from loopd import Client, LoopdAPIError, LoopdConnectionError, ProtocolError
from loopd.console import error_line
from loopd.errors import api_error_from_response, connection_error
from loopd.stream import Backoff, ReconnectPolicy


def test_the_error_envelope_gives_code_message_and_status() -> None:
    response = httpx.Response(409, json={"error": {"code": "run_finished", "message": "run r is completed"}})
    error = api_error_from_response(response)
    assert (error.status_code, error.code, error.message) == (409, "run_finished", "run r is completed")
    assert not error.retryable
    assert str(error) == "run_finished: run r is completed"


@pytest.mark.parametrize(
    ("response", "code", "message"),
    [
        (httpx.Response(404, json={"detail": "Not Found"}), "http_404", "Not Found"),
        (httpx.Response(502, text="<html>Bad Gateway</html>"), "http_502", "<html>Bad Gateway</html>"),
        (httpx.Response(503), "http_503", "Service Unavailable"),
    ],
)
def test_bodies_that_are_not_loopd_errors_still_give_a_readable_error(
    response: httpx.Response, code: str, message: str
) -> None:
    error = api_error_from_response(response)
    assert (error.code, error.message) == (code, message)


def test_server_side_trouble_is_retryable_and_bad_requests_are_not() -> None:
    assert api_error_from_response(
        httpx.Response(503, json={"error": {"code": "x", "message": ""}})
    ).retryable
    assert not api_error_from_response(
        httpx.Response(422, json={"error": {"code": "x", "message": ""}})
    ).retryable


def test_a_rate_limited_answer_says_when_to_try_again() -> None:
    body = {"error": {"code": "rate_limited", "message": "slow down"}}
    limited = api_error_from_response(httpx.Response(429, json=body, headers={"Retry-After": "7"}))
    assert (limited.code, limited.retryable, limited.retry_after) == ("rate_limited", True, 7.0)
    assert api_error_from_response(httpx.Response(429, json=body)).retry_after is None
    garbled = httpx.Response(429, json=body, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert api_error_from_response(garbled).retry_after is None


def test_a_stream_reconnects_no_sooner_than_the_server_asked() -> None:
    policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.02, max_attempts=5)
    body = {"error": {"code": "rate_limited", "message": "slow down"}}
    limited = api_error_from_response(httpx.Response(429, json=body, headers={"Retry-After": "3"}))
    assert Backoff(policy).next_delay(limited) == 3.0


def test_a_refused_connection_names_the_url_and_the_way_to_change_it() -> None:
    error = connection_error(httpx.ConnectError("[Errno 111] Connection refused"), "http://127.0.0.1:9")
    assert error.code == "connection_error"
    assert "http://127.0.0.1:9" in error.message and "LOOPD_URL" in error.message


def test_an_error_renders_as_one_line_with_its_code() -> None:
    assert error_line("run_not_found", "no run r").plain == "error run_not_found: no run r"


def test_the_client_raises_api_errors_and_connection_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/hands":
            raise httpx.ConnectError("connection refused")
        return httpx.Response(404, json={"error": {"code": "run_not_found", "message": "no run x"}})

    with Client("http://loopd.test", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(LoopdAPIError, match="run_not_found"):
            client.get_run("x")
        with pytest.raises(LoopdConnectionError):
            client.list_hands()


def test_a_response_that_breaks_the_contract_is_a_protocol_error() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"status": "running"}))
    with (
        Client("http://loopd.test", transport=transport) as client,
        pytest.raises(ProtocolError, match="Run"),
    ):
        client.get_run("x")
