"""Secrets are sealed at rest: only a configured key opens them, and keys rotate."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from services.core.secret_box import SecretBox, SecretUnreadable
from services.core.settings import Settings


def test_a_sealed_value_opens_with_its_key_and_holds_no_plaintext() -> None:
    box = SecretBox([Fernet.generate_key().decode()])
    sealed = box.seal("sk-live-1234")

    assert b"sk-live-1234" not in sealed
    assert box.open(sealed) == "sk-live-1234"


def test_another_deployments_key_opens_nothing() -> None:
    sealed = SecretBox([Fernet.generate_key().decode()]).seal("v")

    with pytest.raises(SecretUnreadable):
        SecretBox([Fernet.generate_key().decode()]).open(sealed)


def test_the_first_key_seals_and_an_older_one_still_opens() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_before = SecretBox([old]).seal("v")
    rotated = SecretBox([new, old])

    assert rotated.open(sealed_before) == "v"
    assert SecretBox([new]).open(rotated.reseal(sealed_before)) == "v"
    assert SecretBox([new]).open(rotated.seal("w")) == "w"


def test_the_local_stack_keeps_one_key_in_its_data_folder(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    sealed = SecretBox.from_settings(settings).seal("v")

    assert SecretBox.from_settings(Settings(data_dir=tmp_path)).open(sealed) == "v"
    assert (tmp_path / "secrets-key").stat().st_mode & 0o777 == 0o600


def test_the_setting_names_the_keys() -> None:
    key = Fernet.generate_key().decode()
    settings = Settings(secrets_key=SecretStr(f"{key}, {Fernet.generate_key().decode()}"))

    assert SecretBox([key]).open(SecretBox.from_settings(settings).seal("v")) == "v"
