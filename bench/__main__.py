"""``python -m bench [SUITE ...] [--full]``: voxgate's benchmarks, side by side in one run.

With no suite named, every suite runs its short version (``make bench``, a few minutes
in all); ``--full`` runs the whole sweep (``make bench-full``). Each suite is a module
of this package with ``add_arguments(parser)`` and ``async run(args)``; list a new one
in :data:`SUITES` and it gets its own flags (``python -m bench speech --help``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Sequence

SUITES = {
    "speech": "first-packet delay, reuse and capacity: voxgate vs no pool vs the vendor SDK pool vs direct",
    "generation": "time to first token through voxgate vs direct, TCP connections per 1000 requests",
    "tracing": "first-packet delay and CPU with tracing off vs on (every request traced, OTLP export)",
    "voice": "text in pieces: Speak vs generate-then-synthesize, SynthesizeStream first audio vs last piece",
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    named = [arg for arg in argv if arg in SUITES]
    rest = [arg for arg in argv if arg not in SUITES]
    if len(named) != 1 and set(rest) - {"--full"}:
        print(
            "python -m bench: name one suite to pass it flags, e.g. python -m bench speech --help",
            file=sys.stderr,
        )
        return 2
    for name in named or list(SUITES):
        module = importlib.import_module(f"bench.{name}")
        parser = argparse.ArgumentParser(prog=f"python -m bench {name}", description=SUITES[name])
        parser.add_argument("--full", action="store_true", help="the whole sweep instead of the short run")
        module.add_arguments(parser)
        args = parser.parse_args(rest)
        print(f"== {name}: {SUITES[name]}", flush=True)
        asyncio.run(module.run(args))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
