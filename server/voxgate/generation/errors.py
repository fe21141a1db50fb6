"""Generation failures as gRPC statuses: HTTP error replies, ``event:error``, no answer.

:func:`generation_failure` recognises them (for any RPC that generates); :data:`classify_generation`
is the classifier of Generate and GenerateStream, with everything else mapped by
:func:`voxgate.rpc.errors.generic_failure`.
"""

from __future__ import annotations

import grpc

from voxgate.generation.protocol import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimedOut,
    UpstreamUnavailable,
)
from voxgate.rpc.errors import (
    ARGUMENT_CODES,
    CREDENTIAL_CODES,
    MD_UPSTREAM_CODE,
    MD_UPSTREAM_HTTP_STATUS,
    MD_UPSTREAM_MESSAGE,
    MD_UPSTREAM_REQUEST_ID,
    TRANSIENT_CODES,
    Classifier,
    Failure,
    classifier,
    credentials_rejected,
)

_QUOTA_EXHAUSTED_CODE = "Throttling.AllocationQuota"  # used up, not rate-limited: waiting will not help


def generation_failure(exc: BaseException) -> Failure | None:
    """The status of a failure of the generation path; None for any other exception."""
    if isinstance(exc, UpstreamError):
        return _upstream_error(exc)
    if isinstance(exc, UpstreamTimedOut) and exc.request_sent:
        # The upstream got the whole request and is slow to answer: not "unavailable", and
        # retried only if the operator opted in (see GenerationClient: it may bill twice).
        return Failure(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc), retryable=exc.retryable)
    if isinstance(exc, UpstreamUnavailable):
        return Failure(grpc.StatusCode.UNAVAILABLE, str(exc), retryable=True)
    if isinstance(exc, UpstreamProtocolError):
        return Failure(grpc.StatusCode.INTERNAL, f"upstream protocol violation: {exc}", retryable=True)
    return None


classify_generation: Classifier = classifier(generation_failure)
"""Every exception of a Generate or GenerateStream call → its status."""


def _upstream_error(exc: UpstreamError) -> Failure:
    """An HTTP error status, or an ``event:error`` in the middle of a stream."""
    metadata: tuple[tuple[str, str], ...] = (
        (MD_UPSTREAM_CODE, exc.code),
        (MD_UPSTREAM_MESSAGE, exc.message),
        (MD_UPSTREAM_REQUEST_ID, exc.request_id),
    )
    if exc.http_status is not None:
        metadata += ((MD_UPSTREAM_HTTP_STATUS, str(exc.http_status)),)
    text = f"upstream error: {exc}"
    status = exc.http_status or 0
    if status in (401, 403) or exc.code.startswith(CREDENTIAL_CODES):
        return credentials_rejected(str(exc), metadata)
    if status == 429 or exc.code.startswith("Throttling"):
        retryable = not exc.code.startswith(_QUOTA_EXHAUSTED_CODE)
        return Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, text, metadata, retryable=retryable)
    if status >= 500 or status == 408 or exc.code.startswith(TRANSIENT_CODES):
        return Failure(grpc.StatusCode.UNAVAILABLE, text, metadata, retryable=True)
    if 400 <= status < 500 or exc.code.startswith(ARGUMENT_CODES):
        return Failure(grpc.StatusCode.INVALID_ARGUMENT, text, metadata)
    return Failure(grpc.StatusCode.UNKNOWN, text, metadata)
