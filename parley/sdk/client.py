"""``Client``: the blocking Parley client.

with Client() as client:            # PARLEY_BASE_URL / PARLEY_API_KEY, or arguments
    assistant = client.assistants.create(name="Helper", model="demo/echo")
    result = client.respond(assistant_id=assistant.id, content="hi", tools={...})
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

import httpx

from parley.events import Event
from parley.sdk import _calls, _loops
from parley.sdk._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_BACKOFF,
    DEFAULT_TIMEOUT,
    BaseClient,
    TimeoutTypes,
)
from parley.sdk._calls import Call
from parley.sdk._container_resources import Containers
from parley.sdk._resources import (
    Actions,
    ApiKeys,
    Assistants,
    Completions,
    InferenceStream,
    Messages,
    Models,
    Runs,
    Threads,
    Users,
)
from parley.sdk._store_resources import Files, VectorStores
from parley.sdk.models import Page, RespondResult, Run, TurnResult
from parley.sdk.stream import Stream
from parley.sdk.tools import ToolFunctions, functions_of

T = TypeVar("T")


class Client(BaseClient):
    """Blocking client of a Parley server.

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
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, max_retries=max_retries, retry_backoff=retry_backoff)
        if http_client is not None and transport is not None:
            raise ValueError("give http_client or transport, not both")
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(transport=transport, timeout=timeout)
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
    def synchronous_inference_stream(self) -> InferenceStream:
        """A new flow-A stream helper (``setup`` / ``stream_chunks`` / ``close``)."""
        return InferenceStream(self)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------- flow B

    @overload
    def process(
        self,
        *,
        assistant_id: str | None = None,
        content: str | None = None,
        images: Sequence[str] | None = None,
        thread_id: str | None = None,
        run_id: str | None = None,
        stream: Literal[True] = True,
    ) -> Stream: ...

    @overload
    def process(
        self,
        *,
        assistant_id: str | None = None,
        content: str | None = None,
        images: Sequence[str] | None = None,
        thread_id: str | None = None,
        run_id: str | None = None,
        stream: Literal[False],
    ) -> TurnResult: ...

    def process(
        self,
        *,
        assistant_id: str | None = None,
        content: str | None = None,
        images: Sequence[str] | None = None,
        thread_id: str | None = None,
        run_id: str | None = None,
        stream: bool = True,
    ) -> Stream | TurnResult:
        """One turn in one request (flow B). Turn 1: ``assistant_id`` and ``content`` (and
        ``thread_id`` to continue a thread); later turns: ``run_id`` alone."""
        call = _calls.process(
            assistant_id=assistant_id,
            content=content,
            images=images,
            thread_id=thread_id,
            run_id=run_id,
            stream=stream,
        )
        if not stream:
            return self._request(call)
        return self._stream(call, until_done=True, run_id=run_id)

    def submit_tool_output(
        self,
        *,
        output: str,
        run_id: str | None = None,
        tool_call_id: str | None = None,
        action_id: str | None = None,
    ) -> Run:
        """Submit one tool output, by ``run_id`` and ``tool_call_id`` or by ``action_id``."""
        return self._request(
            _calls.submit_tool_output(
                run_id=run_id, tool_call_id=tool_call_id, action_id=action_id, output=output
            )
        )

    def respond(
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
        """Send ``content`` and run the whole tool loop with local Python callables.

        Each turn streams through ``process``; every event goes to ``on_event``. ``tools``
        maps tool names to functions, or lists functions (and ``Tool``s, or a
        ``ToolRegistry``) named after themselves. When the model asks for tools,
        ``tools[name](**arguments)`` runs for each call (one after the other here;
        ``AsyncClient`` runs them concurrently); a non-string result is sent as
        JSON, a missing tool or an exception as an ``"Error: ..."`` output. Outputs are
        submitted together and the next turn starts, until the run ends. A call of a tool
        the server runs once approved (an MCP tool: ``ActionItem.approval``) is answered by
        ``approve(action)``: true runs it, false (or no ``approve``) denies it; a
        ``Decision(approve=..., reason=...)`` gives the reason too (told to the model of a
        denied call, kept with the approval in the thread). Raises
        ``ToolLoopLimitExceeded`` (after cancelling the run) when the model still asks for
        tools after ``max_turns`` turns, and ``RunFailed`` (with the run's error code and
        message, and the result) when the run ends ``failed``; with
        ``raise_on_failure=False`` such a result is returned instead. ``incomplete`` and
        ``cancelled`` runs are returned, with the text they have.
        """
        table = functions_of(tools or {})
        plan = _loops.respond_plan(
            assistant_id=assistant_id,
            content=content,
            thread_id=thread_id,
            max_turns=max_turns,
            raise_on_failure=raise_on_failure,
        )
        return self._run_plan(
            plan, lambda action: _loops.tool_target(table, action, approve), on_event
        )

    # ------------------------------------------------------------------- I/O

    def _send(self, call: Call[Any], *, stream: bool) -> httpx.Response:
        attempt = 0
        while True:
            request = self._build_request(self._http, call, stream=stream)
            try:
                response = self._http.send(request, stream=stream)
                if stream and not response.is_success:
                    try:
                        response.read()
                    finally:
                        response.close()
            except httpx.TransportError as exc:
                if not self._retry_after_error(call, exc, attempt):
                    raise self._connection_error(exc) from exc
            else:
                if not self._retry_after_status(call, response.status_code, attempt):
                    return response
            time.sleep(self._retry_delay(attempt))
            attempt += 1

    def _request(self, call: Call[T]) -> T:
        result = self._result(call, self._send(call, stream=False))
        if isinstance(result, Page):
            page_call: Call[Any] = call
            result._fetch = lambda after: self._request(page_call.with_params(after=after))
        return result

    def _open_stream(self, call: Call[Any]) -> httpx.Response:
        response = self._send(call, stream=True)
        if not response.is_success:
            raise self._error(response)
        return response

    def _stream(
        self,
        call: Call[Any],
        *,
        until_done: bool,
        run_id: str | None = None,
        after: str | int | None = None,
    ) -> Stream:
        return Stream(
            self._open_stream,
            call,
            until_done=until_done,
            run_id=run_id,
            after=after,
            response=self._open_stream(call),
            delay=self._retry_delay,
        )

    def _run_plan(
        self,
        plan: _loops.Plan[T],
        targets: _loops.Targets,
        on_event: Callable[[Event], Any] | None = None,
    ) -> T:
        def perform(step: _loops.Step) -> Any:
            if isinstance(step, _loops.Fetch):
                return self._request(step.call)
            if isinstance(step, _loops.Sleep):
                time.sleep(step.seconds)
                return None
            if isinstance(step, _loops.RunTools):
                return [_loops.run_tool(targets(action), action) for action in step.actions]
            return self._stream_turn(step.call, on_event)

        return _loops.drive(plan, perform)

    def _stream_turn(self, call: Call[Any], on_event: Callable[[Event], Any] | None) -> TurnResult:
        with self._stream(call, until_done=True) as stream:
            for event in stream:
                if on_event is not None:
                    on_event(event)
            return stream.final_result(raise_on_failure=False)  # respond() decides
