"""Failures as gRPC statuses: the :class:`Failure` type, the metadata keys, the generic mapping.

Each feature recognises its own exceptions (:func:`voxgate.speech.errors.speech_failure`,
:func:`voxgate.generation.errors.generation_failure`); :func:`classifier` chains those of an
RPC's features and ends in :func:`generic_failure`, which knows only what every RPC shares:
the caller's deadline and the pool. An RPC spanning features (generation piped into speech)
chains both. This module imports no feature: a new one brings its own recogniser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc

from voxgate.pool import ClosedAfterOpen, ConnectFailed, PoolClosed, PoolTimeout

MD_UPSTREAM_CODE = "voxgate-upstream-code"
MD_UPSTREAM_MESSAGE = "voxgate-upstream-message"
MD_TASK_ID = "voxgate-task-id"
MD_AUDIO_BYTES_SENT = "voxgate-audio-bytes-sent"
MD_UPSTREAM_REQUEST_ID = "voxgate-upstream-request-id"
MD_UPSTREAM_HTTP_STATUS = "voxgate-upstream-http-status"
MD_TEXT_CHARS_SENT = "voxgate-text-chars-sent"
MD_NOT_CONNECTED = "voxgate-upstream-not-connected"
"""``true`` on an UNAVAILABLE whose request never reached the upstream (nothing was connected
for it): safe to retry for any client, even one that does not retry UNAVAILABLE in general."""
NOT_CONNECTED = ((MD_NOT_CONNECTED, "true"),)

# DashScope's error code families, shared by its WebSocket and HTTP APIs (codes match by prefix).
CREDENTIAL_CODES = ("InvalidApiKey", "AccessDenied", "Arrearage", "Unauthorized")
ARGUMENT_CODES = ("InvalidParameter", "InvalidInput", "DataInspectionFailed", "BadRequest")
TRANSIENT_CODES = (
    "InternalError",
    "ServiceUnavailable",
    "ModelServingError",
    "RequestTimeOut",
    "SystemError",
)


@dataclass(frozen=True, slots=True)
class Failure:
    """How a failed attempt ends the RPC: the status ``code``, a ``message`` for the caller,
    trailing ``metadata`` that keeps the upstream's own code, message and ids, and whether
    another attempt could succeed (``retryable``; used only before anything was sent)."""

    code: grpc.StatusCode
    message: str
    metadata: tuple[tuple[str, str], ...] = ()
    retryable: bool = False


FeatureClassifier = Callable[[BaseException], Failure | None]
"""One feature's exceptions → :class:`Failure`; None for an exception that is not the feature's."""
Classifier = Callable[[BaseException], Failure]
"""Any exception → :class:`Failure`: see :func:`classifier`."""


def classifier(*features: FeatureClassifier) -> Classifier:
    """The first of ``features`` that recognises an exception decides; else :func:`generic_failure`."""

    def classify(exc: BaseException) -> Failure:
        for feature in features:
            failure = feature(exc)
            if failure is not None:
                return failure
        return generic_failure(exc)

    return classify


def generic_failure(exc: BaseException) -> Failure:
    """What every RPC maps the same way: the pool, the caller's deadline. Anything else is INTERNAL."""
    if isinstance(exc, PoolTimeout):
        return Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, f"all upstream connections busy: {exc}")
    if isinstance(exc, PoolClosed):
        return Failure(grpc.StatusCode.UNAVAILABLE, "server is shutting down; retry on another instance")
    if isinstance(exc, ConnectFailed):
        if isinstance(exc.__cause__, ClosedAfterOpen):
            # Accepted, then dropped before any use (quota, suspended account): retrying now hammers.
            return Failure(grpc.StatusCode.FAILED_PRECONDITION, f"upstream refuses voxgate: {exc.__cause__}")
        return Failure(grpc.StatusCode.UNAVAILABLE, str(exc), NOT_CONNECTED, retryable=True)
    if isinstance(exc, TimeoutError):
        return Failure(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
    return Failure(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")


def credentials_rejected(detail: str, metadata: tuple[tuple[str, str], ...] = ()) -> Failure:
    """The upstream refused voxgate's API key. The caller's request is fine and voxgate's own
    configuration is not: UNAUTHENTICATED would blame the caller's credentials, so
    FAILED_PRECONDITION it is."""
    return Failure(
        grpc.StatusCode.FAILED_PRECONDITION,
        f"upstream rejected voxgate's credentials ({detail}); check DASHSCOPE_API_KEY",
        metadata,
    )
