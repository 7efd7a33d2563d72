"""Exports a sandbox's /workspace into the artifact store, one blob per regular file."""

from __future__ import annotations

import asyncio
import shutil
import tarfile
import tempfile
from pathlib import Path

from services.core.artifacts import ArtifactStore
from services.hands.contract.api import WorkspaceFile
from services.hands.contract.tools import WORKSPACE
from services.hands.sandbox import SandboxDriver


async def export_workspace(
    driver: SandboxDriver, sandbox_id: str, artifacts: ArtifactStore
) -> list[WorkspaceFile]:
    scratch = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="loopd-export-"))
    try:
        archive = scratch / "workspace.tar"
        await driver.export(sandbox_id, WORKSPACE, archive)
        members = await asyncio.to_thread(_unpack, archive, scratch)
        files = []
        for relative, path in members:
            ref = await artifacts.put_file(path)
            files.append(WorkspaceFile(path=relative, size=ref.size, sha256=ref.sha256))
        return files
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)


def _unpack(archive: Path, scratch: Path) -> list[tuple[str, Path]]:
    """Copy each regular file out of the tar under a numbered name, so no member path is trusted."""
    members = []
    with tarfile.open(archive) as tar:
        for index, member in enumerate(tar):
            # The archive's root is the directory itself ("workspace/...").
            _, _, relative = member.name.partition("/")
            if not relative or not (member.isfile() or member.islnk()):
                continue
            source = tar.extractfile(member)
            if source is None:
                continue
            target = scratch / f"{index}.blob"
            with source, target.open("wb") as out:
                shutil.copyfileobj(source, out)
            members.append((relative, target))
    return sorted(members)
