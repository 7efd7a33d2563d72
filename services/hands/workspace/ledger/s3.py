"""Object-store CallLedger: one JSON object per finished call at PREFIX/ledger/<run_id>/<call_id>.json.

A result is written with a conditional PUT (If-None-Match: *), which the store refuses when the key
exists, so the first result recorded for a call is the one that stays, and a write is whole or absent.
The bucket must honour conditional writes (AWS S3 does, as do MinIO and Ceph's gateway); every
worker that shares the bucket and prefix shares the ledger. An entry is durable once its PUT returns.
"""

from __future__ import annotations

import asyncio
from contextlib import closing

from services.core.artifacts.bucket import Bucket, conflicting, missing, taken
from services.core.errors import InfrastructureError
from services.hands.contract.api import ExecuteResult
from services.hands.workspace.ledger import decode, encode, entry_name

# Writes to try while another worker's write of the same key is under way.
_ATTEMPTS = 5


class S3Ledger:
    def __init__(self, bucket: Bucket) -> None:
        self._bucket = bucket

    def key_of(self, run_id: str, call_id: str) -> str:
        return self._bucket.key(f"ledger/{entry_name(run_id, call_id)}")

    async def get(self, run_id: str, call_id: str) -> ExecuteResult | None:
        data = await self._bucket.call(self._read, self.key_of(run_id, call_id))
        return None if data is None else decode(data)

    async def put(self, run_id: str, call_id: str, result: ExecuteResult) -> ExecuteResult:
        key = self.key_of(run_id, call_id)
        if await self._bucket.call(self._create, key, encode(result)):
            return result
        recorded = await self._bucket.call(self._read, key)
        if recorded is None:
            raise InfrastructureError(f"{key} vanished while recording a result")
        return decode(recorded)

    async def snapshots(self) -> set[str]:
        keys = await self._bucket.call(lambda: [item.key for item in self._bucket.objects("ledger/")])
        found = set()
        for data in await asyncio.gather(*(self._bucket.call(self._read, key) for key in keys)):
            try:
                recorded = None if data is None else decode(data)
            except ValueError:
                continue  # not a result this version can read: it names nothing it knows of
            if recorded is not None and recorded.snapshot_after:
                found.add(recorded.snapshot_after)
        return found

    def _create(self, key: str, data: bytes) -> bool:
        """Write the object unless the key exists; False if it does."""
        for _ in range(_ATTEMPTS):
            try:
                self._bucket.client.put_object(
                    Bucket=self._bucket.location.bucket, Key=key, Body=data, IfNoneMatch="*"
                )
            except Exception as exc:
                if taken(exc):
                    return False
                if not conflicting(exc):
                    raise
                continue  # another worker's write of the same key is under way: it ends either way
            return True
        raise InfrastructureError(f"{key} stayed contended over {_ATTEMPTS} attempts")

    def _read(self, key: str) -> bytes | None:
        try:
            response = self._bucket.client.get_object(Bucket=self._bucket.location.bucket, Key=key)
        except Exception as exc:
            if missing(exc):
                return None
            raise
        with closing(response["Body"]) as body:
            data: bytes = body.read()
            return data
