"""The fake upstream's ``constrained[:N]`` mode: a model without tool calling that answers
the JSON a constrained request asks for (``parley.providers.constrained``).

It reads the schema of the request's ``response_format`` (Chat Completions' nesting) as
any model would be held to it: its ``anyOf`` branches are a reply (``{"answer": ...}``),
a call of one tool (``{"tool": {"const": NAME}, "arguments": SCHEMA}``) and, where allowed,
several calls (``{"calls": [...]}``). As the demo model does, it calls the tools the user
names:

* a call is due when the schema offers no reply (a call is required), or when the newest
  message is a user message that names an offered tool and does not follow the model's
  own call (a call's results come back as a user message, and get a reply);
* it calls the tools the message names (all offered ones when it names none), in the
  schema's order, cycling to ``N`` calls (default 1) where several calls are allowed,
  else the first of them; each call's arguments are ``tool_arguments`` of its schema;
* otherwise it replies: after a call, ``results_reply(<the results message>)``; else
  ``CONSTRAINED_TEXT`` (quotes, a backslash, a line break, an accented letter and an
  emoji, to exercise JSON escapes); a reply whose schema is not a string gets
  ``tool_arguments`` of that schema.

The JSON is written with every non-ASCII character escaped (an emoji as a ``\\uXXXX``
surrogate pair) and streamed ``CHUNK`` characters at a time, so escapes are cut across
chunks. A request without such a schema gets None: the fake's plain text answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CHUNK", "CONSTRAINED_TEXT", "constrained_chunks", "results_reply"]

#: ``fake_upstream.tool_arguments``: the arguments of call ``index`` of an OpenAI tool entry.
Arguments = Callable[[Mapping[str, Any] | None, int], dict[str, Any]]

#: Characters of the JSON answer per content chunk.
CHUNK = 3
#: The reply when no call is due and none was made.
CONSTRAINED_TEXT = 'Fake model says "hi" \\ to you,\nin JSON: café 😀.'


def results_reply(results: str) -> str:
    """The reply after a call, to the message that carried its results."""
    return f"Fake model read: {results}"


@dataclass(slots=True)
class _Choice:
    """What the schema allows: the reply's schema (None: no reply), the tools with their
    parameter schemas, and whether several calls may come at once."""

    answer: dict[str, Any] | None = None
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    several: bool = False


def constrained_chunks(
    body: Mapping[str, Any], count: int, arguments: Arguments
) -> list[str] | None:
    """The content chunks of the answer to a Chat Completions request ``body``, a call's
    arguments made by ``arguments``; None when it asks for no choice between a reply and
    tool calls."""
    choice = _choice(body.get("response_format"))
    if choice is None:
        return None
    messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
    answered = _answers_a_call(messages)
    said = _content(messages[-1]) if messages and messages[-1].get("role") == "user" else ""
    named = [tool for tool in choice.tools if not answered and tool[0] in said]
    if choice.tools and (named or choice.answer is None):
        value = _calls(named or choice.tools, choice.several, count, arguments)
    else:
        value = {"answer": _reply(choice, messages, answered, arguments)}
    text = json.dumps(value, ensure_ascii=True)
    return [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]


def _choice(fmt: Any) -> _Choice | None:
    spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        return None
    choice = _Choice()
    for branch in schema.get("anyOf") or [schema]:
        properties = branch.get("properties") if isinstance(branch, dict) else None
        if not isinstance(properties, dict):
            continue
        if "answer" in properties:
            choice.answer = properties["answer"]
        elif "tool" in properties:
            choice.tools.append((properties["tool"]["const"], properties.get("arguments") or {}))
        elif "calls" in properties:
            choice.several = True
    return choice if choice.tools or choice.answer is not None else None


def _answers_a_call(messages: list[dict[str, Any]]) -> bool:
    """Whether the newest message follows the model's own call (it holds its results)."""
    if len(messages) < 2 or messages[-2].get("role") != "assistant":
        return False
    content = messages[-2].get("content")
    said = content.rsplit("\n\n", 1)[-1] if isinstance(content, str) else ""
    try:
        value = json.loads(said)
    except ValueError:
        return False
    return isinstance(value, dict) and ("tool" in value or "calls" in value)


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _calls(
    tools: list[tuple[str, dict[str, Any]]], several: bool, count: int, arguments: Arguments
) -> dict[str, Any]:
    number = max(count, len(tools)) if several else 1
    calls = []
    for index in range(number):
        name, parameters = tools[index % len(tools)]
        tool = {"function": {"name": name, "parameters": parameters}}
        calls.append({"tool": name, "arguments": arguments(tool, index)})
    return calls[0] if number == 1 else {"calls": calls}


def _reply(
    choice: _Choice, messages: list[dict[str, Any]], answered: bool, arguments: Arguments
) -> Any:
    schema = choice.answer or {}
    if schema.get("type") != "string":
        return arguments({"function": {"parameters": schema}}, 0)
    if answered:
        return results_reply(_content(messages[-1]))
    return CONSTRAINED_TEXT
