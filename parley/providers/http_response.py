"""The response of an upstream HTTP call, as every provider adapter reads it.

``Response`` is what ``HTTPTransport.post`` answers once the head is in; ``AiohttpResponse``
is an aiohttp response seen as one. ``TRANSPORT_ERRORS`` are what a failed call raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import suppress
from typing import Protocol

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError

from parley.errors import retry_after_seconds

__all__ = [
    "DRAIN_TIMEOUT",
    "TRANSPORT_ERRORS",
    "AiohttpResponse",
    "Response",
    "retry_after",
]

#: Seconds to wait for the end of the body once the answer is complete (normally already
#: there); what adapters pass to ``Response.drain``.
DRAIN_TIMEOUT = 1.0
#: What the HTTP client raises when the call fails.
TRANSPORT_ERRORS = (aiohttp.ClientError, HttpProcessingError, TimeoutError)


class Response(Protocol):
    """The response of ``HTTPTransport.post``, once its head is in.

    End it with ``release`` (read to its end: the connection may serve another request) or
    ``close`` (cut now: the upstream sees the disconnect and stops).
    """

    status: int
    content_type: str

    @property
    def headers(self) -> Mapping[str, str]:
        """Response headers; ``get`` takes lower-case names."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body, piece by piece as it arrives (decompressed)."""
        ...

    async def read(self) -> bytes:
        """The whole body."""
        ...

    async def drain(self, within: float) -> None:
        """Read the rest of the body, for at most ``within`` seconds, so the connection can
        go back to the pool; on any trouble it is closed."""
        ...

    def release(self) -> None:
        """Back to the pool, or closed if the body is not all read."""
        ...

    def close(self) -> None:
        """Close the connection now."""
        ...


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds (delta or HTTP date), bounded
    (``parley.errors.retry_after_seconds``)."""
    return retry_after_seconds(headers.get("retry-after"))


class AiohttpResponse:
    """An aiohttp response as a ``Response``."""

    __slots__ = ("_response", "content_type", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.content_type = response.content_type
        self.headers: Mapping[str, str] = response.headers  # case-insensitive

    def chunks(self) -> AsyncIterator[bytes]:
        return self._response.content.iter_any()

    async def read(self) -> bytes:
        return await self._response.read()

    async def drain(self, within: float) -> None:
        """Read what follows the end of the answer (normally just the end of the body, often
        already received) so the connection can go back to the pool; on any trouble it is
        closed."""
        content = self._response.content
        if content.at_eof():
            return
        with suppress(aiohttp.ClientError, HttpProcessingError, TimeoutError):
            async with asyncio.timeout(within):
                while await content.readany():
                    pass

    def release(self) -> None:
        self._response.release()  # back to the pool, or closed if the body is not all read

    def close(self) -> None:
        self._response.close()  # cut now: the upstream sees the disconnect and stops
