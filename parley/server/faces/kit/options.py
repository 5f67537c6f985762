"""The options check: for every request field of every face, one rule.

- ``supported``: Parley honours it.
- ``passed on``: sent to the model's provider where its API has it; where it does not, the
  request is a 400 naming the field (``unsupported_parameter``), before any model call.
- ``hint``: taken and answered back, with no effect on the answer (a hint OpenAI's own
  servers use), or passed on only where the provider has it (its note says which).
- ``refused``: a 400 naming the field, when it asks for something (``n`` above 1,
  ``logprobs`` true); its default value is taken.

Each face's table (``FACES``) is applied where the face reads its request (``check``), and
``docs/compatibility.md`` is written from the tables (``python -m
parley.server.faces.kit.compatibility``); a test fails when the page and the tables
disagree, and when a body has a field its face's table does not rule on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from parley.errors import InvalidRequest

Kind = Literal["supported", "passed on", "hint", "refused"]


class Capabilities(Protocol):
    """What the check needs of a model (``engine.ModelProfile`` has it): its API's kind,
    and the options that API has no equivalent for (``json``: a JSON output format)."""

    @property
    def kind(self) -> str: ...

    @property
    def refused(self) -> frozenset[str]: ...


def _given(value: Any) -> bool:
    return value is not None


def _true(value: Any) -> bool:
    return bool(value)


def _above_one(value: Any) -> bool:
    return isinstance(value, int) and value > 1


def _not_text_only(value: Any) -> bool:
    return bool(value != ["text"])


def _json(value: Any) -> bool:
    """Whether an output format asks for JSON: Chat's or Assistants' ``response_format``,
    or the Responses API's ``text`` (its ``format``)."""
    fmt = value if isinstance(value, Mapping | str) else getattr(value, "format", None)
    kind = fmt.get("type") if isinstance(fmt, Mapping) else getattr(fmt, "type", None)
    return kind in ("json_object", "json_schema")


@dataclass(frozen=True, slots=True)
class Rule:
    """One field's rule. ``note``: what Parley does with it (or why it refuses it);
    ``option``: for ``passed on``, the option's name among a provider's refused options;
    ``asks``: whether a value asks for something (the rule applies to it); ``param``: the
    field's name in an error, when not its own (``text.format``)."""

    kind: Kind
    note: str = ""
    option: str | None = None
    asks: Callable[[Any], bool] = _given
    param: str | None = None
    when: str = field(default="", compare=False)


def supported(note: str = "") -> Rule:
    return Rule("supported", note)


def passed_on(option: str, note: str = "", **kw: Any) -> Rule:
    return Rule("passed on", note, option=option, **kw)


def hint(note: str) -> Rule:
    return Rule("hint", note)


def refused(note: str, asks: Callable[[Any], bool] = _given, when: str = "") -> Rule:
    return Rule("refused", note, asks=asks, when=when)


# ------------------------------------------------------------------------------ tables

_HOSTED = "not yet among the tools Parley runs itself"
_OPENAI_HINT = "taken, not passed on: a hint for OpenAI's own servers"
_CACHE = "passed on to OpenAI's APIs (openai-chat, openai-responses); others keep their own cache"
_PARALLEL = "sent to OpenAI's APIs and Anthropic; Gemini and Ollama have no such setting"
_JSON = "JSON schema or JSON mode, in the provider's own way (Anthropic: a forced tool)"

#: Chat Completions: ``POST /v1/chat/completions`` (``ChatCompletionCreate``).
CHAT: dict[str, Rule] = {
    "model": supported(),
    "messages": supported(
        "text, image and file parts ([files.md](files.md#files-as-inputs)); "
        "text parts joined with nothing between"
    ),
    "tools": supported("function tools"),
    "tool_choice": supported(),
    "parallel_tool_calls": supported(_PARALLEL),
    "stream": supported(),
    "stream_options": supported("include_usage"),
    "max_tokens": supported(),
    "max_completion_tokens": supported(),
    "temperature": supported(),
    "top_p": supported(),
    "stop": passed_on("stop"),
    "seed": passed_on("seed"),
    "presence_penalty": passed_on("presence_penalty"),
    "frequency_penalty": passed_on("frequency_penalty"),
    "response_format": passed_on("json", _JSON, asks=_json),
    "reasoning_effort": supported(),
    "prompt_cache_retention": hint(_CACHE),
    "prompt_cache_key": hint(_OPENAI_HINT),
    "user": hint(_OPENAI_HINT),
    "safety_identifier": hint(_OPENAI_HINT),
    "service_tier": hint(_OPENAI_HINT),
    "verbosity": hint("taken, not passed on"),
    "metadata": hint("checked, not kept: chat completions are not stored"),
    "store": refused(
        "chat completions are not stored; use /v1/responses to keep answers.", _true, "true"
    ),
    "n": refused("Parley answers one choice per request; send n requests.", _above_one, "above 1"),
    "logprobs": refused("Parley's gateway does not pass log probabilities on.", _true, "true"),
    "top_logprobs": refused(
        "Parley's gateway does not pass log probabilities on.", _true, "above 0"
    ),
    "logit_bias": refused("Parley's gateway does not pass logit biases on.", _true, "not empty"),
    "modalities": refused("only text answers are available.", _not_text_only, 'not ["text"]'),
    "audio": refused("not available through Parley."),
    "prediction": refused("not available through Parley."),
    "web_search_options": refused("not available through Parley."),
    "functions": refused("use tools and tool_choice (functions are deprecated)."),
    "function_call": refused("use tools and tool_choice (functions are deprecated)."),
}

#: The Responses API: ``POST /v1/responses`` and a WebSocket ``response.create``
#: (``ResponseCreate``; the socket also takes ``type`` and ``generate``).
RESPONSES: dict[str, Rule] = {
    "model": supported(),
    "input": supported(
        "messages (text, image and file parts: [files.md](files.md#files-as-inputs)), "
        "function calls and their outputs, reasoning, "
        "compaction and item references"
    ),
    "instructions": supported(),
    "tools": supported("function tools"),
    "tool_choice": supported(),
    "parallel_tool_calls": supported(_PARALLEL),
    "max_output_tokens": supported(),
    "temperature": supported(),
    "top_p": supported(),
    "presence_penalty": passed_on("presence_penalty"),
    "frequency_penalty": passed_on("frequency_penalty"),
    "text": passed_on(
        "json", f"format: {_JSON}; verbosity: taken, not passed on", asks=_json, param="text.format"
    ),
    "reasoning": supported("effort and summary"),
    "truncation": supported(),
    "store": supported(),
    "background": supported(),
    "stream": supported(),
    "stream_options": supported(),
    "previous_response_id": supported(),
    "conversation": supported(),
    "metadata": supported(),
    "prompt_cache_retention": hint(_CACHE),
    "prompt_cache_key": hint(_OPENAI_HINT),
    "user": hint(_OPENAI_HINT),
    "safety_identifier": hint(_OPENAI_HINT),
    "service_tier": hint(_OPENAI_HINT),
    "client_metadata": hint("checked, then ignored (Codex sends it)"),
    "max_tool_calls": supported("counts the calls of the tools the server runs"),
    "include": hint(
        "taken; reasoning comes back as text, encrypted content is not made; "
        "file_search_call.results shows a file search's results, "
        "code_interpreter_call.outputs a code call's logs and images"
    ),
    "context_management": supported(
        "compaction with compact_threshold; null: at 80% of the model's context window"
    ),
    "top_logprobs": refused(
        "Parley's gateway does not pass log probabilities on.", _true, "above 0"
    ),
}

#: The Assistants API: assistants, threads, messages and runs (``AssistantCreate``,
#: ``RunCreate``, ``ThreadAndRunCreate``, ``MessageCreate``, ...).
ASSISTANTS: dict[str, Rule] = {
    "model": supported(),
    "name": supported(),
    "description": supported(),
    "instructions": supported(),
    "additional_instructions": supported(),
    "additional_messages": supported(),
    "assistant_id": supported(),
    "thread": supported(),
    "tools": supported("function tools"),
    "tool_choice": supported(),
    "parallel_tool_calls": supported(_PARALLEL),
    "temperature": supported(),
    "top_p": supported(),
    "response_format": passed_on("json", _JSON, asks=_json),
    "reasoning_effort": supported(),
    "parameters": supported("Parley's own: other parameters sent to the model as given"),
    "metadata": supported(),
    "stream": supported(),
    "max_prompt_tokens": supported(),
    "max_completion_tokens": supported(),
    "truncation_strategy": supported(),
    "content": supported("text and image_url parts; text parts joined with nothing between"),
    "role": supported(),
    "images": supported("Parley's own: images beside a message's text"),
    "messages": supported(),
    "tool_outputs": supported(),
    "tool_resources": supported(
        "file_search's vector store (one per assistant, one per thread; vector_stores "
        "makes it); code_interpreter's file_ids, put in the thread's container"
    ),
    "attachments": supported(
        "files for file_search, put in the thread's vector store, and for code_interpreter, "
        "put in the thread's container"
    ),
}

#: Parley's own API (``/v1/runs``, ``/v1/process``, ...).
NATIVE: dict[str, Rule] = {
    "model": supported(),
    "assistant_id": supported(),
    "thread_id": supported(),
    "run_id": supported(),
    "message_id": supported(),
    "instructions": supported(),
    "tools": supported(
        "function tools, and mcp, file_search and code_interpreter tools the server runs"
    ),
    "parameters": supported("sent to the model as given"),
    "content": supported(),
    "images": supported(),
    "stream": supported(),
    "tool_outputs": supported(),
    "output": supported(),
    "approve": supported(
        "instead of output, for a call the server runs once approved (an action with an "
        "approval): true runs it, false tells the model it was denied"
    ),
    "reason": supported("with approve: why; the model is told the reason of a denial"),
    "action_id": supported(),
    "tool_call_id": supported(),
}

#: Each face's table, by the face's name.
FACES: dict[str, dict[str, Rule]] = {
    "chat": CHAT,
    "responses": RESPONSES,
    "assistants": ASSISTANTS,
    "native": NATIVE,
}

#: Tool types: function tools are the client's to run; ``mcp`` the server runs; OpenAI's
#: other hosted tools are refused (400 naming ``tools[i].type``).
TOOL_TYPES: dict[str, Rule] = {
    "function": supported("the client runs it: the answer (or run) hands the call back"),
    "mcp": supported(
        "the server lists and calls a remote MCP server's tools in the turn, with approvals "
        "(Responses, Assistants and Parley's own runs; refused on Chat Completions); an "
        "assistant or a run keeps no headers: see docs/mcp.md"
    ),
    "file_search": supported(
        "the server searches the caller's vector stores in the turn and cites the files its "
        "answer names (Responses, Assistants and Parley's own runs; refused on Chat "
        "Completions): see docs/retrieval.md"
    ),
    "code_interpreter": supported(
        "the server runs the model's Python in a sandboxed container (bubblewrap) in the "
        "turn: the container the tool names, or the conversation's own (auto); logs, "
        "figures and the files the code writes come back (Responses, Assistants and "
        "Parley's own runs; refused on Chat Completions): see docs/code-interpreter.md"
    ),
    "custom": supported(
        "Responses only: a freeform tool (apply_patch) is a function of one string, input "
        "(its grammar in the description); its calls come back as custom_tool_call items"
    ),
    "namespace": supported(
        "Responses only: each tool of the namespace is a function <namespace>__<name>; its "
        "calls come back with namespace and name"
    ),
    "tool_search": supported(
        "Responses only: executed by the client, a function whose calls come back as "
        "tool_search_call items and whose tool_search_output is the model's result; every "
        "tool is offered from the start (defer_loading is taken), so a server-executed "
        "search is not offered"
    ),
    "web_search": supported(
        "Responses only: run through the search service the operator configures "
        "(PARLEY_WEB_SEARCH_URL); without one, taken and answered back, not offered to the "
        "model; refused elsewhere"
    ),
    "any other type": refused(f"{_HOSTED}: computer use, image generation, local shell, ..."),
}

#: Response fields Parley answers but does not fill, by face.
UNFILLED: dict[str, dict[str, str]] = {
    "chat": {
        "choices[].logprobs": "always null",
        "system_fingerprint": "always null",
        "service_tier": "always default",
        "choices[].message.annotations": "always empty",
    },
    "responses": {
        "output[].content[].logprobs": "always empty",
        "output[].content[].annotations": (
            "file citations (after a file_search) and container file citations (after a "
            "code_interpreter call) only"
        ),
        "service_tier": "always default",
        "top_logprobs, max_tool_calls, user, ...": "answered back as sent",
    },
    "assistants": {
        "message content[].text.annotations": (
            "file citations (after a file_search) and file paths (files a code_interpreter "
            "call wrote) only"
        ),
        "message attachments": "always empty",
    },
    "native": {},
}


# ------------------------------------------------------------------------------ check


def check(table: Mapping[str, Rule], body: Any, model: Capabilities | None) -> None:
    """Apply a face's ``table`` to a request ``body`` (a model with its fields as
    attributes) for ``model`` (None: not known yet; only refusals are checked). Raises
    ``InvalidRequest`` naming the first field refused, or passed on to a provider whose
    API has no such option."""
    for name, rule in table.items():
        value = getattr(body, name, None)
        if value is None or rule.kind in ("supported", "hint") or not rule.asks(value):
            continue
        param = rule.param or name
        if rule.kind == "refused":
            raise _unsupported(param, rule.note)
        if model is not None and rule.option in model.refused:
            what = "no JSON output mode" if rule.option == "json" else "no such option"
            raise _unsupported(param, f"the model's provider ({model.kind} API) has {what}.")


def _unsupported(param: str, why: str) -> InvalidRequest:
    return InvalidRequest(
        f"'{param}' is not supported: {why}", code="unsupported_parameter", param=param
    )
