"""The server's edge, built from the settings: TLS credentials, the callers file, the quota ledger.

:class:`Edge` is what :class:`voxgate.app.App` needs to listen (plaintext or TLS) and to
authenticate (an :class:`~voxgate.rpc.auth.AuthInterceptor`, or none at all when no caller
authentication is configured: the zero-config default pays nothing per call).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from voxgate.rpc.auth import AuthInterceptor, Pricing
from voxgate.rpc.callers import CallersFile, CallersFileError
from voxgate.rpc.quotas import Ledger
from voxgate.rpc.tls import CertificateFiles, TlsFiles, server_credentials
from voxgate.settings import ConfigError

log = logging.getLogger(__name__)

TLS_VARIABLES = ("VOXGATE_TLS_CERT_FILE", "VOXGATE_TLS_KEY_FILE", "VOXGATE_TLS_CLIENT_CA_FILE")
CALLERS_VARIABLE = "VOXGATE_CALLERS_FILE"


@dataclass
class Edge:
    certificates: CertificateFiles | None = None
    callers: CallersFile | None = None
    ledger: Ledger = field(default_factory=Ledger)

    @classmethod
    def load(
        cls,
        *,
        cert_file: str | None,
        key_file: str | None,
        client_ca_file: str | None,
        callers_file: str | None,
    ) -> Edge:
        """Read the files now: an unreadable or invalid file fails the start with a ConfigError naming
        its variable."""
        certificates = None
        if cert_file is not None and key_file is not None:
            files = TlsFiles(
                Path(cert_file), Path(key_file), Path(client_ca_file) if client_ca_file else None
            )
            for variable, path in zip(TLS_VARIABLES, files.paths, strict=False):
                if not path.is_file():
                    raise ConfigError(variable, f"{path}: no such file")
            # grpc checks the PEM only at the first handshake: check it now, where the error is clear.
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                    files.cert_file, files.key_file
                )
            except (ssl.SSLError, ValueError) as exc:
                raise ConfigError(
                    TLS_VARIABLES[0], f"{files.cert_file} and {files.key_file}: {exc}"
                ) from None
            certificates = CertificateFiles(files)
        callers = None
        if callers_file is not None:
            try:
                callers = CallersFile(Path(callers_file))
            except CallersFileError as exc:
                raise ConfigError(CALLERS_VARIABLE, str(exc)) from None
        return cls(certificates=certificates, callers=callers)

    @property
    def mutual_tls(self) -> bool:
        return self.certificates is not None and self.certificates.files.client_ca_file is not None

    def listen(self, server: grpc.aio.Server, address: str) -> int:
        """Add the port, with TLS when configured; the bound port (0: could not bind)."""
        if self.certificates is None:
            return server.add_insecure_port(address)
        return server.add_secure_port(address, server_credentials(self.certificates))

    def interceptor(
        self, *, metered_services: Sequence[str], pricing: Mapping[str, Pricing]
    ) -> AuthInterceptor | None:
        if self.callers is None and not self.mutual_tls:
            return None
        return AuthInterceptor(
            callers=self.callers,
            mutual_tls=self.mutual_tls,
            ledger=self.ledger,
            metered_services=metered_services,
            pricing=pricing,
        )

    def describe(self) -> str:
        tls = "off" if self.certificates is None else ("mutual TLS" if self.mutual_tls else "TLS")
        callers = "none" if self.callers is None else f"{len(self.callers.callers)} in {self.callers.path}"
        return f"edge: TLS {tls}; caller keys: {callers}"
