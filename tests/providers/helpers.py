"""Test helpers of the provider tests: an adapter's stream read whole or to its error, a
wait for a condition, a canned upstream for the answers the fake upstream does not give
(broken HTTP, odd bodies, redirects, a proxy's view of a request), a tunnelling proxy, a
check that nothing was left unclosed, an answer as the engine hands it back, and the
neutral tool choices the option tests ask for."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from parley.errors import UpstreamError
from parley.events import ModelEvent
from parley.providers.accumulator import AnswerAccumulator
from parley.providers.base import ChatMessage, ModelRequest, Provider
from parley.testing.loopback import Connection, LoopbackFake, Request
from parley.types import Role

#: Neutral tool choices (``ModelOptions.tool_choice``) over ``get_weather`` and ``get_time``:
#: one function, a list of one the model may call, a list of both it must call from.
ONE_FUNCTION: dict[str, Any] = {"type": "function", "name": "get_time"}
ALLOWED_AUTO: dict[str, Any] = {
    "type": "allowed_tools",
    "mode": "auto",
    "tools": [{"type": "function", "name": "get_time"}],
}
ALLOWED_BOTH: dict[str, Any] = {
    "type": "allowed_tools",
    "mode": "required",
    "tools": [
        {"type": "function", "name": "get_time"},
        {"type": "function", "name": "get_weather"},
    ],
}


async def collect(
    provider: Provider, req: ModelRequest
) -> tuple[list[ModelEvent], AnswerAccumulator]:
    """The events of ``req``'s stream, and the answer they make."""
    events = [event async for event in provider.stream(req)]
    acc = AnswerAccumulator()
    for event in events:
        acc.add(event)
    return events, acc


async def failure(
    provider: Provider, req: ModelRequest, events: list[ModelEvent] | None = None
) -> UpstreamError:
    """The error ``req``'s stream ends with; the events before it go to ``events``."""
    with pytest.raises(UpstreamError) as info:
        async for event in provider.stream(req):
            if events is not None:
                events.append(event)
    return info.value


async def wait_until(condition: Callable[[], object], within: float = 5.0) -> bool:
    """Whether ``condition()`` comes true within ``within`` seconds (looked at every 10 ms)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@contextlib.contextmanager
def no_resource_warnings() -> Iterator[None]:
    """Fail if anything left unclosed (session, connector, socket) is found by the end."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


def http_answer(
    status: int,
    body: bytes = b"",
    content_type: str = "text/event-stream",
    *,
    headers: dict[str, str] | None = None,
    length: int | None = None,
) -> bytes:
    """Raw HTTP/1.1 response bytes; ``length`` may claim more than ``body`` holds."""
    head = {
        "content-type": content_type,
        "content-length": str(len(body) if length is None else length),
        **(headers or {}),
    }
    lines = "".join(f"{name}: {value}\r\n" for name, value in head.items())
    return f"HTTP/1.1 {status} Status\r\n{lines}\r\n".encode() + body


class CannedUpstream(LoopbackFake):
    """A loopback server that reads each request and writes ``answer``, byte for byte.

    After writing it closes the connection, or with ``hold`` waits for the client to close
    it. ``heads`` keeps the head (request line and headers) of every request received.
    """

    def __init__(self) -> None:
        super().__init__()
        self.answer = b""
        self.hold = False
        self.heads: list[str] = []

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    async def _respond(self, request: Request, conn: Connection) -> bool:
        self.heads.append(request.head)
        await conn.write(self.answer)
        if self.hold:
            await conn.wait_for_close()
        return False


class TunnelProxy(LoopbackFake):
    """An HTTP proxy on loopback that takes ``CONNECT host:port`` (how a client reaches an
    ``https`` upstream through a proxy) and then relays bytes both ways; it answers 405 to
    anything else. ``requests`` keeps each request line received; with ``refuse`` set, it
    answers every request with that status instead."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []
        self.refuse: int | None = None

    async def _respond(self, request: Request, conn: Connection) -> bool:
        self.requests.append(request.head.partition("\r\n")[0])
        if self.refuse is not None or request.method != "CONNECT":
            await conn.send(self.refuse or 405, b"", keep=False)
            return False
        host, _, port = request.target.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            await conn.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(_relay(conn.reader, writer), _relay(reader, conn.writer))
        finally:
            writer.close()
        return False


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until the reading side ends, then end the writing side."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass  # either end went away: the tunnel is over
    finally:
        writer.close()


def stored_answer(acc: AnswerAccumulator, provider: str) -> ChatMessage:
    """The assistant message the engine stores for an answer and hands back on the next
    turn: what the adapter asked to keep, marked with the provider's name (which the adapter
    ignores)."""
    state = {**acc.state, "provider": provider} if acc.state else None
    return ChatMessage(
        role=Role.ASSISTANT,
        content=acc.text,
        reasoning=acc.reasoning or None,
        tool_calls=acc.finish_tool_calls(),
        provider_state=state,
    )
