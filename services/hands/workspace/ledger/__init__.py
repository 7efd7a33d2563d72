"""The call ledger boundary: the finished result of each tool call, keyed by (run_id, call_id).

It is what makes a call's effect happen once: a worker looks a call up before running it and records
its result after, and the ledger outlives the worker, so a retry on another worker or after a restart
finds it. Backends, beside the artifact store and shared by the workers as it is: filesystem.py and
s3.py (an object store), picked by the same settings as the store.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
from typing import Any, Protocol

from services.core.settings import Settings
from services.hands.contract.api import ExecuteResult
from services.hands.contract.profile import EgressDecision

_FORMAT = "loopd.call-result/1"
# Ids made of these are their own names; any other id is named by its hash ("~" marks those).
_PLAIN = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")


class CallLedger(Protocol):
    async def get(self, run_id: str, call_id: str) -> ExecuteResult | None:
        """The call's recorded result, or None if it never finished."""
        ...

    async def put(self, run_id: str, call_id: str, result: ExecuteResult) -> ExecuteResult:
        """Record the call's result unless one is recorded already; return the one recorded.

        The first result wins, so every later reader sees the same one, even when two workers ran the
        same call at once.
        """
        ...

    async def snapshots(self) -> set[str]:
        """Every snapshot a recorded result ends at: the artifact store's collector keeps them."""
        ...


def encode(result: ExecuteResult) -> bytes:
    fields = dataclasses.asdict(result)
    if result.output_bytes is not None:
        fields["output_bytes"] = base64.b64encode(result.output_bytes).decode("ascii")
    document = {"format": _FORMAT, "result": fields}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def decode(data: bytes) -> ExecuteResult:
    """Parse a recorded result; fields this version does not know are ignored."""
    document: Any = json.loads(data)
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise ValueError("not a recorded call result")
    known = {field.name for field in dataclasses.fields(ExecuteResult)}
    fields = {key: value for key, value in document["result"].items() if key in known}
    if fields.get("output_bytes") is not None:
        fields["output_bytes"] = base64.b64decode(fields["output_bytes"])
    fields["egress"] = tuple(EgressDecision(**item) for item in fields.get("egress") or ())
    return ExecuteResult(**fields)


def entry_name(run_id: str, call_id: str) -> str:
    """Where a call's result is recorded, relative to the ledger's root: <run_id>/<call_id>.json."""
    return f"{_name(run_id)}/{_name(call_id)}.json"


def build_ledger(settings: Settings) -> CallLedger:
    """The ledger beside the artifact store the settings name: in its bucket, or in artifacts_dir/ledger."""
    if settings.artifacts_url is not None:
        from services.core.artifacts.bucket import Bucket
        from services.hands.workspace.ledger.s3 import S3Ledger

        return S3Ledger(Bucket(settings))
    from services.hands.workspace.ledger.filesystem import FilesystemLedger

    return FilesystemLedger(settings.artifacts_path / "ledger")


def _name(an_id: str) -> str:
    if _PLAIN.match(an_id):
        return an_id
    return "~" + hashlib.sha256(an_id.encode("utf-8", "surrogatepass")).hexdigest()
