"""The body of a Responses API call (``request_body``), for
``openai_responses.OpenAIResponsesProvider``.

The call is stateless (``store: false``): the whole context goes as ``input`` items
(``wire_input``). An assistant message whose ``provider_state`` holds the output items of
its answer, for the same model, sends them back in order (``_replayed_output``: reasoning
items, its text as output ``message`` items, its ``function_call`` items with their ids);
else it goes as plain items. A user message's images become ``input_image`` parts after
its ``input_text``, and its files ``input_file`` parts (``file_parts``). A reasoning model
is asked for its encrypted reasoning (``include``). The options become ``tool_choice``,
``parallel_tool_calls``, ``text.format`` and ``reasoning``; the parameters' own keys win.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from parley.providers.base import ChatMessage, ModelRequest
from parley.providers.file_parts import as_text, data_url, native
from parley.providers.options import add_unset, openai_response_format, openai_tool_choice
from parley.types import ToolCall, ToolSpec

__all__ = ["MESSAGE_KEYS", "request_body", "wire_input"]

#: Parameter names of Chat Completions that the Responses API spells otherwise.
_RENAMED = {"max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens"}
#: What ``include`` asks for to get reasoning items that can be sent back to a stateless call.
_ENCRYPTED_REASONING = "reasoning.encrypted_content"
#: What is kept of an output ``message`` item (besides the length of its text) to send back.
MESSAGE_KEYS = ("id", "status", "phase")
#: Model ids (the part after any ``vendor/``) of OpenAI's reasoning models: o1, o3, o4-mini,
#: gpt-5 and later, codex-mini; gpt-5-chat does not reason.
_REASONING_MODEL = re.compile(r"(?:o\d|gpt-[5-9]|codex-)(?!-chat)")


def request_body(request: ModelRequest) -> dict[str, Any]:
    """The JSON body of a streaming, stateless Responses API call for ``request``.

    Parameters pass through (``temperature``, ``top_p``, ``reasoning``, ``store``,
    ``include``, ...), with ``max_tokens`` sent as ``max_output_tokens``; ``store`` defaults
    to false. The options fill in what they leave unset (``_option_fields``). A stateless
    call to a reasoning model also asks for its encrypted reasoning.
    """
    body: dict[str, Any] = {}
    for key, value in request.parameters.items():
        body[_RENAMED.get(key, key)] = value
    add_unset(body, _option_fields(request), merged=("reasoning", "text"))
    body.setdefault("store", False)
    stored = bool(body["store"])
    if not stored and (_reasoning_model(request.model) or "reasoning" in body):
        include = body.get("include")
        if include is None:
            body["include"] = [_ENCRYPTED_REASONING]
        elif isinstance(include, list) and _ENCRYPTED_REASONING not in include:
            body["include"] = [*include, _ENCRYPTED_REASONING]
    body.update(
        model=request.model,
        input=wire_input(request.messages, model=request.model, stored=stored),
        stream=True,
    )
    if request.instructions:
        body["instructions"] = request.instructions
    if request.tools:
        body["tools"] = [_wire_tool(tool) for tool in request.tools]
    return body


def _option_fields(request: ModelRequest) -> dict[str, Any]:
    """The request's options as Responses fields: ``tool_choice`` and
    ``parallel_tool_calls`` (only with tools), ``text.format``, ``reasoning.effort`` and
    ``reasoning.summary``; None where an option is unset."""
    options = request.options
    reasoning = {"effort": options.reasoning_effort, "summary": options.reasoning_summary}
    text_format = openai_response_format(options.response_format, flat=True)
    fields: dict[str, Any] = {
        "reasoning": {key: value for key, value in reasoning.items() if value is not None} or None,
        "text": {"format": text_format} if text_format else None,
    }
    if request.tools:
        fields["tool_choice"] = openai_tool_choice(options.tool_choice, flat=True)
        fields["parallel_tool_calls"] = options.parallel_tool_calls
    return fields


def _reasoning_model(model: str) -> bool:
    """Whether ``model`` names one of OpenAI's reasoning models, the only ones that take
    ``include: ["reasoning.encrypted_content"]`` (any other answers HTTP 400)."""
    name = model.rpartition("/")[2].lower().removeprefix("ft:")
    return _REASONING_MODEL.match(name) is not None


def _wire_tool(tool: ToolSpec) -> dict[str, Any]:
    """A function tool in the Responses API's flat shape. ``strict`` is sent as false: the
    API may otherwise enforce strict schemas, which Parley's tools do not promise."""
    function = tool.function
    return {
        "type": "function",
        "name": function.name,
        "description": function.description,
        "parameters": function.parameters,
        "strict": False,
    }


def wire_input(messages: list[ChatMessage], *, model: str, stored: bool) -> list[dict[str, Any]]:
    """The ``input`` items of a call: a message item per message with text (with
    ``input_image`` parts for its images), a ``function_call`` item per tool call and a
    ``function_call_output`` per tool result.

    An assistant answer of ``model`` whose ``provider_state`` holds its output items goes
    back as those items, reasoning included (``stored``: the call stores its responses, so
    reasoning items kept without their encrypted content may go back by id)."""
    items: list[dict[str, Any]] = []
    for message in messages:
        role = str(message.role)
        if role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.tool_call_id or "",
                    "output": message.content,
                }
            )
            continue
        if role != "assistant":
            items.append({"role": role, "content": _input_content(message)})
            continue
        if message.provider_state is not None:
            replayed = _replayed_output(message, model, stored)
            if replayed is not None:
                items.extend(replayed)
                continue
        if message.content or not message.tool_calls:
            items.append({"role": role, "content": message.content})
        items.extend(_function_call(call) for call in message.tool_calls)
    return items


def _input_content(message: ChatMessage) -> str | list[dict[str, Any]]:
    """The content of a message: its text, or with images, an ``input_text`` part (when
    it has text) then an ``input_image`` part per image (a data URL or an http(s) URL, both
    as ``image_url``; ``detail`` is the API's default, spelt out for servers that require
    it), then an ``input_file`` part per file (``filename`` and ``file_data``, a data URL:
    the API cannot see Parley's file ids)."""
    if not message.images and not message.files:
        return message.content
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "input_text", "text": message.content})
    parts.extend(
        {"type": "input_image", "image_url": url, "detail": "auto"} for url in message.images
    )
    for file in message.files:
        if native(file):
            parts.append(
                {"type": "input_file", "filename": file.filename, "file_data": data_url(file)}
            )
        else:
            parts.append({"type": "input_text", "text": as_text(file)})
    return parts


def _function_call(call: ToolCall, item_id: str | None = None) -> dict[str, Any]:
    item = {
        "type": "function_call",
        "call_id": call.id,
        "name": call.name,
        "arguments": orjson.dumps(call.arguments).decode(),
    }
    if item_id:
        item["id"] = item_id
    return item


def _replayed_output(message: ChatMessage, model: str, stored: bool) -> list[dict[str, Any]] | None:
    """The output items of an assistant answer as the API gave them, from what the stream
    kept (``_Output.state``): reasoning items as they came, the answer's text as output
    ``message`` items, its tool calls as ``function_call`` items, each with its id. None
    when the kept items do not fit the message: then it goes as plain items."""
    state = message.provider_state or {}
    output = state.get("output") if state.get("model") == model else None
    if not isinstance(output, list) or not all(_an_output_entry(e) for e in output):
        return None  # (a state a client carried back may be anything)
    texts = _split_text(message.content, [e["chars"] for e in output if e["type"] == "message"])
    if texts is None:
        return None
    calls = {call.id: call for call in message.tool_calls}
    items: list[dict[str, Any]] = []
    for entry in output:
        kind = entry["type"]
        if kind == "reasoning":
            if not stored and not entry.get("encrypted_content"):
                return None  # the API could only find it by id, and nothing was stored
            items.append(entry)
        elif kind == "message":
            items.append(_output_message(texts.pop(0), entry))
        elif kind == "function_call":
            call = calls.pop(entry.get("call_id"), None)
            if call is None:
                return None
            items.append(_function_call(call, entry.get("id")))
        else:
            return None
    return None if calls else items


def _an_output_entry(entry: Any) -> bool:
    """Whether ``entry`` is of the shape ``_Output.state`` keeps an output item in."""
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        return False
    return entry["type"] != "message" or type(entry.get("chars")) is int


def _split_text(text: str, lengths: list[int]) -> list[str] | None:
    """``text`` cut into the texts of an answer's message items (``lengths`` their lengths
    as kept); None when they do not add up."""
    if len(lengths) <= 1:
        return [text] if lengths or not text else None
    if sum(lengths) != len(text):
        return None
    texts, start = [], 0
    for n in lengths:
        texts.append(text[start : start + n])
        start += n
    return texts


def _output_message(text: str, entry: dict[str, Any]) -> dict[str, Any]:
    """An output ``message`` item with ``text``, its id, status and phase as kept."""
    item: dict[str, Any] = {"type": "message", "role": "assistant"}
    for key in MESSAGE_KEYS:
        if key in entry:
            item[key] = entry[key]
    item["content"] = [{"type": "output_text", "text": text, "annotations": []}]
    return item
