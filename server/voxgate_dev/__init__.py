"""The embedded local upstream: DashScope's CosyVoice WebSocket protocol and text-generation
HTTP API on loopback, with real speech (espeak-ng), a small deterministic generation model
(``local-echo``) and fault injection, so voxgate runs and is tested without an API key.

Never imports voxgate's client side (synthesizer, pool, client, service): its fidelity is
proven against the vendor SDK, not against our own client (docs/design.md#dependency-rules).
"""

from .app import DevUpstream, serve
from .faults import Faults, GenerationFaults
from .options import UpstreamOptions, add_arguments, options_from_args

__all__ = [
    "DevUpstream",
    "Faults",
    "GenerationFaults",
    "UpstreamOptions",
    "add_arguments",
    "options_from_args",
    "serve",
]
