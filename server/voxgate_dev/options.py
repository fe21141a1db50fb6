"""Options of the local upstream, and their command-line flags.

``voxgate dev-upstream`` and ``python -m voxgate_dev`` both call
:func:`add_arguments`, then :func:`options_from_args`, then ``serve()``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from voxgate import settings as declared
from voxgate.settings import (
    above,
    at_least,
    integer,
    non_empty,
    number,
    one_of,
    setting,
    stripped,
    switch,
    text,
    validate,
    within,
)
from voxgate.speech.protocol import IDLE_CONNECTION_LIMIT_S, TEXT_GAP_LIMIT_S

from .faults import Faults, GenerationFaults

RUN_TASK_WHILE_ACTIVE = ("fail", "preempt")
API_KEY_ENV = "DASHSCOPE_API_KEY"


@dataclass(frozen=True)
class UpstreamOptions:
    """How the local upstream listens and behaves. Validated on construction.

    Each field declares its flag, help and checks (voxgate.settings), as voxgate's own settings do.
    """

    host: str = setting("127.0.0.1", stripped, "address to bind", check=non_empty, metavar="HOST")
    port: int = setting(
        0, integer, "port to bind; 0 picks a free one", check=within(0, 65535), metavar="PORT"
    )
    """0 picks a free ephemeral port; read it back from ``DevUpstream.port``."""
    api_key: str | None = setting(
        None,
        text,
        f"accept only this Bearer key (visible in the process list; prefer ${API_KEY_ENV})",
        check=non_empty,
        env=API_KEY_ENV,
        metavar="KEY",
        default_text="any non-empty key",
        repr=False,
    )
    """None accepts any non-empty Bearer token; otherwise only exactly this one."""
    rtf: float = setting(
        0.0,
        number,
        "real-time factor of audio pacing; 0 sends as fast as produced",
        check=at_least(0),
        metavar="FACTOR",
    )
    """Real-time factor of audio pacing: 0 sends as fast as produced, 0.5 sends 1 s of audio per 0.5 s."""
    token_interval_ms: float = setting(
        0.0,
        number,
        "pause between streamed tokens of the local generation model",
        check=at_least(0),
        metavar="MS",
    )
    chunk_ms: int = setting(100, integer, "audio per binary frame", check=within(10, 10_000), metavar="MS")
    idle_timeout_s: float = setting(
        IDLE_CONNECTION_LIMIT_S,
        number,
        "close connections without a task after this long (the vendor's limit)",
        check=above(0),
        metavar="SECONDS",
    )
    text_gap_timeout_s: float = setting(
        TEXT_GAP_LIMIT_S,
        number,
        "fail a started task when the client sends nothing for this long (the vendor's limit)",
        check=above(0),
        metavar="SECONDS",
    )
    pings_keep_alive: bool = switch(
        "let client pings restart the idle timer (unknown at the vendor, so off: the stricter reading,"
        " which a client must survive)"
    )
    run_task_while_active: str = setting(
        "fail",
        stripped,
        "a run-task during an active task: 'fail' answers Invalid action('run-task'), 'preempt' ends the"
        " old task and starts the new one",
        check=one_of(*RUN_TASK_WHILE_ACTIVE),
        metavar="POLICY",
    )
    seed: int = setting(0, integer, "seed of the RNG that draws fault probabilities", metavar="N")
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        validate(self)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag for every option and fault; read them back with :func:`options_from_args`."""
    declared.add_arguments(parser, UpstreamOptions)
    faults = parser.add_argument_group("fault injection (switchable at runtime: PUT /_dev/faults)")
    declared.add_arguments(faults, Faults)
    declared.add_arguments(faults, GenerationFaults)


def options_from_args(args: argparse.Namespace) -> UpstreamOptions:
    """Options from parsed flags; ``$DASHSCOPE_API_KEY`` is the key when ``--api-key`` is absent.

    Raises ``ConfigError`` (a ``ValueError``) naming the flag at fault.
    """
    generation = declared.load(GenerationFaults, {}, declared.flags_from(args, GenerationFaults))
    faults = declared.load(Faults, {}, declared.flags_from(args, Faults), generation=generation)
    return declared.load(
        UpstreamOptions, os.environ, declared.flags_from(args, UpstreamOptions), faults=faults
    )
