"""The one place where failures become gRPC status codes.

:func:`classify` turns any exception of the synthesis or the generation path into
a :class:`Failure`: the status code, a message for the caller, trailing metadata
that keeps the upstream's own code, message and task/request id, and whether another
attempt could succeed (used only before anything was sent to the caller).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from voxgate.generation.protocol import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimedOut,
    UpstreamUnavailable,
)
from voxgate.pool import ClosedAfterOpen, ConnectFailed, PoolClosed, PoolTimeout
from voxgate.speech.connection import ConnectionLost, HandshakeRejected
from voxgate.speech.protocol import (
    ERROR_INVALID_ACTION_RUN_TASK,
    ERROR_RATE_LIMITED,
    ProtocolError,
    TaskFailure,
)

MD_UPSTREAM_CODE = "voxgate-upstream-code"
MD_UPSTREAM_MESSAGE = "voxgate-upstream-message"
MD_TASK_ID = "voxgate-task-id"
MD_AUDIO_BYTES_SENT = "voxgate-audio-bytes-sent"
MD_UPSTREAM_REQUEST_ID = "voxgate-upstream-request-id"
MD_UPSTREAM_HTTP_STATUS = "voxgate-upstream-http-status"
MD_TEXT_CHARS_SENT = "voxgate-text-chars-sent"

_CREDENTIAL_CODES = ("InvalidApiKey", "AccessDenied", "Arrearage", "Unauthorized")
_ARGUMENT_CODES = ("InvalidParameter", "InvalidInput", "DataInspectionFailed", "BadRequest")
_TRANSIENT_CODES = (
    "InternalError",
    "ServiceUnavailable",
    "ModelServingError",
    "RequestTimeOut",
    "SystemError",
)
_QUOTA_EXHAUSTED_CODE = "Throttling.AllocationQuota"  # used up, not rate-limited: waiting will not help


@dataclass(frozen=True, slots=True)
class Failure:
    code: grpc.StatusCode
    message: str
    metadata: tuple[tuple[str, str], ...] = ()
    retryable: bool = False


def classify(exc: BaseException) -> Failure:
    """Map a synthesis or generation failure to its status. Unknown exceptions become INTERNAL."""
    if isinstance(exc, TaskFailure):
        return _task_failure(exc)
    if isinstance(exc, UpstreamError):
        return _upstream_error(exc)
    if isinstance(exc, UpstreamTimedOut) and exc.request_sent:
        # The upstream got the whole request and is slow to answer: not "unavailable".
        return Failure(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc), retryable=exc.retryable)
    if isinstance(exc, UpstreamUnavailable):
        return Failure(grpc.StatusCode.UNAVAILABLE, str(exc), retryable=True)
    if isinstance(exc, UpstreamProtocolError):
        return Failure(grpc.StatusCode.INTERNAL, f"upstream protocol violation: {exc}", retryable=True)
    if isinstance(exc, PoolTimeout):
        return Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, f"all upstream connections busy: {exc}")
    if isinstance(exc, PoolClosed):
        return Failure(grpc.StatusCode.UNAVAILABLE, "server is shutting down; retry on another instance")
    if isinstance(exc, ConnectFailed):
        cause = exc.__cause__
        if isinstance(cause, HandshakeRejected) and cause.is_auth_failure:
            # The caller's request is fine; voxgate's own configuration is not. UNAUTHENTICATED
            # would blame the caller's credentials, so FAILED_PRECONDITION it is.
            return Failure(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"upstream rejected voxgate's credentials (HTTP {cause.status}); check DASHSCOPE_API_KEY",
            )
        if isinstance(cause, ClosedAfterOpen):
            # Accepted, then dropped before any use (quota, suspended account): retrying now hammers.
            return Failure(grpc.StatusCode.FAILED_PRECONDITION, f"upstream refuses voxgate: {cause}")
        return Failure(grpc.StatusCode.UNAVAILABLE, str(exc), retryable=True)
    if isinstance(exc, ConnectionLost):
        return Failure(grpc.StatusCode.UNAVAILABLE, str(exc), retryable=True)
    if isinstance(exc, ProtocolError):
        return Failure(grpc.StatusCode.INTERNAL, f"upstream protocol violation: {exc}", retryable=True)
    if isinstance(exc, TimeoutError):
        return Failure(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
    return Failure(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")


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
    if exc.code.startswith(_CREDENTIAL_CODES):
        return Failure(grpc.StatusCode.FAILED_PRECONDITION, text, metadata)
    if exc.code.startswith(_ARGUMENT_CODES):
        return Failure(grpc.StatusCode.INVALID_ARGUMENT, text, metadata)
    if exc.code.startswith(_TRANSIENT_CODES):
        return Failure(grpc.StatusCode.UNAVAILABLE, text, metadata, retryable=True)
    return Failure(grpc.StatusCode.UNKNOWN, text, metadata)


def _upstream_error(exc: UpstreamError) -> Failure:
    """An HTTP error status or a mid-stream ``event:error`` of the generation API (reference §2.5)."""
    metadata: tuple[tuple[str, str], ...] = (
        (MD_UPSTREAM_CODE, exc.code),
        (MD_UPSTREAM_MESSAGE, exc.message),
        (MD_UPSTREAM_REQUEST_ID, exc.request_id),
    )
    if exc.http_status is not None:
        metadata += ((MD_UPSTREAM_HTTP_STATUS, str(exc.http_status)),)
    text = f"upstream error: {exc}"
    status = exc.http_status or 0
    if status in (401, 403) or exc.code.startswith(_CREDENTIAL_CODES):
        # As for synthesis: voxgate's configuration is at fault, not the caller's credentials.
        return Failure(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"upstream rejected voxgate's credentials ({exc}); check DASHSCOPE_API_KEY",
            metadata,
        )
    if status == 429 or exc.code.startswith("Throttling"):
        retryable = not exc.code.startswith(_QUOTA_EXHAUSTED_CODE)
        return Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, text, metadata, retryable=retryable)
    if status >= 500 or status == 408 or exc.code.startswith(_TRANSIENT_CODES):
        return Failure(grpc.StatusCode.UNAVAILABLE, text, metadata, retryable=True)
    if 400 <= status < 500 or exc.code.startswith(_ARGUMENT_CODES):
        return Failure(grpc.StatusCode.INVALID_ARGUMENT, text, metadata)
    return Failure(grpc.StatusCode.UNKNOWN, text, metadata)
