"""Running a test module's sandboxes under both runtimes: runc, and runsc (gVisor).

A module that sets `pytestmark = [..., BOTH_RUNTIMES]` runs each of its tests once per runtime, through
the `sandbox_runtime` fixture its settings take (conftest.py); deploy/setup.sh registers runsc with
the engine for `make test`.
"""

from __future__ import annotations

import pytest

RUNTIMES = ("runc", "runsc")
BOTH_RUNTIMES = pytest.mark.parametrize("sandbox_runtime", RUNTIMES, indirect=True)
