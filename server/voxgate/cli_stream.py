"""``voxgate synth --stdin`` (SynthesizeStream) and ``voxgate speak`` (VoiceService.Speak).

Kept apart from :mod:`voxgate.cli`, which parses the commands and calls in here.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from voxgate.generation.v1 import generation_pb2
from voxgate.speech.v1 import speech_pb2
from voxgate.speech.validation import WIRE_TO_FORMAT as FORMATS
from voxgate.voice.v1 import voice_pb2

STDIN_READ_BYTES = 4096


def add_speak_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    speak = commands.add_parser(
        "speak",
        help="ask a model through a running voxgate and hear the answer: text printed, audio written",
        description="Speak: the answer is printed as it is generated and spoken into the audio file"
        " at the same time.",
    )
    speak.add_argument("prompt", help="the user message")
    speak.add_argument(
        "-o", "--output", metavar="FILE", default="out.wav", help="audio file to write (default: out.wav)"
    )
    speak.add_argument(
        "--format", choices=sorted(FORMATS), help="audio format (default: from the file suffix)"
    )
    speak.add_argument("--sample-rate", metavar="HZ", type=int, default=0, help="Hz (default: 22050)")
    speak.add_argument("--voice", metavar="VOICE", default="", help="voice (default: the server's)")
    speak.add_argument(
        "--tts-model", metavar="MODEL", default="", help="speech model (default: the server's)"
    )
    speak.add_argument(
        "--model", metavar="MODEL", default="", help="generation model (default: the server's)"
    )
    speak.add_argument("--system", metavar="TEXT", default="", help="a system message before the prompt")
    speak.add_argument("--max-tokens", metavar="N", type=int, help="most tokens to generate")
    speak.add_argument(
        "--server",
        metavar="HOST:PORT",
        default="127.0.0.1:50051",
        help="voxgate address (default: 127.0.0.1:50051)",
    )
    speak.add_argument(
        "--timeout", metavar="SECONDS", type=float, default=120.0, help="deadline in seconds (default: 120)"
    )
    speak.set_defaults(command_parser=speak, handler=speak_command)


def audio_format(args: argparse.Namespace, command: str) -> str | None:
    """The format from ``--format`` or the output file's suffix; None (after saying so) if neither."""
    fmt: str = args.format or os.path.splitext(args.output)[1].lstrip(".").lower() or "wav"
    if fmt not in FORMATS:
        print(
            f"voxgate {command}: cannot tell the format from {args.output!r}; pass --format", file=sys.stderr
        )
        return None
    return fmt


def synthesis_config(args: argparse.Namespace, fmt: str, model: str) -> speech_pb2.SynthesisConfig:
    return speech_pb2.SynthesisConfig(
        model=model,
        voice=args.voice,
        format=FORMATS[fmt],
        sample_rate=args.sample_rate,
        rate=getattr(args, "rate", None),
        pitch=getattr(args, "pitch", None),
        volume=getattr(args, "volume", None),
    )


async def stdin_pieces(fd: int) -> AsyncIterator[str]:
    """Text from ``fd`` as it comes: each read (whatever the writer has flushed) is one piece."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while chunk := await asyncio.to_thread(os.read, fd, STDIN_READ_BYTES):
        if text := decoder.decode(chunk):
            yield text
    if tail := decoder.decode(b"", final=True):
        yield tail


def synth_stdin(args: argparse.Namespace) -> int:
    """``voxgate synth --stdin``: speak standard input as it is written, into ``args.output``."""
    from voxgate.client import Client

    fmt = audio_format(args, "synth")
    if fmt is None:
        return 2
    config = synthesis_config(args, fmt, args.model)

    async def run() -> int:
        async with Client(args.server) as client:
            try:
                result = await client.stream_text_to_file(
                    config, stdin_pieces(sys.stdin.fileno()), args.output, timeout_s=args.timeout
                )
            except grpc.aio.AioRpcError as exc:
                print(f"voxgate synth: {exc.code().name}: {exc.details()}", file=sys.stderr)
                return 1
        summary = result.summary
        print(
            f"wrote {args.output}: {result.audio_bytes} bytes {fmt} at {summary.sample_rate} Hz\n"
            f"{summary.text_pieces} pieces of text; first audio {summary.text_to_first_audio_ms:.1f} ms"
            f" after the first piece; task {summary.task_id}, {summary.characters} characters,"
            f" {summary.attempts} attempt(s)"
        )
        return 0

    return asyncio.run(run())


def speak_command(args: argparse.Namespace) -> int:
    from voxgate.client import Client, patch_wav_sizes

    fmt = audio_format(args, "speak")
    if fmt is None:
        return 2
    messages = [generation_pb2.Message(role="system", content=args.system)] if args.system else []
    messages.append(generation_pb2.Message(role="user", content=args.prompt))
    request = voice_pb2.SpeakRequest(
        model=args.model,
        messages=messages,
        sampling=generation_pb2.Sampling(max_tokens=args.max_tokens),
        speech=synthesis_config(args, fmt, args.tts_model),
    )

    async def run() -> int:
        started = time.perf_counter()
        first_audio_ms = 0.0
        audio_bytes = 0
        summary: voice_pb2.SpeakSummary | None = None
        path = Path(args.output)
        try:
            async with Client(args.server) as client:
                # Small sequential writes to a local file, in the CLI's own loop: not worth a thread.
                with open(path, "wb") as sink:  # noqa: ASYNC230
                    async for item in client.speak(request, timeout_s=args.timeout):
                        if isinstance(item, str):
                            print(item, end="", flush=True)
                        elif isinstance(item, bytes):
                            if not audio_bytes:
                                first_audio_ms = (time.perf_counter() - started) * 1000
                            audio_bytes += len(item)
                            sink.write(item)
                        else:
                            summary = item
                    if fmt == "wav" and audio_bytes >= 44:
                        patch_wav_sizes(sink, audio_bytes)
        except grpc.aio.AioRpcError as exc:
            path.unlink(missing_ok=True)  # noqa: ASYNC240  # a short clip never stays behind looking whole
            print(f"\nvoxgate speak: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
        assert summary is not None  # Client.speak raises otherwise
        print(
            f"\nwrote {args.output}: {audio_bytes} bytes {fmt} at {summary.sample_rate} Hz\n"
            f"first token {summary.time_to_first_token_ms:.1f} ms, first audio {first_audio_ms:.1f} ms"
            f" (client), {summary.time_to_first_audio_ms:.1f} ms in voxgate; finish {summary.finish_reason};"
            f" {summary.usage.output_tokens} tokens, {summary.characters} characters spoken"
        )
        return 0

    return asyncio.run(run())
