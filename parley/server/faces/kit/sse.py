"""What server-sent event streams of the server share: the keep-alive comment and the
response headers. Frames are written by ``parley.events.encode_frame``."""

from __future__ import annotations

PING = b": ping\n\n"
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
