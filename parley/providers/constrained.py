"""Tool calls on a model without native tool calling, through constrained output.

Many local models have no tool calling of their own, or a chat template that drops the
request's ``tools`` and the ``tool`` role without a word. ``ConstrainedTools`` wraps the
adapter of such a model (``ProviderRegistry.resolve`` does, for a model whose
``tool_calls`` setting is ``constrained``) and asks the model instead for a JSON answer
that a schema holds to (``response_format``, which llama.cpp, vLLM, Ollama and others
enforce while the model writes it):

* ``{"answer": "..."}``: a reply (or the caller's own JSON, when it asked for a format);
* ``{"tool": NAME, "arguments": {...}}``: a call of one offered tool, its arguments held
  to that tool's own parameter schema;
* ``{"calls": [{"tool": ..., "arguments": ...}, ...]}``: several calls, where
  ``parallel_tool_calls`` allows them.

``tool_choice`` picks the branches: ``auto`` all, ``required`` the calls only, ``none``
none (no schema: a plain reply), a function or ``allowed_tools`` only those tools. A short
system instruction names the tools and the forms, for small models that need it. Earlier
calls and results in the history become plain text such a model can read: the call as the
JSON it would have written, the result in a user message that names the call.

The answer is read as it streams: a reply's text is given out as it comes; calls become
``ToolCallPart`` events once the object is whole (never a half-built call), with
``finish_reason`` ``tool_calls``. An answer that is not such JSON fails the call with
``UpstreamError`` (``upstream_malformed``). A call cut short at the output token limit is
no call: the finish (``length``) is passed on and the turn ends incomplete.
"""

from __future__ import annotations

import copy
import dataclasses
import secrets
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import orjson

from parley.events import FinishPart, ModelEvent, TextPart, ToolCallPart
from parley.providers.base import ChatMessage, ModelOptions, ModelRequest, Provider
from parley.providers.json_answer import AnswerScanner, not_json
from parley.providers.options import offered_tools, tool_rule
from parley.types import Role, ToolCall, ToolSpec

__all__ = ["ConstrainedTools", "Plan", "constrained_request", "plain_history", "read_answer"]

#: The ``name`` of the response format that carries the choice.
FORMAT_NAME = "answer_or_tool_call"


@dataclass(frozen=True, slots=True)
class Plan:
    """What a constrained answer may be: a reply (``answer``), calls of ``tools`` (one, or
    several at once when ``several``); ``json_answer``: the reply is the caller's JSON
    (any JSON value its format allows), not a string."""

    tools: tuple[str, ...]
    answer: bool
    several: bool
    json_answer: bool


class ConstrainedTools:
    """A ``Provider`` that gets tool calls from ``inner``'s model as constrained JSON.

    Every other attribute is ``inner``'s (its model list, windows, embeddings,
    ``aclose``...), so the registry and the engine read the adapter through it as they
    would read the adapter itself."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (a copy being made): no loop through itself
            raise AttributeError(name)
        return getattr(self.inner, name)

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        """The inner model's events for ``request`` asked as constrained JSON, its answer
        read back into text and tool calls."""
        sent, plan = constrained_request(request)
        async with aclosing(self.inner.stream(sent)) as events:
            if plan is None:
                async for event in events:
                    yield event
                return
            async for event in read_answer(events, plan):
                yield event


# ----------------------------------------------------------------------------- request


def constrained_request(request: ModelRequest) -> tuple[ModelRequest, Plan | None]:
    """The request as a model without tool calling is sent it, and what its answer may be
    (None: no tool may be called, and the answer is the model's own, unread)."""
    messages = plain_history(request.messages)
    rule = tool_rule(request.options.tool_choice)
    tools = offered_tools(request.tools, rule)
    if not tools:
        options = dataclasses.replace(request.options, tool_choice=None, parallel_tool_calls=None)
        return _without_tools(request, messages, options), None
    fmt = request.options.response_format
    answer_schema = _answer_schema(fmt)
    plan = Plan(
        tools=tuple(tool.function.name for tool in tools),
        answer=rule is None or rule.mode != "required",
        several=request.options.parallel_tool_calls is not False,
        json_answer=answer_schema is not None,
    )
    schema = choice_schema(tools, plan, answer_schema)
    options = dataclasses.replace(
        request.options,
        tool_choice=None,
        parallel_tool_calls=None,
        response_format={
            "type": "json_schema",
            "name": FORMAT_NAME,
            "schema": schema,
            "strict": True,
        },
    )
    instructions = instruction(tools, plan, answer_schema)
    if request.instructions:
        instructions = f"{request.instructions}\n\n{instructions}"
    sent = _without_tools(request, messages, options)
    return dataclasses.replace(sent, instructions=instructions), plan


def _without_tools(
    request: ModelRequest, messages: list[ChatMessage], options: ModelOptions
) -> ModelRequest:
    return dataclasses.replace(request, messages=messages, tools=[], options=options)


def _answer_schema(fmt: dict[str, Any] | None) -> dict[str, Any] | None:
    """The schema of a reply in the caller's JSON format; None for plain text."""
    kind = fmt.get("type") if fmt else None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema" and fmt is not None:
        schema = fmt.get("schema")
        return schema if isinstance(schema, dict) else {}
    return None


def choice_schema(
    tools: list[ToolSpec], plan: Plan, answer_schema: dict[str, Any] | None
) -> dict[str, Any]:
    """The JSON Schema of the answer: ``anyOf`` the forms the plan allows. Each tool's
    parameter schema is nested as it is, its ``$defs`` moved to the root (a ``$ref`` is
    read from the root of the whole schema)."""
    defs: dict[str, Any] = {}
    calls = [_call_schema(tool, f"tool{i}_", defs) for i, tool in enumerate(tools)]
    branches: list[dict[str, Any]] = []
    if plan.answer:
        answer = {"type": "string"} if answer_schema is None else answer_schema
        branches.append(_object({"answer": _hoisted(answer, "answer_", defs)}))
    branches += calls
    if plan.several:
        items = calls[0] if len(calls) == 1 else {"anyOf": calls}
        branches.append(_object({"calls": {"type": "array", "items": items, "minItems": 1}}))
    schema: dict[str, Any] = branches[0] if len(branches) == 1 else {"anyOf": branches}
    if defs:
        schema = {**schema, "$defs": defs}
    return schema


def _call_schema(tool: ToolSpec, prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    parameters = _hoisted(tool.function.parameters, prefix, defs)
    return _object({"tool": {"const": tool.function.name}, "arguments": parameters})


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    """An object of exactly these properties, in this order (llama.cpp writes the required
    properties in the order given: a call's tool name comes before its arguments)."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


_DEF_KEYS = ("$defs", "definitions")


def _hoisted(schema: dict[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """``schema`` to be nested in another, whose root a ``$ref`` is read from: its
    definitions moved into ``defs`` under ``prefix``, and its references rewritten to
    them (one to ``#`` or into the schema itself, to a copy of it in ``defs``)."""
    if not _refers(schema):
        return schema
    copied = copy.deepcopy(schema)
    moved: dict[str, str] = {}
    for key in _DEF_KEYS:
        for name, definition in (copied.pop(key, None) or {}).items():
            moved[f"#/{key}/{name}"] = f"#/$defs/{prefix}{name}"
            defs[f"{prefix}{name}"] = definition
    root = f"#/$defs/{prefix}root"

    def rename(ref: str) -> str:
        for old, new in moved.items():
            if ref == old or ref.startswith(old + "/"):
                return new + ref[len(old) :]
        return root + ref[1:] if ref == "#" or ref.startswith("#/") else ref

    for name in moved.values():
        key = name.removeprefix("#/$defs/")
        defs[key] = _renamed(defs[key], rename)
    nested: dict[str, Any] = _renamed(copied, rename)
    if _refers(defs, root) or _refers(nested, root):
        defs[f"{prefix}root"] = nested
    return nested


def _refers(node: Any, root: str | None = None) -> bool:
    """Whether ``node`` holds a local ``$ref`` (when ``root`` is given, one into it)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(root or "#"):
            return True
        return any(_refers(value, root) for value in node.values())
    if isinstance(node, list):
        return any(_refers(value, root) for value in node)
    return False


def _renamed(node: Any, rename: Callable[[str], str]) -> Any:
    if isinstance(node, dict):
        out = {key: _renamed(value, rename) for key, value in node.items()}
        if isinstance(ref := node.get("$ref"), str):
            out["$ref"] = rename(ref)
        return out
    if isinstance(node, list):
        return [_renamed(value, rename) for value in node]
    return node


def instruction(tools: list[ToolSpec], plan: Plan, answer_schema: dict[str, Any] | None) -> str:
    """The system instruction that names the tools and the forms of the answer."""
    lines = ["Reply with one JSON object and nothing else, in one of these forms:"]
    if plan.answer:
        if answer_schema is None:
            lines.append('{"answer": "..."} to answer the user, when you need no tool.')
        else:
            lines.append(
                '{"answer": ...} to answer the user, when you need no tool; the answer is '
                "JSON of this schema: " + _dumps(answer_schema)
            )
    lines.append('{"tool": "NAME", "arguments": {...}} to call one tool.')
    if plan.several:
        lines.append('{"calls": [{"tool": "NAME", "arguments": {...}}, ...]} to call several.')
    if not plan.answer:
        lines.append("You must call a tool now.")
    lines.append("A tool's result comes back in the next user message.")
    lines.append("Tools:")
    for tool in tools:
        function = tool.function
        described = f": {function.description}" if function.description else ""
        lines.append(f"- {function.name}{described}")
        lines.append(f"  arguments: {_dumps(function.parameters)}")
    return "\n".join(lines)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# ----------------------------------------------------------------------------- history


def plain_history(messages: list[ChatMessage]) -> list[ChatMessage]:
    """``messages`` without tool calls and the ``tool`` role: an assistant message's calls
    become the JSON the model would have written for them, and the results that follow
    one user message, each result under a line that names its call."""
    calls: dict[str, tuple[str, int, int]] = {}  # call id -> name, number, how many
    out: list[ChatMessage] = []
    results: list[str] = []
    for message in messages:
        if message.role == Role.TOOL:
            results.append(_result_text(message, calls))
            continue
        if results:
            out.append(ChatMessage(role=Role.USER, content="\n\n".join(results)))
            results = []
        if message.role == Role.ASSISTANT and message.tool_calls:
            for number, call in enumerate(message.tool_calls, 1):
                calls[call.id] = (call.name, number, len(message.tool_calls))
            out.append(_calls_message(message))
        else:
            out.append(message)
    if results:
        out.append(ChatMessage(role=Role.USER, content="\n\n".join(results)))
    return out


def _calls_message(message: ChatMessage) -> ChatMessage:
    said = call_json(message.tool_calls)
    content = f"{message.content}\n\n{said}" if message.content else said
    return dataclasses.replace(message, content=content, tool_calls=[])


def call_json(calls: list[ToolCall]) -> str:
    """The JSON a model writes for ``calls`` (``{"tool", "arguments"}`` for one)."""
    one = [{"tool": call.name, "arguments": call.arguments} for call in calls]
    return _dumps(one[0] if len(one) == 1 else {"calls": one})


def _result_text(message: ChatMessage, calls: dict[str, tuple[str, int, int]]) -> str:
    known = calls.get(message.tool_call_id or "")
    if known is None:
        head = "Result of a tool call:"
    elif known[2] == 1:
        head = f"Result of {known[0]}:"
    else:
        head = f"Result of call {known[1]} ({known[0]}):"
    return f"{head}\n{message.content}"


# ---------------------------------------------------------------------------- response


async def read_answer(
    events: AsyncGenerator[ModelEvent, None], plan: Plan
) -> AsyncGenerator[ModelEvent, None]:
    """The model's events with its JSON answer read: a reply's text as it comes, calls
    once the object is whole; every other event as it is."""
    scanner = AnswerScanner()
    read = False
    async for event in events:
        if type(event) is TextPart:
            text = scanner.feed(event.text)
            if text:
                yield TextPart(text)
        elif type(event) is FinishPart and not read:
            read = True
            if event.reason == "length":  # cut short: a reply so far, never a call
                yield event
                continue
            parts = _finished(scanner, plan)
            for part in parts:
                yield part
            calls = any(type(part) is ToolCallPart for part in parts)
            yield FinishPart("tool_calls") if calls else event
        else:
            yield event
    if not read:
        for part in _finished(scanner, plan):
            yield part


def _finished(scanner: AnswerScanner, plan: Plan) -> list[ModelEvent]:
    """What the whole answer adds: the calls, or the reply's text not given out yet."""
    raw = scanner.text
    if not raw.strip():
        return []  # nothing said: the engine tells an empty answer as it does for any model
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise not_json("text that is not valid JSON") from None
    if not isinstance(answer, dict):
        raise not_json("JSON that is not an object")
    if set(answer) == {"answer"}:
        return _reply(answer["answer"], scanner, plan)
    return [
        ToolCallPart(index=index, id=f"call_{secrets.token_hex(12)}", name=name, arguments=args)
        for index, (name, args) in enumerate(_calls(answer, plan))
    ]


def _reply(value: Any, scanner: AnswerScanner, plan: Plan) -> list[ModelEvent]:
    if not plan.answer:
        raise not_json("a reply where a tool call was required")
    if not plan.json_answer and not isinstance(value, str):
        raise not_json("a reply that is not a string")
    if scanner.answering:
        return []  # given out as it came
    text = value if isinstance(value, str) else _dumps(value)
    return [TextPart(text)] if text else []


def _calls(answer: dict[str, Any], plan: Plan) -> list[tuple[str, str]]:
    """The calls of ``{"tool", "arguments"}`` or ``{"calls": [...]}``: name and arguments
    (a JSON object's text) of each."""
    items: Any = [answer]
    if set(answer) == {"calls"}:
        items = answer["calls"]
        if not plan.several or not isinstance(items, list) or not items:
            raise not_json("a list of calls where it may not give one")
    calls = [_call(item) for item in items]
    for name, _ in calls:
        if name not in plan.tools:
            raise not_json(f"a call of {name!r}, which is not a tool it was offered")
    return calls


def _call(item: Any) -> tuple[str, str]:
    if not isinstance(item, dict) or set(item) != {"tool", "arguments"}:
        raise not_json("an object that is neither a reply nor a tool call")
    name, arguments = item["tool"], item["arguments"]
    if not isinstance(name, str) or not isinstance(arguments, dict):
        raise not_json("a tool call whose tool is not a name or whose arguments are not an object")
    return name, _dumps(arguments)
