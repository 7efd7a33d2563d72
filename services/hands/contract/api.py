"""The typed shapes of a hands call, shared by the client (brain side) and the worker.

`ExecuteResult.error` is one of the stable codes below; `ok` is False exactly when it is set:

- ``timeout``: the call outlived its timeout; every process it started was killed, the sandbox is kept.
- ``nonzero_exit``: the bash command exited with a non-zero status (see ``exit_code``).
- ``tool_error``: a file tool failed (no such file, ``old_string`` not found or not unique, a path
  outside /workspace, ...), or the workspace a call left was too large to snapshot, or its snapshot
  outlived the worker's snapshot deadline (its changes are undone: ``snapshot_after`` is the base);
  ``error_message`` says why and ``output`` repeats it.
- ``sandbox_lost``: the sandbox died during the call (killed, out of memory, removed). Its files are
  gone; the next call for the run gets a fresh sandbox (``sandbox_created=True``).

Output above the worker's cap is cut: ``truncated`` is True and ``output`` ends with a note saying so.
Output that is not UTF-8 text without NUL (a binary file read, ``printf 'a\\0b'``) is binary: ``output``
shows NUL and the bytes that are not UTF-8 as ``\\xNN``, and ``output_bytes`` holds it exactly.

Workspaces are durable (see workspace/snapshots.py): a call names the snapshot of /workspace it starts from
(``base_snapshot``; None is the empty workspace, the same state as ``EMPTY_SNAPSHOT``) and its result
names the snapshot after it (``snapshot_after``, never None). A call's result is recorded once per
(run_id, call_id); sending the call again returns the recorded result with ``replayed=True``. A
``sandbox_lost`` result is not recorded, and its ``snapshot_after`` is the call's base: its effects
are gone, and running it again starts from the base.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.core.errors import NotFound
from services.hands.contract.profile import EgressDecision, SandboxProfile

TIMEOUT = "timeout"
NONZERO_EXIT = "nonzero_exit"
TOOL_ERROR = "tool_error"
SANDBOX_LOST = "sandbox_lost"
ERROR_CODES = (TIMEOUT, NONZERO_EXIT, TOOL_ERROR, SANDBOX_LOST)


class SnapshotMissing(NotFound):
    """A call's base snapshot (its manifest or a file's blob) is not in the artifact store.

    Not retryable: no worker can rebuild that workspace, so the run cannot continue from it.
    """

    code = "snapshot_missing"


@dataclass(frozen=True)
class ExecuteRequest:
    run_id: str
    call_id: str
    tool: str
    input: dict[str, Any]
    timeout_seconds: float
    base_snapshot: str | None = None
    # The run's /workspace size and storage budget; None: the worker's default. A worker gives at
    # most its ceiling.
    workspace_bytes: int | None = None
    # Whose run it is and the top of its tree of sub-agents; empty: the worker's tenant, a tree of its own.
    tenant: str = ""
    root_run_id: str = ""
    # The sandbox the run's environment describes; None: the worker's default profile (no network).
    profile: SandboxProfile | None = None


@dataclass(frozen=True)
class ReleaseRequest:
    run_id: str


@dataclass(frozen=True)
class OutputChunk:
    stream: str
    data: str


QUEUED = "queued"
RESTORING = "restoring"
RUNNING = "running"
SNAPSHOTTING = "snapshotting"


@dataclass(frozen=True)
class Progress:
    """The call entered `phase`; the worker's next event comes within `deadline_seconds`.

    Only the transport looks at these (a client waits as long as each promise holds); callers of
    the Hands protocol never see them.
    """

    phase: str
    deadline_seconds: float


@dataclass(frozen=True)
class ExecuteResult:
    ok: bool
    output: str
    exit_code: int | None
    error: str | None
    error_message: str | None
    truncated: bool
    duration_ms: int
    sandbox_id: str
    sandbox_created: bool
    snapshot_after: str | None = None
    replayed: bool = False
    output_bytes: bytes | None = None
    # The egress proxy's decisions for the run's sandbox since its previous result, in order.
    egress: tuple[EgressDecision, ...] = ()


@dataclass(frozen=True)
class SandboxStatus:
    run_id: str
    sandbox_id: str
    created_at: float
    last_used_at: float


@dataclass(frozen=True)
class HandsStatus:
    hands_id: str
    slots_total: int
    slots_free: int
    sandboxes: tuple[SandboxStatus, ...]
