"""The resources of ``AsyncClient``: ``_resources`` with ``await``.

Keep the two files side by side: same names, same arguments, same calls.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Unpack, overload

from parley.sdk import _calls, _loops
from parley.sdk._calls import (
    AssistantFields,
    MessageContent,
    Order,
    ReasoningEffort,
    ResponseFormat,
    ToolInput,
)
from parley.sdk._requester import AsyncRequester, AsyncResource
from parley.sdk.models import (
    Action,
    ApiKey,
    ApiKeyCreated,
    Assistant,
    Deleted,
    Message,
    Page,
    Run,
    Thread,
    TurnResult,
    User,
    UserCreated,
)
from parley.sdk.stream import AsyncStream


class Assistants(AsyncResource):
    async def create(
        self,
        *,
        model: str,
        name: str | None = None,
        description: str | None = None,
        instructions: str | None = None,
        tools: Iterable[ToolInput] | None = None,
        parameters: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        response_format: ResponseFormat | None = None,
        reasoning_effort: ReasoningEffort | None = None,
    ) -> Assistant:
        """Create an assistant. ``tools`` may be OpenAI-shape or flat
        ``{"name", "description", "parameters"}`` dicts, Python functions or ``Tool``s;
        ``parameters``: other parameters its runs send the model (``max_tokens``, ...)."""
        fields = AssistantFields(
            name=name,
            description=description,
            instructions=instructions,
            tools=tools,
            parameters=parameters,
            metadata=metadata,
            temperature=temperature,
            top_p=top_p,
            response_format=response_format,
            reasoning_effort=reasoning_effort,
        )
        return await self._client._request(_calls.assistants_create(model=model, fields=fields))

    async def retrieve(self, assistant_id: str) -> Assistant:
        return await self._client._request(_calls.assistants_retrieve(assistant_id))

    async def update(self, assistant_id: str, **fields: Unpack[AssistantFields]) -> Assistant:
        """Change some of its fields (those of ``create``); ``None`` clears one."""
        return await self._client._request(_calls.assistants_update(assistant_id, fields))

    async def list(
        self, *, limit: int | None = None, after: str | None = None, order: Order | None = None
    ) -> Page[Assistant]:
        return await self._client._request(
            _calls.assistants_list(limit=limit, after=after, order=order)
        )

    async def delete(self, assistant_id: str) -> Deleted:
        return await self._client._request(_calls.assistants_delete(assistant_id))


class Threads(AsyncResource):
    async def create(
        self,
        *,
        messages: Iterable[Mapping[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Thread:
        """A new thread, with its first ``messages`` if given: each
        ``{"content": ..., "role": "user", "images": [...], "metadata": {...}}``
        (only ``content`` is needed)."""
        return await self._client._request(
            _calls.threads_create(messages=messages, metadata=metadata)
        )

    async def retrieve(self, thread_id: str) -> Thread:
        return await self._client._request(_calls.threads_retrieve(thread_id))

    async def update(self, thread_id: str, *, metadata: dict[str, Any] | None = None) -> Thread:
        """Replace the thread's metadata."""
        return await self._client._request(_calls.threads_update(thread_id, metadata=metadata))

    async def list(
        self,
        *,
        limit: int | None = None,
        after: str | None = None,
        order: Order | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Page[Thread]:
        """``Threads.list`` for asyncio."""
        return await self._client._request(
            _calls.threads_list(limit=limit, after=after, order=order, metadata=metadata)
        )

    async def delete(self, thread_id: str) -> Deleted:
        return await self._client._request(_calls.threads_delete(thread_id))


class Messages(AsyncResource):
    async def create_message(
        self,
        *,
        thread_id: str,
        content: MessageContent,
        role: str = "user",
        images: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """Add a message to a thread (``POST /v1/messages``). ``content``: its text, or
        parts as the Assistants API takes them; ``images``: URLs, ``data:`` (see
        ``parley.sdk.image_data_url``) or ``http(s)://``."""
        return await self._client._request(
            _calls.messages_create(
                thread_id=thread_id,
                content=content,
                role=role,
                images=images,
                metadata=metadata,
            )
        )

    async def list(
        self,
        *,
        thread_id: str,
        limit: int | None = None,
        after: str | None = None,
        before: str | None = None,
        order: Order = "asc",
        run_id: str | None = None,
        all_messages: bool = True,
    ) -> Page[Message]:
        """A thread's messages, oldest first unless ``order="desc"``; with ``run_id``,
        those that run wrote. Every message by default: tool results, assistant messages
        that hold only tool calls and system messages too; ``all_messages=False`` lists
        what the Assistants API lists (user messages and assistant messages with text or
        images)."""
        return await self._client._request(
            _calls.messages_list(
                thread_id=thread_id,
                limit=limit,
                after=after,
                before=before,
                order=order,
                run_id=run_id,
                all_messages=all_messages,
            )
        )

    async def retrieve(self, message_id: str, *, thread_id: str | None = None) -> Message:
        return await self._client._request(
            _calls.messages_retrieve(message_id, thread_id=thread_id)
        )

    async def update(
        self, message_id: str, *, thread_id: str, metadata: dict[str, Any] | None = None
    ) -> Message:
        """Replace the message's metadata."""
        return await self._client._request(
            _calls.messages_update(message_id, thread_id=thread_id, metadata=metadata)
        )

    async def delete(self, message_id: str, *, thread_id: str) -> Deleted:
        """Delete a message. An assistant message that holds tool calls keeps them and
        loses its text; a tool result cannot be deleted alone."""
        return await self._client._request(_calls.messages_delete(message_id, thread_id=thread_id))


class Runs(AsyncResource):
    async def create_run(
        self,
        *,
        assistant_id: str,
        thread_id: str,
        model: str | None = None,
        instructions: str | None = None,
        tools: Iterable[ToolInput] | None = None,
    ) -> Run:
        """Create a ``queued`` run; stream its turns with ``completions.create`` or
        ``synchronous_inference_stream``."""
        return await self._client._request(
            _calls.runs_create(
                assistant_id=assistant_id,
                thread_id=thread_id,
                model=model,
                instructions=instructions,
                tools=tools,
            )
        )

    async def retrieve(self, run_id: str) -> Run:
        return await self._client._request(_calls.runs_retrieve(run_id))

    async def list(
        self,
        *,
        thread_id: str | None = None,
        limit: int | None = None,
        after: str | None = None,
        order: Order | None = None,
    ) -> Page[Run]:
        return await self._client._request(
            _calls.runs_list(thread_id=thread_id, limit=limit, after=after, order=order)
        )

    async def cancel(self, run_id: str) -> Run:
        return await self._client._request(_calls.runs_cancel(run_id))

    async def submit_tool_outputs(
        self, run_id: str, tool_outputs: Iterable[Mapping[str, Any]]
    ) -> Run:
        """Submit ``[{"tool_call_id": ..., "output": ...}, ...]`` in one atomic call."""
        return await self._client._request(_calls.runs_submit_tool_outputs(run_id, tool_outputs))

    async def events(self, run_id: str, *, after: str | int | None = None) -> AsyncStream:
        """The run's event log after event ``after`` (all of it by default), then its live
        events, until the server ends the stream; one ``done`` per turn."""
        call = _calls.runs_events(run_id, after=after)
        return await self._client._stream(call, until_done=False, run_id=run_id, after=after)

    async def poll_and_execute_action(
        self,
        *,
        run_id: str,
        tool_executor: _loops.ToolExecutor,
        thread_id: str | None = None,
        assistant_id: str | None = None,
        timeout: float = 60.0,  # noqa: ASYNC109 - the seed's name for the wait limit
        interval: float = 1.0,
    ) -> bool:
        """Wait until the run needs tool outputs, run ``tool_executor(name, arguments)`` for
        each pending action and submit all outputs in one call. An executor that takes a
        third argument gets the action too (``ActionItem``: ``action_id``, ``tool_call_id``).

        Returns True when outputs were submitted, False when the run reached a final status
        or ``timeout`` passed first (or nothing was pending). A non-string result is sent as
        JSON; an exception becomes the output ``"Error: <type>: <message>"``.
        ``thread_id`` and ``assistant_id`` are accepted for the seed's call shape; the run id
        alone identifies the run.
        """
        plan = _loops.poll_and_execute_plan(run_id, timeout=timeout, interval=interval)
        return await self._client._run_plan(
            plan, lambda action: _loops.executor_target(tool_executor, action)
        )


class Actions(AsyncResource):
    async def list(self, *, run_id: str, status: str | None = "pending") -> builtins.list[Action]:
        """A run's actions (``status=None`` for all of them), oldest first."""
        return await self._client._request(_calls.actions_list(run_id=run_id, status=status))


class Models(AsyncResource):
    async def list(self) -> dict[str, Any]:
        """The server's providers, whether each is ready, and their models (``GET /v1/models``:
        ``{"data": [{"id", "provider", ...}], "providers": [{"name", "kind", "ready",
        "problem", "models_listed"}]}``)."""
        return await self._client._request(_calls.models_list())


class Completions(AsyncResource):
    @overload
    async def create(
        self,
        *,
        run_id: str,
        thread_id: str | None = None,
        assistant_id: str | None = None,
        message_id: str | None = None,
        stream: Literal[True] = True,
    ) -> AsyncStream: ...

    @overload
    async def create(
        self,
        *,
        run_id: str,
        thread_id: str | None = None,
        assistant_id: str | None = None,
        message_id: str | None = None,
        stream: Literal[False],
    ) -> TurnResult: ...

    async def create(
        self,
        *,
        run_id: str,
        thread_id: str | None = None,
        assistant_id: str | None = None,
        message_id: str | None = None,
        stream: bool = True,
    ) -> AsyncStream | TurnResult:
        """Run the next turn of a ``queued`` run (flow A): its event stream, or the whole
        turn at once with ``stream=False``."""
        call = _calls.completions(
            run_id=run_id,
            thread_id=thread_id,
            assistant_id=assistant_id,
            message_id=message_id,
            stream=stream,
        )
        if not stream:
            return await self._client._request(call)
        return await self._client._stream(call, until_done=True, run_id=run_id)


class AsyncInferenceStream(AsyncResource):
    """Flow A's streaming helper: ``setup(...)``, then ``async for event in
    stream.stream_chunks()``, then ``await close()``.

    ``client.inference_stream`` (alias ``synchronous_inference_stream``) gives a new one on
    each access. The request is sent at the first iteration of ``stream_chunks()``.
    """

    def __init__(self, client: AsyncRequester) -> None:
        super().__init__(client)
        self._params: dict[str, Any] | None = None
        self._streams: builtins.list[AsyncStream] = []

    def setup(
        self,
        *,
        run_id: str,
        thread_id: str | None = None,
        assistant_id: str | None = None,
        message_id: str | None = None,
    ) -> None:
        self._params = {
            "run_id": run_id,
            "thread_id": thread_id,
            "assistant_id": assistant_id,
            "message_id": message_id,
        }

    def stream_chunks(self) -> AsyncStream:
        """The turn's events from ``POST /v1/completions``: ``async for event in ...``."""
        if self._params is None:
            raise RuntimeError("call setup(run_id=..., ...) before stream_chunks()")
        call = _calls.completions(**self._params, stream=True)
        stream = self._client._lazy_stream(call, run_id=self._params["run_id"])
        self._streams.append(stream)
        return stream

    async def aclose(self) -> None:
        """Close every stream this helper opened."""
        while self._streams:
            await self._streams.pop().aclose()

    async def close(self) -> None:
        """Alias of ``aclose()``, for code ported from the blocking client."""
        await self.aclose()


class Users(AsyncResource):
    async def me(self) -> User:
        return await self._client._request(_calls.users_me())

    async def create(self, *, name: str, is_admin: bool = False) -> UserCreated:
        """Create a user (admin only); the answer holds the user's first API key."""
        return await self._client._request(_calls.users_create(name=name, is_admin=is_admin))


class ApiKeys(AsyncResource):
    async def create(self, *, user_id: str | None = None) -> ApiKeyCreated:
        return await self._client._request(_calls.api_keys_create(user_id=user_id))

    async def list(self) -> builtins.list[ApiKey]:
        return await self._client._request(_calls.api_keys_list())

    async def revoke(self, key_id: str) -> ApiKey:
        return await self._client._request(_calls.api_keys_revoke(key_id))
