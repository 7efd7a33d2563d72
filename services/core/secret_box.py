"""Sealing tenants' secrets at rest: Fernet (AES-128-CBC with HMAC-SHA256) from `cryptography`.

Only two roles hold the deployment's secrets key: gateways, which seal a value when a tenant stores
it, and hands, which open it at egress to put it on a request. Brains and the database carry the
sealed token only. Several keys rotate: the first seals, any opens, so an old token stays readable
until it is sealed again.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from services.core.identity import stored_value
from services.core.settings import Settings

SECRETS_KEY_FILE = "secrets-key"


class SecretUnreadable(Exception):
    """A sealed value no configured key opens (sealed under a key since removed, or altered)."""


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("a secret box needs at least one key")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The deployment's box: the setting's keys, or one key kept (mode 0600) in the data folder."""
        if settings.secrets_key is not None:
            raw = settings.secrets_key.get_secret_value()
        else:
            raw = stored_value(settings.data_dir / SECRETS_KEY_FILE, lambda: Fernet.generate_key().decode())
        return cls([key.strip() for key in raw.split(",") if key.strip()])

    def seal(self, value: str) -> bytes:
        return self._fernet.encrypt(value.encode())

    def open(self, sealed: bytes) -> str:
        try:
            return self._fernet.decrypt(sealed).decode()
        except InvalidToken as exc:
            raise SecretUnreadable("the secret was sealed with a key this deployment no longer has") from exc

    def reseal(self, sealed: bytes) -> bytes:
        """The same value sealed with the newest key (for rotating keys)."""
        try:
            return self._fernet.rotate(sealed)
        except InvalidToken as exc:
            raise SecretUnreadable("the secret was sealed with a key this deployment no longer has") from exc
