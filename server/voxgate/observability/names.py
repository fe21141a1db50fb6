"""Every name voxgate emits: attribute, event, span and metric names, in one place.

Pool facts follow the shape of OTel's ``db.client.connection.*`` conventions under
``voxgate.pool.*``; generation follows the GenAI conventions (``gen_ai.*``); RPCs the
RPC conventions (``rpc.*``). Durations in span attributes and histograms are in
milliseconds, the unit every other voxgate figure uses.

The set-up from the ``OTEL_*`` variables is in :mod:`voxgate.observability.telemetry`.
"""

from __future__ import annotations

from typing import Final

INSTRUMENTATION_NAME: Final = "voxgate"

# --- spans and events ------------------------------------------------------------------------

SPAN_POOL_ACQUIRE: Final = "voxgate.pool.acquire"
SPAN_TTS_TASK: Final = "voxgate.tts.task"
EVENT_FIRST_PACKET: Final = "voxgate.tts.first_packet"
EVENT_RETRY: Final = "voxgate.retry"
EVENT_EVICTED: Final = "voxgate.pool.connection.evicted"
EVENT_FIRST_CHUNK: Final = "voxgate.generation.first_chunk"
EVENT_EXCEPTION: Final = "exception"

# --- attributes: RPC (OTel RPC conventions) --------------------------------------------------

RPC_SYSTEM: Final = "rpc.system"
RPC_SERVICE: Final = "rpc.service"
RPC_METHOD: Final = "rpc.method"
RPC_GRPC_STATUS_CODE: Final = "rpc.grpc.status_code"
NETWORK_PEER_ADDRESS: Final = "network.peer.address"
NETWORK_PEER_PORT: Final = "network.peer.port"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
ERROR_TYPE: Final = "error.type"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"

# --- attributes: the pool (shape of db.client.connection.*) -----------------------------------

POOL_NAME: Final = "voxgate.pool.name"
POOL_WAIT_MS: Final = "voxgate.pool.connection.wait_time_ms"
POOL_REUSED: Final = "voxgate.pool.connection.reused"
"""The lent connection had already run a task."""
POOL_WARM: Final = "voxgate.pool.connection.warm"
"""The lent connection was open before the request asked: it paid no connect."""
POOL_CONNECTION_AGE_MS: Final = "voxgate.pool.connection.age_ms"
POOL_IDLE: Final = "voxgate.pool.connection.idle"
POOL_USED: Final = "voxgate.pool.connection.used"
POOL_PENDING: Final = "voxgate.pool.connection.pending_requests"
POOL_MAX: Final = "voxgate.pool.connection.max"
POOL_QUEUED: Final = "voxgate.pool.lease.queued"
POOL_OVERFLOW: Final = "voxgate.pool.lease.overflow"
"""Served by a temporary connection beyond ``max``, closed after use."""
POOL_REFUSAL_REASON: Final = "voxgate.pool.lease.refusal_reason"
POOL_EVICTION_REASON: Final = "voxgate.pool.eviction.reason"
POOL_CONNECTION_STATE: Final = "voxgate.pool.connection.state"
"""``idle`` or ``used``, as ``db.client.connection.state``."""

# --- attributes: speech synthesis ------------------------------------------------------------

TTS_TASK_ID: Final = "voxgate.tts.task_id"
TTS_REQUEST_ID: Final = "voxgate.tts.request_id"
TTS_MODEL: Final = "voxgate.tts.model"
TTS_VOICE: Final = "voxgate.tts.voice"
TTS_FORMAT: Final = "voxgate.tts.format"
TTS_SAMPLE_RATE: Final = "voxgate.tts.sample_rate"
TTS_CHARACTERS: Final = "voxgate.tts.characters"
TTS_AUDIO_BYTES: Final = "voxgate.tts.audio_bytes"
TTS_AUDIO_CHUNKS: Final = "voxgate.tts.audio_chunks"
TTS_FIRST_PACKET_DELAY_MS: Final = "voxgate.tts.first_packet_delay_ms"
"""On the task span: run-task sent to first audio. On the RPC span: RPC received to first audio."""
TTS_ATTEMPT: Final = "voxgate.tts.attempt"
TTS_ATTEMPTS: Final = "voxgate.tts.attempts"
RETRY_ATTEMPT: Final = "voxgate.retry.attempt"
"""The attempt that failed (1 for the first)."""
RETRY_DELAY_MS: Final = "voxgate.retry.delay_ms"
RETRY_REASON: Final = "voxgate.retry.reason"

# --- attributes: generation (OTel GenAI conventions, then ours) --------------------------------

GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
GEN_AI_TIME_TO_FIRST_CHUNK_MS: Final = "voxgate.generation.time_to_first_chunk_ms"
"""Attempt start to the first streamed chunk."""
GENERATION_REPETITION_PENALTY: Final = "voxgate.generation.request.repetition_penalty"
GENERATION_ENABLE_THINKING: Final = "voxgate.generation.request.enable_thinking"
GENERATION_ATTEMPT: Final = "voxgate.generation.attempt"
HTTP_CONNECTION_REUSED: Final = "voxgate.http.connection.reused"
"""aiohttp sent the request on a kept-alive connection (False: it opened one)."""
HTTP_CONNECTION_CREATE_MS: Final = "voxgate.http.connection.create_time_ms"
HTTP_CONNECTION_WAIT_MS: Final = "voxgate.http.connection.wait_time_ms"
"""Time queued for a connection because the session's limit was reached."""

# --- metrics ---------------------------------------------------------------------------------

METRIC_REQUESTS: Final = "voxgate.server.requests"
METRIC_REQUEST_DURATION: Final = "voxgate.server.request.duration"
METRIC_FIRST_PACKET_DELAY: Final = "voxgate.tts.first_packet_delay"
METRIC_POOL_WAIT: Final = "voxgate.pool.connection.wait_time"
METRIC_POOL_CREATE_TIME: Final = "voxgate.pool.connection.create_time"
METRIC_POOL_CREATED: Final = "voxgate.pool.connection.created"
METRIC_POOL_REUSED: Final = "voxgate.pool.connection.reused"
METRIC_POOL_EVICTED: Final = "voxgate.pool.connection.evicted"
METRIC_POOL_LEASES: Final = "voxgate.pool.leases"
METRIC_POOL_REFUSED: Final = "voxgate.pool.lease.refused"
METRIC_POOL_COUNT: Final = "voxgate.pool.connection.count"
METRIC_POOL_MAX: Final = "voxgate.pool.connection.max"
METRIC_POOL_PENDING: Final = "voxgate.pool.connection.pending_requests"
METRIC_POOL_SERVING: Final = "voxgate.pool.serving"
METRIC_POOL_REJECTED: Final = "voxgate.pool.upstream.rejected"
METRIC_POOL_HELD_LONG: Final = "voxgate.pool.lease.held_long"
METRIC_TIME_TO_FIRST_TOKEN: Final = "voxgate.generation.time_to_first_token"
METRIC_GEN_AI_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_HTTP_CREATED: Final = "voxgate.http.connection.created"
METRIC_HTTP_REUSED: Final = "voxgate.http.connection.reused"
METRIC_TELEMETRY_METRICS_REFUSED: Final = "voxgate.telemetry.metrics.refused"
