"""The client's exception tree: every error has a stable `code`, a message, and whether retrying helps.

API errors mirror the server's `{"error": {"code", "message"}}` envelope; the rest are raised on this
side of the wire (unreachable server, malformed response, unsafe artifact path, bad spec file).
"""

from __future__ import annotations

import json

import httpx

# Statuses worth repeating the same request for: the server was briefly unable to answer.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class LoopdError(Exception):
    """Root of every error the loopd client raises."""

    code = "client_error"
    retryable = False

    def __init__(self, message: str, *, code: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class LoopdAPIError(LoopdError):
    """The server answered with an error status."""

    def __init__(
        self, status_code: int, code: str, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code, retryable=status_code in RETRYABLE_STATUSES)
        self.status_code = status_code
        # Seconds the server asked for before another try (Retry-After on 429 and 503), if it said.
        self.retry_after = retry_after


class LoopdConnectionError(LoopdError):
    """The server could not be reached, or the connection broke mid-request."""

    code = "connection_error"
    retryable = True


class ProtocolError(LoopdError):
    """The server answered with something that does not follow the v1 API."""

    code = "bad_response"


class SpecError(LoopdError):
    """An agent spec file cannot be read or is not a valid spec."""

    code = "invalid_spec"


class UnsafePathError(LoopdError):
    """An artifact path would land outside the download directory."""

    code = "unsafe_path"


class ChecksumMismatchError(LoopdError):
    """A downloaded artifact does not match the size or sha256 the server listed for it."""

    code = "checksum_mismatch"
    retryable = True


def api_error_from_response(response: httpx.Response) -> LoopdAPIError:
    """Read the error envelope of a failed response, tolerating bodies that are not loopd's."""
    error = _api_error(response)
    error.retry_after = _retry_after(response.headers.get("retry-after"))
    return error


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds; loopd sends seconds (the HTTP-date form is not used)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds <= 3600 else None


def _api_error(response: httpx.Response) -> LoopdAPIError:
    status = response.status_code
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        envelope = body.get("error")
        if isinstance(envelope, dict) and "code" in envelope:
            return LoopdAPIError(status, str(envelope["code"]), str(envelope.get("message", "")))
        # A proxy or a framework default in front of the gateway may answer with `{"detail": ...}`.
        if "detail" in body:
            detail = body["detail"]
            message = detail if isinstance(detail, str) else json.dumps(detail)
            return LoopdAPIError(status, f"http_{status}", message)
    text = response.text.strip()[:500] if body is None else json.dumps(body)[:500]
    return LoopdAPIError(status, f"http_{status}", text or response.reason_phrase or "request failed")


def connection_error(error: httpx.TransportError, base_url: str) -> LoopdConnectionError:
    """Explain a transport failure in terms of the server the user asked for."""
    if isinstance(error, httpx.ConnectError):
        return LoopdConnectionError(
            f"cannot connect to the loopd server at {base_url} ({str(error) or 'connection refused'}); "
            "is the gateway running? Set --url or LOOPD_URL to point elsewhere"
        )
    if isinstance(error, httpx.TimeoutException):
        return LoopdConnectionError(f"the loopd server at {base_url} did not answer in time")
    return LoopdConnectionError(f"lost the connection to the loopd server at {base_url}: {error}")
