"""What the fake upstream (``fake_upstream``) answers a chat request: the language of its
``model`` strings (``parse_model``, read as the docstring of ``fake_upstream`` says), the
contents a test expects of each (``expected_text``, ``tool_results_text``, ...), and the
answer planned for a request (``plan_answer``: content and reasoning chunks, or tool calls,
in OpenAI's shapes), with its usage.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from parley.testing.fake_constrained import constrained_chunks

DEFAULT_CHUNKS = 22
_WORDS = (
    *("Parley", "streams", "every", "token", "from", "the", "fake", "upstream", "so", "that"),
    *("tests", "can", "compare", "the", "stored", "answer", "with", "the", "expected", "text"),
    "exactly",
)
_THOUGHTS = ("First", "I", "think", "about", "the", "question", "and", "then", "I", "answer")
_WORD = re.compile(r"\S+\s*|\s+")
#: The modes read by name alone (any N and MS as ``text`` reads them); an unknown one is ``text``.
_PLAIN_MODES = frozenset(
    {"text", "reasoning", "echo", "hang", "stall", "malformed", "auto", "preface", "badkey"}
)
#: Modes whose answer becomes tool_results_text() after a tool result.
_TEXT_LIKE = frozenset({"text", "slow", "reasoning", "echo", "tools", "badargs", "auto", "preface"})


# ------------------------------------------------------------------- expected content


def _cycle(words: Sequence[str], n: int, end: str) -> list[str]:
    return [words[i % len(words)] + (" " if i < n - 1 else end) for i in range(n)]


def text_chunks(n: int) -> list[str]:
    """The content chunks of ``text:n``."""
    return _cycle(_WORDS, n, ".")


def expected_text(n: int = DEFAULT_CHUNKS) -> str:
    """The whole answer of ``text:n`` (and of ``reasoning:n``)."""
    return "".join(text_chunks(n))


def expected_reasoning(n: int = DEFAULT_CHUNKS) -> str:
    """The reasoning of ``reasoning:n``."""
    return "".join(_cycle(_THOUGHTS, n, "."))


#: The arguments of the first call in ``badargs`` mode: JSON cut short.
BAD_ARGUMENTS = '{"city": "Par'


def tool_results_text(results: Sequence[tuple[str, str]]) -> str:
    """The answer to a request ending with tool results ``(tool name, output)``."""
    quoted = "; ".join(f'{name} returned "{output}"' for name, output in results)
    return f"Fake upstream got tool results: {quoted}."


def tool_arguments(tool: Mapping[str, Any] | None, index: int) -> dict[str, Any]:
    """The arguments of call ``index`` to ``tool`` (a request's OpenAI tool entry).

    From the tool's JSON Schema: the first enum value when there is one, else a string
    ``"<property> <index>"``, an integer ``index + 1``, a number ``index + 0.5``, ``true``;
    other properties are left out. Without a tool: ``{"q": "query <index>"}``.
    """
    if tool is None:
        return {"q": f"query {index}"}
    function = tool.get("function")
    parameters = function.get("parameters") if isinstance(function, dict) else None
    properties = parameters.get("properties") if isinstance(parameters, dict) else None
    arguments: dict[str, Any] = {}
    for name, prop in (properties or {}).items():
        kind = prop.get("type") if isinstance(prop, dict) else None
        if isinstance(prop, dict) and prop.get("enum"):
            arguments[name] = prop["enum"][0]
        elif kind == "string":
            arguments[name] = f"{name} {index}"
        elif kind == "integer":
            arguments[name] = index + 1
        elif kind == "number":
            arguments[name] = index + 0.5
        elif kind == "boolean":
            arguments[name] = True
    return arguments


# ------------------------------------------------------------------------- the plan


@dataclass(slots=True)
class Spec:
    """A parsed ``model`` string."""

    mode: str
    count: int
    gap: float  # seconds
    argument: str = ""


def parse_model(model: str, chunks: int = DEFAULT_CHUNKS, gap_ms: float = 0.0) -> Spec:
    """Read the behaviour spec language of the module docstring."""
    mode, _, rest = model.partition(":")
    if mode == "replay":
        return Spec(mode, 0, gap_ms / 1000, argument=rest)
    parts = rest.split(":") if rest else []
    numbers: list[float] = []
    for part in parts:
        try:
            numbers.append(float(part))
        except ValueError:
            break
    count = int(numbers[0]) if numbers else chunks
    gap = (numbers[1] if len(numbers) > 1 else gap_ms) / 1000
    if mode == "slow":
        count, gap = chunks, (numbers[0] if numbers else gap_ms) / 1000
    elif mode == "tools":
        count = int(numbers[0]) if numbers else 1
    elif mode in ("truncate", "cut"):
        count = int(numbers[0]) if numbers else 3
    elif mode == "error":
        count = int(numbers[0]) if numbers else 500
        if len(numbers) > 1:  # the Retry-After of the error answer
            return Spec(mode, count, 0.0, argument=f"{numbers[1]:g}")
    elif mode in ("badargs", "constrained"):
        count = int(numbers[0]) if numbers else 1
    elif mode not in _PLAIN_MODES:
        mode = "text"
    return Spec(mode, max(0, min(count, 100_000)), max(0.0, gap))


@dataclass(slots=True)
class Answer:
    """What a request gets: content and reasoning chunks, or whole tool calls."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    #: Cut short at the request's ``max_tokens`` (its content chunks are tokens).
    cut: bool = False

    @property
    def finish_reason(self) -> str:
        if self.cut:
            return "length"
        return "tool_calls" if self.calls else "stop"

    def limited(self, body: dict[str, Any]) -> Answer:
        """The answer within the request's ``max_tokens`` (or ``max_completion_tokens``):
        as many content chunks, then finish_reason ``length``, as OpenAI cuts one."""
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if not isinstance(limit, int) or self.calls or len(self.content) <= limit:
            return self
        return Answer(self.content[:limit], self.reasoning, cut=True)

    def deltas(self) -> list[dict[str, Any]]:
        """One delta per chunk; a call is a first fragment then three argument fragments."""
        deltas: list[dict[str, Any]] = [{"reasoning_content": p} for p in self.reasoning]
        deltas += [{"content": piece} for piece in self.content]
        for index, call in enumerate(self.calls):
            raw = call["function"]["arguments"]
            first = {**call, "function": {**call["function"], "arguments": ""}}
            deltas.append({"tool_calls": [{"index": index, **first}]})
            third = max(1, -(-len(raw) // 3))
            deltas.extend(
                {"tool_calls": [{"index": index, "function": {"arguments": raw[i : i + third]}}]}
                for i in range(0, len(raw), third)
            )
        return deltas


def _tool_results(messages: list[Any]) -> list[tuple[str, str]]:
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or ():
            names[call.get("id", "")] = call.get("function", {}).get("name", "")
    results: list[tuple[str, str]] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        call_id = message.get("tool_call_id", "")
        results.append((names.get(call_id) or call_id, _content_text(message.get("content"))))
    return results[::-1]


def _content_text(content: Any) -> str:
    if isinstance(content, list):  # content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _tool_calls(body: dict[str, Any], count: int) -> list[dict[str, Any]]:
    tools = [t for t in body.get("tools") or () if isinstance(t, dict)]
    calls = []
    for index in range(count):
        tool = tools[index % len(tools)] if tools else None
        name = str(tool["function"]["name"]) if tool else f"tool_{index}"
        arguments = orjson.dumps(tool_arguments(tool, index)).decode()
        calls.append(
            {
                "id": f"call_{secrets.token_hex(8)}",
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
        )
    return calls


def _may_call_tools(body: dict[str, Any], messages: list[dict[str, Any]]) -> bool:
    """``auto`` mode: the request offers a tool, allows calls and ends with a user message."""
    offered = any(isinstance(t, dict) for t in body.get("tools") or ())
    allowed = body.get("tool_choice") != "none"
    return offered and allowed and bool(messages) and messages[-1].get("role") == "user"


def plan_answer(spec: Spec, body: dict[str, Any]) -> Answer:
    """What a request gets (fault modes add their fault while streaming), within its
    ``max_tokens``."""
    return _plan(spec, body).limited(body)


def _plan(spec: Spec, body: dict[str, Any]) -> Answer:
    messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
    if spec.mode in _TEXT_LIKE and messages and messages[-1].get("role") == "tool":
        return Answer(_WORD.findall(tool_results_text(_tool_results(messages))))
    if spec.mode == "tools":
        return Answer(calls=_tool_calls(body, spec.count))
    if spec.mode == "auto" and _may_call_tools(body, messages):
        return Answer(calls=_tool_calls(body, 1))
    if spec.mode == "preface" and _may_call_tools(body, messages):
        return Answer(text_chunks(spec.count), calls=_tool_calls(body, 1))
    if spec.mode == "badargs":
        calls = _tool_calls(body, spec.count)
        calls[0]["function"]["arguments"] = BAD_ARGUMENTS
        return Answer(calls=calls)
    if spec.mode == "constrained":
        chunks = constrained_chunks(body, spec.count)
        return Answer(chunks if chunks is not None else text_chunks(DEFAULT_CHUNKS))
    if spec.mode == "echo":
        users = [m for m in messages if m.get("role") == "user"]
        said = _content_text(users[-1].get("content")) if users else ""
        return Answer(_WORD.findall(said or "(nothing)"))
    reasoning = _cycle(_THOUGHTS, spec.count, ".") if spec.mode == "reasoning" else []
    return Answer(text_chunks(spec.count), reasoning)


def usage(body: dict[str, Any], deltas: list[dict[str, Any]]) -> dict[str, Any]:
    """OpenAI's usage of an answer: a word of the messages is a prompt token, the words of
    the messages before the newest are cached (the prefix an earlier call of the
    conversation sent), and a chunk streamed is a completion token, a reasoning one a
    reasoning token among them."""
    words = [
        len(_content_text(m.get("content")).split())
        for m in body.get("messages") or ()
        if isinstance(m, dict)
    ]
    prompt, completion = sum(words), len(deltas)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": sum(words[:-1]), "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": sum("reasoning_content" in d for d in deltas),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
