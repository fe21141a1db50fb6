"""Generation failures → gRPC status, and the retry policy (full jitter, one layer)."""

from __future__ import annotations

import random

import grpc
import pytest

from voxgate.generation.errors import classify_generation
from voxgate.generation.protocol import UpstreamError, UpstreamProtocolError, UpstreamUnavailable
from voxgate.rpc.errors import MD_UPSTREAM_CODE, MD_UPSTREAM_REQUEST_ID
from voxgate.rpc.retry import RetryPolicy

Code = grpc.StatusCode


@pytest.mark.parametrize(
    ("http_status", "code", "status", "retryable"),
    [
        (400, "InvalidParameter", Code.INVALID_ARGUMENT, False),
        (400, "DataInspectionFailed", Code.INVALID_ARGUMENT, False),
        (400, "Arrearage", Code.FAILED_PRECONDITION, False),
        (401, "InvalidApiKey", Code.FAILED_PRECONDITION, False),
        (403, "AccessDenied", Code.FAILED_PRECONDITION, False),
        (408, "RequestTimeOut", Code.UNAVAILABLE, True),
        (413, "BadRequest.TooLarge", Code.INVALID_ARGUMENT, False),
        (429, "Throttling.RateQuota", Code.RESOURCE_EXHAUSTED, True),
        (429, "Throttling.AllocationQuota", Code.RESOURCE_EXHAUSTED, False),
        (500, "InternalError", Code.UNAVAILABLE, True),
        (503, "ServiceUnavailable", Code.UNAVAILABLE, True),
        (None, "InternalError", Code.UNAVAILABLE, True),  # event:error mid-stream
        (None, "DataInspectionFailed", Code.INVALID_ARGUMENT, False),
        (None, "SomethingNew", Code.UNKNOWN, False),
    ],
)
def test_upstream_errors(
    http_status: int | None, code: str, status: grpc.StatusCode, retryable: bool
) -> None:
    failure = classify_generation(UpstreamError(http_status, code, "why", "req-1"))
    assert (failure.code, failure.retryable) == (status, retryable)
    metadata = dict(failure.metadata)
    assert (metadata[MD_UPSTREAM_CODE], metadata[MD_UPSTREAM_REQUEST_ID]) == (code, "req-1")


def test_no_answer_is_unavailable_and_retryable() -> None:
    failure = classify_generation(UpstreamUnavailable("connection refused"))
    assert (failure.code, failure.retryable) == (Code.UNAVAILABLE, True)
    assert classify_generation(UpstreamProtocolError("junk")).code == Code.INTERNAL


def test_the_callers_deadline_is_deadline_exceeded() -> None:
    assert classify_generation(TimeoutError()).code == Code.DEADLINE_EXCEEDED


def test_full_jitter_spans_zero_to_the_exponential_ceiling() -> None:
    policy = RetryPolicy(max_attempts=10, initial_backoff_s=0.1, max_backoff_s=0.4)
    rng = random.Random(7)

    def delays(attempt: int) -> list[float]:
        found = [
            policy.delay(
                attempts_made=attempt, retryable=True, sent_anything=False, remaining_s=None, rng=rng
            )
            for _ in range(2000)
        ]
        return [delay for delay in found if delay is not None]

    first, third, sixth = delays(1), delays(3), delays(6)
    assert 0 <= min(first) < 0.01 and 0.09 < max(first) <= 0.1
    assert max(third) <= 0.4 and max(third) > 0.35
    assert max(sixth) <= 0.4  # capped


@pytest.mark.parametrize(
    ("attempts_made", "retryable", "sent_anything", "remaining_s"),
    [
        (3, True, False, None),  # out of attempts
        (1, False, False, None),  # not worth another try
        (1, True, True, None),  # something was sent to the caller: never again
        (1, True, False, 0.0),  # the deadline comes first
    ],
)
def test_when_there_is_no_retry(
    attempts_made: int, retryable: bool, sent_anything: bool, remaining_s: float | None
) -> None:
    policy = RetryPolicy(max_attempts=3)
    delay = policy.delay(
        attempts_made=attempts_made, retryable=retryable, sent_anything=sent_anything, remaining_s=remaining_s
    )
    assert delay is None
