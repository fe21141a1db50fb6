from voxgate.generation.v1 import generation_pb2 as _generation_pb2
from voxgate.speech.v1 import speech_pb2 as _speech_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SpeakRequest(_message.Message):
    __slots__ = ("model", "messages", "sampling", "speech")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    SPEECH_FIELD_NUMBER: _ClassVar[int]
    model: str
    messages: _containers.RepeatedCompositeFieldContainer[_generation_pb2.Message]
    sampling: _generation_pb2.Sampling
    speech: _speech_pb2.SynthesisConfig
    def __init__(self, model: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_generation_pb2.Message, _Mapping]]] = ..., sampling: _Optional[_Union[_generation_pb2.Sampling, _Mapping]] = ..., speech: _Optional[_Union[_speech_pb2.SynthesisConfig, _Mapping]] = ...) -> None: ...

class SpeakResponse(_message.Message):
    __slots__ = ("text", "audio", "summary")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    text: str
    audio: bytes
    summary: SpeakSummary
    def __init__(self, text: _Optional[str] = ..., audio: _Optional[bytes] = ..., summary: _Optional[_Union[SpeakSummary, _Mapping]] = ...) -> None: ...

class SpeakSummary(_message.Message):
    __slots__ = ("time_to_first_token_ms", "time_to_first_audio_ms", "usage", "characters", "finish_reason", "model", "task_id", "request_id", "audio_bytes", "text_chars", "speech_pieces", "format", "sample_rate")
    TIME_TO_FIRST_TOKEN_MS_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_AUDIO_MS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIO_BYTES_FIELD_NUMBER: _ClassVar[int]
    TEXT_CHARS_FIELD_NUMBER: _ClassVar[int]
    SPEECH_PIECES_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    time_to_first_token_ms: float
    time_to_first_audio_ms: float
    usage: _generation_pb2.Usage
    characters: int
    finish_reason: str
    model: str
    task_id: str
    request_id: str
    audio_bytes: int
    text_chars: int
    speech_pieces: int
    format: _speech_pb2.AudioFormat
    sample_rate: int
    def __init__(self, time_to_first_token_ms: _Optional[float] = ..., time_to_first_audio_ms: _Optional[float] = ..., usage: _Optional[_Union[_generation_pb2.Usage, _Mapping]] = ..., characters: _Optional[int] = ..., finish_reason: _Optional[str] = ..., model: _Optional[str] = ..., task_id: _Optional[str] = ..., request_id: _Optional[str] = ..., audio_bytes: _Optional[int] = ..., text_chars: _Optional[int] = ..., speech_pieces: _Optional[int] = ..., format: _Optional[_Union[_speech_pb2.AudioFormat, str]] = ..., sample_rate: _Optional[int] = ...) -> None: ...
