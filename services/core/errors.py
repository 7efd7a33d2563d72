"""The loopd exception tree: every error carries a stable code and whether retrying can help.

Errors become HTTP or gRPC statuses only at the edges (gateway routes, hands servicer).
"""

from __future__ import annotations


class LoopdError(Exception):
    """Root of every loopd error."""

    code = "internal"
    retryable = False
    http_status = 500

    def __init__(self, message: str, *, code: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable


class InvalidRequest(LoopdError):
    code = "invalid_request"
    http_status = 422


class BadRequest(LoopdError):
    """The request is malformed in a way no schema can express (e.g. a path that escapes its root)."""

    code = "bad_request"
    http_status = 400


class NotFound(LoopdError):
    code = "not_found"
    http_status = 404


class Conflict(LoopdError):
    code = "conflict"
    http_status = 409


class IdempotencyKeyTaken(Conflict):
    """Another request created a run with this Idempotency-Key first; its run is the answer."""

    code = "idempotency_key_taken"


class Unauthenticated(LoopdError):
    """The caller did not prove who it is (no credential, or a wrong one)."""

    code = "unauthenticated"
    http_status = 401


class Forbidden(LoopdError):
    """The caller is known, but its role does not allow this."""

    code = "forbidden"
    http_status = 403


class RateLimited(LoopdError):
    """The caller sent more requests than its limit allows; `retry_after` seconds from now it may again."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LeaseLost(LoopdError):
    """A brain's fencing token is stale: another brain owns the run now."""

    code = "lease_lost"


class Unstorable(LoopdError):
    """PostgreSQL refused the data itself (a character or a number it cannot hold): retrying cannot help."""

    code = "unstorable"
    http_status = 422


class InfrastructureError(LoopdError):
    """A dependency (hands, sandbox, database, bus) failed; the same work may succeed on retry."""

    code = "infrastructure"
    retryable = True
    http_status = 503


class HandsUnavailable(InfrastructureError):
    code = "hands_unavailable"


class HandsUnreachable(HandsUnavailable):
    """The worker was never reached: the call failed before the worker said a word of it.

    Nothing ran, so trying again costs the run nothing but time: a brain that a network fault cuts
    off from workers the registry still lists keeps trying them, for a bounded while, rather than
    spending the run's retry budget in the first seconds of the fault.
    """

    code = "hands_unreachable"


class HandsStopping(HandsUnavailable):
    """The worker is stopping and handed the call back before it ran: another worker may take it."""

    code = "hands_stopping"


class SandboxLost(InfrastructureError):
    code = "sandbox_lost"


class ModelError(LoopdError):
    """The model provider failed; `retryable` says whether the call may be repeated."""

    code = "model_error"
    http_status = 502
