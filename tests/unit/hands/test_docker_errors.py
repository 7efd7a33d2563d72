"""Engine failures as loopd errors: an engine without the runtime a sandbox asks for is a clear,
non-retryable error that says how to register it; other refusals stay retryable engine failures."""

from __future__ import annotations

import pytest
from docker.errors import APIError

from services.core.errors import InfrastructureError
from services.hands.sandbox.docker_errors import engine_errors


def test_an_unknown_runtime_names_how_to_register_runsc() -> None:
    with pytest.raises(InfrastructureError) as raised, engine_errors():
        raise APIError("400 Client Error", explanation="Unknown runtime specified runsc")

    assert raised.value.code == "sandbox_runtime_missing" and not raised.value.retryable
    assert "deploy/setup.sh" in raised.value.message


def test_another_refusal_is_an_engine_failure() -> None:
    with pytest.raises(InfrastructureError) as raised, engine_errors():
        raise APIError("500 Server Error", explanation="no space left on device")

    assert raised.value.code == "sandbox_unavailable"
