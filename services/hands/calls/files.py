"""The file tools (read_file, write_file, edit_file, list_files), run through a sandbox driver.

A small Python program (PROGRAM) runs inside the sandbox with its arguments as separate argv entries,
so no input ever reaches a shell. It resolves symlinks before checking that a path stays inside
/workspace. write_file content travels through the driver's `put_file`, which has no size limit.
"""

from __future__ import annotations

import posixpath
from contextlib import aclosing

from services.core.errors import InvalidRequest, SandboxLost
from services.core.tools import Tool
from services.hands.calls.toolcall import OutputCollector, ToolCall, ToolOutcome, lost, timed_out, tool_error
from services.hands.contract.tools import WORKSPACE
from services.hands.sandbox import ExecExit, ExecRequest, PutFile, SandboxDriver, SandboxRefused

# One argv entry may not exceed 128 KiB (MAX_ARG_STRLEN); edit strings travel as argv entries.
MAX_EDIT_STRING = 100_000

PROGRAM = """
import os, sys
ROOT = "/workspace"
SKIP = {".git", "node_modules", "__pycache__", ".venv", "venv", ".mypy_cache", ".pytest_cache", ".tox"}
LIMIT = 2000

def fail(message):
    sys.stderr.write(message)
    sys.exit(3)

def resolve(path):
    full = os.path.realpath(os.path.join(ROOT, path))
    if full != ROOT and not full.startswith(ROOT + "/"):
        fail("%s resolves outside /workspace" % path)
    return full

def rel(full):
    return os.path.relpath(full, ROOT)

def read(path, limit):
    full = resolve(path)
    if os.path.isdir(full):
        fail("%s is a directory" % path)
    try:
        with open(full, "rb") as f:
            sys.stdout.buffer.write(f.read(int(limit) + 1))
    except FileNotFoundError:
        fail("no such file: %s" % path)
    except OSError as e:
        fail("cannot read %s: %s" % (path, e.strerror))

def prepare(path):
    full = resolve(path)
    if os.path.isdir(full):
        fail("%s is a directory" % path)
    try:
        os.makedirs(os.path.dirname(full), exist_ok=True)
        mode = os.stat(full).st_mode & 0o7777 if os.path.exists(full) else 0o644
    except OSError as e:
        fail("cannot write %s: %s" % (path, e.strerror))
    sys.stdout.write("%o %s" % (mode, full))

def edit(path, old, new):
    full = resolve(path)
    try:
        with open(full, encoding="utf-8", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        fail("no such file: %s" % path)
    except UnicodeDecodeError:
        fail("%s is not UTF-8 text" % path)
    except OSError as e:
        fail("cannot read %s: %s" % (path, e.strerror))
    count = text.count(old)
    if count == 0:
        fail("old_string was not found in %s" % path)
    if count > 1:
        fail("old_string occurs %d times in %s; include more context to make it unique" % (count, path))
    with open(full, "w", encoding="utf-8", newline="") as f:
        f.write(text.replace(old, new, 1))
    sys.stdout.write("edited %s: replaced 1 occurrence" % rel(full))

def listing(path):
    full = resolve(path)
    if not os.path.exists(full):
        fail("no such directory: %s" % path)
    if not os.path.isdir(full):
        print(rel(full))
        return
    entries = []
    for top, dirs, files in os.walk(full):
        entries += [rel(os.path.join(top, d)) + "/" for d in dirs]
        entries += [rel(os.path.join(top, f)) for f in files]
        dirs[:] = [d for d in dirs if d not in SKIP]
        if len(entries) > LIMIT:
            break
    entries.sort()
    print("\\n".join(entries[:LIMIT]) if entries else "(empty directory)")
    if len(entries) > LIMIT:
        print("[listing cut at %d entries]" % LIMIT)

op, args = sys.argv[1], sys.argv[2:]
{"read": read, "prepare": prepare, "edit": edit, "list": listing}[op](*args)
"""


def workspace_path(path: str) -> str:
    """Normalise a tool path to an absolute path inside /workspace, or raise InvalidRequest."""
    if "\x00" in path:
        raise InvalidRequest("path contains a NUL byte")
    full = posixpath.normpath(posixpath.join(WORKSPACE, path or "."))
    if full != WORKSPACE and not full.startswith(WORKSPACE + "/"):
        raise InvalidRequest(f"{path} is outside /workspace")
    return full


async def run_file_tool(driver: SandboxDriver, call: ToolCall) -> ToolOutcome:
    """Run one file tool; path problems and missing files become tool_error outcomes."""
    args = call.args
    try:
        path = workspace_path(str(args.get("path") or "."))
        if call.tool == Tool.READ_FILE:
            return await run_program(driver, call, ("read", path, str(call.output_cap)))
        if call.tool == Tool.WRITE_FILE:
            return await write_file(driver, call, path, str(args["content"]))
        if call.tool == Tool.EDIT_FILE:
            old, new = str(args["old_string"]), str(args["new_string"])
            if max(len(old.encode()), len(new.encode())) > MAX_EDIT_STRING:
                return tool_error(f"old_string and new_string are limited to {MAX_EDIT_STRING} bytes")
            return await run_program(driver, call, ("edit", path, old, new))
        if call.tool == Tool.LIST_FILES:
            return await run_program(driver, call, ("list", path))
    except InvalidRequest as exc:
        return tool_error(exc.message)
    except SandboxLost:
        return lost()
    raise InvalidRequest(f"unknown file tool {call.tool!r}")


async def write_file(driver: SandboxDriver, call: ToolCall, path: str, content: str) -> ToolOutcome:
    """Write `content` to the workspace `path` (absolute), keeping an existing file's mode."""
    prepared = await run_program(driver, call, ("prepare", path))
    if not prepared.ok:
        return prepared
    mode, _, resolved = prepared.output.partition(" ")
    data = content.encode()
    try:
        await driver.put_file(call.sandbox_id, PutFile(path=resolved, data=data, mode=int(mode, 8)))
    except SandboxRefused as exc:
        return tool_error(f"cannot write {path}: {exc.message}")
    return ToolOutcome(ok=True, output=f"wrote {len(data)} bytes to {posixpath.relpath(resolved, WORKSPACE)}")


async def run_program(
    driver: SandboxDriver, call: ToolCall, argv: tuple[str, ...], program: str = PROGRAM
) -> ToolOutcome:
    """Run a helper program in the sandbox with `argv`: its stdout is the result, its stderr the error."""
    stdout, stderr = OutputCollector(call.output_cap), OutputCollector(call.output_cap)
    end = ExecExit(exit_code=None)
    request = ExecRequest(
        argv=("python3", "-c", program, *argv), timeout=call.timeout_seconds, output_cap=call.output_cap
    )
    async with aclosing(driver.exec(call.sandbox_id, request)) as events:
        async for event in events:
            if isinstance(event, ExecExit):
                end = event
            else:
                (stdout if event.stream == "stdout" else stderr).add(event.stream, event.data)
    if end.lost:
        return lost()
    if end.timed_out:
        return timed_out(stdout, call.timeout_seconds)
    if end.exit_code != 0:
        return tool_error(stderr.text().strip() or f"the file helper failed with exit code {end.exit_code}")
    return ToolOutcome(ok=True, output=stdout.text(), truncated=stdout.truncated, output_bytes=stdout.raw())
