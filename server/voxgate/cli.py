"""``voxgate serve | synth | speak | generate | stats | caller-key | dev-upstream``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from voxgate import __version__, config
from voxgate import settings as declared
from voxgate.generation.v1 import generation_pb2
from voxgate.observability import logs, telemetry
from voxgate.speech.v1 import speech_pb2
from voxgate.speech.validation import WIRE_TO_FORMAT as FORMATS
from voxgate.stats.v1 import stats_pb2

if TYPE_CHECKING:
    from voxgate.client import Client


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # A stray flag belongs to the command's usage, not the top level's: argparse would print
        # "usage: voxgate [-h] [--version] COMMAND" for `voxgate synth "Hi" --speed 2`.
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    handler = args.handler
    try:
        result: int = handler(args)
        return result
    except (config.ConfigError, telemetry.TelemetryConfigError) as exc:
        print(f"voxgate: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voxgate",
        description="gRPC gateway for DashScope speech synthesis (warm connection pool) and text generation.",
    )
    parser.add_argument("--version", action="version", version=f"voxgate {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the gRPC server (embedded local upstream when DASHSCOPE_API_KEY is unset)",
        description="Every flag overrides the environment variable named in its help ($NAME). "
        f"The API key is read from {config.API_KEY_ENV} only.",
    )
    declared.add_arguments(serve, config.Settings)
    serve.set_defaults(handler=_serve, command_parser=serve)

    synth = commands.add_parser("synth", help="synthesize text through a running voxgate into an audio file")
    synth.add_argument("text", nargs="?", help="the text (or --stdin)")
    synth.add_argument(
        "--stdin",
        action="store_true",
        help="speak standard input as it is written (SynthesizeStream), e.g. piped from a model",
    )
    synth.add_argument(
        "-o", "--output", metavar="FILE", default="out.wav", help="audio file to write (default: out.wav)"
    )
    synth.add_argument(
        "--server",
        metavar="HOST:PORT",
        default="127.0.0.1:50051",
        help="voxgate address (default: 127.0.0.1:50051)",
    )
    synth.add_argument(
        "--format", choices=sorted(FORMATS), help="audio format (default: from the file suffix)"
    )
    synth.add_argument("--sample-rate", metavar="HZ", type=int, default=0, help="Hz (default: 22050)")
    synth.add_argument("--voice", metavar="VOICE", default="", help="voice (default: the server's)")
    synth.add_argument("--model", metavar="MODEL", default="", help="model (default: the server's)")
    synth.add_argument("--rate", metavar="FACTOR", type=float, help="speaking rate 0.5-2.0")
    synth.add_argument("--pitch", metavar="FACTOR", type=float, help="pitch 0.5-2.0")
    synth.add_argument("--volume", metavar="N", type=int, help="volume 0-100")
    synth.add_argument(
        "--timeout", metavar="SECONDS", type=float, default=60.0, help="deadline in seconds (default: 60)"
    )
    _add_connection(synth)
    synth.set_defaults(command_parser=synth, handler=_synth)

    from voxgate.cli_stream import add_speak_parser

    add_speak_parser(commands)

    generate = commands.add_parser("generate", help="generate text through a running voxgate")
    generate.add_argument("prompt", help="the user message")
    generate.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    generate.add_argument("--model", metavar="MODEL", default="", help="model (default: the server's)")
    generate.add_argument("--system", metavar="TEXT", default="", help="a system message before the prompt")
    generate.add_argument("--max-tokens", metavar="N", type=int, help="most tokens to generate")
    generate.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="FILE_OR_URL",
        help="an image to send with the prompt: a file (sent inline) or an http(s)/oss/data URL; repeatable",
    )
    generate.add_argument(
        "--think", action="store_true", help="thinking mode: print the model's reasoning (prefixed) first"
    )
    generate.add_argument(
        "--tool",
        action="append",
        default=[],
        metavar="NAME[=JSON_SCHEMA]",
        help="a function the model may call (its parameters as a JSON Schema); repeatable",
    )
    generate.add_argument("--tool-choice", metavar="CHOICE", default="", help="auto, none, or a tool's name")
    generate.add_argument(
        "--server",
        "--target",
        metavar="HOST:PORT",
        default="127.0.0.1:50051",
        help="voxgate address (default: 127.0.0.1:50051)",
    )
    generate.add_argument(
        "--timeout", metavar="SECONDS", type=float, default=120.0, help="deadline in seconds (default: 120)"
    )
    _add_connection(generate)
    generate.set_defaults(command_parser=generate, handler=_generate)

    stats = commands.add_parser(
        "stats", help="show a running voxgate's pools: reuse ratio, utilization, counters"
    )
    stats.add_argument(
        "--server",
        metavar="HOST:PORT",
        default="127.0.0.1:50051",
        help="voxgate address (default: 127.0.0.1:50051)",
    )
    stats.add_argument(
        "--timeout", metavar="SECONDS", type=float, default=10.0, help="deadline in seconds (default: 10)"
    )
    _add_connection(stats)
    stats.set_defaults(command_parser=stats, handler=_stats)

    caller_key = commands.add_parser(
        "caller-key",
        help="make a new caller key: prints the key once, and the [[caller]] entry for the callers file",
    )
    caller_key.add_argument("name", help="the caller's name (in logs, spans, metrics and `voxgate stats`)")
    caller_key.set_defaults(command_parser=caller_key, handler=_caller_key)

    dev = commands.add_parser(
        "dev-upstream", help="run the embedded DashScope-compatible upstream on its own"
    )
    import voxgate_dev as devupstream

    devupstream.add_arguments(dev)
    dev.set_defaults(command_parser=dev, handler=_dev_upstream)
    return parser


def _add_connection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection (a voxgate with TLS or caller keys; docs/security.md)")
    group.add_argument(
        "--token",
        metavar="KEY",
        help="caller key, sent as 'authorization: Bearer KEY' (default: $VOXGATE_TOKEN; prefer the"
        " variable: a flag shows in ps)",
    )
    group.add_argument("--tls", action="store_true", help="connect with TLS (the system's CA roots)")
    group.add_argument(
        "--ca-file", metavar="FILE", help="PEM CA that signed the server certificate (implies --tls)"
    )
    group.add_argument(
        "--cert", metavar="FILE", help="PEM client certificate, for mutual TLS (implies --tls)"
    )
    group.add_argument("--key", metavar="FILE", help="PEM private key of --cert")


def _client(args: argparse.Namespace) -> Client:
    from voxgate.client import Client, Connection

    if bool(args.cert) != bool(args.key):
        args.command_parser.error("--cert and --key go together")
    connection = Connection.from_env(
        os.environ,
        token=args.token,
        tls=args.tls,
        ca_file=args.ca_file,
        cert_file=args.cert,
        key_file=args.key,
    )
    return Client(args.server, connection)


def _caller_key(args: argparse.Namespace) -> int:
    from voxgate.rpc import callers

    try:
        name = callers.check_name(args.name)
    except ValueError as exc:
        args.command_parser.error(str(exc))
    key = callers.new_key()
    print(
        f"# The key of {name!r}, shown this once (voxgate keeps only its hash). Give it to the caller\n"
        f"# ({'$'}VOXGATE_TOKEN, or 'authorization: Bearer <key>' metadata):\n{key}\n\n"
        f"# Add this entry to the callers file ({'$'}VOXGATE_CALLERS_FILE); voxgate reloads it on change:\n"
        f"{callers.toml_block(name, key)}",
        end="",
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from voxgate import workers
    from voxgate.app import serve

    flags = declared.flags_from(args, config.Settings)
    settings = config.load(os.environ, flags)
    workers.lift_open_files_limit()
    if settings.workers > 1 and not workers.is_worker(os.environ):
        # The parent only supervises; each worker sets up its own logs and telemetry.
        logs.configure(
            settings.log_level,
            [settings.api_key.reveal()] if settings.api_key else [],
            json_lines=settings.log_format == "json",
        )
        try:
            return asyncio.run(workers.supervise(settings, flags))
        except workers.WorkerFailed as exc:
            print(f"voxgate: {exc}", file=sys.stderr)
            return 1
    tracing = telemetry.from_env()
    logs.configure(
        settings.log_level,
        [settings.api_key.reveal()] if settings.api_key else [],
        json_lines=settings.log_format == "json",
    )
    log = logging.getLogger("voxgate")
    log.info("settings: %s", config.describe(settings))
    log.info("%s", telemetry.describe(tracing))
    asyncio.run(serve(settings, tracing))
    return 0


def _stats(args: argparse.Namespace) -> int:
    from voxgate.stats.v1 import stats_pb2_grpc

    async def run() -> int:
        async with _client(args) as client:
            try:
                reply = await stats_pb2_grpc.StatsServiceStub(client.channel).GetStats(
                    stats_pb2.GetStatsRequest(), timeout=args.timeout
                )
            except grpc.aio.AioRpcError as exc:
                print(f"voxgate stats: {exc.code().name}: {exc.details()}", file=sys.stderr)
                return 1
        for pool in reply.pools:
            print(_describe_pool(pool))
        for caller in reply.callers:
            print(_describe_caller(caller))
        if reply.HasField("overload"):
            print(_describe_overload(reply.overload))
        return 0

    return asyncio.run(run())


def _describe_pool(pool: stats_pb2.PoolStats) -> str:
    evicted = ", ".join(f"{reason} {count}" for reason, count in sorted(pool.evicted.items())) or "none"
    return (
        f"pool {pool.name}: {'serving' if pool.serving else 'NOT SERVING'}, {pool.idle} idle"
        f" ({pool.checking} being pinged), {pool.in_use} in use (+{pool.overflow_in_use} overflow),"
        f" {pool.connecting} connecting, {pool.pending} waiting, max {pool.max_size}\n"
        f"  reuse ratio {pool.reuse_ratio:.1%} of {pool.leases} leases (target > 95 %):"
        f" {pool.warm_leases} paid no connect, {pool.reused_leases} on a connection that had run a task,"
        f" {pool.queued_leases} queued, {pool.overflow_leases} on overflow, {pool.timeouts} timed out\n"
        f"  utilization {pool.utilization:.0%} now, {pool.peak_utilization:.0%} at peak"
        f" ({pool.peak_in_use} of {pool.max_size}; target 60-80 % at peak)\n"
        f"  connections opened {pool.created}, failed {pool.connect_failures}; evicted: {evicted}"
    )


def _describe_caller(caller: stats_pb2.CallerUsage) -> str:
    refused = ", ".join(f"{quota} {count}" for quota, count in sorted(caller.refused.items())) or "none"
    return (
        f"caller {caller.name}: {caller.active_streams} running, {caller.requests} calls,"
        f" {caller.characters} characters ({caller.characters_last_minute} in the last minute),"
        f" {caller.generation_requests} generation requests ({caller.generation_requests_last_minute} in the"
        f" last minute); refused: {refused}"
    )


def _describe_overload(overload: stats_pb2.OverloadStats) -> str:
    refused = ", ".join(f"{reason} {count}" for reason, count in sorted(overload.refused.items())) or "none"
    limit = overload.max_concurrent_rpcs or "no limit"
    return (
        f"overload: {overload.in_flight} calls in flight (limit {limit}); refused: {refused}\n"
        f"  writes stalled {overload.writes_stalled}; cancelled tasks salvaged {overload.salvaged},"
        f" closed {overload.salvage_closed}, salvaging now {overload.salvages_in_flight};"
        f" task starts that waited for the rate limit {overload.rate_limited_waits}"
    )


def _synth(args: argparse.Namespace) -> int:

    if args.stdin == (args.text is not None):
        args.command_parser.error("give the text or --stdin, not both")
    if args.stdin:
        from voxgate.cli_stream import synth_stdin

        return synth_stdin(args)
    fmt = args.format or os.path.splitext(args.output)[1].lstrip(".").lower() or "wav"
    if fmt not in FORMATS:
        print(f"voxgate synth: cannot tell the format from {args.output!r}; pass --format", file=sys.stderr)
        return 2
    request = speech_pb2.SynthesizeRequest(
        text=args.text,
        model=args.model,
        voice=args.voice,
        format=FORMATS[fmt],
        sample_rate=args.sample_rate,
        rate=args.rate,
        pitch=args.pitch,
        volume=args.volume,
    )

    async def run() -> int:
        async with _client(args) as client:
            try:
                result = await client.synthesize_to_file(request, args.output, timeout_s=args.timeout)
            except grpc.aio.AioRpcError as exc:
                print(f"voxgate synth: {exc.code().name}: {exc.details()}", file=sys.stderr)
                return 1
        summary = result.summary
        print(
            f"wrote {args.output}: {result.audio_bytes} bytes {fmt} at {summary.sample_rate} Hz\n"
            f"first packet {result.client_first_packet_ms:.1f} ms (client), "
            f"{summary.first_packet_delay_ms:.1f} ms in voxgate, "
            f"{summary.upstream_first_packet_delay_ms:.1f} ms upstream\n"
            f"connection {'reused' if summary.connection_reused else 'new'} "
            f"(age {summary.connection_age_ms / 1000:.1f} s, pool wait {summary.pool_wait_ms:.1f} ms), "
            f"task {summary.task_id}, {summary.characters} characters, {summary.attempts} attempt(s)"
        )
        return 0

    return asyncio.run(run())


def _generate(args: argparse.Namespace) -> int:

    messages = [generation_pb2.Message(role="system", content=args.system)] if args.system else []
    try:
        messages.append(_user_message(args.prompt, args.image))
    except OSError as exc:
        print(f"voxgate generate: --image: {exc}", file=sys.stderr)
        return 2
    sampling = {"max_tokens": args.max_tokens, "enable_thinking": True if args.think else None}
    fields = {
        "model": args.model,
        "messages": messages,
        "sampling": sampling,
        "tools": [_tool(spec) for spec in args.tool],
        "tool_choice": args.tool_choice,
    }

    async def run() -> int:
        async with _client(args) as client:
            try:
                if args.stream:
                    request = generation_pb2.GenerateStreamRequest(**fields)
                    await _print_stream(client, request, args.timeout)
                else:
                    await _print_reply(client, generation_pb2.GenerateRequest(**fields), args.timeout)
            except grpc.aio.AioRpcError as exc:
                print(f"voxgate generate: {exc.code().name}: {exc.details()}", file=sys.stderr)
                return 1
        return 0

    return asyncio.run(run())


async def _print_stream(
    client: Client, request: generation_pb2.GenerateStreamRequest, timeout_s: float
) -> None:
    started = time.perf_counter()
    client_ttft_ms = 0.0
    last = generation_pb2.GenerateStreamResponse()
    thinking = False
    try:
        async for last in client.generate_stream(request, timeout_s=timeout_s):
            if (last.delta or last.reasoning_delta) and not client_ttft_ms:
                client_ttft_ms = (time.perf_counter() - started) * 1000
            if last.reasoning_delta:
                if not thinking:
                    print(_THINKING_START, end="")
                    thinking = True
                print(last.reasoning_delta, end="", flush=True)
            if last.delta:
                if thinking:
                    print(_THINKING_END)
                    thinking = False
                print(last.delta, end="", flush=True)
    except grpc.aio.AioRpcError:
        if client_ttft_ms:
            # End the half-printed answer on stdout; the error is stderr's first line.
            print(_THINKING_END if thinking else "")
        raise
    if thinking:
        print(_THINKING_END, end="")
    _print_tool_calls(last.tool_calls)
    answer = ""
    if last.time_to_first_answer_token_ms not in (0, last.time_to_first_token_ms):
        answer = f", first answer token {last.time_to_first_answer_token_ms} ms in voxgate"
    print(
        f"\nfinish {last.finish_reason}; {_usage_line(last.usage)}\n"
        f"first token {client_ttft_ms:.1f} ms (client), {last.time_to_first_token_ms} ms in voxgate{answer};"
        f" model {last.model}, request {last.request_id}, {last.attempts} attempt(s)"
    )


async def _print_reply(client: Client, request: generation_pb2.GenerateRequest, timeout_s: float) -> None:
    started = time.perf_counter()
    reply = await client.generate(request, timeout_s=timeout_s)
    if reply.reasoning:
        print(_THINKING_START + reply.reasoning + _THINKING_END)
    print(reply.text, end="")
    _print_tool_calls(reply.tool_calls)
    print(
        f"\nfinish {reply.finish_reason}; {_usage_line(reply.usage)}\n"
        f"answer in {(time.perf_counter() - started) * 1000:.1f} ms (client);"
        f" model {reply.model}, request {reply.request_id}, {reply.attempts} attempt(s)"
    )


def _usage_line(usage: generation_pb2.Usage) -> str:
    reasoning = f" ({usage.reasoning_tokens} reasoning)" if usage.reasoning_tokens else ""
    return (
        f"usage {usage.input_tokens} in + {usage.output_tokens}{reasoning} out = {usage.total_tokens} tokens"
    )


# Reasoning is prefixed (and dimmed on a terminal), so it never reads as the answer.
_DIM = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
_THINKING_START = ("\x1b[2m" if _DIM else "") + "thinking: "
_THINKING_END = "\x1b[0m" if _DIM else ""


def _user_message(prompt: str, images: Sequence[str]) -> generation_pb2.Message:
    """The prompt, after its images: files are read and sent inline, URLs as they are."""
    if not images:
        return generation_pb2.Message(role="user", content=prompt)
    parts = [
        generation_pb2.ContentPart(image_url=image)
        if image.startswith(("http://", "https://", "oss://", "data:"))
        else generation_pb2.ContentPart(image=Path(image).read_bytes())
        for image in images
    ]
    parts.append(generation_pb2.ContentPart(text=prompt))
    return generation_pb2.Message(role="user", parts=parts)


def _tool(spec: str) -> generation_pb2.Tool:
    name, _, schema = spec.partition("=")
    return generation_pb2.Tool(name=name, parameters=schema)


def _print_tool_calls(calls: Sequence[generation_pb2.ToolCall]) -> None:
    for call in calls:
        print(f"\ntool call: {call.name}({call.arguments}) id {call.id}", end="")


def _dev_upstream(args: argparse.Namespace) -> int:
    import voxgate_dev as devupstream

    logs.configure("INFO", [os.environ.get(config.API_KEY_ENV, "")])
    asyncio.run(devupstream.serve(devupstream.options_from_args(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
