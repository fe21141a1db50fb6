"""TLS and mutual TLS for the gRPC port, with certificate files re-read when they change.

cert-manager (and most secret stores) rotate a certificate by rewriting the files of a mounted
Secret in place, so a server that reads them once serves an expired certificate until it is
restarted. gRPC's dynamic server credentials ask a fetcher for the certificate configuration on
every new TLS handshake; :class:`CertificateFiles` answers with ``None`` ("unchanged") unless a
file's size, modification time or inode changed since it last loaded them, so a handshake
costs three ``stat`` calls, and a rotation is served from the next handshake on. Connections
already open keep the certificate they were made with.

A half-written rotation (a key that does not match its certificate yet) is not fatal: gRPC
keeps serving the configuration it has and logs the failure, and the next handshake tries again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

log = logging.getLogger(__name__)

FileStamp = tuple[int, int, int]
"""(inode, size, mtime in ns): what tells that a file was rewritten."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The PEM files of the server's TLS configuration."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    """When set, clients must present a certificate signed by this CA (mutual TLS)."""

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.cert_file, self.key_file) + ((self.client_ca_file,) if self.client_ca_file else ())


class CertificateFiles:
    """The certificate configuration of :class:`TlsFiles`, reloaded on change; see the module doc."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._lock = threading.Lock()  # the fetcher runs on gRPC's threads
        self._stamps = self._read_stamps()
        self.reloads = 0
        """How many times the files were re-read after the first load."""

    def initial(self) -> grpc.ServerCertificateConfiguration:
        """Read the files now: a missing or unreadable file fails the start, naming it."""
        return self._configuration()

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's certificate configuration fetcher: a new configuration, or ``None`` if unchanged."""
        with self._lock:
            try:
                stamps = self._read_stamps()
            except OSError as exc:
                # Mid-rotation a file can be missing for a moment: keep serving the current one.
                log.warning("TLS: cannot read %s; keeping the current certificate", exc.filename)
                return None
            if stamps == self._stamps:
                return None
            try:
                configuration = self._configuration()
            except OSError as exc:
                log.warning("TLS: cannot read %s; keeping the current certificate", exc.filename)
                return None
            self._stamps = stamps
            self.reloads += 1
        log.info("TLS: certificate files changed, serving them from the next handshake on")
        return configuration

    def _read_stamps(self) -> tuple[FileStamp, ...]:
        stamps = []
        for path in self.files.paths:
            stat = os.stat(path)
            stamps.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
        return tuple(stamps)

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        files = self.files
        pair = (files.key_file.read_bytes(), files.cert_file.read_bytes())
        root = files.client_ca_file.read_bytes() if files.client_ca_file else None
        return grpc.ssl_server_certificate_configuration([pair], root_certificates=root)


def server_credentials(certificates: CertificateFiles) -> grpc.ServerCredentials:
    """TLS credentials for ``server.add_secure_port`` that follow the files of ``certificates``."""
    return grpc.dynamic_ssl_server_credentials(
        certificates.initial(),
        # grpc documents None as "unchanged"; its type stubs leave that out.
        certificates.fetch,  # type: ignore[arg-type]
        require_client_authentication=certificates.files.client_ca_file is not None,
    )


def peer_common_name(auth_context: Mapping[str, Iterable[bytes]]) -> str | None:
    """The verified client certificate's subject common name, if the peer presented one (mTLS)."""
    names = auth_context.get("x509_common_name") or ()
    for name in names:
        text = name.decode("utf-8", "replace").strip()
        if text:
            return text
    return None
