"""The names of the built-in tools, as the model calls them, agent specs list them and events record them.

A StrEnum, so each member is the same plain string in specs, in event payloads and on the wire. Hands
serves the sandbox tools (their schemas are in services/hands/contract/tools.py); the brain serves its
own, which make the run wait durably.
"""

from __future__ import annotations

from enum import StrEnum


class Tool(StrEnum):
    BASH = "bash"
    READ_FILE = "read_file"
    WRITE_FILE = "write_file"
    EDIT_FILE = "edit_file"
    LIST_FILES = "list_files"
    # The Managed Agents toolset's own file tools (with bash), under its names and input schemas.
    READ = "read"
    WRITE = "write"
    EDIT = "edit"
    GLOB = "glob"
    GREP = "grep"
    ASK_USER = "ask_user"
    SPAWN_AGENT = "spawn_agent"


DEFAULT_SANDBOX_TOOLS = (Tool.BASH, Tool.READ_FILE, Tool.WRITE_FILE, Tool.EDIT_FILE, Tool.LIST_FILES)
TOOLSET_TOOLS = (Tool.BASH, Tool.READ, Tool.WRITE, Tool.EDIT, Tool.GLOB, Tool.GREP)
SANDBOX_TOOLS = DEFAULT_SANDBOX_TOOLS + TOOLSET_TOOLS[1:]
BRAIN_TOOLS = (Tool.ASK_USER, Tool.SPAWN_AGENT)
