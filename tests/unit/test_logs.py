"""The log handler removes the API key and bearer tokens from every record."""

from __future__ import annotations

import logging

from voxgate.logs import REDACTED, RedactingFilter

SECRET = "sk-abc123secret"


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("t", logging.DEBUG, __file__, 1, msg, args, None)


def test_secret_is_removed_from_formatted_arguments() -> None:
    rec = record("> Authorization: %s %s", "Bearer", SECRET)
    RedactingFilter([SECRET]).filter(rec)
    assert SECRET not in rec.getMessage() and REDACTED in rec.getMessage()


def test_any_bearer_token_is_removed_even_if_unknown() -> None:
    rec = record("header Authorization: bearer sk-other-key, next")
    RedactingFilter().filter(rec)
    assert rec.getMessage() == f"header Authorization: bearer {REDACTED}, next"


def test_secret_is_removed_from_tracebacks() -> None:
    try:
        raise RuntimeError(f"failed with {SECRET}")
    except RuntimeError:
        rec = logging.LogRecord("t", logging.ERROR, __file__, 1, "boom", None, __import__("sys").exc_info())
    RedactingFilter([SECRET]).filter(rec)
    assert rec.exc_text is not None and SECRET not in rec.exc_text
