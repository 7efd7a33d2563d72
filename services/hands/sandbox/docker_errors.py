"""How the Docker backend turns the Docker SDK's failures into loopd errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from services.core.errors import InfrastructureError
from services.core.errors import NotFound as MissingError
from services.hands.sandbox.disks import DiskError


@contextmanager
def engine_errors() -> Iterator[None]:
    """Engine failures become loopd errors, so nothing above the driver sees the Docker SDK."""
    try:
        yield
    except ImageNotFound as exc:
        raise InfrastructureError(
            f"sandbox image missing ({exc.explanation}): build it with deploy/sandbox/build.sh",
            code="sandbox_image_missing",
            retryable=False,
        ) from exc
    except NotFound as exc:
        raise MissingError(str(exc.explanation or exc)) from exc
    except APIError as exc:
        if "unknown runtime" not in str(exc.explanation or "").lower():
            raise _engine_failed(exc) from exc
        raise InfrastructureError(
            f"the docker engine lacks the sandbox runtime ({exc.explanation}): register runsc with "
            "deploy/setup.sh test, or see docs/security.md",
            code="sandbox_runtime_missing",
            retryable=False,
        ) from exc
    except DiskError as exc:
        raise InfrastructureError(f"workspace disk: {exc}", code="sandbox_disk_failed") from exc
    except (DockerException, requests.RequestException, OSError) as exc:
        raise _engine_failed(exc) from exc


def _engine_failed(exc: Exception) -> InfrastructureError:
    return InfrastructureError(f"docker engine failed: {exc}", code="sandbox_unavailable")
