"""Failures → status: the generic mapping every RPC shares, and how features chain in front of it."""

from __future__ import annotations

import grpc
import pytest

from voxgate.generation.errors import classify_generation, generation_failure
from voxgate.generation.protocol import UpstreamUnavailable
from voxgate.pool import ClosedAfterOpen, ConnectFailed, NotConnected, PoolClosed, PoolTimeout
from voxgate.rpc.errors import MD_NOT_CONNECTED, Failure, classifier, generic_failure
from voxgate.speech.connection import ConnectionLost, HandshakeRejected
from voxgate.speech.errors import classify_speech, speech_failure

Code = grpc.StatusCode


def connect_failed(cause: BaseException) -> ConnectFailed:
    try:
        raise ConnectFailed(f"upstream connect failed: {cause}") from cause
    except ConnectFailed as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (PoolTimeout("none free"), Code.RESOURCE_EXHAUSTED, False),
        (PoolClosed(), Code.UNAVAILABLE, False),
        (connect_failed(OSError("refused")), Code.UNAVAILABLE, True),
        (connect_failed(ClosedAfterOpen("closed after handshake")), Code.FAILED_PRECONDITION, False),
        (TimeoutError(), Code.DEADLINE_EXCEEDED, False),
        (KeyError("bug"), Code.INTERNAL, False),
    ],
)
def test_what_every_rpc_maps_the_same_way(exc: BaseException, code: grpc.StatusCode, retryable: bool) -> None:
    assert (generic_failure(exc).code, generic_failure(exc).retryable) == (code, retryable)
    # A feature's classifier leaves these to the generic mapping.
    assert classify_speech(exc) == classify_generation(exc) == generic_failure(exc)


def test_unavailable_before_any_upstream_connection_is_marked_safe_to_retry() -> None:
    not_connected = generic_failure(NotConnected("upstream unreachable: no usable upstream connection left"))
    assert (not_connected.code, not_connected.retryable) == (Code.UNAVAILABLE, True)
    assert (MD_NOT_CONNECTED, "true") in not_connected.metadata
    # A connection lost mid-task reached the upstream: not marked (the audio may have been cut).
    assert not classify_speech(ConnectionLost("socket closed")).metadata


def test_an_unknown_exception_names_only_its_type() -> None:
    assert generic_failure(KeyError("secret detail")).message == "internal error: KeyError"


def test_refused_credentials_on_connect_are_voxgates_problem_not_the_callers() -> None:
    failure = classify_speech(connect_failed(HandshakeRejected(401)))
    assert failure.code == Code.FAILED_PRECONDITION and "DASHSCOPE_API_KEY" in failure.message
    # Any other refused handshake is just an unavailable upstream: worth another try.
    other = classify_speech(connect_failed(HandshakeRejected(503)))
    assert (other.code, other.retryable) == (Code.UNAVAILABLE, True)


def test_each_feature_recognises_only_its_own_exceptions() -> None:
    lost, unavailable = ConnectionLost("socket closed"), UpstreamUnavailable("no answer")
    assert speech_failure(unavailable) is None and generation_failure(lost) is None
    assert speech_failure(lost) == Failure(Code.UNAVAILABLE, "socket closed", retryable=True)
    # An RPC that spans both features chains both recognisers.
    both = classifier(speech_failure, generation_failure)
    assert both(lost) == classify_speech(lost) and both(unavailable) == classify_generation(unavailable)


def test_the_first_feature_that_recognises_an_exception_decides() -> None:
    first = Failure(Code.ABORTED, "first")
    chain = classifier(lambda exc: first, lambda exc: Failure(Code.UNKNOWN, "second"))
    assert chain(ValueError()) is first
