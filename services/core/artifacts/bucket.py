"""The object store the S3 backends share (artifacts/s3.py and the hands' call ledger): where it is,
one client, the threads its calls run on, and its errors as loopd's.

The client is boto3 (with botocore and s3transfer), run on threads. It is AWS's own SDK, released
every week, and it speaks to any S3-compatible server (an endpoint and an addressing style are all
it needs). Its transfer manager uploads and copies large objects in parts straight from a file, so
no blob passes whole through memory. Its calls block, so they run on a pool of threads of the
bucket's own, sized to its connection pool, and never crowd the event loop's default executor that
the filesystem backends use. aiobotocore would spare the threads, but it pins botocore to a narrow
range of releases and brings aiohttp, a second HTTP stack beside httpx.

Credentials come from the settings (SecretStr, handed to the client and never logged); when they
are unset the SDK's own chain finds them (its AWS_* variables, an instance or pod role).
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from services.core.errors import InfrastructureError
from services.core.settings import Settings

T = TypeVar("T")
_URL = re.compile(r"^s3://(?P<bucket>[^/]+)/?(?P<prefix>.*?)/?$")
# Concurrent requests per process: a snapshot's batch of small files goes out this many at a time.
_CONNECTIONS = 32
# Errors that mean "no such object" rather than a failing store.
_MISSING = {"404", "NoSuchKey", "NotFound"}
# Errors that mean a conditional write found the object there already, or another write of it under way.
_TAKEN = {"412", "PreconditionFailed"}
_CONFLICTING = {"409", "ConditionalRequestConflict"}


@dataclass(frozen=True)
class Location:
    """A bucket and the prefix every key of this deployment starts with ("" or "some/path/")."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Location:
        match = _URL.match(url)
        if match is None:
            raise ValueError(f"not an s3://BUCKET/PREFIX URL: {url!r}")
        prefix = match["prefix"]
        return cls(match["bucket"], f"{prefix}/" if prefix else "")


@dataclass(frozen=True)
class Listed:
    key: str
    modified: float
    size: int


class Bucket:
    """One deployment's share of a bucket: its keys under `location.prefix`, and a client to reach them."""

    def __init__(self, settings: Settings) -> None:
        if settings.artifacts_url is None:
            raise ValueError("artifacts_url is not set")
        self.location = Location.parse(settings.artifacts_url)
        self.client = _client(settings)
        self._threads = ThreadPoolExecutor(_CONNECTIONS, thread_name_prefix="loopd-s3")

    def key(self, name: str) -> str:
        return self.location.prefix + name

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking client call on the bucket's threads, its failures raised as InfrastructureError."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(_guarded, fn, *args, **kwargs))

    def objects(self, under: str) -> Iterator[Listed]:
        """Every object whose key starts with PREFIX/`under`; blocking."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.location.bucket, Prefix=self.key(under)
        )
        for page in pages:
            for item in page.get("Contents", ()):
                yield Listed(item["Key"], item["LastModified"].timestamp(), item["Size"])


def missing(exc: BaseException) -> bool:
    """Whether a client error says the object is not there."""
    return error_code(exc) in _MISSING


def taken(exc: BaseException) -> bool:
    """Whether a client error says a conditional write (If-None-Match) found the object there."""
    return error_code(exc) in _TAKEN


def conflicting(exc: BaseException) -> bool:
    """Whether a client error says another conditional write of the same key is under way."""
    return error_code(exc) in _CONFLICTING


def _guarded(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(*args, **kwargs)
    except ClientError as exc:
        if missing(exc) or taken(exc) or conflicting(exc):
            raise
        raise InfrastructureError(f"the object store failed: {error_code(exc)}") from exc
    except BotoCoreError as exc:
        # Their messages name the endpoint and the operation, never a credential.
        raise InfrastructureError(f"the object store is unreachable: {exc}") from exc


def error_code(exc: BaseException) -> str:
    """The S3 error code a client error carries ("" for any other exception)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def _client(settings: Settings) -> Any:
    import boto3
    from botocore.config import Config

    secrets: dict[str, str] = {}
    if settings.s3_access_key_id is not None and settings.s3_secret_access_key is not None:
        secrets = {
            "aws_access_key_id": settings.s3_access_key_id.get_secret_value(),
            "aws_secret_access_key": settings.s3_secret_access_key.get_secret_value(),
        }
    config = Config(
        s3={"addressing_style": settings.s3_addressing_style},
        max_pool_connections=_CONNECTIONS,
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=10,
        read_timeout=60,
    )
    session = boto3.session.Session()
    return session.client(
        "s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region, config=config, **secrets
    )
