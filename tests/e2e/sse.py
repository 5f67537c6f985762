"""A small server-sent events reader for the end-to-end tests.

It follows the SSE parsing rules (``field: value`` lines, one optional space after the colon,
``:`` comment lines, several ``data`` lines joined by newlines, a blank line ends an event)
and decodes each event's ``data`` as a JSON object.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import httpx


class Event(NamedTuple):
    """One SSE event: ``(id, event, data)``; ``id`` is ``None`` when the frame had none."""

    id: int | None
    event: str
    data: dict[str, Any]


def iter_events(lines: Iterable[str]) -> Iterator[Event]:
    """The events of a stream of lines (without line endings), as they complete."""
    event_id: int | None = None
    name = ""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                decoded = json.loads("\n".join(data))
                assert isinstance(decoded, dict), f"event data is not a JSON object: {decoded!r}"
                yield Event(event_id, name or "message", decoded)
            event_id, name, data = None, "", []
            continue
        if line.startswith(":"):
            continue  # a comment (": ping")
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "id":
            event_id = int(value)
        elif field == "event":
            name = value
        elif field == "data":
            data.append(value)
    assert not data, f"the stream ended inside an event: {data!r}"


def stream_events(response: httpx.Response) -> Iterator[Event]:
    """The events of a streamed httpx response, read as they arrive."""
    return iter_events(response.iter_lines())


def parse(text: str) -> list[Event]:
    """All events of a whole SSE body."""
    return list(iter_events(text.splitlines()))
