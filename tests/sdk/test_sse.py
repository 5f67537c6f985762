"""The SSE decoder: framing edge cases, fed whole and in every possible split."""

from __future__ import annotations

import pytest

from parley.sdk import ServerSentEvent, SSEDecoder


def decode(*chunks: bytes | str) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    frames: list[ServerSentEvent] = []
    for chunk in chunks:
        frames.extend(decoder.feed(chunk))
    return frames


def every_split(body: bytes) -> list[list[ServerSentEvent]]:
    """The frames decoded from ``body`` cut in two at each position, and byte by byte."""
    results = [decode(body[:i], body[i:]) for i in range(len(body) + 1)]
    results.append(decode(*[body[i : i + 1] for i in range(len(body))]))
    return results


def test_one_frame() -> None:
    assert decode(b'id: 7\nevent: content.delta\ndata: {"a":1}\n\n') == [
        ServerSentEvent(data='{"a":1}', event="content.delta", id="7")
    ]


def test_comments_and_pings_are_ignored() -> None:
    body = b": ping\n\n: hello\nid: 1\ndata: x\n\n: ping\n\n"
    assert decode(body) == [ServerSentEvent(data="x", id="1")]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_line_endings(newline: bytes) -> None:
    body = newline.join([b"id: 2", b"event: usage", b"data: a", b"data: b", b"", b""])
    for frames in every_split(body):
        assert frames == [ServerSentEvent(data="a\nb", event="usage", id="2")]


def test_multi_line_data_and_field_spacing() -> None:
    body = b"data:no space\ndata:  two spaces\ndata\nid:9\n\n"
    assert decode(body) == [ServerSentEvent(data="no space\n two spaces\n", id="9")]


def test_frames_split_anywhere_across_chunks() -> None:
    body = (
        b"id: 1\r\nevent: a\r\ndata: first\r\n\r\n"
        b": ping\r\n\r\n"
        b"id: 2\nevent: b\ndata: second\ndata: line\n\n"
    ) + ("id: 3\ndata: caf\u00e9 \u2603\n\n".encode())
    expected = [
        ServerSentEvent(data="first", event="a", id="1"),
        ServerSentEvent(data="second\nline", event="b", id="2"),
        ServerSentEvent(data="caf\u00e9 \u2603", id="3"),
    ]
    for frames in every_split(body):
        assert frames == expected


def test_unfinished_frame_is_not_returned() -> None:
    assert decode(b"id: 1\ndata: complete\n\nid: 2\ndata: trunc") == [
        ServerSentEvent(data="complete", id="1")
    ]


def test_frame_without_data_is_not_dispatched() -> None:
    assert decode(b"event: nothing\nid: 4\n\ndata: x\n\n") == [ServerSentEvent(data="x")]


def test_byte_order_mark_and_unknown_fields() -> None:
    assert decode("\ufeffretry: 10\nfoo: bar\ndata: x\n\n".encode()) == [ServerSentEvent(data="x")]


def test_str_chunks() -> None:
    assert decode("data: a\n", "\n") == [ServerSentEvent(data="a")]
