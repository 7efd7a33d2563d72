"""Object-store artifact store: blobs live in an S3 bucket at PREFIX/blobs/ab/abcdef..., named by sha256.

Objects cannot be touched in place, so young-ness is kept beside them: a touch writes an empty marker
at PREFIX/touched/ab/abcdef..., and a blob's age is that of the later of the two last-modified times
(whole seconds, so a blob is old only when its whole second is before the cutoff). Every writer
touches before it looks for the blob and writes it, so the marker is always at least as young as the
newest reference on its way. Large contents go up from their file in parts (multipart upload) and
come back as one streamed GET; none is held whole in memory.

There is no rename either, so the sweep condemns a blob the way the filesystem's does, with a copy
for the move aside: it copies the blob to PREFIX/aside/<sha256>.<token> (on the server, nothing
passes through loopd), deletes it, and then reads its marker. A touch that came in between either
saw the blob before the delete (its marker is young, and the copy is put back) or finds it gone (and
the toucher writes it again). Each sweep's copy is its own, so two brains sweeping at once cannot
take each other's. A copy or a multipart upload an interrupted sweep or write left behind goes once
it is older than the cutoff (a copy whose blob is gone is put back first, to be judged afresh).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.core.artifacts import BlobRef, Swept
from services.core.artifacts.bucket import Bucket, error_code, missing
from services.core.errors import InfrastructureError, NotFound

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BLOB = re.compile(r"^(?P<fanout>[0-9a-f]{2})/(?P<sha256>[0-9a-f]{64})$")
# What a range over an empty object gets.
_EMPTY = {"416", "InvalidRange"}
# Last-modified times are whole seconds.
_RESOLUTION = 1.0
# Parts of a multipart upload or copy; S3 takes at most 10,000 per object, and the SDK grows them
# for larger files.
_PART = 16 * 1024 * 1024


@dataclass
class _Listing:
    """What a sweep found: each blob's size and age, and each marker's age."""

    blobs: dict[str, tuple[int, float]] = field(default_factory=dict)
    touched: dict[str, float] = field(default_factory=dict)


class S3ArtifactStore:
    def __init__(self, bucket: Bucket) -> None:
        from boto3.s3.transfer import TransferConfig

        self._bucket = bucket
        self._name = bucket.location.bucket
        self._transfer = TransferConfig(
            multipart_threshold=_PART, multipart_chunksize=_PART, max_concurrency=4
        )

    def key_of(self, sha256: str) -> str:
        if not _SHA256.match(sha256):
            raise NotFound(f"no blob {sha256!r}", code="artifact_not_found")
        return self._bucket.key(f"blobs/{sha256[:2]}/{sha256}")

    async def put(self, data: bytes) -> BlobRef:
        ref = BlobRef(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        if await self.touch([ref.sha256]):
            await self._bucket.call(self._write, ref.sha256, data)
        return ref

    async def put_many(self, contents: Sequence[bytes]) -> list[BlobRef]:
        refs = await self._bucket.call(_refs, contents)
        unique = {ref.sha256: data for ref, data in zip(refs, contents, strict=True)}
        absent = await self.touch(unique)
        await _gather(self._bucket.call(self._write, sha256, unique[sha256]) for sha256 in absent)
        return refs

    async def get_many(self, sha256s: Sequence[str]) -> list[bytes]:
        return list(await _gather(self.get(sha256) for sha256 in sha256s))

    async def put_file(self, path: Path) -> BlobRef:
        ref = await self._bucket.call(_file_ref, path)
        if await self.touch([ref.sha256]):
            await self._bucket.call(self._upload, path, ref.sha256)
        return ref

    async def exists(self, sha256: str) -> bool:
        return await self._bucket.call(self._exists, self.key_of(sha256))

    async def get(self, sha256: str) -> bytes:
        body = await self._bucket.call(self._open, self.key_of(sha256))
        with closing(body):
            data: bytes = await self._bucket.call(body.read)
            return data

    async def stream(self, sha256: str, chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
        # The first chunk on its own, so that a reader after a blob's first bytes (the collector,
        # telling manifests apart) fetches no more of it; then the rest as one streamed GET.
        key = self.key_of(sha256)
        first, size = await self._bucket.call(self._first, key, chunk_size)
        if first:
            yield first
        if size <= len(first):
            return
        body = await self._bucket.call(self._open, key, f"bytes={len(first)}-")
        with closing(body):
            while chunk := await self._bucket.call(body.read, chunk_size):
                yield chunk

    async def touch(self, sha256s: Iterable[str]) -> set[str]:
        wanted = set(sha256s)
        valid = [sha256 for sha256 in wanted if _SHA256.match(sha256)]
        present = await _gather(self._bucket.call(self._touch, sha256) for sha256 in valid)
        return wanted - {sha256 for sha256, there in zip(valid, present, strict=True) if there}

    async def sweep(self, live: Collection[str], older_than: float) -> Swept:
        leftovers = await self._bucket.call(self._abort_uploads, older_than)
        copies = await self._bucket.call(lambda: list(self._bucket.objects("aside/")))
        old_copies = [item.key for item in copies if item.modified + _RESOLUTION <= older_than]
        await _gather(self._bucket.call(self._put_back, key) for key in old_copies)
        listing = await self._bucket.call(self._list)
        condemned = [
            (sha256, size)
            for sha256, (size, modified) in listing.blobs.items()
            if sha256 not in live
            and max(modified, listing.touched.get(sha256, 0.0)) + _RESOLUTION <= older_than
        ]
        condemn = self._condemn
        removed = await _gather(self._bucket.call(condemn, sha256, older_than) for sha256, _ in condemned)
        strays = [
            sha256
            for sha256, modified in listing.touched.items()
            if sha256 not in listing.blobs and modified + _RESOLUTION <= older_than
        ]
        await _gather(self._bucket.call(self._delete, self._touched_key(sha256)) for sha256 in strays)
        gone = [size for (_, size), done in zip(condemned, removed, strict=True) if done]
        return Swept(blobs=len(gone), bytes=sum(gone), leftovers=leftovers + len(old_copies) + len(strays))

    def _touched_key(self, sha256: str) -> str:
        return self._bucket.key(f"touched/{sha256[:2]}/{sha256}")

    def _write(self, sha256: str, data: bytes) -> None:
        self._bucket.client.put_object(Bucket=self._name, Key=self.key_of(sha256), Body=data)

    def _upload(self, path: Path, sha256: str) -> None:
        from boto3.exceptions import S3UploadFailedError

        try:
            self._bucket.client.upload_file(str(path), self._name, self.key_of(sha256), Config=self._transfer)
        except S3UploadFailedError as exc:
            raise InfrastructureError(f"the object store failed an upload: {exc}") from exc

    def _open(self, key: str, byte_range: str | None = None) -> Any:
        ranged = {"Range": byte_range} if byte_range else {}
        try:
            return self._bucket.client.get_object(Bucket=self._name, Key=key, **ranged)["Body"]
        except Exception as exc:
            if missing(exc):
                raise NotFound(f"no blob at {key}", code="artifact_not_found") from None
            raise

    def _first(self, key: str, length: int) -> tuple[bytes, int]:
        """A blob's first `length` bytes, and its whole size."""
        try:
            response = self._bucket.client.get_object(
                Bucket=self._name, Key=key, Range=f"bytes=0-{length - 1}"
            )
        except Exception as exc:
            if missing(exc):
                raise NotFound(f"no blob at {key}", code="artifact_not_found") from None
            if error_code(exc) in _EMPTY:
                return b"", 0  # no byte to range over: the blob is empty
            raise
        with closing(response["Body"]) as body:
            # At most `length` bytes, even from a server that ignores ranges and sends it all.
            data: bytes = body.read(length)
        whole = response.get("ContentRange", "").rpartition("/")[2]
        return data, int(whole) if whole.isdigit() else int(response["ContentLength"])

    def _exists(self, key: str) -> bool:
        return self._modified(key) is not None

    def _modified(self, key: str) -> float | None:
        try:
            head = self._bucket.client.head_object(Bucket=self._name, Key=key)
        except Exception as exc:
            if missing(exc):
                return None
            raise
        modified: float = head["LastModified"].timestamp()
        return modified

    def _touch(self, sha256: str) -> bool:
        """Make the blob young; False if there is none (its writer writes it next)."""
        self._bucket.client.put_object(Bucket=self._name, Key=self._touched_key(sha256), Body=b"")
        return self._exists(self.key_of(sha256))

    def _delete(self, key: str) -> None:
        self._bucket.client.delete_object(Bucket=self._name, Key=key)

    def _copy(self, source: str, target: str) -> None:
        self._bucket.client.copy(
            {"Bucket": self._name, "Key": source}, self._name, target, Config=self._transfer
        )

    def _condemn(self, sha256: str, older_than: float) -> bool:
        """Remove an old blob unless it is touched meanwhile; True if it was removed."""
        blob = self.key_of(sha256)
        aside = self._bucket.key(f"aside/{sha256}.{secrets.token_hex(8)}")
        try:
            self._copy(blob, aside)
        except Exception as exc:
            if missing(exc):
                return False  # another sweep took it first
            raise
        self._delete(blob)
        touched = self._modified(self._touched_key(sha256))
        if touched is not None and touched + _RESOLUTION > older_than:
            # Touched between the listing and the delete: put it back (a writer may have already).
            self._copy(aside, blob)
            self._delete(aside)
            return False
        self._delete(aside)
        self._delete(self._touched_key(sha256))
        return True

    def _put_back(self, aside: str) -> None:
        """Undo what an interrupted sweep left: its copy becomes the blob again if the blob is gone."""
        sha256 = aside.rsplit("/", 1)[-1].split(".", 1)[0]
        if _SHA256.match(sha256) and not self._exists(self.key_of(sha256)):
            self._copy(aside, self.key_of(sha256))
        self._delete(aside)

    def _abort_uploads(self, older_than: float) -> int:
        """Abort the multipart uploads that writes begun before the cutoff left unfinished."""
        aborted = 0
        pages = self._bucket.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self._name, Prefix=self._bucket.key("blobs/")
        )
        for page in pages:
            for upload in page.get("Uploads", ()):
                if upload["Initiated"].timestamp() + _RESOLUTION <= older_than:
                    self._bucket.client.abort_multipart_upload(
                        Bucket=self._name, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        return aborted

    def _list(self) -> _Listing:
        listing = _Listing()
        for area in ("blobs/", "touched/"):
            start = len(self._bucket.key(area))
            for item in self._bucket.objects(area):
                match = _BLOB.match(item.key[start:])
                if match is None or match["fanout"] != match["sha256"][:2]:
                    continue
                if area == "blobs/":
                    listing.blobs[match["sha256"]] = (item.size, item.modified)
                else:
                    listing.touched[match["sha256"]] = item.modified
        return listing


def _refs(contents: Sequence[bytes]) -> list[BlobRef]:
    return [BlobRef(sha256=hashlib.sha256(data).hexdigest(), size=len(data)) for data in contents]


def _file_ref(path: Path) -> BlobRef:
    hasher = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            hasher.update(chunk)
            size += len(chunk)
    return BlobRef(sha256=hasher.hexdigest(), size=size)


async def _gather(calls: Iterable[Any]) -> list[Any]:
    return list(await asyncio.gather(*calls))
