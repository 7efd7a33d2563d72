"""The CLI's config file: one API key per gateway URL, so that commands need no `--api-key`.

It is `$LOOPD_CONFIG`, else `$XDG_CONFIG_HOME/loopd/config.json`, else `~/.config/loopd/config.json`.
It holds secrets, so it is written whole, atomically, with mode 0600 (its folder 0700). `loopd login`
writes it, and so does the local stack (`loopd-server up`) for its own URL.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loopd.errors import LoopdError

CONFIG_ENV = "LOOPD_CONFIG"
# Where a local gateway binds, and what people type for it, are one machine's loopback.
_LOOPBACK_NAMES = frozenset({"localhost", "0.0.0.0"})


def default_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the config file is, by the environment's LOOPD_CONFIG, XDG_CONFIG_HOME and HOME."""
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    base = env.get("XDG_CONFIG_HOME", "")
    # The XDG spec says a relative XDG_CONFIG_HOME is to be ignored.
    root = (
        Path(base) if base and Path(base).is_absolute() else Path(env.get("HOME") or Path.home()) / ".config"
    )
    return root / "loopd" / "config.json"


def gateway_key(url: str) -> str:
    """The form a gateway URL is filed under: lower-case scheme and host, no path or trailing slash."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if host in _LOOPBACK_NAMES:
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{(parts.scheme or 'http').lower()}://{host}{port}"


@dataclass(frozen=True)
class ConfigFile:
    """The config file at `path`; a missing file is an empty config."""

    path: Path

    def api_key(self, url: str) -> str | None:
        entry = self._gateways().get(gateway_key(url))
        key = entry.get("api_key") if isinstance(entry, dict) else None
        return key if isinstance(key, str) and key else None

    def store_key(self, url: str, api_key: str) -> None:
        """File `api_key` under the gateway at `url`, replacing the one it had."""
        data = self._read()
        gateways = self._gateways(data)
        entry = gateways.get(gateway_key(url))
        gateways[gateway_key(url)] = {**(entry if isinstance(entry, dict) else {}), "api_key": api_key}
        self._write({**data, "gateways": gateways})

    def forget(self, url: str) -> bool:
        """Remove the key of the gateway at `url`; False when there was none."""
        data = self._read()
        gateways = self._gateways(data)
        if gateways.pop(gateway_key(url), None) is None:
            return False
        self._write({**data, "gateways": gateways})
        return True

    def _gateways(self, data: dict[str, Any] | None = None) -> dict[str, Any]:
        gateways = (self._read() if data is None else data).get("gateways", {})
        if not isinstance(gateways, dict):
            raise self._invalid("its 'gateways' is not an object")
        return dict(gateways)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as error:
            raise self._invalid(f"it is not JSON ({error})") from None
        if not isinstance(data, dict):
            raise self._invalid("it is not a JSON object")
        return data

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkstemp makes the file 0600 before a byte of the key is in it; replace() swaps it in whole.
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".config-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(data, file, indent=2)
                file.write("\n")
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _invalid(self, why: str) -> LoopdError:
        return LoopdError(f"the config file {self.path} cannot be read: {why}", code="invalid_config")
