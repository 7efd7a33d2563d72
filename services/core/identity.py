"""A stack's identity and the secret its processes share, read from settings or kept in its data folder.

Several stacks can share one Docker engine and one machine; each needs a name of its own for its
sandboxes, and its internal ports need a secret that other local users cannot guess. A deployment
sets both; a local stack generates them once and keeps them beside its other state.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from services.core.settings import Settings

STACK_ID_FILE = "stack-id"
HANDS_SECRET_FILE = "hands-secret"


def stack_id(settings: Settings) -> str:
    """This stack's name: the setting, or one generated for its data folder and kept there."""
    if settings.stack_id:
        return settings.stack_id
    return stored_value(settings.data_dir / STACK_ID_FILE, lambda: secrets.token_hex(6))


def hands_secret(settings: Settings) -> str:
    """The secret brains present to hands: the setting, or one kept (mode 0600) in the data folder."""
    if settings.hands_secret is not None:
        return settings.hands_secret.get_secret_value()
    return stored_value(settings.data_dir / HANDS_SECRET_FILE, lambda: secrets.token_urlsafe(32))


def stored_value(path: Path, make: Callable[[], str]) -> str:
    """The value kept in `path`, created by the first process that asks (others read the same one)."""
    path = path.resolve()
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(make() + "\n")
    try:
        # A hard link either creates the name with the whole value or fails: no reader sees half.
        os.link(candidate, path)
    except FileExistsError:
        pass
    finally:
        candidate.unlink()
    return _read(path)


def _read(path: Path) -> str:
    value = path.read_text().strip()
    if not value:
        raise ValueError(f"{path} is empty; remove it to have a new value made")
    return value
