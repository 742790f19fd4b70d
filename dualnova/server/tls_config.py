"""Which certificate files a server serves TLS from and a client trusts: declared once per service.

Decided here, when the settings load: the mode (plaintext, tls, mutual-tls),
whether plaintext is allowed at all (on loopback it is the default, on any
other address only with DUALNOVA_ALLOW_PLAINTEXT=true, for a mesh that
terminates TLS in front of the process, so a server never ends up on the
network unencrypted by omission), and whether the files are usable: missing,
unreadable, not PEM, or a key that does not match its certificate is a
ConfigError naming the variable, so the program stops at start with one line.
The checks use the standard library's ssl module (OpenSSL). dualnova.server.tls
builds grpc's credentials from the same files and reads them again when they
change.

No grpc here: the worker supervisor reads these settings too.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dualnova.server.settings import ConfigError, Setting, as_bool, read_optional_str

__all__ = [
    "ALLOW_PLAINTEXT",
    "MUTUAL_TLS",
    "PLAINTEXT",
    "TLS",
    "CertFile",
    "ClientTLS",
    "ClientTLSSettings",
    "ServerTLS",
    "ServerTLSSettings",
    "Signature",
    "file_setting",
    "file_signature",
    "is_loopback",
    "mode_of",
    "read_certificates",
    "read_key_pair",
]

# The modes the start log line names.
PLAINTEXT, TLS, MUTUAL_TLS = "plaintext", "tls", "mutual-tls"


@dataclass(frozen=True)
class CertFile:
    """A PEM file and the variable that named it (every message about the file names both)."""

    path: str
    variable: str


@dataclass(frozen=True)
class ServerTLS:
    """A server's certificate and key; with a client CA, client certificates are required."""

    cert: CertFile
    key: CertFile
    client_ca: CertFile | None = None

    @property
    def mode(self) -> str:
        return MUTUAL_TLS if self.client_ca is not None else TLS


@dataclass(frozen=True)
class ClientTLS:
    """The CA bundle a channel trusts and, for mutual TLS, the certificate it presents."""

    ca: CertFile
    cert: CertFile | None = None
    key: CertFile | None = None

    @property
    def mode(self) -> str:
        return MUTUAL_TLS if self.cert is not None else TLS


def mode_of(tls: ServerTLS | ClientTLS | None) -> str:
    """plaintext, tls or mutual-tls: what the start log line says."""
    return PLAINTEXT if tls is None else tls.mode


def is_loopback(host: str) -> bool:
    """Whether HOST (of a HOST:PORT) is reachable from this machine only.

    A name other than localhost counts as the network: what it resolves to is
    not known here, and may change.
    """
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _as_path(env: Mapping[str, str], setting: Setting[str | None]) -> str | None:
    return read_optional_str(env, setting.variable)


def file_setting(
    variable: str, option: str, meaning: str, default_text: str
) -> Setting[str | None]:
    """A variable naming a file (unset: None; `default_text` says what unset means)."""
    return Setting(variable, option, meaning, None, _as_path, default_text=default_text)


ALLOW_PLAINTEXT = Setting(
    "DUALNOVA_ALLOW_PLAINTEXT",
    "--allow-plaintext",
    "true to serve plaintext on an address other than loopback, where a mesh or proxy"
    " in front terminates TLS",
    default=False,
    reader=as_bool,
    note="plaintext on loopback only",
)


@dataclass(frozen=True)
class ServerTLSSettings:
    """A server's three TLS variables (<PREFIX>_TLS_CERT, _KEY, _CLIENT_CA), read together."""

    cert: Setting[str | None]
    key: Setting[str | None]
    client_ca: Setting[str | None]

    @classmethod
    def declare(cls, prefix: str) -> ServerTLSSettings:
        """Names follow the service (GATEWAY, INFERENCE); the flags are the same for both."""
        return cls(
            cert=file_setting(
                f"{prefix}_TLS_CERT",
                "--tls-cert",
                "PEM certificate (chain) to serve TLS with, re-read when the file changes",
                "unset, plaintext",
            ),
            key=file_setting(
                f"{prefix}_TLS_KEY",
                "--tls-key",
                "PEM private key of that certificate, re-read when the file changes",
                "unset, plaintext",
            ),
            client_ca=file_setting(
                f"{prefix}_TLS_CLIENT_CA",
                "--tls-client-ca",
                "PEM CA bundle for mutual TLS: clients must present a certificate it signed",
                "unset, no client certificates",
            ),
        )

    @property
    def settings(self) -> tuple[Setting[Any], ...]:
        return (self.cert, self.key, self.client_ca)

    def read(self, env: Mapping[str, str], listen: Setting[str]) -> ServerTLS | None:
        """The files the server on `listen` serves TLS from; None for plaintext.

        ConfigError when only one of certificate and key is set, when a client
        CA is named without them, or when the address is not loopback and
        neither TLS nor DUALNOVA_ALLOW_PLAINTEXT is set.
        """
        cert, key, client_ca = (setting.read(env) for setting in self.settings)
        if cert is None and key is None:
            if client_ca is not None:
                raise ConfigError(
                    f"{self.client_ca.variable} is set: mutual TLS needs {self.cert.variable}"
                    f" and {self.key.variable} too"
                )
            _check_plaintext_allowed(env, listen, self)
            return None
        _check_pair(self.cert, cert, self.key, key)
        assert cert is not None and key is not None
        tls = ServerTLS(
            CertFile(cert, self.cert.variable),
            CertFile(key, self.key.variable),
            None if client_ca is None else CertFile(client_ca, self.client_ca.variable),
        )
        read_key_pair(tls.cert, tls.key)
        if tls.client_ca is not None:
            read_certificates(tls.client_ca)
        return tls


def _check_plaintext_allowed(
    env: Mapping[str, str], listen: Setting[str], tls: ServerTLSSettings
) -> None:
    address = listen.read(env)
    if is_loopback(address.rpartition(":")[0]) or ALLOW_PLAINTEXT.read(env):
        return
    raise ConfigError(
        f"{listen.variable}={address!r} is not a loopback address and the server would serve"
        f" plaintext: set {tls.cert.variable} and {tls.key.variable} for TLS, or"
        f" {ALLOW_PLAINTEXT.variable}=true where a mesh terminates TLS in front of it"
    )


def _check_pair(
    cert_setting: Setting[str | None],
    cert: str | None,
    key_setting: Setting[str | None],
    key: str | None,
) -> None:
    if cert is None:
        raise ConfigError(f"{key_setting.variable} is set: {cert_setting.variable} is needed too")
    if key is None:
        raise ConfigError(f"{cert_setting.variable} is set: {key_setting.variable} is needed too")


@dataclass(frozen=True)
class ClientTLSSettings:
    """A client channel's TLS variables: the CA to trust, and a certificate and key to present."""

    ca: Setting[str | None]
    cert: Setting[str | None]
    key: Setting[str | None]

    @property
    def settings(self) -> tuple[Setting[Any], ...]:
        return (self.ca, self.cert, self.key)

    def read(self, env: Mapping[str, str]) -> ClientTLS | None:
        """The files the channel uses; None for plaintext. ConfigError on a half-set pair."""
        ca, cert, key = (setting.read(env) for setting in self.settings)
        if ca is None:
            if cert is not None or key is not None:
                named = self.cert.variable if cert is not None else self.key.variable
                raise ConfigError(
                    f"{named} is set: a client certificate needs TLS, so {self.ca.variable}"
                    " (the CA bundle the server's certificate is checked against) too"
                )
            return None
        trusted = CertFile(ca, self.ca.variable)
        read_certificates(trusted)
        if cert is None and key is None:
            return ClientTLS(trusted)
        _check_pair(self.cert, cert, self.key, key)
        assert cert is not None and key is not None
        tls = ClientTLS(
            trusted, CertFile(cert, self.cert.variable), CertFile(key, self.key.variable)
        )
        read_key_pair(CertFile(cert, self.cert.variable), CertFile(key, self.key.variable))
        return tls


# Reading and checking the files: at load, and again when they change (dualnova.server.tls).

_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_PRIVATE_KEY = b"PRIVATE KEY-----"
# (mtime, size, inode) of each file: what changes when one is rewritten or replaced.
Signature = tuple[tuple[int, int, int], ...]


def file_signature(files: Sequence[CertFile]) -> Signature:
    """What changes when a file is rewritten or replaced (a new inode after a rename)."""
    stats = []
    for file in files:
        try:
            stat = os.stat(file.path)
        except OSError as exc:
            raise _unreadable(file, exc) from None
        stats.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
    return tuple(stats)


def _unreadable(file: CertFile, error: OSError) -> ConfigError:
    return ConfigError(f"{file.variable}={file.path!r}: cannot read it ({error.strerror})")


def _read(file: CertFile) -> bytes:
    try:
        with open(file.path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise _unreadable(file, exc) from None


def read_certificates(file: CertFile) -> bytes:
    """A PEM file of one or more certificates (a chain, a CA bundle), parsed to be sure."""
    data = _read(file)
    if _CERTIFICATE not in data:
        raise ConfigError(f"{file.variable}={file.path!r}: not a PEM certificate file")
    try:
        ssl.create_default_context(cadata=data.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(
            f"{file.variable}={file.path!r}: not a readable PEM certificate file ({_reason(exc)})"
        ) from None
    return data


def read_key_pair(cert: CertFile, key: CertFile) -> tuple[bytes, bytes]:
    """The certificate chain and its private key, checked to belong together.

    OpenSSL checks the pair from the files themselves; they are read before and
    after, and a pair that changed in between (a rotation under way) is read again.
    """
    for _ in range(3):
        cert_data = read_certificates(cert)
        key_data = _read(key)
        _check_key(key, key_data)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
                cert.path, key.path, password=_no_password
            )
        except ssl.SSLError as exc:
            if "KEY_VALUES_MISMATCH" in str(exc):
                raise ConfigError(
                    f"{key.variable}={key.path!r}: the key does not match the certificate in"
                    f" {cert.variable}"
                ) from None
            raise ConfigError(
                f"{key.variable}={key.path!r}: cannot use the key with {cert.variable}"
                f" ({_reason(exc)})"
            ) from None
        except OSError as exc:
            raise _unreadable(key, exc) from None
        if _read(cert) == cert_data and _read(key) == key_data:
            return cert_data, key_data
    raise ConfigError(f"{cert.variable}={cert.path!r}: the files keep changing while read")


def _check_key(file: CertFile, data: bytes) -> None:
    if _PRIVATE_KEY not in data:
        raise ConfigError(f"{file.variable}={file.path!r}: not a PEM private key")
    if b"ENCRYPTED" in data:
        raise ConfigError(
            f"{file.variable}={file.path!r}: the key is encrypted; give the server an"
            " unencrypted key (kept readable only by it)"
        )


def _no_password() -> bytes:
    # OpenSSL would otherwise prompt on the terminal for an encrypted key.
    raise ConfigError("the key is encrypted")


def _reason(error: Exception) -> str:
    reason = getattr(error, "reason", None)
    return str(reason) if reason else str(error)
