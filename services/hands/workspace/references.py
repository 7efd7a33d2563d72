"""What the artifact store's collector asks of workspaces: the contents a snapshot's manifest lists.

Any blob may be named by the log; only manifests refer to others, and they are told apart by the
first bytes every canonical manifest starts with, so a large output blob costs a short read.
"""

from __future__ import annotations

from services.core.artifacts import ArtifactStore
from services.core.errors import NotFound
from services.hands.contract.manifest import decode

# Canonical manifests sort their keys: "entries" comes first.
_MANIFEST_START = b'{"entries":['


async def snapshot_contents(store: ArtifactStore, sha256: str) -> list[str]:
    """The contents the blob lists when it is a workspace manifest; none for any other blob."""
    try:
        start = b""
        async for chunk in store.stream(sha256, len(_MANIFEST_START)):
            start = chunk
            break
        if start != _MANIFEST_START:
            return []
        manifest = decode(await store.get(sha256))
    except (NotFound, ValueError, KeyError, TypeError):
        return []
    return [entry.sha256 for entry in manifest.files()]
