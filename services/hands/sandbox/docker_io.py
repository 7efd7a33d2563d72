"""Byte-level helpers of the Docker backend: engine error mapping and tars."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from docker.errors import DockerException, ImageNotFound, NotFound

from services.core.errors import InfrastructureError
from services.core.errors import NotFound as MissingError


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
    except (DockerException, requests.RequestException, OSError) as exc:
        raise InfrastructureError(f"docker engine failed: {exc}", code="sandbox_unavailable") from exc


def single_file_tar(name: str, data: bytes, mode: int, owner: str) -> bytes:
    """A tar holding one file owned by `owner` ("uid:gid"); the engine keeps the owner on upload."""
    uid, _, gid = owner.partition(":")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        info.uid, info.gid = int(uid), int(gid or uid)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
