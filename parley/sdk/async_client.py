"""``AsyncClient``: ``Client`` with ``await``.

async with AsyncClient() as client:
    result = await client.respond(assistant_id=..., content="hi", tools={...})
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

import httpx

from parley.events import ActionItem, Event
from parley.sdk import _calls, _loops
from parley.sdk._async_container_resources import Containers
from parley.sdk._async_resources import (
    Actions,
    ApiKeys,
    Assistants,
    AsyncInferenceStream,
    Completions,
    Messages,
    Models,
    Runs,
    Threads,
    Users,
)
from parley.sdk._async_store_resources import Files, VectorStores
from parley.sdk._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_BACKOFF,
    DEFAULT_TIMEOUT,
    BaseClient,
    TimeoutTypes,
)
from parley.sdk._calls import Call
from parley.sdk.models import Page, RespondResult, Run, TurnResult
from parley.sdk.stream import AsyncStream
from parley.sdk.tools import ToolFunctions, functions_of

T = TypeVar("T")


class AsyncClient(BaseClient):
    """Asynchronous client of a Parley server; same resources and helpers as ``Client``.

    ``base_url`` and ``api_key`` default to ``PARLEY_BASE_URL`` / ``PARLEY_API_KEY``. Pass
    ``transport=`` (for example ``httpx.MockTransport``) or a ready ``http_client=``; a
    client you pass in is yours to close.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_backoff: float = DEFAULT_RETRY_BACKOFF,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, max_retries=max_retries, retry_backoff=retry_backoff)
        if http_client is not None and transport is not None:
            raise ValueError("give http_client or transport, not both")
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport, timeout=timeout)
        self.assistants = Assistants(self)
        self.threads = Threads(self)
        self.messages = Messages(self)
        self.runs = Runs(self)
        self.actions = Actions(self)
        self.completions = Completions(self)
        self.users = Users(self)
        self.models = Models(self)
        self.api_keys = ApiKeys(self)
        self.files = Files(self)
        self.vector_stores = VectorStores(self)
        self.containers = Containers(self)

    @property
    def inference_stream(self) -> AsyncInferenceStream:
        """A new flow-A stream helper (``setup`` / ``stream_chunks`` / ``aclose``)."""
        return AsyncInferenceStream(self)

    @property
    def synchronous_inference_stream(self) -> AsyncInferenceStream:
        """Alias of ``inference_stream``, so code written for ``Client`` ports as is."""
        return AsyncInferenceStream(self)

    # ------------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ----------------------------------------------------------------- flow B

    @overload
    async def process(
        self,
        *,
        assistant_id: str | None = None,
        content: str | None = None,
        images: Sequence[str] | None = None,
        thread_id: str | None = None,
        run_id: str | None = None,
        stream: Literal[True] = True,
    ) -> AsyncStream: ...

    @overload
    async def process(
        self,
        *,
        assistant_id: str | None = None,
        content: str | None = None,
        images: Sequence[str] | None = None,
        thread_id: str | None = None,
        run_id: str | None = None,
        stream: Literal[False],
    ) -> TurnResult: ...

    async def process(
        self,
        *,
        assistant_id: str | None = None,
        content: str | None = None,
        images: Sequence[str] | None = None,
        thread_id: str | None = None,
        run_id: str | None = None,
        stream: bool = True,
    ) -> AsyncStream | TurnResult:
        """One turn in one request (flow B); see ``Client.process``."""
        call = _calls.process(
            assistant_id=assistant_id,
            content=content,
            images=images,
            thread_id=thread_id,
            run_id=run_id,
            stream=stream,
        )
        if not stream:
            return await self._request(call)
        return await self._stream(call, until_done=True, run_id=run_id)

    async def submit_tool_output(
        self,
        *,
        output: str,
        run_id: str | None = None,
        tool_call_id: str | None = None,
        action_id: str | None = None,
    ) -> Run:
        """Submit one tool output, by ``run_id`` and ``tool_call_id`` or by ``action_id``."""
        return await self._request(
            _calls.submit_tool_output(
                run_id=run_id, tool_call_id=tool_call_id, action_id=action_id, output=output
            )
        )

    async def respond(
        self,
        *,
        assistant_id: str,
        content: str,
        tools: ToolFunctions | None = None,
        thread_id: str | None = None,
        on_event: Callable[[Event], Any] | None = None,
        max_turns: int = 8,
        approve: _loops.Approver | None = None,
        raise_on_failure: bool = True,
    ) -> RespondResult:
        """``Client.respond`` for asyncio: tools may be coroutine functions (awaited) or plain
        functions (called on the event loop: make slow ones ``async``); the calls of one turn
        run concurrently. ``on_event`` may be a coroutine function too. A run that ends
        ``failed`` raises ``RunFailed``, unless ``raise_on_failure=False``."""
        table = functions_of(tools or {})
        plan = _loops.respond_plan(
            assistant_id=assistant_id,
            content=content,
            thread_id=thread_id,
            max_turns=max_turns,
            raise_on_failure=raise_on_failure,
        )
        return await self._run_plan(
            plan, lambda action: _loops.tool_target(table, action, approve), on_event
        )

    # ------------------------------------------------------------------- I/O

    async def _send(self, call: Call[Any], *, stream: bool) -> httpx.Response:
        attempt = 0
        while True:
            request = self._build_request(self._http, call, stream=stream)
            try:
                response = await self._http.send(request, stream=stream)
                if stream and not response.is_success:
                    try:
                        await response.aread()
                    finally:
                        await response.aclose()
            except httpx.TransportError as exc:
                if not self._retry_after_error(call, exc, attempt):
                    raise self._connection_error(exc) from exc
            else:
                if not self._retry_after_status(call, response.status_code, attempt):
                    return response
            await asyncio.sleep(self._retry_delay(attempt))
            attempt += 1

    async def _request(self, call: Call[T]) -> T:
        result = self._result(call, await self._send(call, stream=False))
        if isinstance(result, Page):

            async def fetch(after: str) -> Any:
                return await self._request(call.with_params(after=after))

            result._afetch = fetch
        return result

    async def _open_stream(self, call: Call[Any]) -> httpx.Response:
        response = await self._send(call, stream=True)
        if not response.is_success:
            raise self._error(response)
        return response

    def _lazy_stream(
        self,
        call: Call[Any],
        *,
        until_done: bool = True,
        run_id: str | None = None,
        after: str | int | None = None,
        response: httpx.Response | None = None,
    ) -> AsyncStream:
        return AsyncStream(
            self._open_stream,
            call,
            until_done=until_done,
            run_id=run_id,
            after=after,
            response=response,
            delay=self._retry_delay,
        )

    async def _stream(
        self,
        call: Call[Any],
        *,
        until_done: bool,
        run_id: str | None = None,
        after: str | int | None = None,
    ) -> AsyncStream:
        response = await self._open_stream(call)
        return self._lazy_stream(
            call, until_done=until_done, run_id=run_id, after=after, response=response
        )

    async def _run_plan(
        self,
        plan: _loops.Plan[T],
        targets: _loops.Targets,
        on_event: Callable[[Event], Any] | None = None,
    ) -> T:
        return await _loops.adrive(plan, lambda step: self._perform(step, targets, on_event))

    async def _perform(
        self,
        step: _loops.Step,
        targets: _loops.Targets,
        on_event: Callable[[Event], Any] | None,
    ) -> Any:
        if isinstance(step, _loops.Fetch):
            return await self._request(step.call)
        if isinstance(step, _loops.Sleep):
            await asyncio.sleep(step.seconds)
            return None
        if isinstance(step, _loops.RunTools):
            runs = (_run_tool(targets(action), action) for action in step.actions)
            return list(await asyncio.gather(*runs))
        return await self._stream_turn(step.call, on_event)

    async def _stream_turn(
        self, call: Call[Any], on_event: Callable[[Event], Any] | None
    ) -> TurnResult:
        async with await self._stream(call, until_done=True) as stream:
            async for event in stream:
                if on_event is not None:
                    handled = on_event(event)
                    if inspect.isawaitable(handled):
                        await handled
            return await stream.final_result(raise_on_failure=False)  # respond() decides


async def _run_tool(target: Callable[[], Any] | None, action: ActionItem) -> _loops.Answer:
    """``_loops.run_tool`` that also awaits what the tool returns when it is awaitable."""
    if target is None:
        return _loops.missing_tool(action.name)
    try:
        result = target()
        if inspect.isawaitable(result):
            result = await result
        return _loops.answer_of(result, action)
    except Exception as exc:  # noqa: BLE001 - the model is told about any tool failure
        return _loops.tool_error(exc)
