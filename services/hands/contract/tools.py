"""The tools a hands worker runs, as the JSON schemas the brain offers to the model.

This module is pure data so the brain can import it without the Docker SDK or gRPC.
Paths are relative to /workspace, or absolute inside it; anything resolving outside is refused.
"""

from __future__ import annotations

from typing import Any

from services.core.tools import Tool

WORKSPACE = "/workspace"

_PATH = {"type": "string", "description": "File path, relative to /workspace or absolute inside it."}

TOOL_SCHEMAS: dict[str, dict[str, Any]] = {
    Tool.BASH: {
        "description": (
            "Run a bash command in the sandbox (Debian, python3, no network) with /workspace as the "
            "working directory. stdout and stderr are returned interleaved; long output is cut. Files "
            "in /workspace persist between calls. The call ends when every process holding its output "
            "has exited, so redirect the output of background jobs (`cmd > log 2>&1 &`)."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The command, run with `bash -c`."},
                "timeout": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "Seconds before every process of the call is killed (may be lowered).",
                },
            },
            "required": ["command"],
            "additionalProperties": False,
        },
    },
    Tool.READ_FILE: {
        "description": "Read a text file from the workspace.",
        "input_schema": {
            "type": "object",
            "properties": {"path": _PATH},
            "required": ["path"],
            "additionalProperties": False,
        },
    },
    Tool.WRITE_FILE: {
        "description": "Create or overwrite a file in the workspace, creating parent directories.",
        "input_schema": {
            "type": "object",
            "properties": {"path": _PATH, "content": {"type": "string"}},
            "required": ["path", "content"],
            "additionalProperties": False,
        },
    },
    Tool.EDIT_FILE: {
        "description": (
            "Replace one exact occurrence of old_string with new_string in a workspace file. Fails if "
            "old_string is absent or occurs more than once: include enough context to make it unique."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "path": _PATH,
                "old_string": {"type": "string", "minLength": 1},
                "new_string": {"type": "string"},
            },
            "required": ["path", "old_string", "new_string"],
            "additionalProperties": False,
        },
    },
    Tool.LIST_FILES: {
        "description": (
            "List files and directories (with a trailing /) under a workspace directory, recursively, "
            "skipping the contents of .git, node_modules, __pycache__ and virtualenvs."
        ),
        "input_schema": {
            "type": "object",
            "properties": {"path": {**_PATH, "default": "."}},
            "additionalProperties": False,
        },
    },
}

_FILE_PATH = {"type": "string", "description": "File path, relative to /workspace or absolute inside it."}
_ROOT = {"type": "string", "description": "Directory to search under (default: /workspace)."}

# The Managed Agents toolset (agent_toolset_20260401), with its own names and input shapes.
TOOLSET_SCHEMAS: dict[str, dict[str, Any]] = {
    Tool.BASH: {
        "description": (
            "Run a bash command in the sandbox (Debian, python3, no network) with /workspace as the "
            "working directory; stdout and stderr come back interleaved, long output is cut. Files in "
            "/workspace persist between calls; each call starts a fresh shell."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The command, run with `bash -c`."},
                "restart": {"type": "boolean", "description": "Start a fresh shell (every call does)."},
                "timeout_ms": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Milliseconds before the call is killed.",
                },
            },
            "additionalProperties": False,
        },
    },
    Tool.READ: {
        "description": "Read a text file from the workspace, whole or as a range of lines.",
        "input_schema": {
            "type": "object",
            "properties": {
                "file_path": _FILE_PATH,
                "view_range": {
                    "type": "array",
                    "items": {"type": "integer"},
                    "minItems": 2,
                    "maxItems": 2,
                    "description": "[start_line, end_line], 1-based, inclusive; end_line <= 0: to the end.",
                },
            },
            "required": ["file_path"],
            "additionalProperties": False,
        },
    },
    Tool.WRITE: {
        "description": "Create or overwrite a whole file in the workspace, creating parent directories.",
        "input_schema": {
            "type": "object",
            "properties": {"file_path": _FILE_PATH, "content": {"type": "string"}},
            "required": ["file_path", "content"],
            "additionalProperties": False,
        },
    },
    Tool.EDIT: {
        "description": (
            "Replace old_string with new_string in a workspace file. old_string must occur exactly once "
            "unless replace_all is true."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "file_path": _FILE_PATH,
                "old_string": {"type": "string", "minLength": 1},
                "new_string": {"type": "string"},
                "replace_all": {"type": "boolean"},
            },
            "required": ["file_path", "old_string", "new_string"],
            "additionalProperties": False,
        },
    },
    Tool.GLOB: {
        "description": "List workspace paths matching a glob pattern (** spans directories), newest first.",
        "input_schema": {
            "type": "object",
            "properties": {"pattern": {"type": "string", "minLength": 1}, "path": _ROOT},
            "required": ["pattern"],
            "additionalProperties": False,
        },
    },
    Tool.GREP: {
        "description": "Search the workspace's text files for a regular expression; answers path:line:text.",
        "input_schema": {
            "type": "object",
            "properties": {"pattern": {"type": "string", "minLength": 1}, "path": _ROOT},
            "required": ["pattern"],
            "additionalProperties": False,
        },
    },
}
TOOL_SCHEMAS.update({name: schema for name, schema in TOOLSET_SCHEMAS.items() if name != Tool.BASH})


def input_schemas(tool: str) -> list[dict[str, Any]]:
    """The input schemas a call of `tool` may follow (bash: loopd's own or the toolset's)."""
    shapes = [TOOL_SCHEMAS[tool]["input_schema"]] if tool in TOOL_SCHEMAS else []
    if tool == Tool.BASH:
        shapes.append(TOOLSET_SCHEMAS[Tool.BASH]["input_schema"])
    return shapes


# Tools that never change /workspace: their calls need no snapshot, and their result's snapshot is
# the one they ran on.
READ_ONLY_TOOLS = frozenset({Tool.READ_FILE, Tool.LIST_FILES, Tool.READ, Tool.GLOB, Tool.GREP})
