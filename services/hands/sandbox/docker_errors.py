"""How the Docker backend turns the Docker SDK's failures into loopd errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import requests
from docker.errors import DockerException, ImageNotFound, NotFound

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
    except DiskError as exc:
        raise InfrastructureError(f"workspace disk: {exc}", code="sandbox_disk_failed") from exc
    except (DockerException, requests.RequestException, OSError) as exc:
        raise InfrastructureError(f"docker engine failed: {exc}", code="sandbox_unavailable") from exc
