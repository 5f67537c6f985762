from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from parley.providers.sse import LineTooLong, iter_sse

STREAM = (
    b": keep-alive comment\r\n\r\n"
    b"event: delta\r\nid: 4\r\ndata: a\r\ndata:b\r\n\r\n"
    b"retry: 5\nfoo: bar\ndata: c\n\n\n\n"
    b"data:  two spaces\n\n"
    b"data:\n\n"
    b"event: ignored, no data\n\n"
    b"data: cut off"
)
EVENTS = [
    ("delta", b"a\nb"),
    ("message", b"c"),
    ("message", b" two spaces"),
    ("message", b""),
]


async def pieces(data: bytes, size: int) -> AsyncGenerator[bytes, None]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def lines_of(data: bytes) -> AsyncGenerator[bytes, None]:
    for line in data.splitlines(keepends=True):
        yield line


async def events_of(source: AsyncGenerator[bytes, None]) -> list[tuple[str, bytes]]:
    return [pair async for pair in iter_sse(source)]


async def test_fields_comments_and_line_breaks() -> None:
    assert await events_of(pieces(STREAM, len(STREAM))) == EVENTS


async def test_lines_with_their_line_breaks() -> None:
    assert await events_of(lines_of(STREAM)) == EVENTS


async def test_the_same_events_however_the_body_is_cut() -> None:
    for size in range(1, 40):
        assert await events_of(pieces(STREAM, size)) == EVENTS, size


async def test_early_close_closes_the_source() -> None:
    source = lines_of(b"data: 1\n\ndata: 2\n\ndata: 3\n\n")
    events = iter_sse(source)
    assert await anext(events) == ("message", b"1")
    await events.aclose()
    assert [line async for line in source] == []  # the source was closed too


async def test_a_line_that_never_ends() -> None:
    with pytest.raises(LineTooLong):
        [pair async for pair in iter_sse(pieces(b"data: " + b"x" * 100, 10), max_line=50)]


async def test_long_lines_within_the_limit() -> None:
    data = b"x" * 1000
    events = [pair async for pair in iter_sse(pieces(b"data: " + data + b"\n\n", 7), max_line=1010)]
    assert events == [("message", data)]
