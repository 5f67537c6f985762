"""A Chat Completions request: its body as a typed model, and what it asks of the model as
the neutral ``ModelRequest``.

Known fields are checked; an unknown one is refused, as OpenAI refuses it. A field Parley
cannot honour (``n`` above 1, ``logprobs``, audio) or one the chosen provider's API has no
equivalent for (``seed`` on Anthropic, ``stop`` on the Responses API, a JSON format on
Anthropic) is a 400 that names it: nothing is dropped in silence. Messages are read here,
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
from pydantic import Field, Strict, ValidationError, field_validator

from parley.engine import CHARS_PER_TOKEN, CONTEXT_LENGTH_EXCEEDED, always_sent, estimate
from parley.errors import InvalidRequest
from parley.providers.base import ChatMessage, ModelOptions, ModelRequest
from parley.providers.options import PROMPT_CACHE_KINDS, PromptCacheRetention
from parley.server.faces.kit.bodies import MAX_IMAGES, MAX_ITEMS, Body, Count, Image, check_metadata
from parley.server.faces.kit.readers import invalid as _invalid
from parley.server.faces.kit.readers import neutral_response_format, neutral_tool_choice
from parley.types import FunctionSpec, Role, ToolCall, ToolSpec

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")

#: Sampling fields sent to the provider as parameters, under the same name.
_SAMPLING = ("temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty")


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


def _unsupported(param: str, why: str) -> InvalidRequest:
    return InvalidRequest(
        f"'{param}' is not supported: {why}", code="unsupported_parameter", param=param
    )


# ------------------------------------------------------------------------------ request


class ChatCall:
    """What a request asks of the model: ``request(model_id)`` is the ``ModelRequest`` for
    ``Engine.call_model``. ``tokens``: the state tokens its tool calls' ids carried (by the
    index of their message), whose states ``with_states`` puts back on those messages."""

    __slots__ = ("messages", "options", "parameters", "tokens", "tools")

    def __init__(
        self,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        parameters: dict[str, Any],
        options: ModelOptions,
        tokens: dict[int, str],
    ) -> None:
        self.messages, self.tools = messages, tools
        self.parameters, self.options, self.tokens = parameters, options, tokens

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
        unknown). Without a cap, or with images (whose tokens their bytes do not bound),
        the window is the most; None when that is unknown too."""
        cap = self.parameters.get("max_tokens")
        if cap is None or any(m.images for m in self.messages):
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


def read_call(body: ChatCompletionCreate, kind: str, refused: frozenset[str]) -> ChatCall:
    """What the request asks of the model, for a provider of ``kind`` (an API name for
    errors) that ``refused`` the options its API has no equivalent for. Raises
    ``InvalidRequest``."""
    _refuse_unsupported(body, kind, refused)
    messages = [_message(m, i) for i, m in enumerate(body.messages)]
    tokens: dict[int, str] = {}
    for index, message in enumerate(messages):
        for call in message.tool_calls:
            call.id, token = split_call_id(call.id)
            if token is not None:
                tokens[index] = token
        if message.tool_call_id is not None:
            message.tool_call_id = split_call_id(message.tool_call_id)[0]
    if not any(m.role != Role.SYSTEM for m in messages):
        raise _invalid("messages", "give at least one user, assistant or tool message.")
    tools = _tools(body.tools)
    options = _options(body, {t.function.name for t in tools})
    parameters: dict[str, Any] = {
        name: value for name in _SAMPLING if (value := getattr(body, name)) is not None
    }
    most = body.max_completion_tokens or body.max_tokens
    if most is not None:
        parameters["max_tokens"] = most
    if body.prompt_cache_retention is not None and kind in PROMPT_CACHE_KINDS:
        parameters["prompt_cache_retention"] = body.prompt_cache_retention
    return ChatCall(messages, tools, parameters, options, tokens)


def _refuse_unsupported(body: ChatCompletionCreate, kind: str, refused: frozenset[str]) -> None:
    if body.n is not None and body.n > 1:
        raise _unsupported("n", "Parley answers one choice per request; send n requests.")
    if body.logprobs or body.top_logprobs:
        param = "logprobs" if body.logprobs else "top_logprobs"
        raise _unsupported(param, "Parley's gateway does not pass log probabilities on.")
    if body.logit_bias:
        raise _unsupported("logit_bias", "Parley's gateway does not pass logit biases on.")
    if body.store:
        raise _unsupported(
            "store", "chat completions are not stored; use /v1/responses to keep answers."
        )
    if body.modalities is not None and body.modalities != ["text"]:
        raise _unsupported("modalities", "only text answers are available.")
    for name in ("audio", "prediction", "web_search_options"):
        if getattr(body, name) is not None:
            raise _unsupported(name, "not available through Parley.")
    if body.functions is not None or body.function_call is not None:
        param = "functions" if body.functions is not None else "function_call"
        raise _unsupported(param, "use tools and tool_choice (functions are deprecated).")
    for name in ("stop", "seed", "presence_penalty", "frequency_penalty"):
        if name in refused and getattr(body, name) is not None:
            raise _unsupported(name, f"the model's provider ({kind} API) has no such option.")
    fmt = body.response_format
    if fmt is not None and fmt.get("type") != "text" and "json" in refused:
        raise _unsupported(
            "response_format", f"the model's provider ({kind} API) has no JSON output mode."
        )


def _options(body: ChatCompletionCreate, names: set[str]) -> ModelOptions:
    choice = None if body.tool_choice is None else neutral_tool_choice(body.tool_choice, names)
    return ModelOptions(
        tool_choice=choice,
        parallel_tool_calls=body.parallel_tool_calls,
        response_format=neutral_response_format(body.response_format),
        reasoning_effort=body.reasoning_effort,
    )


# ------------------------------------------------------------------------------- tools


def _tools(given: list[dict[str, Any]] | None) -> list[ToolSpec]:
    tools: list[ToolSpec] = []
    for i, tool in enumerate(given or ()):
        where = f"tools[{i}]"
        kind = tool.get("type")
        if kind != "function":
            raise _invalid(f"{where}.type", f"only function tools are supported (got {kind!r}).")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise _invalid(f"{where}.function", "expected an object with the function's name.")
        try:
            spec = FunctionSpec(
                name=function.get("name"),  # type: ignore[arg-type]
                description=function.get("description") or "",
                parameters=function.get("parameters") or {"type": "object", "properties": {}},
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(p) for p in error.get("loc", ()))
            problem = str(error.get("msg", "invalid"))  # its prefix goes in ``error_text``
            raise _invalid(f"{where}.function.{field}", problem) from None
        if any(t.function.name == spec.name for t in tools):
            raise _invalid(f"{where}.function.name", f"the tool {spec.name} is given twice.")
        tools.append(ToolSpec(function=spec))
    return tools


# ---------------------------------------------------------------------------- messages

_ROLES = {
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "tool": Role.TOOL,
}


def _message(message: dict[str, Any], index: int) -> ChatMessage:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise _invalid(where, "expected a message object.")
    role = _ROLES.get(message.get("role"))  # type: ignore[arg-type]
    if role is None:
        if message.get("role") == "function":
            raise _unsupported(f"{where}.role", "function messages are deprecated; use tool.")
        raise _invalid(f"{where}.role", "expected system, developer, user, assistant or tool.")
    content = message.get("content")
    if role == Role.ASSISTANT:
        text, _ = _content(content, where, images=False, optional=True)
        reasoning = message.get("reasoning_content")
        if reasoning is not None and not isinstance(reasoning, str):
            raise _invalid(f"{where}.reasoning_content", "expected a string.")
        calls = [_call(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(_list(message, where))]
        if not text and not calls and not reasoning:
            raise _invalid(f"{where}.content", "an assistant message needs content or tool_calls.")
        return ChatMessage(role=role, content=text, reasoning=reasoning or None, tool_calls=calls)
    if role == Role.TOOL:
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not 1 <= len(call_id) <= 160:
            raise _invalid(f"{where}.tool_call_id", "expected the id of the call it answers.")
        text, _ = _content(content, where, images=False)
        return ChatMessage(role=role, content=text, tool_call_id=call_id)
    text, images = _content(content, where, images=role == Role.USER)
    return ChatMessage(role=role, content=text, images=images)


def _list(message: dict[str, Any], where: str) -> list[Any]:
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise _invalid(f"{where}.tool_calls", "expected a list of tool calls.")
    return calls


def _call(call: Any, where: str) -> ToolCall:
    if not isinstance(call, dict) or call.get("type", "function") != "function":
        raise _invalid(where, "expected a function tool call.")
    call_id, function = call.get("id"), call.get("function")
    if not isinstance(call_id, str) or not 1 <= len(call_id) <= 160:
        raise _invalid(f"{where}.id", "expected a string of 1 to 160 characters.")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise _invalid(f"{where}.function.name", "expected the function's name.")
    raw = function.get("arguments", "")
    if not isinstance(raw, str):
        raise _invalid(f"{where}.function.arguments", "expected a JSON string.")
    try:
        arguments = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        raise _invalid(f"{where}.function.arguments", "not valid JSON.") from None
    if not isinstance(arguments, dict):
        raise _invalid(f"{where}.function.arguments", "expected a JSON object.")
    return ToolCall(id=call_id, name=function["name"], arguments=arguments)


def _content(
    content: Any, where: str, *, images: bool, optional: bool = False
) -> tuple[str, list[str]]:
    """The text and image URLs of a message's ``content``: a string or a list of parts."""
    if content is None and optional:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise _invalid(f"{where}.content", "expected a string or a list of content parts.")
    texts: list[str] = []
    urls: list[str] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise _invalid(f"{at}.text", "expected a string.")
            texts.append(text)
        elif kind == "refusal" and optional:
            texts.append(str(part.get("refusal") or ""))
        elif kind == "image_url" and images:
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise _invalid(f"{at}.image_url.url", "expected an http(s) or data: URL.")
            try:
                urls.append(Image(url=url).url)
            except ValidationError as exc:
                problem = str(exc.errors()[0].get("msg", "not a usable image URL"))
                raise _invalid(f"{at}.image_url.url", problem) from None
        elif kind in ("image_url", "input_audio", "file"):
            raise _unsupported(f"{at}.type", f"{kind} content is not available here.")
        else:
            raise _invalid(f"{at}.type", f"unknown content part type {kind!r}.")
    if len(urls) > MAX_IMAGES:
        raise _invalid(f"{where}.content", f"a message holds at most {MAX_IMAGES} images.")
    return "".join(texts), urls
