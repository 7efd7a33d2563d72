"""Registers gVisor's runsc as a runtime of a Docker engine by merging one key into its daemon.json.

`register.py merge DAEMON_JSON RUNSC_PATH` prints `changed` or `unchanged`, and `register.py check`
succeeds when the runtimes on its standard input (`docker info --format '{{json .Runtimes}}'`) have
one. Only
`runtimes.runsc` is touched: every other setting and runtime of the file stays as it was, and a runsc
entry that already passes the flags loopd's sandboxes need (its platform, say kvm, is its owner's
choice) is left alone. A file that is not a JSON object is refused, never overwritten.
Standard library only: deploy/setup.sh runs it with the system's python3.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

# What loopd's sandboxes need of runsc 2022 (0.0~20221219, Debian bookworm's): the executor dials a
# unix socket on the host (--host-uds=open), and its own network stack cannot start on Linux 6.11
# and later, where every network namespace looks like the host's to it (--network=none: the
# sandboxes have no network anyway). ptrace is the platform that needs no /dev/kvm.
REQUIRED = ("--host-uds=open", "--network=none")
ARGS = ("--platform=ptrace", *REQUIRED)


class Refused(Exception):
    pass


def serves(entry: object) -> bool:
    """Whether a runtime entry passes runsc every flag the sandboxes need."""
    args = entry.get("runtimeArgs") if isinstance(entry, dict) else None
    return isinstance(args, list) and all(flag in args for flag in REQUIRED)


def merged(config: dict[str, object], runsc_path: str) -> dict[str, object] | None:
    """The config with loopd's runsc entry, or None when the one it has already serves."""
    runtimes = config.get("runtimes", {})
    if not isinstance(runtimes, dict):
        raise Refused("its `runtimes` is not an object")
    current = runtimes.get("runsc")
    if serves(current) and isinstance(current, dict) and current.get("path") == runsc_path:
        return None
    entry = {"path": runsc_path, "runtimeArgs": list(ARGS)}
    return {**config, "runtimes": {**runtimes, "runsc": entry}}


def register(daemon_json: Path, runsc_path: str) -> bool:
    """Merge the entry into the file; True when the file changed (the engine must then reload)."""
    text = daemon_json.read_text() if daemon_json.exists() else ""
    try:
        config = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise Refused(f"it is not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise Refused("it is not a JSON object")
    new = merged(config, runsc_path)
    if new is None:
        return False
    daemon_json.parent.mkdir(parents=True, exist_ok=True)
    mode = daemon_json.stat().st_mode & 0o777 if daemon_json.exists() else 0o644
    # Written beside and renamed over it, so the engine never reads half a file.
    fd, temporary = tempfile.mkstemp(dir=daemon_json.parent, prefix=".daemon.json.")
    with os.fdopen(fd, "w") as out:
        json.dump(new, out, indent=2)
        out.write("\n")
    os.chmod(temporary, mode)
    os.replace(temporary, daemon_json)
    return True


def main(argv: list[str]) -> int:
    if argv[1:2] == ["check"]:
        try:
            runtimes = json.load(sys.stdin)
        except ValueError:
            return 1
        return 0 if isinstance(runtimes, dict) and serves(runtimes.get("runsc")) else 1
    if len(argv) != 4 or argv[1] != "merge":
        print("usage: register.py merge DAEMON_JSON RUNSC_PATH | register.py check", file=sys.stderr)
        return 2
    daemon_json = Path(argv[2])
    try:
        changed = register(daemon_json, argv[3])
    except Refused as exc:
        print(f"{daemon_json}: {exc}; fix it, then run this again", file=sys.stderr)
        return 1
    print("changed" if changed else "unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
