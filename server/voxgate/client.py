"""A small asyncio client for voxgate, used by the CLI, the tests and the benchmarks.

async with Client("127.0.0.1:50051") as client:   # or Client(target, Connection(token=..., tls=True))
    result = await client.synthesize_to_file(SynthesizeRequest(text="Hello"), "hello.wav")
    print(result.summary.first_packet_delay_ms)
    reply = await client.generate(GenerateRequest(messages=[Message(role="user", content="Hi")]))
    async for piece in client.generate_stream(GenerateStreamRequest(messages=[...])):
        print(piece.delta, end="")
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import grpc

from voxgate.generation.v1 import generation_pb2, generation_pb2_grpc
from voxgate.speech.v1 import speech_pb2, speech_pb2_grpc
from voxgate.voice.v1 import voice_pb2, voice_pb2_grpc

WAV_HEADER_BYTES = 44
TOKEN_ENV = "VOXGATE_TOKEN"


@dataclass(frozen=True, slots=True)
class Connection:
    """How to reach a voxgate that authenticates callers (docs/security.md).

    ``token`` is the caller key, sent as ``authorization: Bearer <token>``; ``tls`` turns TLS
    on (with the system's roots, or ``ca_file``); ``cert_file`` + ``key_file`` are the client
    certificate for mutual TLS. The default is plaintext without a key, for loopback.
    """

    token: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def __repr__(self) -> str:  # never print the token
        return f"Connection(token={'set' if self.token else 'unset'}, tls={self.tls})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **overrides: object) -> Connection:
        """``VOXGATE_TOKEN`` as the token unless ``overrides`` gives one; other fields from ``overrides``."""
        values: dict[str, object] = {"token": environ.get(TOKEN_ENV) or None}
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def secure(self) -> bool:
        return self.tls or self.ca_file is not None or self.cert_file is not None

    def channel(self, target: str) -> grpc.aio.Channel:
        interceptors: list[grpc.aio.ClientInterceptor] | None = (
            [_BearerUnary(self.token), _BearerStream(self.token)] if self.token else None
        )
        if not self.secure:
            return grpc.aio.insecure_channel(target, interceptors=interceptors)
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs both --cert and --key")
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file),
            private_key=_read(self.key_file),
            certificate_chain=_read(self.cert_file),
        )
        return grpc.aio.secure_channel(target, credentials, interceptors=interceptors)


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as file:
        return file.read()


class _Bearer:
    """Adds ``authorization: Bearer <token>`` to every call (TLS or not: loopback tests use plaintext)."""

    def __init__(self, token: str) -> None:
        self._entry = ("authorization", f"Bearer {token}")

    def details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self._entry)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


# grpc.aio files an interceptor under the first call type it implements only: one class per type.
class _BearerUnary(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self.details(details), request)


class _BearerStream(_Bearer, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self.details(details), request)


class IncompleteStream(Exception):
    """The stream ended with OK but without its summary (or last message): it may be short."""


@dataclass(frozen=True, slots=True)
class SynthesisResult:
    summary: speech_pb2.SynthesisSummary
    audio_bytes: int
    client_first_packet_ms: float
    """Milliseconds from sending the request to receiving the first audio chunk."""
    total_ms: float


class Client:
    """One gRPC channel to a voxgate server. Use as ``async with`` or call :meth:`close`."""

    def __init__(self, target: str, connection: Connection | None = None) -> None:
        self.channel = (connection or Connection()).channel(target)
        self.speech = speech_pb2_grpc.SpeechServiceStub(self.channel)
        self.generation = generation_pb2_grpc.GenerationServiceStub(self.channel)
        self.voice = voice_pb2_grpc.VoiceServiceStub(self.channel)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def stream(
        self, request: speech_pb2.SynthesizeRequest, *, timeout_s: float | None = None
    ) -> AsyncIterator[bytes | speech_pb2.SynthesisSummary]:
        """Yield each audio chunk, then the summary. Raises ``grpc.aio.AioRpcError`` on failure."""
        call = self.speech.Synthesize(request, timeout=timeout_s)
        got_summary = False
        async for response in call:
            if response.WhichOneof("content") == "summary":
                got_summary = True
                yield response.summary
            else:
                yield response.audio
        if not got_summary:
            raise IncompleteStream("stream ended without a summary")

    async def stream_text(
        self,
        config: speech_pb2.SynthesisConfig,
        pieces: AsyncIterable[str],
        *,
        timeout_s: float | None = None,
    ) -> AsyncIterator[bytes | speech_pb2.SynthesisSummary]:
        """SynthesizeStream: send ``config``, then each piece as ``pieces`` yields it; yield each
        audio chunk, then the summary. Raises ``grpc.aio.AioRpcError`` on failure."""

        async def requests() -> AsyncIterator[speech_pb2.SynthesizeStreamRequest]:
            yield speech_pb2.SynthesizeStreamRequest(config=config)
            async for piece in pieces:
                yield speech_pb2.SynthesizeStreamRequest(text=piece)

        call = self.speech.SynthesizeStream(requests(), timeout=timeout_s)
        got_summary = False
        try:
            async for response in call:
                if response.WhichOneof("content") == "summary":
                    got_summary = True
                    yield response.summary
                else:
                    yield response.audio
        finally:
            call.cancel()  # no-op once the call ended; frees the stream if the caller stopped early
        if not got_summary:
            raise IncompleteStream("stream ended without a summary")

    async def speak(
        self, request: voice_pb2.SpeakRequest, *, timeout_s: float | None = None
    ) -> AsyncIterator[str | bytes | voice_pb2.SpeakSummary]:
        """Speak: yield each text delta (str) and audio chunk (bytes) as they come, then the
        summary. Raises ``grpc.aio.AioRpcError`` on failure."""
        call = self.voice.Speak(request, timeout=timeout_s)
        got_summary = False
        try:
            async for response in call:
                kind = response.WhichOneof("kind")
                if kind == "summary":
                    got_summary = True
                    yield response.summary
                elif kind == "text":
                    yield response.text
                else:
                    yield response.audio
        finally:
            call.cancel()
        if not got_summary:
            raise IncompleteStream("stream ended without a summary")

    async def generate(
        self, request: generation_pb2.GenerateRequest, *, timeout_s: float | None = None
    ) -> generation_pb2.GenerateResponse:
        """The whole answer. Raises ``grpc.aio.AioRpcError`` on failure."""
        response: generation_pb2.GenerateResponse = await self.generation.Generate(request, timeout=timeout_s)
        return response

    async def generate_stream(
        self, request: generation_pb2.GenerateStreamRequest, *, timeout_s: float | None = None
    ) -> AsyncIterator[generation_pb2.GenerateStreamResponse]:
        """Yield every message; the last one has ``finish_reason``. Raises ``grpc.aio.AioRpcError``
        on failure and :class:`IncompleteStream` if the stream ended without its last message."""
        call = self.generation.GenerateStream(request, timeout=timeout_s)
        finished = False
        try:
            async for response in call:
                finished = bool(response.finish_reason)
                yield response
        finally:
            call.cancel()  # no-op once the call ended; frees the stream if the caller stopped early
        if not finished:
            raise IncompleteStream("generation stream ended without its last message")

    async def synthesize(
        self, request: speech_pb2.SynthesizeRequest, sink: BinaryIO, *, timeout_s: float | None = None
    ) -> SynthesisResult:
        """Write the audio to ``sink`` as it arrives and return the summary with client timings."""
        return await _to_sink(self.stream(request, timeout_s=timeout_s), sink)

    async def synthesize_to_file(
        self, request: speech_pb2.SynthesizeRequest, path: str | Path, *, timeout_s: float | None = None
    ) -> SynthesisResult:
        """Stream into ``path``; a WAV file gets its streaming header's sizes patched at the end.

        If the call fails, ``path`` is removed: a short clip never stays behind looking whole.
        """
        return await _to_file(self.stream(request, timeout_s=timeout_s), path)

    async def stream_text_to_file(
        self,
        config: speech_pb2.SynthesisConfig,
        pieces: AsyncIterable[str],
        path: str | Path,
        *,
        timeout_s: float | None = None,
    ) -> SynthesisResult:
        """SynthesizeStream into ``path``, as :meth:`synthesize_to_file` does for Synthesize."""
        return await _to_file(self.stream_text(config, pieces, timeout_s=timeout_s), path)


async def _to_sink(
    items: AsyncIterator[bytes | speech_pb2.SynthesisSummary], sink: BinaryIO
) -> SynthesisResult:
    started = time.perf_counter()
    first_packet_ms = 0.0
    audio_bytes = 0
    summary: speech_pb2.SynthesisSummary | None = None
    async for item in items:
        if isinstance(item, bytes):
            if not audio_bytes:
                first_packet_ms = (time.perf_counter() - started) * 1000
            audio_bytes += len(item)
            sink.write(item)
        else:
            summary = item
    assert summary is not None  # stream() and stream_text() raise otherwise
    return SynthesisResult(summary, audio_bytes, first_packet_ms, (time.perf_counter() - started) * 1000)


async def _to_file(
    items: AsyncIterator[bytes | speech_pb2.SynthesisSummary], path: str | Path
) -> SynthesisResult:
    try:
        # Small sequential writes to a local file, in the CLI's own loop: not worth a thread.
        with open(path, "wb") as sink:  # noqa: ASYNC230
            result = await _to_sink(items, sink)
            if (
                result.summary.format == speech_pb2.AUDIO_FORMAT_WAV
                and result.audio_bytes >= WAV_HEADER_BYTES
            ):
                patch_wav_sizes(sink, result.audio_bytes)
    except BaseException:
        Path(path).unlink(missing_ok=True)  # noqa: ASYNC240  # one local unlink, on failure
        raise
    return result


def patch_wav_sizes(sink: BinaryIO, total_bytes: int) -> None:
    """Replace the 0xFFFFFFFF sizes of a streamed RIFF/WAVE header with the real ones."""
    sink.seek(4)
    sink.write(struct.pack("<I", total_bytes - 8))
    sink.seek(40)
    sink.write(struct.pack("<I", total_bytes - WAV_HEADER_BYTES))
    sink.seek(0, 2)
