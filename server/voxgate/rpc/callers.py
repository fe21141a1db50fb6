"""The callers file: who may call voxgate, by the SHA-256 of their key, and their quotas.

```toml
[[caller]]
name = "billing-backend"
key_sha256 = "<hex sha-256 of the caller's key>"
max_concurrent_streams = 8          # optional quotas, each unlimited when absent
characters_per_minute = 20000       # synthesis characters, as billed
generation_requests_per_minute = 120
```

Only hashes are stored, so the file leaks no key. :class:`CallersFile` re-reads the file when
it changes (size, modification time or inode: a Kubernetes Secret is swapped by a symlink), at
the next call; a file that no longer parses is refused with an error in the log and the callers
read before stay in force, so a typo cannot lock everyone out or let everyone in.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import tomllib
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

KEY_PREFIX = "vg_"
"""Prefix of keys made by ``voxgate caller-key``: easy to spot in a secret scanner's rules."""
QUOTA_FIELDS = ("max_concurrent_streams", "characters_per_minute", "generation_requests_per_minute")
_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,127}$")


class CallersFileError(ValueError):
    """The callers file cannot be used; the message names the file and the entry at fault."""


@dataclass(frozen=True, slots=True)
class Quotas:
    """Per-caller limits; ``None`` is unlimited."""

    max_concurrent_streams: int | None = None
    characters_per_minute: int | None = None
    """Synthesis characters as billed: CJK ideographs count 2 (voxgate.speech.protocol.weighted_length)."""
    generation_requests_per_minute: int | None = None


UNLIMITED = Quotas()


@dataclass(frozen=True, slots=True)
class Caller:
    name: str
    key_sha256: bytes
    quotas: Quotas = UNLIMITED

    def __repr__(self) -> str:  # the hash is not secret, but nothing needs to print it
        return f"Caller({self.name!r})"


def new_key() -> str:
    """A fresh random caller key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def toml_block(name: str, key: str) -> str:
    """The ``[[caller]]`` entry to paste into the callers file for ``key`` (the key itself is not in it)."""
    return (
        "[[caller]]\n"
        f'name = "{name}"\n'
        f'key_sha256 = "{key_sha256(key)}"\n'
        "# max_concurrent_streams = 8          # optional quotas, each unlimited when absent\n"
        "# characters_per_minute = 20000       # synthesis characters, as billed\n"
        "# generation_requests_per_minute = 120\n"
    )


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(
            f"{name!r} is not a valid caller name (letters, digits and . _ @ : / -, at most 128)"
        )
    return name


def parse(text: str, source: str) -> tuple[Caller, ...]:
    """The callers in ``text`` (TOML); :class:`CallersFileError` naming ``source`` and the entry."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CallersFileError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(document) - {"caller"}
    if unknown:
        raise CallersFileError(f"{source}: unknown table(s) {sorted(unknown)}; expected [[caller]] entries")
    entries = document.get("caller", [])
    if not isinstance(entries, list):
        raise CallersFileError(f"{source}: 'caller' must be an array of tables ([[caller]])")
    callers: list[Caller] = []
    for index, entry in enumerate(entries):
        where = f"{source}: caller #{index + 1}"
        try:
            callers.append(_caller(entry))
        except ValueError as exc:
            raise CallersFileError(f"{where}: {exc}") from None
    names = [caller.name for caller in callers]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise CallersFileError(f"{source}: caller names must be unique: {duplicates}")
    hashes = [caller.key_sha256 for caller in callers]
    if len(set(hashes)) != len(hashes):
        raise CallersFileError(f"{source}: two callers share one key_sha256")
    return tuple(callers)


def _caller(entry: Any) -> Caller:
    if not isinstance(entry, dict):
        raise ValueError("must be a table")
    unknown = set(entry) - {"name", "key_sha256", *QUOTA_FIELDS}
    if unknown:
        # A misspelt quota would silently be unlimited: refuse it.
        raise ValueError(f"unknown field(s) {sorted(unknown)}")
    name = entry.get("name")
    if not isinstance(name, str):
        raise ValueError("name: required, a string")
    check_name(name)
    digest = entry.get("key_sha256")
    if not isinstance(digest, str) or not _HEX_SHA256.match(digest.lower()):
        raise ValueError(f"{name}: key_sha256 must be 64 hex digits (the SHA-256 of the key)")
    limits: dict[str, int] = {}
    for field in QUOTA_FIELDS:
        if field in entry:
            value = entry[field]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {field} must be a whole number >= 1 (leave it out for no limit)")
            limits[field] = value
    return Caller(name=name, key_sha256=bytes.fromhex(digest), quotas=Quotas(**limits))


class CallersFile:
    """The callers of ``path``, re-read when the file changes. Raises :class:`CallersFileError` at start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp = self._read_stamp()
        self._callers = self._load()
        self.reloads = 0

    @property
    def callers(self) -> tuple[Caller, ...]:
        self._refresh()
        return self._callers

    def authenticate(self, key: str) -> Caller | None:
        """The caller whose key is ``key``, or ``None``. Compares hashes in constant time, all of them."""
        digest = hashlib.sha256(key.encode()).digest()
        found: Caller | None = None
        for caller in self.callers:
            # No early exit: the time taken does not tell how many callers there are before a match.
            if hmac.compare_digest(digest, caller.key_sha256):
                found = caller
        return found

    def by_name(self, name: str) -> Caller | None:
        for caller in self.callers:
            if caller.name == name:
                return caller
        return None

    def _read_stamp(self) -> tuple[int, int, int]:
        try:
            stat = os.stat(self.path)
        except OSError as exc:
            raise CallersFileError(f"{self.path}: cannot read: {exc.strerror}") from None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def _load(self) -> tuple[Caller, ...]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CallersFileError(f"{self.path}: cannot read: {exc.strerror}") from None
        return parse(text, str(self.path))

    def _refresh(self) -> None:
        try:
            stamp = self._read_stamp()
        except CallersFileError:
            return  # mid-swap, or removed: keep the callers we have
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                callers = self._load()
            except CallersFileError as exc:
                log.error(
                    "callers file changed but cannot be used; keeping the %d callers read before: %s",
                    len(self._callers),
                    exc,
                )
                return
            self._callers = callers
            self.reloads += 1
        log.info("callers file reloaded: %d callers", len(callers))


current_caller: ContextVar[str | None] = ContextVar("voxgate_caller", default=None)
"""The authenticated caller of the call running in this task (set by voxgate.rpc.auth), for
telemetry and JSON logs. Each gRPC call runs in its own task, so it never leaks to another call."""
