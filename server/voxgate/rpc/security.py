"""The security settings' own checks: certificate files that pair up, and the protected mode.

Protected mode (like Redis'): a server that holds a DashScope key and listens beyond loopback
with no caller authentication lets anyone who reaches the port spend the key, so it refuses to
start and says how to fix it, unless ``VOXGATE_AUTH=none`` states that something in front
(a service mesh doing mTLS) authenticates callers. docs/security.md explains the choices.
"""

from __future__ import annotations

import ipaddress

AUTH_MODES = ("auto", "none")
LOOPBACK_NAMES = ("localhost",)


def file_path(text: str) -> str:
    """A file's path. Read (and checked) as the server starts, by voxgate.rpc.edge, not here: the
    settings of a Kubernetes ConfigMap load anywhere, the files exist only in the pod."""
    path = text.strip()
    if not path:
        raise ValueError("must be a file path")
    return path


def is_loopback(listen: str) -> bool:
    host = listen.rpartition(":")[0].strip("[]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def problems(
    *,
    listen: str,
    has_api_key: bool,
    auth: str,
    tls_cert_file: str | None,
    tls_key_file: str | None,
    tls_client_ca_file: str | None,
    callers_file: str | None,
) -> tuple[str, str] | None:
    """The first inconsistency as (field, reason), or None."""
    if (tls_cert_file is None) != (tls_key_file is None):
        missing = "tls_key_file" if tls_key_file is None else "tls_cert_file"
        return missing, "is required too: TLS needs both a certificate and its private key"
    if tls_client_ca_file is not None and tls_cert_file is None:
        return "tls_cert_file", "is required for mutual TLS (VOXGATE_TLS_CLIENT_CA_FILE is set)"
    authenticated = callers_file is not None or tls_client_ca_file is not None
    if auth == "none" and authenticated:
        return (
            "auth",
            "is 'none' but VOXGATE_CALLERS_FILE or VOXGATE_TLS_CLIENT_CA_FILE configures caller auth",
        )
    if has_api_key and auth != "none" and not authenticated and not is_loopback(listen):
        return "listen", (
            f"{listen} is reachable beyond this host, a DashScope key is set and no caller is"
            " authenticated: anyone who reaches the port would spend the key. Set"
            " VOXGATE_CALLERS_FILE (make keys with `voxgate caller-key NAME`), or VOXGATE_TLS_CLIENT_CA_FILE"
            " (mutual TLS), or VOXGATE_AUTH=none if something in front authenticates callers (a mesh"
            " doing mTLS), or listen on 127.0.0.1 (docs/security.md)"
        )
    return None
