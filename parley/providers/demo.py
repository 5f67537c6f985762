"""The demo model: offline, deterministic, always available as ``demo/<anything>``.

* It streams its reply a word at a time after a short reasoning preamble, and counts words
  as tokens: the preamble's are its reasoning tokens, among the output tokens.
* When the newest message is a user message naming one of the given tools (the exact name,
  as a whole word), it calls that tool. Arguments come from the tool's JSON Schema: each
  string property gets the text after the name (trimmed; up to the next named tool when
  two are named; the whole message when nothing follows), or, when it has a ``pattern``,
  the longest part of that text the pattern matches (a pattern's ``^`` and ``$`` are
  dropped for the search; with no match a required property still gets the whole text
  and an optional one is left out: "current_time and calculator 2+3" gives no time zone
  and the expression ``2+3``), each number or integer property
  the first number in that text, each boolean ``false``; a property with an ``enum`` the
  first of its values the text names as a word (else its default, else its first value);
  in a tool call, an array of strings the text as its one item (``file_search``'s queries);
  other properties are left out, and so is a number property when the text has no number
  (unless its schema gives a numeric ``default``: then it gets that, so "roll_dice please"
  rolls the server's default dice).
  Two names give two parallel calls, streamed in interleaved fragments.
* It follows the request's tool choice (``ModelOptions``): with ``none`` it calls no tool;
  with one function, or a list of ``allowed_tools``, it calls only those tools; when a
  call is ``required`` (one function is) and the message names none of the tools it may
  call, it calls the first of them, its arguments filled from the whole message. With
  ``parallel_tool_calls`` false it makes only the first call.
* When the newest messages are tool results, it quotes each one verbatim (a hosted MCP
  tool's result as well: with an MCP server's tools offered, "use roll_dice" calls it and
  the answer quotes what it returned).
* Otherwise it echoes the user and says how to configure a real provider; a file given
  with the message it names, with its first words (it reads files as text).
* It honours an output format: in JSON mode its answer is ``{"answer": "..."}``; with a
  JSON schema, an object filled from the user's message as a tool's arguments are, each
  required property given a value of its type when the message has none.
* It embeds (``embed``, any model id; ``demo/embed`` by convention) with
  ``embeddings.hashing_embedding``: words and character trigrams hashed into 256 numbers,
  lexical only.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncGenerator
from typing import Any

from parley.errors import InvalidRequest
from parley.events import FinishPart, ModelEvent, ReasoningPart, TextPart, ToolCallPart, UsagePart
from parley.providers.base import ChatMessage, FileInput, ModelRequest
from parley.providers.embeddings import (
    DEFAULT_DEMO_DIMENSIONS,
    MAX_DEMO_DIMENSIONS,
    MAX_INPUTS,
    EmbedRequest,
    EmbedResult,
    hashing_embedding,
)
from parley.providers.options import offered_tools, tool_rule
from parley.types import ToolSpec

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_WORD = re.compile(r"\S+\s*|\s+")
#: Longest part of the user's message echoed back.
_ECHO_LIMIT = 200
#: Longest part of a file's text quoted back.
_FILE_START = 60
#: The demo's own model ids: it takes any id, and lists (and names in metrics) these.
MODELS = ("parley",)


class DemoProvider:
    """The offline demo model. ``delay`` is the pause between chunks, in seconds."""

    def __init__(self, delay: float = 0.006) -> None:
        self.delay = delay

    #: Any model id works: the list below is an example, not the models it serves.
    serves_any_model = True

    async def list_models(self) -> list[str]:
        """Any model id works; these are the examples (``MODELS``)."""
        return list(MODELS)

    #: Embeddings: any model id (``demo/embed`` in the docs), any number of inputs in one
    #: go, token ids too.
    embed_batch = MAX_INPUTS
    takes_token_ids = True

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        """``hashing_embedding`` of each input (256 numbers unless ``dimensions`` asks for
        another length, up to 4096): lexical, not semantic. A word or a token id is a token."""
        dimensions = request.dimensions or DEFAULT_DEMO_DIMENSIONS
        if dimensions > MAX_DEMO_DIMENSIONS:
            raise InvalidRequest(
                f"The demo embedding has at most {MAX_DEMO_DIMENSIONS} dimensions.",
                param="dimensions",
            )
        vectors = [hashing_embedding(item, dimensions) for item in request.inputs]
        tokens = sum(
            max(1, len(item.split())) if isinstance(item, str) else len(item)
            for item in request.inputs
        )
        return EmbedResult(vectors=vectors, input_tokens=tokens, model=request.model)

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        plan = _plan(request)
        output_words = reasoning_words = 0
        for event in plan.events():
            if type(event) is TextPart:
                output_words += len(event.text.split())
            elif type(event) is ReasoningPart:
                reasoning_words += len(event.text.split())
            elif type(event) is ToolCallPart:
                output_words += len(event.arguments.split())
            yield event
            await asyncio.sleep(self.delay)
        # A word is a token; the reasoning preamble's words are among the output's.
        yield UsagePart(
            input_tokens=_input_words(request),
            output_tokens=output_words + reasoning_words,
            reasoning_tokens=reasoning_words,
        )
        yield FinishPart(plan.finish_reason)


def _plan(request: ModelRequest) -> _Plan:
    newest = request.messages[-1] if request.messages else None
    fmt = request.options.response_format
    if newest is not None and str(newest.role) == "tool":
        reply = _tool_results_reply(request.messages)
        return _Plan.for_text(json_answer(fmt, reply, reply))
    if newest is not None and str(newest.role) == "user":
        rule = tool_rule(request.options.tool_choice)
        tools = offered_tools(request.tools, rule)  # the ones the tool choice lets it call
        calls = find_tool_calls(newest.content, tools)
        if request.options.parallel_tool_calls is False:
            calls = calls[:1]
        if calls:
            return _Plan.for_tools(calls, "The message names a tool. ")
        if rule is not None and rule.mode == "required" and tools:
            # A call is required and the message names none: the first tool it may call,
            # with the whole message as the text of its arguments.
            function = tools[0].function
            text = newest.content.strip()
            call = (function.name, fill_arguments(function.parameters, text, lists=True))
            return _Plan.for_tools([call], "A tool call is required. ")
    said = newest.content.strip() if newest is not None and str(newest.role) == "user" else ""
    return _Plan.for_text(json_answer(fmt, _greeting(request.messages), said))


class _Plan:
    """What the demo will stream: a reasoning preamble, then text or tool calls."""

    def __init__(
        self,
        reasoning: list[str],
        finish_reason: str,
        reply: str = "",
        calls: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> None:
        self.reasoning = reasoning
        self.finish_reason = finish_reason
        self.reply = reply
        self.calls = calls or []

    @classmethod
    def for_text(cls, reply: str) -> _Plan:
        preamble = ["The demo model reads the conversation. ", "It answers offline."]
        return cls(preamble, "stop", reply=reply)

    @classmethod
    def for_tools(cls, calls: list[tuple[str, dict[str, Any]]], why: str) -> _Plan:
        names = " and ".join(name for name, _ in calls)
        return cls([why, f"The demo model calls {names}."], "tool_calls", calls=calls)

    def events(self) -> list[ModelEvent]:
        events: list[ModelEvent] = [ReasoningPart(piece) for piece in self.reasoning]
        if not self.calls:
            events.extend(TextPart(piece) for piece in chunk_words(self.reply))
            return events
        fragments: list[list[str]] = []
        for index, (name, arguments) in enumerate(self.calls):
            call_id = f"call_{secrets.token_hex(12)}"
            events.append(ToolCallPart(index=index, id=call_id, name=name, arguments=""))
            raw = json.dumps(arguments)
            half = len(raw) // 2
            fragments.append([raw[:half], raw[half:]])
        for step in range(2):  # interleave the calls' fragments, as parallel calls do
            events.extend(
                ToolCallPart(index=index, arguments=parts[step])
                for index, parts in enumerate(fragments)
                if parts[step]
            )
        return events


def chunk_words(text: str) -> list[str]:
    """Split ``text`` into word-sized chunks that join back to exactly ``text``."""
    return _WORD.findall(text)


def find_tool_calls(message: str, tools: list[ToolSpec]) -> list[tuple[str, dict[str, Any]]]:
    """The calls the demo makes for a user message: ``(name, arguments)`` in message order."""
    found: list[tuple[int, int, ToolSpec]] = []
    for tool in tools:
        match = _name_pattern(tool.function.name).search(message)
        if match:
            found.append((match.start(), match.end(), tool))
    found.sort(key=lambda item: item[0])
    calls = []
    for position, (_start, end, tool) in enumerate(found):
        stop = found[position + 1][0] if position + 1 < len(found) else len(message)
        text = message[end:stop].strip() or message.strip()
        calls.append(
            (tool.function.name, fill_arguments(tool.function.parameters, text, lists=True))
        )
    return calls


def _name_pattern(name: str) -> re.Pattern[str]:
    # A whole word: not glued to other name characters on either side ("get_weather" does
    # not match inside "get_weather_now"); a full stop right after the name is fine.
    return re.compile(rf"(?<![\w.-]){re.escape(name)}(?![\w-])(?!\.\w)")


def fill_arguments(schema: dict[str, Any], text: str, *, lists: bool = False) -> dict[str, Any]:
    """Arguments for a tool's JSON Schema, filled from ``text`` (see the module docstring);
    ``lists``: an array of strings gets ``text`` as its one item (a tool call's)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    number = _NUMBER.search(text)
    required = schema.get("required")
    required = required if isinstance(required, list) else []
    arguments: dict[str, Any] = {}
    for name, prop in properties.items():
        kind = _schema_type(prop)
        choices = prop.get("enum") if isinstance(prop, dict) else None
        if isinstance(choices, list) and choices:
            arguments[name] = _choice(choices, prop.get("default"), text)
        elif kind == "string":
            part = _matching_part(prop.get("pattern"), text)
            if part is not None:
                arguments[name] = part
            elif name in required or not isinstance(prop.get("pattern"), str):
                arguments[name] = text
        elif kind == "integer" and number:
            arguments[name] = int(float(number.group()))
        elif kind == "number" and number:
            value = float(number.group())
            arguments[name] = int(value) if value.is_integer() else value
        elif kind in ("integer", "number") and _is_number(prop.get("default")):
            arguments[name] = prop["default"]
        elif kind == "boolean":
            arguments[name] = False
        elif lists and kind == "array" and _schema_type(prop.get("items")) == "string":
            arguments[name] = [text]  # file_search's queries: the text, as one query
    return arguments


#: What a required property of a JSON answer gets when the text gives it nothing.
_EMPTY: dict[str, Any] = {"integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}


def json_answer(fmt: dict[str, Any] | None, reply: str, text: str) -> str:
    """The answer in the requested output format: ``reply`` itself for none or ``text``;
    ``{"answer": reply}`` in JSON mode; for a JSON schema, an object filled from ``text``
    as a tool's arguments are, every required property there with a value of its type."""
    kind = fmt.get("type") if fmt else None
    if kind == "json_object":
        return json.dumps({"answer": reply})
    if kind != "json_schema" or fmt is None:
        return reply
    schema = fmt.get("schema")
    schema = schema if isinstance(schema, dict) else {}
    answer = fill_arguments(schema, text)
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    for name in schema.get("required") or ():
        if name not in answer:
            kind = _schema_type(properties.get(name))
            answer[name] = text if kind == "string" else _EMPTY.get(kind or "")
    return json.dumps(answer)


def _matching_part(pattern: Any, text: str) -> str | None:
    """The longest non-blank part of ``text`` that ``pattern`` (a JSON Schema ``pattern``,
    its anchors dropped) matches; None without a usable pattern or a match."""
    if not isinstance(pattern, str):
        return None
    try:
        search = re.compile(pattern.removeprefix("^").removesuffix("$"))
    except re.error:  # an ECMA-262 construct Python lacks: treat as no match
        return None
    parts = (match.group().strip() for match in search.finditer(text))
    return max((part for part in parts if part), key=len, default=None)


def _choice(choices: list[Any], default: Any, text: str) -> Any:
    """The first of ``choices`` that ``text`` names as a whole word, else ``default`` when
    it is one of them, else the first."""
    words = set(re.findall(r"[\w.+-]+", text.casefold()))
    named = [c for c in choices if str(c).casefold() in words]
    if named:
        return named[0]
    return default if default in choices else choices[0]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _schema_type(prop: Any) -> str | None:
    kind = prop.get("type") if isinstance(prop, dict) else None
    if isinstance(kind, list):  # ["string", "null"]
        kind = next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else None


def _tool_results_reply(messages: list[ChatMessage]) -> str:
    results: list[ChatMessage] = []
    for message in reversed(messages):
        if str(message.role) != "tool":
            break
        results.append(message)
    results.reverse()
    names = {
        call.id: call.name
        for message in messages
        if str(message.role) == "assistant"
        for call in message.tool_calls
    }
    sentences = [
        f'Demo model: the tool {names.get(result.tool_call_id or "", "call")} returned "{result.content}".'
        for result in results
    ]
    return " ".join(sentences)


def _greeting(messages: list[ChatMessage]) -> str:
    user = next((m for m in reversed(messages) if str(m.role) == "user"), None)
    said = _clipped(user.content if user is not None else "", _ECHO_LIMIT)
    opening = f'Demo model: you said "{said}".' if said else "Demo model: hello!"
    for file in user.files if user is not None else ():
        opening += " " + _file_seen(file)
    return (
        f"{opening} I am Parley's offline demo model, so this answer is canned. "
        "Configure a real provider (for example set OPENAI_API_KEY, or add a "
        "[providers.NAME] table to the config file) and pick one of its models for real answers."
    )


def _clipped(text: str, limit: int) -> str:
    """``text`` with its runs of white space made one space, cut at ``limit`` characters."""
    text = " ".join(text.split())
    return text[: limit - 1] + "…" if len(text) > limit else text


def _file_seen(file: FileInput) -> str:
    """What the demo says of a file it was given: its name and its first words."""
    if file.missing is not None:
        return f"I could not read the file {file.filename}: {file.missing}."
    start = _clipped(file.text or "", _FILE_START)
    if not start:
        return f"I see the file {file.filename}, which has no text."
    return f'I see the file {file.filename}, which begins: "{start}".'


def _input_words(request: ModelRequest) -> int:
    words = len(request.instructions.split()) if request.instructions else 0
    for message in request.messages:
        words += len(message.content.split())
        words += sum(len((f.text or "").split()) for f in message.files)
    return words
