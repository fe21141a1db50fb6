"""Synthesis failures as gRPC statuses: ``task-failed`` codes, lost and refused connections.

:func:`speech_failure` recognises them (for any RPC that synthesizes); :data:`classify_speech`
is Synthesize's classifier, with everything else mapped by :func:`voxgate.rpc.errors.generic_failure`.
"""

from __future__ import annotations

import grpc

from voxgate.pool import ConnectFailed
from voxgate.rpc.errors import (
    ARGUMENT_CODES,
    CREDENTIAL_CODES,
    MD_REFUSED,
    MD_TASK_ID,
    MD_UPSTREAM_CODE,
    MD_UPSTREAM_MESSAGE,
    TRANSIENT_CODES,
    Classifier,
    Failure,
    classifier,
    credentials_rejected,
)
from voxgate.speech.connection import ConnectionLost, HandshakeRejected
from voxgate.speech.protocol import (
    ERROR_INVALID_ACTION_RUN_TASK,
    ERROR_RATE_LIMITED,
    ProtocolError,
    TaskFailure,
)
from voxgate.speech.ratelimit import RateLimited


def speech_failure(exc: BaseException) -> Failure | None:
    """The status of a failure of the synthesis path; None for any other exception."""
    if isinstance(exc, TaskFailure):
        return _task_failure(exc)
    if isinstance(exc, ConnectFailed):
        cause = exc.__cause__
        if isinstance(cause, HandshakeRejected) and cause.is_auth_failure:
            return credentials_rejected(f"HTTP {cause.status}")
    if isinstance(exc, ConnectionLost):
        return Failure(grpc.StatusCode.UNAVAILABLE, str(exc), retryable=True)
    if isinstance(exc, RateLimited):
        return Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), ((MD_REFUSED, "task_start_rate"),))
    if isinstance(exc, ProtocolError):
        return Failure(grpc.StatusCode.INTERNAL, f"upstream protocol violation: {exc}", retryable=True)
    return None


classify_speech: Classifier = classifier(speech_failure)
"""Every exception of a Synthesize call → its status."""


def _task_failure(exc: TaskFailure) -> Failure:
    metadata = (
        (MD_UPSTREAM_CODE, exc.code),
        (MD_UPSTREAM_MESSAGE, exc.message),
        (MD_TASK_ID, exc.task_id),
    )
    text = f"upstream task failed: {exc.code}: {exc.message}"
    if exc.code.startswith("Throttling") or exc.message == ERROR_RATE_LIMITED:
        return Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, text, metadata, retryable=True)
    if exc.message == ERROR_INVALID_ACTION_RUN_TASK:
        # Our bug, not the caller's: a connection was reused mid-task. A fresh one works.
        return Failure(grpc.StatusCode.INTERNAL, text, metadata, retryable=True)
    if exc.code.startswith(CREDENTIAL_CODES):
        return Failure(grpc.StatusCode.FAILED_PRECONDITION, text, metadata)
    if exc.code.startswith(ARGUMENT_CODES):
        return Failure(grpc.StatusCode.INVALID_ARGUMENT, text, metadata)
    if exc.code.startswith(TRANSIENT_CODES):
        return Failure(grpc.StatusCode.UNAVAILABLE, text, metadata, retryable=True)
    return Failure(grpc.StatusCode.UNKNOWN, text, metadata)
