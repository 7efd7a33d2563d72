"""The egress CA: made once in data_dir with its key kept private; sandboxes get the certificate only."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from pydantic import ValidationError

from services.core.settings import Settings
from services.hands.egress.ca import EgressCA


def test_a_stack_without_a_ca_makes_one_once_with_its_key_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)

    ca = EgressCA.from_settings(settings)
    again = EgressCA.from_settings(settings)

    assert ca == again and ca.cert.read_bytes() == again.cert.read_bytes()
    assert stat.S_IMODE(ca.key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(ca.certificate_pem())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_the_sandbox_bundle_holds_certificates_and_never_the_key(tmp_path: Path) -> None:
    ca = EgressCA.from_settings(Settings(data_dir=tmp_path))

    bundle = ca.sandbox_bundle()

    assert b"PRIVATE KEY" not in bundle
    assert bundle.rstrip().endswith(ca.certificate_pem().rstrip())
    assert bundle.count(b"BEGIN CERTIFICATE") > 1  # the system's CAs come first


def test_a_deployment_gives_its_ca_as_two_files(tmp_path: Path) -> None:
    cert, key = tmp_path / "ca.pem", tmp_path / "ca-key.pem"

    ca = EgressCA.from_settings(Settings(data_dir=tmp_path, egress_ca_cert=cert, egress_ca_key=key))

    assert (ca.cert, ca.key) == (cert, key)
    assert not (tmp_path / "egress-ca.pem").exists()


def test_a_ca_certificate_without_its_key_or_a_bad_network_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="set together"):
        Settings(egress_ca_cert=tmp_path / "ca.pem")
    with pytest.raises(ValidationError):
        Settings(egress_reachable_networks=["not-a-network"])
    assert Settings(egress_reachable_networks=["10.1.2.3/16"]).egress_reachable_networks == ["10.1.0.0/16"]
