"""The Managed Agents toolset's file tools (read, write, edit, glob, grep), run through a sandbox driver.

Like files.py, a small Python program (PROGRAM) runs inside the sandbox with its arguments as separate
argv entries, resolves symlinks and keeps every path inside /workspace. `write` goes through the
driver's `put_file`, as write_file does.
"""

from __future__ import annotations

from services.core.errors import InvalidRequest, SandboxLost
from services.core.tools import Tool
from services.hands.calls.files import MAX_EDIT_STRING, run_program, workspace_path, write_file
from services.hands.calls.toolcall import ToolCall, ToolOutcome, lost, tool_error
from services.hands.sandbox import SandboxDriver

TOOLSET_FILE_TOOLS = frozenset({Tool.READ, Tool.WRITE, Tool.EDIT, Tool.GLOB, Tool.GREP})

PROGRAM = r"""
import os, re, sys
ROOT = "/workspace"
SKIP = {".git", "node_modules", "__pycache__", ".venv", "venv", ".mypy_cache", ".pytest_cache", ".tox"}
LIMIT = 1000

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

def text_of(path):
    full = resolve(path)
    if os.path.isdir(full):
        fail("%s is a directory" % path)
    try:
        with open(full, encoding="utf-8", newline="") as f:
            return full, f.read()
    except FileNotFoundError:
        fail("no such file: %s" % path)
    except UnicodeDecodeError:
        fail("%s is not UTF-8 text" % path)
    except OSError as e:
        fail("cannot read %s: %s" % (path, e.strerror))

def read(path, start, end, cap):
    full, text = text_of(path)
    start, end = int(start), int(end)
    if start > 0:
        lines = text.splitlines(keepends=True)
        text = "".join(lines[start - 1 : end if end > 0 else None])
    sys.stdout.write(text[: int(cap) + 1])

def edit(path, old, new, every):
    full, text = text_of(path)
    count = text.count(old)
    if count == 0:
        fail("old_string was not found in %s" % path)
    if count > 1 and every != "1":
        fail("old_string occurs %d times in %s; include more context or set replace_all" % (count, path))
    with open(full, "w", encoding="utf-8", newline="") as f:
        f.write(text.replace(old, new) if every == "1" else text.replace(old, new, 1))
    sys.stdout.write("edited %s: replaced %d occurrence%s" % (rel(full), count if every == "1" else 1,
                                                           "s" if every == "1" and count > 1 else ""))

def files_under(root):
    for top, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP)
        for name in sorted(names):
            yield os.path.join(top, name)

def glob(pattern, path):
    import pathlib
    root = resolve(path)
    if os.path.isabs(pattern):
        fail("the pattern must be relative to the search root")
    found = []
    for match in pathlib.Path(root).glob(pattern):
        full = os.path.realpath(str(match))
        if full.startswith(ROOT + "/") and not SKIP.intersection(pathlib.PurePath(rel(full)).parts):
            found.append((os.path.getmtime(full), rel(full) + ("/" if os.path.isdir(full) else "")))
        if len(found) > 10 * LIMIT:
            break
    found.sort(key=lambda item: (-item[0], item[1]))
    print("\n".join(name for _, name in found[:LIMIT]) if found else "(no matches)")
    if len(found) > LIMIT:
        print("[cut at %d paths]" % LIMIT)

def grep(pattern, path):
    try:
        regex = re.compile(pattern)
    except re.error as e:
        fail("not a valid regular expression: %s" % e)
    root = resolve(path)
    paths = [root] if os.path.isfile(root) else files_under(root)
    hits = 0
    for full in paths:
        try:
            with open(full, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    if regex.search(line):
                        hits += 1
                        if hits > LIMIT:
                            print("[cut at %d matching lines]" % LIMIT)
                            return
                        print("%s:%d:%s" % (rel(full), number, line.rstrip("\n")))
        except (UnicodeDecodeError, OSError):
            continue
    if not hits:
        print("(no matches)")

op, args = sys.argv[1], sys.argv[2:]
{"read": read, "edit": edit, "glob": glob, "grep": grep}[op](*args)
"""


async def run_toolset_tool(driver: SandboxDriver, call: ToolCall) -> ToolOutcome:
    """Run one toolset file tool; path problems and missing files become tool_error outcomes."""
    args = call.args
    try:
        if call.tool == Tool.READ:
            start, end = [*list(args.get("view_range") or []), 0, 0][:2]
            path = workspace_path(str(args["file_path"]))
            return await run_program(
                driver, call, ("read", path, str(int(start)), str(int(end)), str(call.output_cap)), PROGRAM
            )
        if call.tool == Tool.WRITE:
            return await write_file(
                driver, call, workspace_path(str(args["file_path"])), str(args["content"])
            )
        if call.tool == Tool.EDIT:
            old, new = str(args["old_string"]), str(args["new_string"])
            if max(len(old.encode()), len(new.encode())) > MAX_EDIT_STRING:
                return tool_error(f"old_string and new_string are limited to {MAX_EDIT_STRING} bytes")
            every = "1" if args.get("replace_all") else "0"
            path = workspace_path(str(args["file_path"]))
            return await run_program(driver, call, ("edit", path, old, new, every), PROGRAM)
        if call.tool in (Tool.GLOB, Tool.GREP):
            root = workspace_path(str(args.get("path") or "."))
            return await run_program(driver, call, (str(call.tool), str(args["pattern"]), root), PROGRAM)
    except InvalidRequest as exc:
        return tool_error(exc.message)
    except SandboxLost:
        return lost()
    raise InvalidRequest(f"unknown toolset tool {call.tool!r}")
