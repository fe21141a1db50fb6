"""The SSE parser against DashScope's framing and the SSE rules' edge cases, no sockets."""

from __future__ import annotations

import pytest

from voxgate.generation.sse import SseEvent, SseParser

RESULT = (
    b"id:1\nevent:result\n:HTTP_STATUS/200\n"
    b'data:{"output":{"choices":[{"message":{"content":"Hi","role":"assistant"},"finish_reason":"null"}]}}\n\n'
)
RESULT_DATA = (
    '{"output":{"choices":[{"message":{"content":"Hi","role":"assistant"},"finish_reason":"null"}]}}'
)


def feed_all(parser: SseParser, *chunks: bytes) -> list[SseEvent]:
    return [event for chunk in chunks for event in parser.feed(chunk)]


def test_dashscope_frame_gives_id_event_status_and_data() -> None:
    [event] = SseParser().feed(RESULT)
    assert event == SseEvent(
        data=RESULT_DATA, event="result", id="1", status=200, comments=("HTTP_STATUS/200",)
    )


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_frames_split_anywhere_across_reads_parse_the_same(size: int) -> None:
    stream = RESULT + RESULT.replace(b"id:1", b"id:2")
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    events = feed_all(SseParser(), *chunks)
    assert [event.id for event in events] == ["1", "2"]
    assert all(event.data == RESULT_DATA for event in events)


def test_a_multibyte_character_split_across_reads_survives() -> None:
    frame = "data:你好\n\n".encode()
    cut = frame.index("好".encode()) + 1  # inside the character's three bytes
    [event] = feed_all(SseParser(), frame[:cut], frame[cut:])
    assert event.data == "你好"


@pytest.mark.parametrize("newline", [b"\r\n", b"\r", b"\n"])
def test_every_line_ending(newline: bytes) -> None:
    frame = RESULT.replace(b"\n", newline)
    [event] = SseParser().feed(frame)
    assert (event.id, event.event, event.data) == ("1", "result", RESULT_DATA)


def test_crlf_split_between_cr_and_lf_is_one_line_end() -> None:
    events = feed_all(SseParser(), b"data:a\r", b"\n\r", b"\ndata:b\r\n\r\n")
    assert [event.data for event in events] == ["a", "b"]


def test_multi_line_data_is_joined_with_newlines() -> None:
    [event] = SseParser().feed(b"data:first\ndata: second\ndata:\n\n")
    assert event.data == "first\nsecond\n"


def test_event_error_without_space_and_the_http_status_comment() -> None:
    body = b'id:1\nevent:error\n:HTTP_STATUS/429\ndata:{"code":"Throttling.RateQuota"}\n\n'
    [event] = SseParser().feed(body)
    assert (event.event, event.status) == ("error", 429)


def test_the_sdks_status_line_sets_the_status() -> None:
    [event] = SseParser().feed(b"event:error\nstatus:500\ndata:{}\n\n")
    assert event.status == 500


def test_comments_alone_and_blank_lines_make_no_event() -> None:
    assert SseParser().feed(b": keep-alive\n\n\n\n:HTTP_STATUS/200\n\n") == []


def test_unknown_fields_are_ignored_and_event_defaults_to_message() -> None:
    [event] = SseParser().feed(b"retry:1000\nfoo:bar\ndata:x\n\n")
    assert (event.event, event.data, event.id) == ("message", "x", None)


def test_an_event_without_its_blank_line_is_given_at_close() -> None:
    parser = SseParser()
    assert parser.feed(b"id:3\nevent:result\ndata:last") == []
    tail = parser.close()
    assert tail is not None and (tail.id, tail.data) == ("3", "last")
    assert parser.close() is None
