"""A Chat Completions request: its body as a typed model, and what it asks of the model as
the neutral ``ModelRequest``.

Known fields are checked; an unknown one is refused, as OpenAI refuses it. A field Parley
cannot honour (``n`` above 1, ``logprobs``, audio) or one the chosen provider's API has no
equivalent for (``seed`` on Anthropic, ``stop`` on the Responses API) is a 400 that names it:
nothing is dropped in silence (``kit.options``, whose ``CHAT`` table rules on every field).
Tools, tool choice, output format, content parts and sampling go through ``kit.readers``. Messages are read here,
each fault named by its place (``messages[2].content[0].image_url.url``).

Nor is a message dropped to fit the model's context window: a request whose messages and
tools the estimate (``engine.context``) puts over the window, where it is known, is a 400
``context_length_exceeded`` before any upstream call (``ChatCall.check_window``). The
estimate is rough: a request it puts within the window goes to the upstream, which judges.
"""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, Strict, field_validator

from parley.engine import (
    CHARS_PER_TOKEN,
    CONTEXT_LENGTH_EXCEEDED,
    FileInputs,
    always_sent,
    estimate,
)
from parley.errors import InvalidRequest
from parley.providers.base import ChatMessage, ModelOptions, ModelRequest
from parley.providers.options import PROMPT_CACHE_KINDS, PromptCacheRetention
from parley.server.faces.kit import options
from parley.server.faces.kit.bodies import MAX_ITEMS, Body, Count, check_metadata
from parley.server.faces.kit.file_inputs import image_url, read_file
from parley.server.faces.kit.readers import (
    CHAT,
    FileRef,
    invalid,
    read_content,
    read_output_format,
    read_parts,
    read_sampling,
    read_tool_choice,
    read_tools,
    unsupported,
)
from parley.types import Role, ToolCall, ToolSpec

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


class StreamOptions(Body):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class ChatCompletionCreate(Body):
    """``POST /v1/chat/completions``."""

    model: str = Field(min_length=1, max_length=256)
    messages: list[dict[str, Any]] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: Count | None = None
    max_completion_tokens: Count | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: Annotated[int, Strict()] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    response_format: dict[str, Any] | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    user: str | None = Field(default=None, max_length=256)
    safety_identifier: str | None = Field(default=None, max_length=256)
    prompt_cache_key: str | None = Field(default=None, max_length=256)
    prompt_cache_retention: PromptCacheRetention | None = None
    metadata: dict[str, Any] | None = None
    store: bool | None = None
    n: Annotated[int, Strict(), Field(ge=1, le=128)] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Strict(), Field(ge=0, le=20)] | None = None
    logit_bias: dict[str, Any] | None = None
    modalities: list[str] | None = None
    service_tier: str | None = Field(default=None, max_length=32)
    verbosity: Literal["low", "medium", "high"] | None = None
    # Fields OpenAI knows that Parley refuses by name (below), rather than as unknown.
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    functions: list[Any] | None = None
    function_call: str | dict[str, Any] | None = None

    _metadata = field_validator("metadata")(check_metadata)

    @field_validator("messages")
    @classmethod
    def _not_too_many(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(value) > MAX_ITEMS:
            raise ValueError(f"messages holds at most {MAX_ITEMS} messages")
        return value

    @field_validator("stop")
    @classmethod
    def _four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("stop holds at most 4 sequences")
        return value


# ------------------------------------------------------------------------------ request


class ChatCall:
    """What a request asks of the model: ``request(model_id)`` is the ``ModelRequest`` for
    ``Engine.call_model``. ``tokens``: the state tokens its tool calls' ids carried (by the
    index of their message), whose states ``with_states`` puts back on those messages."""

    __slots__ = ("files", "messages", "options", "parameters", "tokens", "tools")

    def __init__(
        self,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        parameters: dict[str, Any],
        options: ModelOptions,
        tokens: dict[int, str],
        files: dict[int, list[FileRef]] | None = None,
    ) -> None:
        self.messages, self.tools = messages, tools
        self.parameters, self.options, self.tokens = parameters, options, tokens
        #: The files (and images by ``file_id``) of each message, by its index, to read.
        self.files = files or {}

    async def read_files(self, files: FileInputs, *, user_id: str, model: str) -> None:
        """Read the messages' files for ``model`` (``kit.file_inputs``): images by
        ``file_id`` join the message's images, files its ``files``. Raises ``NotFound``
        (not one of the user's files) and ``InvalidRequest``, the field named."""
        for index, refs in self.files.items():
            message = self.messages[index]
            for ref in refs:
                if ref.image:
                    message.images.append(await image_url(files, ref, user_id=user_id))
                else:
                    message.files.append(await read_file(files, ref, user_id=user_id, model=model))

    def with_states(self, states: dict[str, dict[str, Any]]) -> None:
        for index, token in self.tokens.items():
            state = states.get(token)
            if state is not None:
                self.messages[index].provider_state = state

    def check_window(self, window: int | None) -> None:
        """Refuse, as OpenAI does, messages and tools estimated at more tokens than the
        model's context ``window`` (None: unknown, nothing refused). Raises
        ``InvalidRequest`` (``context_length_exceeded``, param ``messages``)."""
        if window is None:
            return
        tools = always_sent(None, [t.model_dump(mode="json") for t in self.tools])
        need = sum(estimate(m) for m in self.messages) + len(tools) // CHARS_PER_TOKEN
        if need <= window:
            return
        what = "messages and tools come" if self.tools else "messages come"
        raise InvalidRequest(
            f"This model's maximum context length is {window:,} tokens. However, your {what} "
            f"to about {need:,} tokens (Parley's estimate, {CHARS_PER_TOKEN} characters a "
            "token). Please reduce the length of the messages.",
            code=CONTEXT_LENGTH_EXCEEDED,
            param="messages",
        )

    def most_tokens(self, window: int | None) -> int | None:
        """The most tokens the call may use, input and output, for the reservation of a
        daily budget: its messages and tools at one token a byte of UTF-8 (a token of a
        byte-level tokenizer is at least one byte; a message's framing is less than its
        ``MESSAGE_OVERHEAD``), plus its output cap, at most the model's ``window`` (None:
        unknown). Without a cap, or with images or files (whose tokens their bytes do not
        bound), the window is the most; None when that is unknown too."""
        cap = self.parameters.get("max_tokens")
        if cap is None or any(m.images or m.files for m in self.messages):
            return window
        most = int(cap) + len(orjson.dumps([t.model_dump(mode="json") for t in self.tools]))
        for m in self.messages:
            most += MESSAGE_OVERHEAD + len(m.content.encode()) + len((m.reasoning or "").encode())
            most += sum(len(c.name) + len(orjson.dumps(c.arguments)) for c in m.tool_calls)
            if m.provider_state is not None:
                most += len(orjson.dumps(m.provider_state))
        return most if window is None else min(most, window)

    def request(self, model_id: str) -> ModelRequest:
        return ModelRequest(
            model=model_id,
            messages=self.messages,
            tools=self.tools,
            parameters=dict(self.parameters),
            options=self.options,
        )


#: Tokens a message's framing may cost beyond its text (role, separators, a tool call's id).
MESSAGE_OVERHEAD = 16

#: A tool call id that carries a state token: ``<the provider's id>~<token>``.
_STATE_TOKEN = re.compile(r"(.+)~(p[0-9a-f]{16})")


def new_state_token() -> str:
    return f"p{secrets.token_hex(8)}"


def split_call_id(call_id: str) -> tuple[str, str | None]:
    """The provider's id of a call, and the state token its id carries (or None)."""
    found = _STATE_TOKEN.fullmatch(call_id)
    return (found[1], found[2]) if found else (call_id, None)


def read_call(body: ChatCompletionCreate, model: options.Capabilities) -> ChatCall:
    """What the request asks of ``model`` (its API's kind, and the options that API has no
    equivalent for: ``options.check``). Raises ``InvalidRequest``."""
    options.check(options.CHAT, body, model)
    messages: list[ChatMessage] = []
    files: dict[int, list[FileRef]] = {}
    for i, given in enumerate(body.messages):
        message, refs = _message(given, i)
        messages.append(message)
        if refs:
            files[i] = refs
    tokens: dict[int, str] = {}
    for index, message in enumerate(messages):
        for call in message.tool_calls:
            call.id, token = split_call_id(call.id)
            if token is not None:
                tokens[index] = token
        if message.tool_call_id is not None:
            message.tool_call_id = split_call_id(message.tool_call_id)[0]
    if not any(m.role != Role.SYSTEM for m in messages):
        raise invalid("messages", "give at least one user, assistant or tool message.")
    tools, _ = read_tools(body.tools, CHAT)
    parameters = read_sampling(body, most=body.max_completion_tokens or body.max_tokens)
    if body.prompt_cache_retention is not None and model.kind in PROMPT_CACHE_KINDS:
        parameters["prompt_cache_retention"] = body.prompt_cache_retention
    return ChatCall(messages, tools, parameters, _options(body, tools), tokens, files)


def _options(body: ChatCompletionCreate, tools: list[ToolSpec]) -> ModelOptions:
    choice = body.tool_choice
    names = {t.function.name for t in tools}
    return ModelOptions(
        tool_choice=None if choice is None else read_tool_choice(choice, names, CHAT),
        parallel_tool_calls=body.parallel_tool_calls,
        response_format=read_output_format(body.response_format, CHAT),
        reasoning_effort=body.reasoning_effort,
    )


# ---------------------------------------------------------------------------- messages

_ROLES = {
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "tool": Role.TOOL,
}


def _message(message: dict[str, Any], index: int) -> tuple[ChatMessage, list[FileRef]]:
    """A message, and the files a user message gives (still to be read)."""
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise invalid(where, "expected a message object.")
    role = _ROLES.get(message.get("role"))  # type: ignore[arg-type]
    if role is None:
        if message.get("role") == "function":
            raise unsupported(f"{where}.role", "function messages are deprecated; use tool.")
        raise invalid(f"{where}.role", "expected system, developer, user, assistant or tool.")
    content = message.get("content")
    if role == Role.ASSISTANT:
        text, _ = _content(content, where, images=False, assistant=True)
        reasoning = message.get("reasoning_content")
        if reasoning is not None and not isinstance(reasoning, str):
            raise invalid(f"{where}.reasoning_content", "expected a string.")
        calls = [_call(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(_list(message, where))]
        if not text and not calls and not reasoning:
            raise invalid(f"{where}.content", "an assistant message needs content or tool_calls.")
        answer = ChatMessage(role=role, content=text, reasoning=reasoning or None, tool_calls=calls)
        return answer, []
    if role == Role.TOOL:
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not 1 <= len(call_id) <= 160:
            raise invalid(f"{where}.tool_call_id", "expected the id of the call it answers.")
        text, _ = _content(content, where, images=False)
        return ChatMessage(role=role, content=text, tool_call_id=call_id), []
    user = role == Role.USER
    read = read_content(content, f"{where}.content", CHAT, images=user, files=user)
    return ChatMessage(role=role, content=read.text, images=read.images), read.files


def _list(message: dict[str, Any], where: str) -> list[Any]:
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise invalid(f"{where}.tool_calls", "expected a list of tool calls.")
    return calls


def _call(call: Any, where: str) -> ToolCall:
    if not isinstance(call, dict) or call.get("type", "function") != "function":
        raise invalid(where, "expected a function tool call.")
    call_id, function = call.get("id"), call.get("function")
    if not isinstance(call_id, str) or not 1 <= len(call_id) <= 160:
        raise invalid(f"{where}.id", "expected a string of 1 to 160 characters.")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise invalid(f"{where}.function.name", "expected the function's name.")
    raw = function.get("arguments", "")
    if not isinstance(raw, str):
        raise invalid(f"{where}.function.arguments", "expected a JSON string.")
    try:
        arguments = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        raise invalid(f"{where}.function.arguments", "not valid JSON.") from None
    if not isinstance(arguments, dict):
        raise invalid(f"{where}.function.arguments", "expected a JSON object.")
    return ToolCall(id=call_id, name=function["name"], arguments=arguments)


def _content(
    content: Any, where: str, *, images: bool, assistant: bool = False
) -> tuple[str, list[str]]:
    """The text and image URLs of a message's ``content``: a string or a list of parts
    (an assistant's may be none, and holds refusals)."""
    if content is None and assistant:
        return "", []
    return read_parts(content, f"{where}.content", CHAT, images=images, refusals=assistant)
