"""Server-sent events framing: the one place that writes the wire format."""

from __future__ import annotations

from pydantic import BaseModel

PING = b": ping\n\n"
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def encode_frame(seq: int, type_: str, data: str) -> bytes:
    """One SSE frame: ``id``, ``event`` and the event's JSON as ``data``."""
    return f"id: {seq}\nevent: {type_}\ndata: {data}\n\n".encode()


def encode_event(event: BaseModel, seq: int) -> bytes:
    return encode_frame(seq, event.type, event.model_dump_json())  # type: ignore[attr-defined]
