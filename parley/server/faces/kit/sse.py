"""Server-sent events, written once for every face: the one framer (``frame``; ``head`` for
a face that keeps a frame's fixed bytes ahead of time; ``entry_frames`` for a batch of
engine entries), the keep-alive comment, the ``[DONE]`` end frame and the response headers.
The SSE sink that writes them is ``kit.sse_response``.

A frame is ``id: <seq>`` (when numbered), ``event: <name>`` (when named) and one ``data:``
line of JSON, then a blank line. The JSON of an event never holds a raw newline, so one
``data:`` line always carries it whole.
"""

from __future__ import annotations

from parley.engine import Entry

PING = b": ping\n\n"
#: The end of the OpenAI-style streams (Chat Completions, Responses): ``data: [DONE]``.
DONE = b"data: [DONE]\n\n"
#: What ends a frame, after its data.
END = b"\n\n"
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def frame(data: bytes, event: str | None = None, seq: int | None = None) -> bytes:
    """One server-sent event: ``data`` (one line of JSON), named ``event``, numbered
    ``seq``."""
    if event is None:
        return b"data: " + data + END
    if seq is None:
        return b"event: " + event.encode() + b"\ndata: " + data + END
    return b"id: %d\nevent: %b\ndata: %b\n\n" % (seq, event.encode(), data)


def entry_frames(batch: list[Entry]) -> bytes:
    """A batch of a run's engine entries as frames, each ``frame`` of its data (JSON text)
    named by its type and numbered by its sequence number (written as text: the fastest
    way, for the native stream's every chunk)."""
    if len(batch) == 1:
        seq, kind, data = batch[0]
        return f"id: {seq}\nevent: {kind}\ndata: {data}\n\n".encode()
    return "".join(
        [f"id: {seq}\nevent: {kind}\ndata: {data}\n\n" for seq, kind, data in batch]
    ).encode()


def head(event: str | None = None) -> bytes:
    """A frame's bytes before its data: ``frame(data, event) == head(event) + data + END``."""
    return b"data: " if event is None else b"event: " + event.encode() + b"\ndata: "
