"""Certificate authorities and certificates made on the spot (cryptography), never committed.

A test makes a CertificateAuthority, issues server and client certificates
from it, and writes them as PEM files where a service reads them.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# What a server certificate names: the tests connect to 127.0.0.1 only.
LOOPBACK_NAMES = ("localhost", "127.0.0.1")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, as PEM."""

    cert: bytes
    key: bytes
    serial: int

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """Write `<name>.crt` and `<name>.key` (each replaced in one rename, as a rotation does)."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
        for path, data in ((cert_path, self.cert), (key_path, self.key)):
            partial = path.with_suffix(path.suffix + ".new")
            partial.write_bytes(data)
            os.replace(partial, path)
        return cert_path, key_path


class CertificateAuthority:
    """A self-signed CA that issues leaf certificates."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(hours=1))
            .not_valid_after(_now() + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return _pem(self.certificate)

    def write(self, directory: Path, name: str | None = None) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name or self.name}.pem"
        path.write_bytes(self.pem)
        return path

    def issue_server(self, name: str = "server", **validity: datetime.timedelta) -> Issued:
        """A certificate for a server on 127.0.0.1 / localhost."""
        names: list[x509.GeneralName] = [x509.DNSName("localhost")]
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        return self._issue(name, names, ExtendedKeyUsageOID.SERVER_AUTH, **validity)

    def issue_client(self, name: str = "client", **validity: datetime.timedelta) -> Issued:
        """A client certificate whose identity (common name and URI SAN) is `name`."""
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(f"spiffe://test/{name}")]
        return self._issue(name, names, ExtendedKeyUsageOID.CLIENT_AUTH, **validity)

    def _issue(
        self,
        name: str,
        names: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
        *,
        valid_from: datetime.timedelta = datetime.timedelta(hours=-1),
        valid_until: datetime.timedelta = datetime.timedelta(days=1),
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        serial = x509.random_serial_number()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(_now() + valid_from)
            .not_valid_after(_now() + valid_until)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        return Issued(_pem(certificate), _key_pem(key), serial)
