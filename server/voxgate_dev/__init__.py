"""The embedded local upstream: DashScope's CosyVoice WebSocket protocol and text-generation
HTTP API on loopback, with real speech (espeak-ng), a small deterministic generation model
(``local-echo``) and fault injection, so voxgate runs and is tested without an API key.

Never imports voxgate's client side (synthesizer, pool, client, service): its fidelity is
proven against the vendor SDK, not against our own client (docs/design.md#dependency-rules).
"""

from typing import TYPE_CHECKING, Any

from .faults import Faults, GenerationFaults
from .options import UpstreamOptions, add_arguments, options_from_args

if TYPE_CHECKING:
    from .app import DevUpstream, serve


def __getattr__(name: str) -> Any:
    # DevUpstream and serve need the audio stack (numpy, espeak-ng, lameenc: the `demo` extra), so
    # they load on first use: the CLI's argument parsing and the options work without it.
    if name in {"DevUpstream", "serve"}:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DevUpstream",
    "Faults",
    "GenerationFaults",
    "UpstreamOptions",
    "add_arguments",
    "options_from_args",
    "serve",
]
