"""MCP sessions kept open between turns: a conversation's next call goes out on the
connection its last one opened, without a new connection and handshake.

A session is one user's, for one server as the turn reaches it (address, transport and
headers): two users never share one, nor two sets of secrets. One idle for ``IDLE`` seconds,
or that ended (the server went away), is closed; all close when the engine stops. A server
that cannot be reached is not remembered: the next turn tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from parley.mcp.shapes import Bounds, ServerTarget

if TYPE_CHECKING:
    from parley.mcp.client import Session

#: Seconds a session may stay unused before it is closed.
IDLE = 60.0
#: Sessions kept at most; past that, the least recently used is closed.
MOST = 256


@dataclass(slots=True)
class _Kept:
    session: Session
    stack: contextlib.AsyncExitStack
    used: float


Key = tuple[str, str, str | None, str, tuple[str, ...], str]


def key_of(user_id: str, target: ServerTarget) -> Key:
    """Whose session, to where, with which secrets (a digest of the headers and the
    environment, never the values)."""
    secrets = sorted({**target.headers, **(target.env or {})}.items())
    digest = hashlib.sha256(repr(secrets).encode()).hexdigest()
    return (user_id, target.label, target.url, target.transport, target.command, digest)


async def _client() -> Any:
    """``parley.mcp.client``, with the MCP SDK, loaded once a turn first needs it: on a
    thread, since loading takes most of a second that the loop goes on serving meanwhile."""
    module = sys.modules.get("parley.mcp.client")
    if module is None:
        module = await asyncio.to_thread(importlib.import_module, "parley.mcp.client")
    return module


class Sessions:
    """The open sessions of this process."""

    def __init__(self, bounds: Bounds) -> None:
        self.bounds = bounds
        self._kept: dict[Key, _Kept] = {}
        self._opening: dict[Key, asyncio.Lock] = {}

    async def get(
        self, user_id: str, target: ServerTarget, *, factory: Any, allow_stdio: bool
    ) -> Session | str:
        """An open session with ``target`` for ``user_id``, or why there is none."""
        key = key_of(user_id, target)
        lock = self._opening.setdefault(key, asyncio.Lock())
        async with lock:
            kept = self._kept.get(key)
            if kept is not None and kept.session.ended is None:
                kept.used = time.monotonic()
                return kept.session
            if kept is not None:
                await self._close(key)
            await self._sweep()
            client = await _client()
            stack = contextlib.AsyncExitStack()
            opened: Session | str = await stack.enter_async_context(
                client.open_session(
                    target, self.bounds, http_client_factory=factory, allow_stdio=allow_stdio
                )
            )
            if isinstance(opened, str):
                await stack.aclose()
                return opened
            self._kept[key] = _Kept(opened, stack, time.monotonic())
            return opened

    async def _sweep(self) -> None:
        """Close the sessions idle too long, and the oldest past ``MOST``."""
        now = time.monotonic()
        for key in [k for k, kept in self._kept.items() if now - kept.used > IDLE]:
            await self._close(key)
        while len(self._kept) >= MOST:
            oldest = min(self._kept, key=lambda k: self._kept[k].used)
            await self._close(oldest)

    async def _close(self, key: Key) -> None:
        kept = self._kept.pop(key, None)
        self._opening.pop(key, None)
        if kept is not None:
            with contextlib.suppress(Exception):
                await kept.stack.aclose()

    async def aclose(self) -> None:
        """Close every session (the engine stops)."""
        for key in list(self._kept):
            await self._close(key)
