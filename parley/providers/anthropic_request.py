"""The body of a Messages API call (``request_body``), for ``anthropic.AnthropicProvider``.

The instructions and system messages become the top-level ``system``; messages become
content blocks, roles alternating (``wire_messages``: tool results as ``tool_result``
blocks, a user's images before its text, an answer's kept thinking blocks where they came).
The options: ``tool_choice`` (``_tool_choice``; sent with tools only),
``parallel_tool_calls`` false as its ``disable_parallel_tool_use``, a JSON output format as
a forced tool (``_add_format_tool``, ``FORMAT_TOOL``) and a reasoning effort as thinking
(``_add_thinking``: a budget, or adaptive from Claude 4.6 on). Parameters of the same name
win.
"""

from __future__ import annotations

import re
from typing import Any

from parley.providers.base import (
    ChatMessage,
    FileInput,
    ModelOptions,
    ModelRequest,
    split_data_url,
)
from parley.providers.file_parts import base64_data, body_text, native
from parley.providers.options import add_unset, json_schema_of, tool_rule

__all__ = ["DEFAULT_MAX_TOKENS", "FORMAT_TOOL", "THINKING_BUDGETS", "request_body", "wire_messages"]

#: ``max_tokens`` is required by the API; this is sent when the request's parameters lack it.
DEFAULT_MAX_TOKENS = 4096
#: Extended thinking's ``budget_tokens`` for each reasoning effort (``none`` and ``minimal``:
#: no thinking). The API's least budget is 1,024; the largest, with the default
#: ``max_tokens`` on top for the answer, stays within the 32,000 output tokens of the
#: smallest limit among the models that think (Claude Opus 4).
THINKING_BUDGETS = {"low": 1024, "medium": 8192, "high": 16384, "xhigh": 24576}
#: ``output_config.effort`` of adaptive thinking for each reasoning effort ("max" is left
#: out: not every model takes it).
_ADAPTIVE_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high"}
#: The version in a Claude model id: ``claude-opus-4-6``, ``claude-sonnet-4-20250514`` (4.0),
#: ``claude-3-7-sonnet-20250219`` (3.7), ``anthropic.claude-opus-4-1-...``.
_CLAUDE_VERSION = re.compile(r"claude-(?:(?:opus|sonnet|haiku)-)?(\d+)(?:-(\d{1,2}))?(?!\d)")
#: From this version on, thinking is adaptive: fixed budgets are deprecated (4.6) or gone.
_ADAPTIVE_SINCE = (4, 6)
#: The tool a JSON output format goes as (the API has no JSON mode): its input schema is the
#: format's schema, the call is forced, and its input is the answer's text.
FORMAT_TOOL = "json_answer"


def request_body(request: ModelRequest) -> dict[str, Any]:
    """The JSON body of a streaming Messages API call for ``request``.

    Parameters pass through (``temperature``, ``top_p``, ``stop_sequences``, ``thinking``,
    ...), ``stop`` (OpenAI's name: a string or a list) as ``stop_sequences``; ``max_tokens``
    defaults to ``DEFAULT_MAX_TOKENS``. The instructions, and any system messages, become
    the top-level ``system``.
    """
    body: dict[str, Any] = dict(request.parameters)
    stop = body.pop("stop", None)
    if stop and "stop_sequences" not in body:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    body.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    system = [request.instructions] if request.instructions else []
    system.extend(m.content for m in request.messages if m.role == "system" and m.content)
    if system:
        body["system"] = "\n\n".join(system)
    body.update(model=request.model, messages=wire_messages(request.messages), stream=True)
    if request.tools:
        body["tools"] = [_wire_tool(tool.function.model_dump()) for tool in request.tools]
        add_unset(body, {"tool_choice": _tool_choice(request.options)})
    _add_format_tool(body, request.options)
    _add_thinking(body, request.model, request.options.reasoning_effort)
    return body


def _add_format_tool(body: dict[str, Any], options: ModelOptions) -> None:
    """A JSON output format as a tool (``FORMAT_TOOL``) whose input schema is the format's
    (any object for ``json_object``), its call forced: alone, the tool itself; beside the
    request's tools, some tool (``any``), unless the choice already forces one (kept) or
    allows none (then the format's)."""
    json, schema = json_schema_of(options.response_format)
    if not json:
        return
    fmt = options.response_format or {}
    tool = {
        "name": FORMAT_TOOL,
        "description": fmt.get("description") or "Give your answer as this tool's input.",
        "input_schema": schema or {"type": "object"},
    }
    given = body.get("tools") or []
    body["tools"] = [*given, tool]
    given_choice = body.get("tool_choice")
    choice = dict(given_choice) if isinstance(given_choice, dict) else {"type": "auto"}
    if not given or choice.get("type") == "none":
        choice.update(type="tool", name=FORMAT_TOOL)
    elif choice.get("type") == "auto":
        choice["type"] = "any"
    body["tool_choice"] = choice


def _tool_choice(options: ModelOptions) -> dict[str, Any] | None:
    """``tool_choice`` for the options: ``none``, ``auto``, ``any`` (required), or ``tool``
    (one function, or a required list of one), with ``disable_parallel_tool_use`` when
    parallel calls are off. The API has no list of allowed tools: with a longer list, every
    tool stays callable (``auto``, or ``any`` when a call is required)."""
    rule = tool_rule(options.tool_choice)
    if rule is not None and rule.mode == "none":
        return {"type": "none"}
    if rule is None or rule.mode == "auto":
        choice: dict[str, Any] = {"type": "auto"}
    elif rule.names is not None and len(rule.names) == 1:
        choice = {"type": "tool", "name": rule.names[0]}
    else:
        choice = {"type": "any"}
    if options.parallel_tool_calls is False:
        choice["disable_parallel_tool_use"] = True
    elif rule is None:
        return None
    return choice


def _add_thinking(body: dict[str, Any], model: str, effort: str | None) -> None:
    """Thinking for a reasoning effort: on models before Claude 4.6, extended thinking with
    a budget (``THINKING_BUDGETS``), ``max_tokens`` raised by it when it would leave no
    room for an answer; from 4.6 on, adaptive thinking with ``output_config.effort``. Not
    when the parameters set ``thinking``, nor when a tool call is forced (``any`` or
    ``tool``), which the API refuses with thinking."""
    budget = THINKING_BUDGETS.get(effort or "")
    choice = body.get("tool_choice")
    forced = isinstance(choice, dict) and choice.get("type") in ("any", "tool")
    if budget is None or forced or body.get("thinking") is not None:
        return
    if _adaptive_thinking(model):
        body["thinking"] = {"type": "adaptive"}
        config = {"effort": _ADAPTIVE_EFFORTS[effort or ""]}
        add_unset(body, {"output_config": config}, merged=("output_config",))
        return
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    max_tokens = body["max_tokens"]
    if type(max_tokens) is int and max_tokens <= budget:
        body["max_tokens"] = max_tokens + budget


def _adaptive_thinking(model: str) -> bool:
    """Whether ``model`` names a Claude model that thinks adaptively (4.6 and later)."""
    found = _CLAUDE_VERSION.search(model)
    if found is None:
        return False
    major, minor = found.groups()
    return (int(major), int(minor or 0)) >= _ADAPTIVE_SINCE


def _wire_tool(function: dict[str, Any]) -> dict[str, Any]:
    tool = {"name": function["name"], "input_schema": function["parameters"]}
    if function.get("description"):
        tool["description"] = function["description"]
    return tool


def wire_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """The ``messages`` of a call: content blocks, roles alternating.

    Tool results are ``tool_result`` blocks of a user message; consecutive messages of one
    role (several tool results, a tool result then the user's next words) become one
    message. Empty messages are left out: the API refuses empty text blocks. A user
    message's images come before its text, and its files (``document`` blocks) too; an assistant message's kept thinking blocks
    (``provider_state["thinking_blocks"]``) where they came among its text and ``tool_use``
    blocks (``_with_thinking``).
    """
    wire: list[dict[str, Any]] = []
    for message in messages:
        role = str(message.role)
        if role == "system":
            continue  # sent as the top-level ``system``
        blocks = _content_blocks(message, role)
        if not blocks:
            continue
        wire_role = "assistant" if role == "assistant" else "user"
        if wire and wire[-1]["role"] == wire_role:
            wire[-1]["content"].extend(blocks)
        else:
            wire.append({"role": wire_role, "content": blocks})
    return wire


def _content_blocks(message: ChatMessage, role: str) -> list[dict[str, Any]]:
    if role == "tool":
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id or ""}
        if message.content:
            result["content"] = message.content
        return [result]
    blocks: list[dict[str, Any]] = []
    if role == "user" and message.images:
        blocks.extend(_image_block(url) for url in message.images)
    if role == "user":
        blocks.extend(_document_block(file) for file in message.files)
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    if role == "assistant":
        blocks.extend(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
            for call in message.tool_calls
        )
        kept = _kept_thinking(message.provider_state)
        if kept and blocks:  # thinking alone is no message: the API keeps none of it
            places = _thinking_places(message.provider_state, len(kept))
            blocks = _with_thinking(blocks, kept, places)
    return blocks


def _image_block(url: str) -> dict[str, Any]:
    data_url = split_data_url(url)
    if data_url is None:
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = data_url
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _document_block(file: FileInput) -> dict[str, Any]:
    """A file as a ``document`` block: a PDF's bytes (base64), else its text."""
    if native(file):
        source = {"type": "base64", "media_type": file.media_type, "data": base64_data(file)}
    else:
        source = {"type": "text", "media_type": "text/plain", "data": body_text(file)}
    return {"type": "document", "source": source, "title": file.filename}


def _kept_thinking(state: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The thinking blocks this adapter stored with an answer (``thinking_blocks``, as
    ``_StreamState.state_events`` wrote them). None at all when any is not of their shape:
    the state may have come back from a client (a stateless Responses client carries it),
    and a changed one must not fail the turn."""
    blocks = state.get("thinking_blocks", []) if state else []
    if not isinstance(blocks, list) or not all(_a_thinking_block(b) for b in blocks):
        return []
    return blocks


def _a_thinking_block(block: Any) -> bool:
    if not isinstance(block, dict):
        return False
    if block.get("type") == "redacted_thinking":
        return isinstance(block.get("data"), str)
    return (
        block.get("type") == "thinking"
        and isinstance(block.get("thinking"), str)
        and isinstance(block.get("signature"), str)
    )


def _thinking_places(state: dict[str, Any] | None, count: int) -> list[int]:
    """Where each of the ``count`` kept thinking blocks came (``thinking_places``); all
    first when the state has no places, or none that fit."""
    places = state.get("thinking_places") if state else None
    if not isinstance(places, list) or len(places) != count:
        return [0] * count
    if not all(type(place) is int and place >= 0 for place in places):
        return [0] * count
    return places


def _with_thinking(
    blocks: list[dict[str, Any]], kept: list[dict[str, Any]], places: list[int]
) -> list[dict[str, Any]]:
    """The assistant's text and ``tool_use`` blocks with each kept thinking block before the
    block it came before (after them all when it came last), in the order they came."""
    pending = list(zip(places, kept, strict=True))
    content: list[dict[str, Any]] = []
    for position, block in enumerate(blocks):
        while pending and pending[0][0] <= position:
            content.append(pending.pop(0)[1])
        content.append(block)
    content.extend(block for _, block in pending)
    return content
