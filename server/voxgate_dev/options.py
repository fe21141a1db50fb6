"""Options of the local upstream, and their command-line flags.

``voxgate dev-upstream`` and ``python -m voxgate_dev`` both call
:func:`add_arguments`, then :func:`options_from_args`, then ``serve()``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from voxgate.speech.protocol import IDLE_CONNECTION_LIMIT_S, TEXT_GAP_LIMIT_S

from .faults import DEFAULT_FAIL_CODE, DEFAULT_FAIL_MESSAGE, Faults, GenerationFaults

RUN_TASK_WHILE_ACTIVE = ("fail", "preempt")
API_KEY_ENV = "DASHSCOPE_API_KEY"


@dataclass(frozen=True)
class UpstreamOptions:
    """How the local upstream listens and behaves. Validated on construction."""

    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free ephemeral port; read it back from ``DevUpstream.port``."""
    api_key: str | None = field(default=None, repr=False)
    """None accepts any non-empty Bearer token; otherwise only exactly this one."""
    rtf: float = 0.0
    """Real-time factor of audio pacing: 0 sends as fast as produced, 0.5 sends 1 s of audio per 0.5 s."""
    token_interval_ms: float = 0.0
    """Pause between two streamed tokens of the local generation model (0: as fast as possible)."""
    chunk_ms: int = 100
    """Audio duration per binary frame."""
    idle_timeout_s: float = IDLE_CONNECTION_LIMIT_S
    """Close a connection that has no task for this long (vendor: 60 s, docs/protocol.md#timing-limits)."""
    text_gap_timeout_s: float = TEXT_GAP_LIMIT_S
    """Fail a started task when the client sends nothing for this long (vendor: 23 s,
    docs/protocol.md#timing-limits)."""
    pings_keep_alive: bool = False
    """Whether a client ping restarts the idle timer. Unknown at the vendor
    (docs/protocol.md#keepalive-and-pings), so by default not: the stricter reading, which a
    client must survive (voxgate recycles idle connections at ``VOXGATE_POOL_MAX_IDLE_S``
    whatever pings do)."""
    run_task_while_active: str = "fail"
    """``fail``: answer ``Invalid action('run-task')``; ``preempt``: end the old task and
    start the new one (docs/protocol.md#connection-reuse)."""
    seed: int = 0
    """Seed of the RNG that draws fault probabilities."""
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be within [0, 65535]")
        if self.api_key is not None and not self.api_key:
            raise ValueError("api_key must be None or non-empty")
        if self.rtf < 0:
            raise ValueError("rtf must be >= 0")
        if self.token_interval_ms < 0:
            raise ValueError("token_interval_ms must be >= 0")
        if not 10 <= self.chunk_ms <= 10_000:
            raise ValueError("chunk_ms must be within [10, 10000]")
        if self.idle_timeout_s <= 0:
            raise ValueError("idle_timeout_s must be > 0")
        if self.text_gap_timeout_s <= 0:
            raise ValueError("text_gap_timeout_s must be > 0")
        if self.run_task_while_active not in RUN_TASK_WHILE_ACTIVE:
            raise ValueError(f"run_task_while_active must be one of {RUN_TASK_WHILE_ACTIVE}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag for every option and fault; read them back with :func:`options_from_args`."""
    defaults = UpstreamOptions()
    parser.add_argument("--host", default=defaults.host, help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=defaults.port,
        help="port to bind; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help=f"accept only this Bearer key (visible in the process list; prefer ${API_KEY_ENV}). "
        f"Default: ${API_KEY_ENV} if set, else any non-empty key",
    )
    parser.add_argument(
        "--rtf",
        type=float,
        default=defaults.rtf,
        help="real-time factor of audio pacing; 0 sends as fast as produced (default: %(default)s)",
    )
    parser.add_argument(
        "--token-interval-ms",
        type=float,
        default=defaults.token_interval_ms,
        help="pause between streamed tokens of the local generation model (default: %(default)s)",
    )
    parser.add_argument(
        "--chunk-ms",
        type=int,
        default=defaults.chunk_ms,
        help="audio per binary frame (default: %(default)s)",
    )
    parser.add_argument(
        "--idle-timeout-s",
        type=float,
        default=defaults.idle_timeout_s,
        help="close connections without a task after this long (default: %(default)s, like the vendor)",
    )
    parser.add_argument(
        "--text-gap-timeout-s",
        type=float,
        default=defaults.text_gap_timeout_s,
        help="fail a task when the client is silent this long (default: %(default)s, like the vendor)",
    )
    parser.add_argument(
        "--pings-keep-alive",
        action="store_true",
        help="let client pings restart the idle timer (unknown at the vendor; default: they do not)",
    )
    parser.add_argument(
        "--run-task-while-active",
        choices=RUN_TASK_WHILE_ACTIVE,
        default=defaults.run_task_while_active,
        help="a run-task during an active task fails it or pre-empts the old task (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="seed for fault probability draws (default: %(default)s)",
    )

    faults = parser.add_argument_group("fault injection (switchable at runtime: PUT /_dev/faults)")
    faults.add_argument("--connect-delay-ms", type=int, default=0, help="delay answering the WS upgrade")
    faults.add_argument(
        "--task-started-delay-ms", type=int, default=0, help="delay between run-task and task-started"
    )
    faults.add_argument(
        "--first-packet-delay-ms",
        type=int,
        default=0,
        help="least delay from text available to first audio frame",
    )
    faults.add_argument(
        "--drop-after-bytes",
        type=int,
        default=None,
        help="abort the TCP connection after this many audio bytes of a task (0: right after task-started)",
    )
    faults.add_argument(
        "--fail-after-bytes",
        type=int,
        default=None,
        help="send task-failed after this many audio bytes of a task (0: instead of the first audio)",
    )
    faults.add_argument(
        "--fail-code",
        default=DEFAULT_FAIL_CODE,
        help="error_code of injected failures (default: %(default)s)",
    )
    faults.add_argument(
        "--fail-message",
        default=DEFAULT_FAIL_MESSAGE,
        help="error_message of injected failures (default: %(default)s)",
    )
    faults.add_argument(
        "--throttle", action="store_true", help="answer every run-task with task-failed Throttling.RateQuota"
    )
    faults.add_argument(
        "--reject-handshake-status", type=int, default=None, help="refuse WS upgrades with this HTTP status"
    )
    faults.add_argument(
        "--close-after-handshake",
        action="store_true",
        help="accept WS upgrades, then close at once with 1008 and the fail code/message (quota)",
    )
    faults.add_argument(
        "--stall-after-handshake",
        action="store_true",
        help="accept WS upgrades, then go silent: no reads, no pongs, no close (half-open)",
    )
    faults.add_argument(
        "--stall-after-bytes",
        type=int,
        default=None,
        help="go silent (half-open) after this many audio bytes of a task (0: right after task-started)",
    )
    faults.add_argument(
        "--generation-first-byte-delay-ms", type=int, default=0, help="generation: delay before the response"
    )
    faults.add_argument(
        "--generation-error-status",
        type=int,
        default=None,
        help="generation: answer with this HTTP status (429 throttling, 500 internal error, ...)",
    )
    faults.add_argument(
        "--generation-error-after-tokens",
        type=int,
        default=None,
        help="generation: event:error after this many streamed tokens (0: before the first)",
    )
    faults.add_argument(
        "--generation-error-code",
        default=DEFAULT_FAIL_CODE,
        help="generation: code of the event:error (default: %(default)s)",
    )
    faults.add_argument(
        "--generation-error-message",
        default=DEFAULT_FAIL_MESSAGE,
        help="generation: message of the event:error (default: %(default)s)",
    )
    faults.add_argument(
        "--generation-drop-after-tokens",
        type=int,
        default=None,
        help="generation: abort the TCP connection after this many tokens (0: before any response)",
    )
    faults.add_argument(
        "--fault-probability",
        type=float,
        default=1.0,
        help="chance that a connection/task is hit by the faults above (default: %(default)s)",
    )
    faults.add_argument(
        "--fault-times",
        type=int,
        default=None,
        help="hit only the next N connections/tasks (default: always)",
    )


def options_from_args(args: argparse.Namespace) -> UpstreamOptions:
    """Options from parsed flags; ``$DASHSCOPE_API_KEY`` is the key when ``--api-key`` is absent.

    Raises ``ValueError`` with the offending option's name when a value is out of range.
    """
    api_key = args.api_key if args.api_key is not None else (os.environ.get(API_KEY_ENV) or None)
    faults = Faults(
        connect_delay_ms=args.connect_delay_ms,
        task_started_delay_ms=args.task_started_delay_ms,
        first_packet_delay_ms=args.first_packet_delay_ms,
        drop_after_bytes=args.drop_after_bytes,
        fail_after_bytes=args.fail_after_bytes,
        fail_code=args.fail_code,
        fail_message=args.fail_message,
        throttle=args.throttle,
        reject_handshake_status=args.reject_handshake_status,
        close_after_handshake=args.close_after_handshake,
        stall_after_handshake=args.stall_after_handshake,
        stall_after_bytes=args.stall_after_bytes,
        probability=args.fault_probability,
        times=args.fault_times,
        generation=GenerationFaults(
            first_byte_delay_ms=args.generation_first_byte_delay_ms,
            error_status=args.generation_error_status,
            error_after_tokens=args.generation_error_after_tokens,
            drop_after_tokens=args.generation_drop_after_tokens,
            error_code=args.generation_error_code,
            error_message=args.generation_error_message,
        ),
    )
    return UpstreamOptions(
        host=args.host,
        port=args.port,
        api_key=api_key,
        rtf=args.rtf,
        token_interval_ms=args.token_interval_ms,
        chunk_ms=args.chunk_ms,
        idle_timeout_s=args.idle_timeout_s,
        text_gap_timeout_s=args.text_gap_timeout_s,
        pings_keep_alive=args.pings_keep_alive,
        run_task_while_active=args.run_task_while_active,
        seed=args.seed,
        faults=faults,
    )
