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
  else the first of them; each call's arguments are ``call_arguments`` of its schema
  and of the text that follows the tool's name in the message (as the demo model's);
* otherwise it replies: after a call, ``results_reply(<the results message>)``; else
  ``CONSTRAINED_TEXT`` (quotes, a backslash, a line break, an accented letter and an
  emoji, to exercise JSON escapes); a reply whose schema is not a string gets
  ``call_arguments`` of that schema and the message.

The JSON is written with every non-ASCII character escaped (an emoji as a ``\\uXXXX``
surrogate pair) and streamed ``CHUNK`` characters at a time, so escapes are cut across
chunks. A request without such a schema gets None: the fake's plain text answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CHUNK", "CONSTRAINED_TEXT", "call_arguments", "constrained_chunks", "results_reply"]

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


def call_arguments(schema: Mapping[str, Any], said: str, index: int = 0) -> dict[str, Any]:
    """The arguments of call ``index`` of a tool whose parameters are ``schema``, for the
    text ``said`` (what follows the tool's name in the message): each string property gets
    ``said``, an array of strings ``[said]``, an integer or a number the first number in
    ``said`` (else ``index + 1``), a boolean ``true``, a property with an ``enum`` its
    first value; other properties are left out."""
    arguments: dict[str, Any] = {}
    number = re.search(r"-?\d+(?:\.\d+)?", said)
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type") if isinstance(prop, dict) else None
        if not isinstance(prop, dict):
            continue
        if prop.get("enum"):
            arguments[name] = prop["enum"][0]
        elif kind == "string":
            arguments[name] = said
        elif kind == "array" and (prop.get("items") or {}).get("type") == "string":
            arguments[name] = [said]
        elif kind in ("integer", "number"):
            value = float(number.group()) if number else index + 1
            arguments[name] = int(value) if kind == "integer" else value
        elif kind == "boolean":
            arguments[name] = True
    return arguments


def constrained_chunks(body: Mapping[str, Any], count: int) -> list[str] | None:
    """The content chunks of the answer to a Chat Completions request ``body``; None when
    it asks for no choice between a reply and tool calls."""
    choice = _choice(body.get("response_format"))
    if choice is None:
        return None
    messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
    answered = _answers_a_call(messages)
    said = _content(messages[-1]) if messages and messages[-1].get("role") == "user" else ""
    named = [tool for tool in choice.tools if not answered and tool[0] in said]
    if choice.tools and (named or choice.answer is None):
        value = _calls(named or choice.tools, choice.several, count, said)
    else:
        value = {"answer": _reply(choice, messages, answered, said)}
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
    tools: list[tuple[str, dict[str, Any]]], several: bool, count: int, said: str
) -> dict[str, Any]:
    number = max(count, len(tools)) if several else 1
    calls = []
    for index in range(number):
        name, parameters = tools[index % len(tools)]
        after = said.partition(name)[2].strip() or said.strip()
        calls.append({"tool": name, "arguments": call_arguments(parameters, after, index)})
    return calls[0] if number == 1 else {"calls": calls}


def _reply(choice: _Choice, messages: list[dict[str, Any]], answered: bool, said: str) -> Any:
    schema = choice.answer or {}
    if schema.get("type") != "string":
        return call_arguments(schema, said.strip())
    if answered:
        return results_reply(_content(messages[-1]))
    return CONSTRAINED_TEXT
