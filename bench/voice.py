"""Streaming text in: Speak vs generate-then-synthesize, SynthesizeStream vs its last piece,
and Speak's boundary policies.

``python -m bench voice`` starts the embedded upstream and a voxgate server as processes
(``local-echo`` with a model's pace: first byte +50 ms, a token every 20 ms), then for each
concurrency level measures, client-side:

* **Speak**: call sent → first audio chunk received.
* **sequential**: the same prompt as ``GenerateStream`` read to its end, then ``Synthesize``
  of the answer: call sent → first audio chunk (what a client without Speak does).
* **SynthesizeStream**: the answer's tokens sent as pieces at the model's pace; first audio
  and last piece sent, both from the first piece sent. Audio before the last piece means
  the listener hears the start while the text is still being written.

``--policies`` also runs Speak's pipeline in this process against the same upstream, once
per boundary policy of :mod:`voxgate.voice.segmenter`: time to first audio and continue-tasks
per answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bench.common import closed_loop
from bench.procs import Child
from bench.stats import percentile
from voxgate.client import Client
from voxgate.generation.client import GenerationClient
from voxgate.generation.protocol import GenerationParams, Message
from voxgate.generation.session import HttpConfig, open_session
from voxgate.generation.v1 import generation_pb2
from voxgate.speech.connection import Endpoint, Synthesizer
from voxgate.speech.protocol import SynthesisParams, SynthesisTask
from voxgate.speech.text_input import TextInput
from voxgate.speech.v1 import speech_pb2
from voxgate.voice.segmenter import Policy, Segmenter
from voxgate.voice.v1 import voice_pb2

MODEL = "local-echo"
PROMPTS = (
    "tell me, in a few words, why a warm pool of connections makes the first audio arrive sooner.",
    "explain how a gateway keeps one kept-alive session for many callers, and what it saves.",
    "say what happens when the upstream goes quiet in the middle of a task, and who notices first.",
)
PCM = speech_pb2.SynthesisConfig(format=speech_pb2.AUDIO_FORMAT_PCM, sample_rate=16000)


@dataclass(frozen=True)
class Timing:
    first_audio_ms: float
    """From the call (or the first piece) to the first audio; -1 if none."""
    last_piece_ms: float = 0.0
    """SynthesizeStream: from the first piece to the last one sent."""
    ok: bool = True


def _messages(prompt: str) -> list[generation_pb2.Message]:
    return [generation_pb2.Message(role="user", content=prompt)]


async def speak_whole(client: Client, prompt: str) -> Timing:
    """Speak read to its end (a real listener hears it all); the first audio is what is timed."""
    started = time.perf_counter()
    first = -1.0
    try:
        async for item in client.speak(
            voice_pb2.SpeakRequest(messages=_messages(prompt), speech=PCM), timeout_s=120
        ):
            if isinstance(item, bytes) and first < 0:
                first = (time.perf_counter() - started) * 1000
    except Exception:
        return Timing(first, ok=False)
    return Timing(first)


async def sequential(client: Client, prompt: str) -> Timing:
    started = time.perf_counter()
    first = -1.0
    try:
        answer = ""
        async for piece in client.generate_stream(
            generation_pb2.GenerateStreamRequest(messages=_messages(prompt)), timeout_s=120
        ):
            answer += piece.delta
        request = speech_pb2.SynthesizeRequest(text=answer, format=PCM.format, sample_rate=PCM.sample_rate)
        async for item in client.stream(request, timeout_s=120):
            if isinstance(item, bytes) and first < 0:
                first = (time.perf_counter() - started) * 1000
    except Exception:
        return Timing(first, ok=False)
    return Timing(first)


async def synthesize_stream(client: Client, prompt: str, interval_s: float) -> Timing:
    tokens = _tokens(f"Hello! You said: {prompt}")
    sent_at: list[float] = []

    async def pieces() -> AsyncIterator[str]:
        for index, token in enumerate(tokens):
            if index:
                await asyncio.sleep(interval_s)  # the model's pace: the input pattern being measured
            sent_at.append(time.perf_counter())
            yield token

    first_at = 0.0
    try:
        async for item in client.stream_text(PCM, pieces(), timeout_s=120):
            if isinstance(item, bytes) and not first_at:
                first_at = time.perf_counter()
    except Exception:
        return Timing(-1, ok=False)
    return Timing((first_at - sent_at[0]) * 1000, (sent_at[-1] - sent_at[0]) * 1000)


def _tokens(text: str) -> list[str]:
    """Words with the space before them, as local-echo streams them."""
    words = text.split(" ")
    return [words[0]] + [" " + word for word in words[1:]]


async def pipeline(
    generation: GenerationClient, endpoint: Endpoint, prompt: str, policy: Policy
) -> tuple[float, int]:
    """Speak's pipeline in this process with one boundary policy: (first audio ms, pieces)."""
    started = time.perf_counter()
    text = TextInput(idle_timeout_s=20, max_pieces=2**31, idle_hint="bench", idle_from_first_piece=True)
    segmenter = Segmenter(policy)

    async def generate() -> None:
        params = GenerationParams(model=MODEL, messages=(Message("user", prompt),))
        async with contextlib.aclosing(generation.stream(params)) as results:
            async for result in results:
                for piece in segmenter.feed(result.text):
                    text.add(piece)
                if result.finish_reason is not None:
                    text.add(segmenter.flush())
                    text.close()

    producer = asyncio.create_task(generate())
    synthesizer = await Synthesizer.connect(endpoint)  # connected before the call, as a warm pool's
    first_ms = -1.0
    try:
        task = SynthesisTask(SynthesisParams(model="cosyvoice-v3-flash", voice="longanyang", format="pcm"))
        await text.reader().next_batch()
        async with contextlib.aclosing(synthesizer.run_stream(task, text.reader())) as audio:
            async for _ in audio:
                if first_ms < 0:
                    first_ms = (time.perf_counter() - started) * 1000
        await producer
    finally:
        await synthesizer.close()
    return first_ms, text.received


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=int, nargs="+", help="levels (default: 1 50)")
    parser.add_argument("--token-interval-ms", type=float, default=20.0, help="the model's pace")
    parser.add_argument("--generation-first-byte-delay-ms", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="calls per variant and level, at least")
    parser.add_argument("--policies", action="store_true", help="also measure Speak's boundary policies")
    parser.add_argument(
        "--policy-rounds", type=int, default=4, help="rounds over the prompts per policy, the first a warm-up"
    )


async def run(args: argparse.Namespace) -> None:
    args.concurrency = args.concurrency or [1, 50]
    key = "sk-bench-" + secrets.token_hex(8)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "VOXGATE_"))}
    env["DASHSCOPE_API_KEY"] = key
    upstream = Child(
        "-m", "voxgate.cli", "dev-upstream", "--port", "0",
        "--generation-first-byte-delay-ms", str(args.generation_first_byte_delay_ms),
        "--token-interval-ms", str(args.token_interval_ms),
        env=env, name="dev-upstream",
    )  # fmt: skip
    ws_url = await upstream.start("voxgate dev-upstream listening on ")
    http_base = ws_url.replace("ws://", "http://").split("/api-ws/")[0]
    server = Child(
        "-m", "voxgate.cli", "serve", "--listen", "127.0.0.1:0", "--log-level", "WARNING",
        "--pool-max-size", str(max(args.concurrency)),
        env={**env, "DASHSCOPE_WEBSOCKET_BASE_URL": ws_url, "DASHSCOPE_HTTP_BASE_URL": f"{http_base}/api/v1",
             "VOXGATE_DEFAULT_GENERATION_MODEL": MODEL},
        name="voxgate",
    )  # fmt: skip
    try:
        address = await server.start("voxgate listening on ")
        async with Client(address) as client:
            await measure(client, args)
        if args.policies:
            await measure_policies(ws_url, f"{http_base}/api/v1", key, max(2, args.policy_rounds))
    finally:
        await server.stop()
        await upstream.stop()


def _p(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.0f}"


async def measure(client: Client, args: argparse.Namespace) -> None:
    interval_s = args.token_interval_ms / 1000
    print(
        f"voice: model {MODEL}, first byte +{args.generation_first_byte_delay_ms} ms,"
        f" a token every {args.token_interval_ms:g} ms; PCM 16 kHz"
    )
    print()
    print(f"{'conc':>5} {'reqs':>5} | {'Speak 1st audio p50/p99':>24} | {'sequential p50/p99':>19} |"
          f" {'stream 1st audio p50/p99':>25} | {'stream last piece p50':>21} | errors")  # fmt: skip
    for concurrency in args.concurrency:
        requests = max(args.requests, 2 * concurrency)
        spoken = await closed_loop(concurrency, requests, PROMPTS, lambda _s, p: speak_whole(client, p))
        seq = await closed_loop(concurrency, requests, PROMPTS, lambda _s, p: sequential(client, p))
        streamed = await closed_loop(
            concurrency, requests, PROMPTS, lambda _s, p: synthesize_stream(client, p, interval_s)
        )
        errors = sum(not t.ok for t in (*spoken, *seq, *streamed))
        s1 = [t.first_audio_ms for t in spoken if t.ok]
        q1 = [t.first_audio_ms for t in seq if t.ok]
        f1 = [t.first_audio_ms for t in streamed if t.ok]
        last = [t.last_piece_ms for t in streamed if t.ok]
        print(
            f"{concurrency:>5} {requests:>5} | {_p(s1, 50):>14} / {_p(s1, 99):>5} ms | {_p(q1, 50):>9} /"
            f" {_p(q1, 99):>5} ms | {_p(f1, 50):>15} / {_p(f1, 99):>5} ms | {_p(last, 50):>18} ms | {errors}"
        )
    print()
    print("Speak: call sent -> first audio;")
    print("sequential: GenerateStream read to its end, then Synthesize of the answer -> first audio;")
    print("stream: the answer's tokens sent at the model's pace; first audio and last piece from the first.")


async def measure_policies(ws_url: str, http_url: str, key: str, rounds: int) -> None:
    session = open_session(HttpConfig())
    generation = GenerationClient(session, base_url=http_url, api_key=key)
    endpoint = Endpoint(url=ws_url, api_key=key)
    print()
    print(f"{'policy':>9} | {'first audio p50':>15} {'p90':>6} | {'continue-tasks per answer':>25}")
    try:
        for policy in ("delta", "clause", "sentence"):
            firsts: list[float] = []
            pieces: list[float] = []
            for round_ in range(rounds):
                for prompt in PROMPTS:
                    first_ms, count = await pipeline(generation, endpoint, prompt, policy)
                    if round_:  # the first round warms the upstream's voice
                        firsts.append(first_ms)
                        pieces.append(count)
            per_answer = sum(pieces) / len(pieces)
            print(f"{policy:>9} | {_p(firsts, 50):>12} ms {_p(firsts, 90):>3} ms | {per_answer:>25.1f}")
    finally:
        await session.close()
