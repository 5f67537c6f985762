"""The body of a Gemini ``streamGenerateContent`` call (``request_body``), for
``gemini.GeminiProvider``.

The instructions and system messages become ``systemInstruction``; messages become
``contents`` (an answer's parts with the thought signatures it came with, ``SIGNATURES_KEY``;
a tool result as a ``functionResponse``; a user's images and files before its text: a
``data:`` URL as ``inlineData``, an ``http(s)`` URL as ``fileData``). The options: a tool
choice as ``toolConfig``'s ``functionCallingConfig`` (``_function_calling``), a JSON
response format as ``responseMimeType`` and ``responseJsonSchema``, a reasoning effort and
summary as ``thinkingConfig`` (``_thinking``), unless the parameters set those
(``generation_config``).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from parley.providers.base import (
    ChatMessage,
    FileInput,
    ModelOptions,
    ModelRequest,
    split_data_url,
)
from parley.providers.file_parts import base64_data, native, text_base64
from parley.providers.options import ToolRule, json_schema_of, offered_tools, tool_rule
from parley.types import FunctionSpec, ToolSpec

__all__ = ["SIGNATURES_KEY", "generation_config", "request_body"]

#: ``request.parameters`` → ``generationConfig``: snake_case and Gemini's own camelCase.
_GENERATION_CONFIG = {
    "temperature": "temperature",
    "max_tokens": "maxOutputTokens",
    "max_output_tokens": "maxOutputTokens",
    "maxOutputTokens": "maxOutputTokens",
    "top_p": "topP",
    "topP": "topP",
    "top_k": "topK",
    "topK": "topK",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "presencePenalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "frequencyPenalty": "frequencyPenalty",
    "thinking_config": "thinkingConfig",
    "thinkingConfig": "thinkingConfig",
    "response_mime_type": "responseMimeType",
    "responseMimeType": "responseMimeType",
}
#: ``thinkingBudget`` for each reasoning effort (models before Gemini 3), as Google's own
#: OpenAI compatibility maps them; Gemini 2.5 Pro cannot stop thinking: its least is 128.
_THINKING_BUDGETS = {
    "none": 0,
    "minimal": 1024,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 24576,
}
_PRO_LEAST_BUDGET = 128
#: ``thinkingLevel`` for each reasoning effort (Gemini 3 and later, which cannot stop
#: thinking); Pro models take only ``low`` and ``high`` (``_PRO_LEVELS``).
_THINKING_LEVELS = {
    "none": "minimal",
    "minimal": "minimal",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
}
_PRO_LEVELS = {"minimal": "low", "medium": "high"}
_GEMINI_MAJOR = re.compile(r"gemini-(\d+)")
#: The ``provider_state`` key under which an answer's thought signatures are kept.
SIGNATURES_KEY = "thought_signatures"
#: File name extensions whose image type is plain: ``fileData`` wants a ``mimeType``.
_IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


def request_body(request: ModelRequest) -> dict[str, Any]:
    """The JSON body of a ``streamGenerateContent`` call for ``request``."""
    system = [request.instructions] if request.instructions else []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id → function name, from the assistant's calls
    for message in request.messages:
        role = str(message.role)
        if role == "system":
            if message.content:
                system.append(message.content)
            continue
        if role == "assistant":
            names.update((call.id, call.name) for call in message.tool_calls)
            wire_role, parts = "model", _model_parts(message)
        elif role == "tool":
            wire_role, parts = "user", [_function_response(message, names)]
        else:
            wire_role, parts = "user", [_image_part(url) for url in message.images]
            parts += [_file_part(file) for file in message.files]
            if message.content:
                parts.append({"text": message.content})
        if not parts:
            continue  # Gemini refuses a content without parts
        if contents and contents[-1]["role"] == wire_role:
            contents[-1]["parts"].extend(parts)  # e.g. the results of parallel calls
        else:
            contents.append({"role": wire_role, "parts": parts})
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": text} for text in system]}
    rule = tool_rule(request.options.tool_choice)
    tools = _declared(request.tools, rule)
    if tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t.function) for t in tools]}]
        if rule is not None:
            body["toolConfig"] = {"functionCallingConfig": _function_calling(rule)}
    config = generation_config(request.parameters)
    _add_options(config, request.model, request.options)
    if config:
        body["generationConfig"] = config
    return body


def _declared(tools: list[ToolSpec], rule: ToolRule | None) -> list[ToolSpec]:
    """The tools declared: all of them, but only the allowed ones for a list that the
    model may choose from (``AUTO`` takes no ``allowedFunctionNames``)."""
    if rule is not None and rule.mode == "auto" and rule.names is not None:
        return offered_tools(tools, rule)
    return tools


def _function_calling(rule: ToolRule) -> dict[str, Any]:
    """``functionCallingConfig`` for a tool choice: mode ``NONE``, ``AUTO`` or ``ANY``,
    with ``allowedFunctionNames`` when a call among some tools is required."""
    if rule.mode != "required":
        return {"mode": rule.mode.upper()}
    if rule.names is None:
        return {"mode": "ANY"}
    return {"mode": "ANY", "allowedFunctionNames": list(rule.names)}


def _add_options(config: dict[str, Any], model: str, options: ModelOptions) -> None:
    """The options' part of ``generationConfig``, where the parameters did not set it: a
    JSON answer (``responseMimeType``, and ``responseJsonSchema``, which takes a plain JSON
    Schema) and ``thinkingConfig`` (``_thinking``)."""
    json, schema = json_schema_of(options.response_format)
    if json and config.get("responseMimeType") is None:
        config["responseMimeType"] = "application/json"
        if schema is not None:
            config["responseJsonSchema"] = schema
    thinking = _thinking(model, options)
    if thinking and config.get("thinkingConfig") is None:
        config["thinkingConfig"] = thinking


def _thinking(model: str, options: ModelOptions) -> dict[str, Any]:
    """``thinkingConfig`` for a reasoning effort: a ``thinkingLevel`` from Gemini 3 on, a
    ``thinkingBudget`` before (and for a model whose version its id does not say: Gemini
    3 takes budgets too); ``includeThoughts`` when a reasoning summary is asked for."""
    thinking: dict[str, Any] = {}
    effort = options.reasoning_effort
    major = _GEMINI_MAJOR.search(model)
    pro = "pro" in model
    if effort in _THINKING_LEVELS and major is not None and int(major.group(1)) >= 3:
        level = _THINKING_LEVELS[effort]
        thinking["thinkingLevel"] = _PRO_LEVELS.get(level, level) if pro else level
    elif effort in _THINKING_BUDGETS:
        budget = _THINKING_BUDGETS[effort]
        thinking["thinkingBudget"] = max(budget, _PRO_LEAST_BUDGET) if pro else budget
    if options.reasoning_summary is not None:
        thinking["includeThoughts"] = True
    return thinking


def _model_parts(message: ChatMessage) -> list[dict[str, Any]]:
    """An answer's parts: its text, its calls, each with the signature it came with (see
    ``StreamState.state_part``). Stored signatures that do not fit the message are left
    out rather than put on another part."""
    state = message.provider_state
    signatures = state.get(SIGNATURES_KEY) if state else None
    if not isinstance(signatures, dict):
        signatures = {}
    parts = _text_parts(message.content, signatures.get("text"))
    calls = signatures.get("calls")
    if not isinstance(calls, dict):
        calls = {}
    for index, call in enumerate(message.tool_calls):
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.arguments}}
        signature = calls.get(str(index))
        if isinstance(signature, str) and signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    end = signatures.get("end")
    if isinstance(end, str) and end:
        parts.append({"text": "", "thoughtSignature": end})
    return parts


def _text_parts(content: str, signed: Any) -> list[dict[str, Any]]:
    """``content`` as text parts, cut so that each signed range is a part of its own with
    its signature (an empty range: an empty text part there)."""
    if not signed or not isinstance(signed, list):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    at = 0
    for entry in signed:
        if not isinstance(entry, list) or len(entry) != 3:
            continue
        start, end, signature = entry
        if (
            type(start) is not int
            or type(end) is not int
            or not isinstance(signature, str)
            or not signature
            or not at <= start <= end <= len(content)
        ):
            continue
        if start > at:
            parts.append({"text": content[at:start]})
        parts.append({"text": content[start:end], "thoughtSignature": signature})
        at = end
    if at < len(content):
        parts.append({"text": content[at:]})
    return parts


def _file_part(file: FileInput) -> dict[str, Any]:
    """A user message's file as inline data: a PDF's bytes, else its text (``text/plain``)."""
    if native(file):
        return {"inlineData": {"mimeType": file.media_type, "data": base64_data(file)}}
    return {"inlineData": {"mimeType": "text/plain", "data": text_base64(file)}}


def _image_part(url: str) -> dict[str, Any]:
    """A user message's image: inline data from a ``data:`` URL, else a file by its URL."""
    inline = split_data_url(url)
    if inline is not None:
        media_type, data = inline
        return {"inlineData": {"mimeType": media_type, "data": data}}
    file_data = {"fileUri": url}
    guessed = _IMAGE_TYPES.get(posixpath.splitext(urlsplit(url).path)[1].lower())
    if guessed is not None:
        file_data["mimeType"] = guessed
    return {"fileData": file_data}


def _function_response(message: ChatMessage, names: dict[str, str]) -> dict[str, Any]:
    call_id = message.tool_call_id or ""
    # Gemini matches a result to its call by name; a result whose call is not in the
    # context (it should always be) is sent under its call id rather than dropped.
    name = names.get(call_id) or call_id or "unknown_tool"
    return {"functionResponse": {"name": name, "response": {"content": message.content}}}


def _declaration(function: FunctionSpec) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": function.name}
    if function.description:
        declaration["description"] = function.description
    # Gemini refuses an OBJECT schema without properties: a tool without arguments has none.
    if function.parameters.get("properties"):
        declaration["parameters"] = function.parameters
    return declaration


def generation_config(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """``generationConfig`` from a request's parameters; the others are not sent (Gemini
    refuses unknown fields)."""
    config: dict[str, Any] = {}
    for key, value in parameters.items():
        wire = _GENERATION_CONFIG.get(key)
        if wire is not None and value is not None:
            config[wire] = value
        elif key in ("stop", "stop_sequences", "stopSequences") and value:
            config["stopSequences"] = [value] if isinstance(value, str) else list(value)
    return config
