from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_FORMAT_UNSPECIFIED: _ClassVar[AudioFormat]
    AUDIO_FORMAT_PCM: _ClassVar[AudioFormat]
    AUDIO_FORMAT_WAV: _ClassVar[AudioFormat]
    AUDIO_FORMAT_MP3: _ClassVar[AudioFormat]
    AUDIO_FORMAT_OPUS: _ClassVar[AudioFormat]
AUDIO_FORMAT_UNSPECIFIED: AudioFormat
AUDIO_FORMAT_PCM: AudioFormat
AUDIO_FORMAT_WAV: AudioFormat
AUDIO_FORMAT_MP3: AudioFormat
AUDIO_FORMAT_OPUS: AudioFormat

class SynthesizeRequest(_message.Message):
    __slots__ = ("text", "model", "voice", "format", "sample_rate", "volume", "rate", "pitch", "seed", "bit_rate", "enable_ssml", "instruction", "language_hints", "word_timestamp_enabled", "enable_markdown_filter", "min_chunk_ms")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    PITCH_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    BIT_RATE_FIELD_NUMBER: _ClassVar[int]
    ENABLE_SSML_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_HINTS_FIELD_NUMBER: _ClassVar[int]
    WORD_TIMESTAMP_ENABLED_FIELD_NUMBER: _ClassVar[int]
    ENABLE_MARKDOWN_FILTER_FIELD_NUMBER: _ClassVar[int]
    MIN_CHUNK_MS_FIELD_NUMBER: _ClassVar[int]
    text: str
    model: str
    voice: str
    format: AudioFormat
    sample_rate: int
    volume: int
    rate: float
    pitch: float
    seed: int
    bit_rate: int
    enable_ssml: bool
    instruction: str
    language_hints: _containers.RepeatedScalarFieldContainer[str]
    word_timestamp_enabled: bool
    enable_markdown_filter: bool
    min_chunk_ms: int
    def __init__(self, text: _Optional[str] = ..., model: _Optional[str] = ..., voice: _Optional[str] = ..., format: _Optional[_Union[AudioFormat, str]] = ..., sample_rate: _Optional[int] = ..., volume: _Optional[int] = ..., rate: _Optional[float] = ..., pitch: _Optional[float] = ..., seed: _Optional[int] = ..., bit_rate: _Optional[int] = ..., enable_ssml: _Optional[bool] = ..., instruction: _Optional[str] = ..., language_hints: _Optional[_Iterable[str]] = ..., word_timestamp_enabled: _Optional[bool] = ..., enable_markdown_filter: _Optional[bool] = ..., min_chunk_ms: _Optional[int] = ...) -> None: ...

class SynthesizeResponse(_message.Message):
    __slots__ = ("audio", "summary")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    audio: bytes
    summary: SynthesisSummary
    def __init__(self, audio: _Optional[bytes] = ..., summary: _Optional[_Union[SynthesisSummary, _Mapping]] = ...) -> None: ...

class SynthesisSummary(_message.Message):
    __slots__ = ("task_id", "request_id", "first_packet_delay_ms", "upstream_first_packet_delay_ms", "pool_wait_ms", "connection_reused", "connection_age_ms", "characters", "audio_bytes", "audio_chunks", "attempts", "format", "sample_rate", "text_to_first_audio_ms", "text_pieces")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_PACKET_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_FIRST_PACKET_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    POOL_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_REUSED_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_AGE_MS_FIELD_NUMBER: _ClassVar[int]
    CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_BYTES_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    TEXT_TO_FIRST_AUDIO_MS_FIELD_NUMBER: _ClassVar[int]
    TEXT_PIECES_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    request_id: str
    first_packet_delay_ms: float
    upstream_first_packet_delay_ms: float
    pool_wait_ms: float
    connection_reused: bool
    connection_age_ms: float
    characters: int
    audio_bytes: int
    audio_chunks: int
    attempts: int
    format: AudioFormat
    sample_rate: int
    text_to_first_audio_ms: float
    text_pieces: int
    def __init__(self, task_id: _Optional[str] = ..., request_id: _Optional[str] = ..., first_packet_delay_ms: _Optional[float] = ..., upstream_first_packet_delay_ms: _Optional[float] = ..., pool_wait_ms: _Optional[float] = ..., connection_reused: _Optional[bool] = ..., connection_age_ms: _Optional[float] = ..., characters: _Optional[int] = ..., audio_bytes: _Optional[int] = ..., audio_chunks: _Optional[int] = ..., attempts: _Optional[int] = ..., format: _Optional[_Union[AudioFormat, str]] = ..., sample_rate: _Optional[int] = ..., text_to_first_audio_ms: _Optional[float] = ..., text_pieces: _Optional[int] = ...) -> None: ...

class SynthesizeStreamRequest(_message.Message):
    __slots__ = ("config", "text")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    config: SynthesisConfig
    text: str
    def __init__(self, config: _Optional[_Union[SynthesisConfig, _Mapping]] = ..., text: _Optional[str] = ...) -> None: ...

class SynthesisConfig(_message.Message):
    __slots__ = ("model", "voice", "format", "sample_rate", "volume", "rate", "pitch", "seed", "bit_rate", "enable_ssml", "instruction", "language_hints", "word_timestamp_enabled", "enable_markdown_filter")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    PITCH_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    BIT_RATE_FIELD_NUMBER: _ClassVar[int]
    ENABLE_SSML_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_HINTS_FIELD_NUMBER: _ClassVar[int]
    WORD_TIMESTAMP_ENABLED_FIELD_NUMBER: _ClassVar[int]
    ENABLE_MARKDOWN_FILTER_FIELD_NUMBER: _ClassVar[int]
    model: str
    voice: str
    format: AudioFormat
    sample_rate: int
    volume: int
    rate: float
    pitch: float
    seed: int
    bit_rate: int
    enable_ssml: bool
    instruction: str
    language_hints: _containers.RepeatedScalarFieldContainer[str]
    word_timestamp_enabled: bool
    enable_markdown_filter: bool
    def __init__(self, model: _Optional[str] = ..., voice: _Optional[str] = ..., format: _Optional[_Union[AudioFormat, str]] = ..., sample_rate: _Optional[int] = ..., volume: _Optional[int] = ..., rate: _Optional[float] = ..., pitch: _Optional[float] = ..., seed: _Optional[int] = ..., bit_rate: _Optional[int] = ..., enable_ssml: _Optional[bool] = ..., instruction: _Optional[str] = ..., language_hints: _Optional[_Iterable[str]] = ..., word_timestamp_enabled: _Optional[bool] = ..., enable_markdown_filter: _Optional[bool] = ...) -> None: ...
