"""Server-sent events parsing shared by the streaming adapters.

``iter_sse`` reads a response body as it arrives, from any async iterator of bytes: whole
lines with their line breaks (``async for line in response.content`` in aiohttp) or pieces
cut anywhere (``response.content.iter_any()``, one piece per network read, which the
adapters use because it costs less per event). It yields one ``(event, data)`` pair per
dispatched event, the data as bytes, ready for ``orjson.loads``.

Lines end in ``\\n`` or ``\\r\\n``; a lone ``\\r`` as the line break (allowed by the
specification, used by no LLM API) is not recognised. Comments, ``id:`` / ``retry:`` and
unknown fields are skipped; several ``data:`` lines join with ``\\n``; an event cut off by
the end of the stream (no blank line after it) is dropped, as the SSE specification says.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable

#: The longest line ``iter_sse`` waits for the end of, by default (bytes).
MAX_LINE = 4 * 1024 * 1024


class LineTooLong(ValueError):
    """A line of the stream is longer than ``max_line`` bytes."""


async def iter_sse(
    chunks: AsyncIterable[bytes], *, max_line: int = MAX_LINE
) -> AsyncGenerator[tuple[str, bytes], None]:
    """Yield ``(event name, data)`` for each event; the name is ``"message"`` when unset.

    Closing this generator closes ``chunks`` too when it can be closed (an async generator).
    """
    event = "message"
    data: bytes | None = None
    rest = b""  # an unfinished line, waiting for the rest of it
    try:
        async for chunk in chunks:
            lines = chunk.split(b"\n")
            if rest:
                lines[0] = rest + lines[0]
            rest = lines.pop()
            if len(rest) > max_line:
                raise LineTooLong(f"a line of the stream is longer than {max_line} bytes")
            for line in lines:
                if line.startswith(b"data:"):
                    value = line[5:].rstrip(b"\r")
                    if value.startswith(b" "):
                        value = value[1:]
                    data = value if data is None else data + b"\n" + value
                elif line == b"" or line == b"\r":
                    if data is not None:
                        yield event, data
                        data = None
                    event = "message"
                elif line.startswith(b"event:"):
                    name = line[6:].strip().decode(errors="replace")
                    event = name or "message"
                # ":" comments, id:, retry: and unknown fields carry nothing we use.
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
