"""TLS credentials from PEM files: read, checked, and re-read when the files change.

A server's credentials are grpc's dynamic ones: before each new connection's
handshake grpc asks a fetcher, and the fetcher here compares the files'
stat (mtime, size, inode) with what it serves. When they changed it reads
and checks them again and hands grpc the new certificate (and client CA), so
a rotation by cert-manager, a secrets sidecar or `mv` needs no restart;
connections already open keep the certificate they were made with. Files
caught half-written (a certificate whose key has not been replaced yet) are
not served: the previous pair stays until both fit.

The files are read and checked by dualnova.server.tls_config, when the
settings load (a bad file stops the program at start with one line naming the
variable) and here again, when they change.
"""

from __future__ import annotations

import logging
import threading

import grpc

from dualnova.server.settings import ConfigError
from dualnova.server.tls_config import (
    CertFile,
    ClientTLS,
    ServerTLS,
    Signature,
    file_signature,
    read_certificates,
    read_key_pair,
)

__all__ = ["channel_credentials", "server_credentials"]

logger = logging.getLogger(__name__)

# The signature of files that cannot even be looked at (one was removed, say).
_UNREADABLE: Signature = ()


def server_credentials(tls: ServerTLS) -> grpc.ServerCredentials:
    """Credentials that serve `tls`'s files and follow them when they change.

    Client certificates are required (and checked against the client CA) when
    a client CA is named. ConfigError naming the variable when a file is bad.
    """
    files = _ServedFiles(tls)
    initial = files.load()
    return grpc.dynamic_ssl_server_credentials(
        initial,
        # None means "no change", as grpc documents; the stubs say the type only.
        files.fetch,  # type: ignore[arg-type]
        require_client_authentication=tls.client_ca is not None,
    )


def channel_credentials(tls: ClientTLS) -> grpc.ChannelCredentials:
    """Credentials of a channel that trusts `tls.ca` and presents `tls.cert` when set.

    Read once, when the channel is built. ConfigError naming the variable when a file is bad.
    """
    ca = read_certificates(tls.ca)
    if tls.cert is None or tls.key is None:
        return grpc.ssl_channel_credentials(root_certificates=ca)
    cert, key = read_key_pair(tls.cert, tls.key)
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


class _ServedFiles:
    """The files one server serves, and the fetcher grpc calls before each handshake."""

    def __init__(self, tls: ServerTLS) -> None:
        self._tls = tls
        self._files: tuple[CertFile, ...] = tuple(
            file for file in (tls.cert, tls.key, tls.client_ca) if file is not None
        )
        self._served: Signature | None = None
        self._refused: Signature | None = None
        # grpc may call the fetcher from several of its threads at once.
        self._lock = threading.Lock()

    def load(self) -> grpc.ServerCertificateConfiguration:
        """Read and check every file; ConfigError naming the variable of a bad one."""
        signature = file_signature(self._files)
        configuration = self._read()
        self._served = signature
        return configuration

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """A new configuration when the files changed and are usable; None keeps the current one.

        Never raises: a bad rotation is logged once and the previous files go on being served.
        """
        with self._lock:
            try:
                signature = file_signature(self._files)
            except ConfigError as exc:
                self._refuse(_UNREADABLE, exc)
                return None
            if signature in (self._served, self._refused):
                return None
            try:
                configuration = self._read()
            except ConfigError as exc:
                self._refuse(signature, exc)
                return None
            self._served = signature
            self._refused = None
            logger.info(
                f"TLS certificate files changed ({self._tls.cert.variable}):"
                " serving the new certificate"
            )
            return configuration

    def _refuse(self, signature: Signature, error: ConfigError) -> None:
        if signature != self._refused:
            logger.warning(
                "TLS certificate files changed but cannot be served; still serving the"
                " previous certificate",
                extra={"error": str(error)},
            )
        self._refused = signature

    def _read(self) -> grpc.ServerCertificateConfiguration:
        cert, key = read_key_pair(self._tls.cert, self._tls.key)
        client_ca = None if self._tls.client_ca is None else read_certificates(self._tls.client_ca)
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=client_ca)
