"""The call ledger boundary: the finished result of each tool call, keyed by (run_id, call_id).

It is what makes a call's effect happen once: a worker looks a call up before running it and records
its result after, and the ledger outlives the worker, so a retry on another worker or after a restart
finds it. Backend: filesystem.py (beside the artifact store, shared by the workers).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any, Protocol

from services.hands.contract.api import ExecuteResult

_FORMAT = "loopd.call-result/1"


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
    return ExecuteResult(**fields)


def ledger_root(artifacts_root: Path) -> Path:
    """Where the ledger lives: beside the blobs, shared by every worker that shares them."""
    return artifacts_root / "ledger"


def build_ledger(root: Path) -> CallLedger:
    from services.hands.workspace.ledger.filesystem import FilesystemLedger

    return FilesystemLedger(root)
