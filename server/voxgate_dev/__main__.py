"""``python -m voxgate_dev``: run the local upstream until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from . import add_arguments, options_from_args, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m voxgate_dev",
        description="DashScope CosyVoice-compatible WebSocket upstream on loopback, speaking with espeak-ng.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        options = options_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    # Logs go to stderr: stdout carries exactly the one "listening on" line.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve(options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
