"""Byte-level helpers of the Docker backend: the exec output pump thread, engine error mapping, tars."""

from __future__ import annotations

import asyncio
import contextlib
import io
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from docker.errors import DockerException, ImageNotFound, NotFound

from services.core.errors import InfrastructureError
from services.core.errors import NotFound as MissingError
from services.hands.sandbox import ExecOutput


def pump(
    stream: Iterator[tuple[bytes | None, bytes | None]],
    loop: asyncio.AbstractEventLoop,
    queue: asyncio.Queue[ExecOutput | None],
) -> None:
    """Thread body: move an exec's demultiplexed output onto the event loop; None marks its end."""

    def put(item: ExecOutput | None) -> None:
        # A closed loop means nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, item)

    try:
        for stdout, stderr in stream:
            if stdout:
                put(ExecOutput("stdout", stdout))
            if stderr:
                put(ExecOutput("stderr", stderr))
    except Exception:  # a broken connection ends the stream too; the caller then checks the sandbox
        pass
    finally:
        put(None)


async def drained(queue: asyncio.Queue[ExecOutput | None], grace: float) -> bool:
    """Discard what a killed exec still sends; True once its stream has closed within `grace` seconds."""
    try:
        async with asyncio.timeout(grace):
            while await queue.get() is not None:
                pass
        return True
    except TimeoutError:
        return False


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
