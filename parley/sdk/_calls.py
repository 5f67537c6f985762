"""Every endpoint of ``docs/api.md`` as a ``Call``: method, path, query, body and parser.

No I/O here: ``Client`` and ``AsyncClient`` both send these same descriptions, which is
what keeps them alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, Literal, TypedDict, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter

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
from parley.sdk.tools import Tool

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

Order = Literal["asc", "desc"]
#: A tool for an assistant or a run: a spec (dict or pydantic model), a Python function,
#: or a ``Tool`` (``parley.sdk.tools``).
ToolInput = Mapping[str, Any] | BaseModel | Tool | Callable[..., Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request to send, and how to read its JSON answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    json: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    #: A ``multipart/form-data`` body instead of JSON: its fields and its files
    #: (``{name: (filename, content, media type)}``).
    form: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None

    @property
    def idempotent(self) -> bool:
        return self.method == "GET"

    def with_params(self, **params: Any) -> Call[T]:
        return dataclasses.replace(self, params={**(self.params or {}), **params})


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
#: ``"auto"``, or ``{"type": "text" | "json_object" | "json_schema", ...}``.
ResponseFormat = str | dict[str, Any]
#: A message's content: its text, or parts (``{"type": "text", "text": ...}``,
#: ``{"type": "image_url", "image_url": {"url": ...}}``) as the Assistants API takes them.
MessageContent = str | Sequence[Mapping[str, Any]]


class AssistantFields(TypedDict, total=False):
    """The fields ``assistants.update(id, **fields)`` may change."""

    name: str | None
    description: str | None
    model: str
    instructions: str | None
    tools: Iterable[ToolInput] | None
    parameters: dict[str, Any] | None
    metadata: dict[str, Any] | None
    temperature: float | None
    top_p: float | None
    response_format: ResponseFormat | None
    reasoning_effort: ReasoningEffort | None


def _model(cls: type[M]) -> Callable[[Any], M]:
    return cls.model_validate


def _page(cls: type[M]) -> Callable[[Any], Page[M]]:
    return Page[cls].model_validate  # type: ignore[valid-type]


_LIST_ADAPTERS: dict[type[BaseModel], TypeAdapter[Any]] = {}


def _items(cls: type[M]) -> Callable[[Any], list[M]]:
    """A list answer: the list envelope (``{"data": [...]}``) or a bare JSON array."""
    adapter = _LIST_ADAPTERS.get(cls)
    if adapter is None:
        adapter = _LIST_ADAPTERS[cls] = TypeAdapter(list[cls])  # type: ignore[valid-type]

    def parse(body: Any) -> list[M]:
        data = body.get("data", []) if isinstance(body, dict) else body
        items: list[M] = adapter.validate_python(data)
        return items

    return parse


#: A JSON object answer kept as a dict; anything else is a ``ValidationError``.
_object = TypeAdapter(dict[str, Any]).validate_python


def _nothing(body: Any) -> None:
    return None


def _id(value: str, what: str) -> str:
    """An id made safe for a path segment; an empty id would silently hit the list route."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    return quote(value, safe="")


def _compact(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def _list_params(limit: int | None, after: str | None, order: Order | None) -> dict[str, Any]:
    return _compact(limit=limit, after=after, order=order)


#: The kinds of tools the server runs itself, sent as they are given.
HOSTED_TYPES = frozenset({"mcp", "file_search", "code_interpreter"})


def normalize_tools(tools: Iterable[ToolInput]) -> list[dict[str, Any]]:
    """Tools in the OpenAI shape the API takes.

    Accepts ``{"type": "function", "function": {...}}`` dicts as they are, flat
    ``{"name", "description", "parameters"}`` dicts (wrapped), pydantic models of either
    shape (``parley.types.ToolSpec`` / ``FunctionSpec``), and Python functions or ``Tool``s
    (their schema from the signature: ``parley.sdk.tools``); an ``{"type": "mcp", ...}``
    tool, a ``{"type": "file_search", "vector_store_ids": [...]}`` tool or a
    ``{"type": "code_interpreter", "container": ...}`` tool, which the server runs, as it
    is.
    """
    out: list[dict[str, Any]] = []
    for tool in tools:
        if isinstance(tool, BaseModel):
            spec = tool.model_dump()
        elif isinstance(tool, Mapping):
            spec = dict(tool)
        else:
            spec = (tool if isinstance(tool, Tool) else Tool.of(tool)).definition()
        if spec.get("type") in HOSTED_TYPES:  # a tool the server runs: as given
            out.append(spec)
        elif "function" in spec:
            out.append({"type": "function", **spec})
        elif "name" in spec:
            out.append({"type": "function", "function": spec})
        else:
            raise ValueError(f"a tool needs a 'name' or a 'function' entry, got {sorted(spec)}")
    return out


def _tools(tools: Iterable[ToolInput] | None) -> list[dict[str, Any]] | None:
    return None if tools is None else normalize_tools(tools)


# ------------------------------------------------------------------------ users and keys


def users_me() -> Call[User]:
    return Call("GET", "/v1/me", _model(User))


def users_create(*, name: str, is_admin: bool) -> Call[UserCreated]:
    return Call("POST", "/v1/users", _model(UserCreated), json={"name": name, "is_admin": is_admin})


def api_keys_create(*, user_id: str | None) -> Call[ApiKeyCreated]:
    return Call("POST", "/v1/api_keys", _model(ApiKeyCreated), json=_compact(user_id=user_id))


def api_keys_list() -> Call[list[ApiKey]]:
    return Call("GET", "/v1/api_keys", _items(ApiKey))


def api_keys_revoke(key_id: str) -> Call[ApiKey]:
    return Call("DELETE", f"/v1/api_keys/{_id(key_id, 'key_id')}", _model(ApiKey))


# ---------------------------------------------------------------------------- assistants


def assistants_create(*, model: str, fields: AssistantFields) -> Call[Assistant]:
    """A new assistant: its ``model`` and any of ``AssistantFields`` (``None`` ones are
    not sent)."""
    body = _compact(model=model, **{**fields, "tools": _tools(fields.get("tools"))})
    return Call("POST", "/v1/assistants", _model(Assistant), json=body)


def assistants_retrieve(assistant_id: str) -> Call[Assistant]:
    return Call("GET", f"/v1/assistants/{_id(assistant_id, 'assistant_id')}", _model(Assistant))


def assistants_update(assistant_id: str, fields: AssistantFields) -> Call[Assistant]:
    unknown = set(fields) - set(AssistantFields.__annotations__)
    if unknown:
        raise TypeError(f"assistants.update() got unknown fields: {', '.join(sorted(unknown))}")
    body: dict[str, Any] = dict(fields)
    if body.get("tools") is not None:
        body["tools"] = normalize_tools(body["tools"])
    path = f"/v1/assistants/{_id(assistant_id, 'assistant_id')}"
    return Call("POST", path, _model(Assistant), json=body)


def assistants_list(
    *, limit: int | None, after: str | None, order: Order | None
) -> Call[Page[Assistant]]:
    params = _list_params(limit, after, order)
    return Call("GET", "/v1/assistants", _page(Assistant), params=params)


def assistants_delete(assistant_id: str) -> Call[Deleted]:
    return Call("DELETE", f"/v1/assistants/{_id(assistant_id, 'assistant_id')}", _model(Deleted))


# ------------------------------------------------------------------------------- threads


def threads_create(
    *, messages: Iterable[Mapping[str, Any]] | None, metadata: dict[str, Any] | None
) -> Call[Thread]:
    """A new thread, with its first ``messages`` (``{"content", "role", "images"}``, as
    ``messages.create_message`` takes them)."""
    body = _compact(
        messages=None if messages is None else [_message_body(**m) for m in messages],
        metadata=metadata,
    )
    return Call("POST", "/v1/threads", _model(Thread), json=body)


def threads_retrieve(thread_id: str) -> Call[Thread]:
    return Call("GET", f"/v1/threads/{_id(thread_id, 'thread_id')}", _model(Thread))


def threads_list(
    *,
    limit: int | None,
    after: str | None,
    order: Order | None,
    metadata: Mapping[str, str] | None = None,
) -> Call[Page[Thread]]:
    params = _list_params(limit, after, order)
    for key, value in (metadata or {}).items():
        if not isinstance(value, str):
            raise TypeError(f"metadata filter {key!r}: values are strings, got {value!r}")
        params[f"metadata[{key}]"] = value
    return Call("GET", "/v1/threads", _page(Thread), params=params)


def threads_update(thread_id: str, *, metadata: dict[str, Any] | None) -> Call[Thread]:
    path = f"/v1/threads/{_id(thread_id, 'thread_id')}"
    return Call("POST", path, _model(Thread), json=_compact(metadata=metadata))


def threads_delete(thread_id: str) -> Call[Deleted]:
    return Call("DELETE", f"/v1/threads/{_id(thread_id, 'thread_id')}", _model(Deleted))


# ------------------------------------------------------------------------------ messages


def _images(images: Sequence[str]) -> list[dict[str, str]]:
    if isinstance(images, str):
        raise TypeError("images is a list of URLs (data: or http(s):), not one string")
    return [{"url": url} for url in images]


def _message_body(
    *,
    content: MessageContent,
    role: str = "user",
    images: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if not isinstance(content, str):
        content = [dict(part) for part in content]
    body: dict[str, Any] = {"content": content, "role": role}
    if images:
        body["images"] = _images(images)
    if metadata is not None:
        body["metadata"] = metadata
    return body


def messages_create(
    *,
    thread_id: str,
    content: MessageContent,
    role: str,
    images: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Call[Message]:
    _id(thread_id, "thread_id")
    body = _message_body(content=content, role=role, images=images, metadata=metadata)
    return Call("POST", "/v1/messages", _model(Message), json={"thread_id": thread_id, **body})


def _thread_messages(thread_id: str) -> str:
    return f"/v1/threads/{_id(thread_id, 'thread_id')}/messages"


def messages_list(
    *,
    thread_id: str,
    limit: int | None,
    after: str | None,
    order: Order | None,
    before: str | None = None,
    run_id: str | None = None,
    all_messages: bool = True,
) -> Call[Page[Message]]:
    """A thread's messages. ``all_messages`` (Parley) lists tool results, assistant
    messages that hold only tool calls and system messages too; the server lists them only
    when asked."""
    params = {**_list_params(limit, after, order), **_compact(before=before, run_id=run_id)}
    if all_messages:
        params["all_messages"] = "true"
    return Call("GET", _thread_messages(thread_id), _page(Message), params=params)


def messages_retrieve(message_id: str, *, thread_id: str | None = None) -> Call[Message]:
    if thread_id is None:
        return Call("GET", f"/v1/messages/{_id(message_id, 'message_id')}", _model(Message))
    path = f"{_thread_messages(thread_id)}/{_id(message_id, 'message_id')}"
    return Call("GET", path, _model(Message))


def messages_update(
    message_id: str, *, thread_id: str, metadata: dict[str, Any] | None
) -> Call[Message]:
    path = f"{_thread_messages(thread_id)}/{_id(message_id, 'message_id')}"
    return Call("POST", path, _model(Message), json=_compact(metadata=metadata))


def messages_delete(message_id: str, *, thread_id: str) -> Call[Deleted]:
    path = f"{_thread_messages(thread_id)}/{_id(message_id, 'message_id')}"
    return Call("DELETE", path, _model(Deleted))


# ---------------------------------------------------------------------------------- runs


def runs_create(
    *,
    assistant_id: str,
    thread_id: str,
    model: str | None,
    instructions: str | None,
    tools: Iterable[ToolInput] | None,
) -> Call[Run]:
    body = _compact(
        thread_id=thread_id,
        assistant_id=assistant_id,
        model=model,
        instructions=instructions,
        tools=_tools(tools),
    )
    return Call("POST", "/v1/runs", _model(Run), json=body)


def runs_retrieve(run_id: str) -> Call[Run]:
    return Call("GET", f"/v1/runs/{_id(run_id, 'run_id')}", _model(Run))


def runs_list(
    *, thread_id: str | None, limit: int | None, after: str | None, order: Order | None
) -> Call[Page[Run]]:
    params = {**_compact(thread_id=thread_id), **_list_params(limit, after, order)}
    return Call("GET", "/v1/runs", _page(Run), params=params)


def runs_cancel(run_id: str) -> Call[Run]:
    return Call("POST", f"/v1/runs/{_id(run_id, 'run_id')}/cancel", _model(Run))


def runs_submit_tool_outputs(run_id: str, tool_outputs: Iterable[Mapping[str, Any]]) -> Call[Run]:
    path = f"/v1/runs/{_id(run_id, 'run_id')}/submit_tool_outputs"
    body = {"tool_outputs": [dict(output) for output in tool_outputs]}
    return Call("POST", path, _model(Run), json=body)


def runs_events(run_id: str, *, after: str | int | None) -> Call[None]:
    """The run's event log, replayed after ``after`` (sent as ``Last-Event-ID``)."""
    headers = {} if after is None else {"Last-Event-ID": str(after)}
    return Call("GET", f"/v1/runs/{_id(run_id, 'run_id')}/events", _nothing, headers=headers)


def models_list() -> Call[dict[str, Any]]:
    return Call("GET", "/v1/models", _object)


def actions_list(*, run_id: str, status: str | None) -> Call[list[Action]]:
    _id(run_id, "run_id")
    params = _compact(run_id=run_id, status=status)
    return Call("GET", "/v1/actions", _items(Action), params=params)


# ----------------------------------------------------------------------- turns (flows A, B)


def completions(
    *,
    run_id: str,
    thread_id: str | None,
    assistant_id: str | None,
    message_id: str | None,
    stream: bool,
) -> Call[TurnResult]:
    _id(run_id, "run_id")
    body = _compact(
        run_id=run_id, thread_id=thread_id, assistant_id=assistant_id, message_id=message_id
    )
    return Call("POST", "/v1/completions", _model(TurnResult), json={**body, "stream": stream})


def process(
    *,
    assistant_id: str | None,
    content: str | None,
    thread_id: str | None,
    run_id: str | None,
    stream: bool,
    images: Sequence[str] | None = None,
) -> Call[TurnResult]:
    if run_id is not None:
        if assistant_id is not None or content is not None or thread_id is not None or images:
            raise ValueError(
                "process(run_id=...) continues a run: give no assistant_id, content, images "
                "or thread_id"
            )
        body: dict[str, Any] = {"run_id": run_id}
    elif assistant_id is None or content is None:
        raise ValueError(
            "process() needs assistant_id and content (turn 1) or run_id (later turns)"
        )
    else:
        body = _compact(assistant_id=assistant_id, content=content, thread_id=thread_id)
        if images:
            body["images"] = _images(images)
    return Call("POST", "/v1/process", _model(TurnResult), json={**body, "stream": stream})


def submit_tool_output(
    *, run_id: str | None, tool_call_id: str | None, action_id: str | None, output: str
) -> Call[Run]:
    if action_id is not None and run_id is None and tool_call_id is None:
        body = {"action_id": action_id, "output": output}
    elif action_id is None and run_id is not None and tool_call_id is not None:
        body = {"run_id": run_id, "tool_call_id": tool_call_id, "output": output}
    else:
        raise ValueError("submit_tool_output() needs run_id and tool_call_id, or action_id alone")
    return Call("POST", "/v1/submit_tool_output", _model(Run), json=body)
