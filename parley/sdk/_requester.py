"""What a resource (``client.assistants``, ``client.files``, ...) needs of its client.

``Requester`` is the part of ``Client`` the blocking resources use, ``AsyncRequester`` the
part of ``AsyncClient`` the async ones use: send a ``Call`` and read its answer, open a
stream, drive a plan of ``_loops``. The clients build their resources with themselves; the
resources know only these protocols, so the client modules import the resource modules and
never the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import httpx

from parley.errors import ParleyError
from parley.events import Event
from parley.sdk import _loops
from parley.sdk._calls import Call
from parley.sdk.stream import AsyncStream, Stream

T = TypeVar("T")


class Requester(Protocol):
    """The blocking I/O of ``Client`` that its resources call."""

    def _request(self, call: Call[T]) -> T: ...

    def _send(self, call: Call[Any], *, stream: bool) -> httpx.Response: ...

    def _error(self, response: httpx.Response) -> ParleyError: ...

    def _stream(
        self,
        call: Call[Any],
        *,
        until_done: bool,
        run_id: str | None = None,
        after: str | int | None = None,
    ) -> Stream: ...

    def _run_plan(
        self,
        plan: _loops.Plan[T],
        targets: _loops.Targets,
        on_event: Callable[[Event], Any] | None = None,
    ) -> T: ...


class AsyncRequester(Protocol):
    """The asyncio I/O of ``AsyncClient`` that its resources await."""

    async def _request(self, call: Call[T]) -> T: ...

    async def _send(self, call: Call[Any], *, stream: bool) -> httpx.Response: ...

    def _error(self, response: httpx.Response) -> ParleyError: ...

    async def _stream(
        self,
        call: Call[Any],
        *,
        until_done: bool,
        run_id: str | None = None,
        after: str | int | None = None,
    ) -> AsyncStream: ...

    def _lazy_stream(
        self,
        call: Call[Any],
        *,
        until_done: bool = True,
        run_id: str | None = None,
        after: str | int | None = None,
        response: httpx.Response | None = None,
    ) -> AsyncStream: ...

    async def _run_plan(
        self,
        plan: _loops.Plan[T],
        targets: _loops.Targets,
        on_event: Callable[[Event], Any] | None = None,
    ) -> T: ...


class Resource:
    """Base of the blocking resources: holds the client that sends their calls."""

    def __init__(self, client: Requester) -> None:
        self._client = client


class AsyncResource:
    """Base of the async resources: holds the client that sends their calls."""

    def __init__(self, client: AsyncRequester) -> None:
        self._client = client
