"""The certificate authority the egress proxy intercepts TLS with, and the bundle sandboxes trust.

A deployment gives the CA as settings (egress_ca_cert, egress_ca_key: a secret of its own); otherwise
the first process that asks makes one and keeps it (key and certificate in one file, mode 0600) in
data_dir. Sandboxes only ever get the certificate, in a bundle with the system's CAs.
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from services.core.identity import stored_value
from services.core.settings import Settings

CA_FILE = "egress-ca.pem"
_SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


@dataclass(frozen=True)
class EgressCA:
    cert: Path
    key: Path  # the same file as `cert` when one file holds both

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressCA:
        if settings.egress_ca_cert is not None and settings.egress_ca_key is not None:
            return cls(settings.egress_ca_cert, settings.egress_ca_key)
        path = (settings.data_dir / CA_FILE).resolve()
        stored_value(path, make_ca)
        return cls(path, path)

    def certificate_pem(self) -> bytes:
        """The certificate alone (a file holding the key too is never copied anywhere)."""
        cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        return cert.public_bytes(serialization.Encoding.PEM)

    def sandbox_bundle(self) -> bytes:
        """The system's CAs and this one: what a sandbox verifies servers with."""
        system = next((Path(p) for p in _system_bundles() if Path(p).is_file()), None)
        base = system.read_bytes().rstrip() + b"\n" if system is not None else b""
        return base + self.certificate_pem()


def _system_bundles() -> tuple[str, ...]:
    default = ssl.get_default_verify_paths()
    return tuple(p for p in (default.cafile, default.openssl_cafile, *_SYSTEM_BUNDLES) if p)


def make_ca() -> str:
    """A new CA: its PEM key, then its PEM certificate (ten years; it only signs the proxy's leaves)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loopd egress CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (key_pem + cert.public_bytes(serialization.Encoding.PEM)).decode().strip()
