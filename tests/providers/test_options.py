"""``ModelOptions`` on the wire: the fields each adapter sends for each option, read from the
bodies the fake upstreams received over real loopback sockets. Ollama's are in
``test_ollama.py`` (its scripted server lives there), the demo model's in ``test_demo.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import pytest

from parley.providers.anthropic import FORMAT_TOOL, AnthropicProvider
from parley.providers.base import ChatMessage, ModelOptions, ModelRequest, Provider
from parley.providers.gemini import GeminiProvider
from parley.providers.openai_chat import OpenAIChatProvider
from parley.providers.openai_responses import OpenAIResponsesProvider
from parley.providers.options import ToolRule, offered_tools, tool_rule
from parley.testing.fake_anthropic import FakeAnthropic
from parley.testing.fake_gemini import FakeGemini, Script
from parley.testing.fake_responses import FakeResponses
from parley.testing.fake_upstream import FakeUpstream
from parley.types import FunctionSpec, Role, ToolSpec
from tests.providers.helpers import ALLOWED_AUTO, ALLOWED_BOTH, ONE_FUNCTION

WEATHER = ToolSpec(
    function=FunctionSpec(
        name="get_weather",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
    )
)
TIME = ToolSpec(function=FunctionSpec(name="get_time"))
TOOLS = [WEATHER, TIME]
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temperature": {"type": "number"}},
    "required": ["city", "temperature"],
    "additionalProperties": False,
}
JSON_SCHEMA = {
    "type": "json_schema",
    "name": "weather",
    "description": "A weather report",
    "schema": SCHEMA,
    "strict": True,
}

#: The Gemini models the tests call, each scripted to answer ``GEMINI_ANSWER``.
GEMINI_MODELS = (
    "gemini-2.5-flash",
    "gemini-2.5-pro",
    "gemini-3-pro-preview",
    "gemini-3-flash-preview",
)
GEMINI_ANSWER = {
    "candidates": [
        {
            "content": {"role": "model", "parts": [{"text": "ok"}]},
            "finishReason": "STOP",
            "index": 0,
        }
    ]
}


def request(
    model: str,
    *,
    tools: list[ToolSpec] | None = None,
    parameters: dict[str, Any] | None = None,
    **options: Any,
) -> ModelRequest:
    return ModelRequest(
        model=model,
        messages=[ChatMessage(role=Role.USER, content="Weather in Oslo?")],
        tools=TOOLS if tools is None else tools,
        parameters=parameters or {},
        options=ModelOptions(**options),
    )


@dataclass(frozen=True, slots=True)
class Upstream:
    """An adapter and the fake upstream it calls over a loopback socket (``last_body``: the
    JSON body of the latest request the fake received)."""

    adapter: Provider
    last_body: Callable[[], Any]

    async def body(self, req: ModelRequest) -> Any:
        """The body the fake received when the adapter streamed ``req``."""
        async for _event in self.adapter.stream(req):
            pass
        return self.last_body()


@pytest.fixture
def chat(provider: OpenAIChatProvider, fake: FakeUpstream) -> Upstream:
    return Upstream(provider, lambda: fake.requests[-1])


@pytest.fixture
async def responses() -> AsyncIterator[Upstream]:
    async with (
        FakeResponses() as fake,
        aclosing(
            OpenAIResponsesProvider(fake.base_url, api_key="sk-test", read_timeout=10)
        ) as adapter,
    ):
        yield Upstream(adapter, lambda: fake.requests[-1].body)


@pytest.fixture
async def anthropic() -> AsyncIterator[Upstream]:
    async with (
        FakeAnthropic() as fake,
        aclosing(
            AnthropicProvider(fake.base_url, api_key="sk-ant-test", read_timeout=10)
        ) as adapter,
    ):
        yield Upstream(adapter, lambda: fake.requests[-1].body)


@pytest.fixture
async def gemini() -> AsyncIterator[Upstream]:
    async with (
        FakeGemini() as fake,
        aclosing(GeminiProvider(fake.base_url, api_key="gm-test", read_timeout=10)) as adapter,
    ):
        for model in GEMINI_MODELS:
            fake.scripts[model] = Script(events=[GEMINI_ANSWER])
        yield Upstream(adapter, lambda: fake.requests[-1].body)


@pytest.fixture
def upstream(request: pytest.FixtureRequest) -> Upstream:
    """The ``Upstream`` fixture that the test's parameter names."""
    upstream: Upstream = request.getfixturevalue(request.param)
    return upstream


# ------------------------------------------------------------------------ tool choice


@pytest.mark.parametrize(
    ("choice", "rule"),
    [
        (None, None),
        ("auto", ToolRule("auto")),
        ("none", ToolRule("none")),
        ("required", ToolRule("required")),
        (ONE_FUNCTION, ToolRule("required", ("get_time",))),
        (ALLOWED_AUTO, ToolRule("auto", ("get_time",))),
        (ALLOWED_BOTH, ToolRule("required", ("get_time", "get_weather"))),
        # Shapes the neutral form does not have: the provider's default.
        ("any", None),
        ({"type": "function", "function": {"name": "get_time"}}, None),
        ({"type": "allowed_tools", "mode": "none", "tools": []}, None),
        ({"type": "file_search"}, None),
    ],
)
def test_tool_rule(choice: Any, rule: ToolRule | None) -> None:
    assert tool_rule(choice) == rule


def test_allowed_tools_skip_other_tool_types() -> None:
    choice = {
        "type": "allowed_tools",
        "mode": "auto",
        "tools": [{"type": "mcp", "server_label": "x"}, {"type": "function", "name": "get_time"}],
    }
    assert tool_rule(choice) == ToolRule("auto", ("get_time",))


@pytest.mark.parametrize(
    ("choice", "offered"),
    [
        (None, TOOLS),
        ("required", TOOLS),
        ("none", []),
        (ONE_FUNCTION, [TIME]),
        (ALLOWED_BOTH, TOOLS),
    ],
)
def test_offered_tools(choice: Any, offered: list[ToolSpec]) -> None:
    assert offered_tools(TOOLS, tool_rule(choice)) == offered


# ---------------------------------------------------------------------- every adapter


@pytest.mark.parametrize(
    ("upstream", "model", "fields"),
    [
        ("chat", "text:1", {"model", "messages", "stream", "stream_options", "tools"}),
        ("responses", "gpt-4.1", {"model", "input", "stream", "store", "tools"}),
        ("gemini", "gemini-2.5-flash", {"contents", "tools"}),
    ],
    indirect=["upstream"],
)
async def test_without_options_sends_nothing_more(
    upstream: Upstream, model: str, fields: set[str]
) -> None:
    assert set(await upstream.body(request(model))) == fields


# ------------------------------------------------------------------- Chat Completions


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        (ONE_FUNCTION, {"type": "function", "function": {"name": "get_time"}}),
        (
            ALLOWED_BOTH,
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [
                        {"type": "function", "function": {"name": "get_time"}},
                        {"type": "function", "function": {"name": "get_weather"}},
                    ],
                },
            },
        ),
    ],
)
async def test_chat_tool_choice(chat: Upstream, choice: Any, wire: Any) -> None:
    body = await chat.body(request("text:1", tool_choice=choice))
    assert body["tool_choice"] == wire
    assert "parallel_tool_calls" not in body


@pytest.mark.parametrize(
    ("fmt", "wire"),
    [
        ({"type": "text"}, {"type": "text"}),
        ({"type": "json_object"}, {"type": "json_object"}),
        (
            JSON_SCHEMA,
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "weather",
                    "description": "A weather report",
                    "schema": SCHEMA,
                    "strict": True,
                },
            },
        ),
        (
            {"type": "json_schema", "name": "weather", "schema": SCHEMA},
            {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA}},
        ),
    ],
)
async def test_chat_response_format(chat: Upstream, fmt: dict[str, Any], wire: Any) -> None:
    body = await chat.body(request("text:1", tools=[], response_format=fmt))
    assert body["response_format"] == wire


async def test_chat_parallel_calls_and_reasoning_effort(chat: Upstream) -> None:
    req = request("text:1", parallel_tool_calls=False, reasoning_effort="high")
    body = await chat.body(req)
    assert body["parallel_tool_calls"] is False
    assert body["reasoning_effort"] == "high"
    assert "tool_choice" not in body
    # A reasoning summary has no Chat Completions field.
    body = await chat.body(request("text:1", reasoning_summary="auto"))
    assert not {"reasoning", "reasoning_summary", "summary"} & set(body)


async def test_chat_tool_fields_only_with_tools(chat: Upstream) -> None:
    req = request("text:1", tools=[], tool_choice="required", parallel_tool_calls=True)
    body = await chat.body(req)
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(body)


async def test_chat_parameters_win(chat: Upstream) -> None:
    explicit = {
        "tool_choice": "none",
        "parallel_tool_calls": True,
        "response_format": {"type": "json_object"},
        "reasoning_effort": "low",
    }
    req = request(
        "text:1",
        parameters=explicit,
        tool_choice="required",
        parallel_tool_calls=False,
        response_format=JSON_SCHEMA,
        reasoning_effort="high",
    )
    body = await chat.body(req)
    assert {key: body[key] for key in explicit} == explicit


# ---------------------------------------------------------------------- Responses API


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        (ONE_FUNCTION, {"type": "function", "name": "get_time"}),
        (
            ALLOWED_AUTO,
            {
                "type": "allowed_tools",
                "mode": "auto",
                "tools": [{"type": "function", "name": "get_time"}],
            },
        ),
    ],
)
async def test_responses_tool_choice_and_parallel_calls(
    responses: Upstream, choice: Any, wire: Any
) -> None:
    req = request("gpt-4.1", tool_choice=choice, parallel_tool_calls=False)
    body = await responses.body(req)
    assert body["tool_choice"] == wire
    assert body["parallel_tool_calls"] is False
    body = await responses.body(request("gpt-4.1", tools=[], tool_choice=choice))
    assert "tool_choice" not in body and "tools" not in body


@pytest.mark.parametrize(
    ("fmt", "wire"),
    [
        ({"type": "text"}, {"type": "text"}),
        ({"type": "json_object"}, {"type": "json_object"}),
        (JSON_SCHEMA, JSON_SCHEMA),
    ],
)
async def test_responses_text_format(responses: Upstream, fmt: dict[str, Any], wire: Any) -> None:
    body = await responses.body(request("gpt-4.1", response_format=fmt))
    assert body["text"] == {"format": wire}


async def test_responses_reasoning(responses: Upstream) -> None:
    req = request("gpt-5", reasoning_effort="minimal", reasoning_summary="detailed")
    body = await responses.body(req)
    assert body["reasoning"] == {"effort": "minimal", "summary": "detailed"}
    # A deployment whose name says nothing is taken as a reasoning model once asked to reason.
    body = await responses.body(request("my-deployment", reasoning_effort="low"))
    assert body["reasoning"] == {"effort": "low"}
    assert body["include"] == ["reasoning.encrypted_content"]


async def test_responses_parameters_win_inside_text_and_reasoning(responses: Upstream) -> None:
    req = request(
        "gpt-5",
        parameters={
            "text": {"verbosity": "low"},
            "reasoning": {"effort": "high"},
            "tool_choice": "none",
            "parallel_tool_calls": True,
        },
        response_format={"type": "json_object"},
        reasoning_effort="low",
        reasoning_summary="auto",
        tool_choice="required",
        parallel_tool_calls=False,
    )
    body = await responses.body(req)
    assert body["text"] == {"format": {"type": "json_object"}, "verbosity": "low"}
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["tool_choice"] == "none"
    assert body["parallel_tool_calls"] is True


# ---------------------------------------------------------------------------- Anthropic


@pytest.mark.parametrize(
    ("options", "wire"),
    [
        ({"tool_choice": "auto"}, {"type": "auto"}),
        ({"tool_choice": "none"}, {"type": "none"}),
        ({"tool_choice": "required"}, {"type": "any"}),
        ({"tool_choice": ONE_FUNCTION}, {"type": "tool", "name": "get_time"}),
        # No allowed list in the API: every tool stays callable, in the choice's mode...
        ({"tool_choice": ALLOWED_AUTO}, {"type": "auto"}),
        ({"tool_choice": ALLOWED_BOTH}, {"type": "any"}),
        # ... but a required list of one is that one tool.
        (
            {"tool_choice": {**ALLOWED_AUTO, "mode": "required"}},
            {"type": "tool", "name": "get_time"},
        ),
        ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
        (
            {"tool_choice": "required", "parallel_tool_calls": False},
            {"type": "any", "disable_parallel_tool_use": True},
        ),
        (
            {"tool_choice": ONE_FUNCTION, "parallel_tool_calls": False},
            {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True},
        ),
        ({"tool_choice": "none", "parallel_tool_calls": False}, {"type": "none"}),
    ],
)
async def test_anthropic_tool_choice(
    anthropic: Upstream, options: dict[str, Any], wire: Any
) -> None:
    body = await anthropic.body(request("claude-sonnet-4-5", **options))
    assert body["tool_choice"] == wire
    assert [tool["name"] for tool in body["tools"]] == ["get_weather", "get_time"]


async def test_anthropic_tool_choice_only_with_tools(anthropic: Upstream) -> None:
    req = request("claude-sonnet-4-5", tools=[], tool_choice="required", parallel_tool_calls=False)
    body = await anthropic.body(req)
    assert "tool_choice" not in body and "tools" not in body
    body = await anthropic.body(request("claude-sonnet-4-5", parallel_tool_calls=True))
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("effort", "budget", "max_tokens"),
    [("low", 1024, 4096), ("medium", 8192, 12288), ("high", 16384, 20480), ("xhigh", 24576, 28672)],
)
async def test_anthropic_reasoning_effort_is_a_thinking_budget(
    anthropic: Upstream, effort: str, budget: int, max_tokens: int
) -> None:
    req = request("claude-sonnet-4-5", reasoning_effort=effort, reasoning_summary="auto")
    body = await anthropic.body(req)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == max_tokens
    assert "output_config" not in body and "tool_choice" not in body


async def test_anthropic_max_tokens_given(anthropic: Upstream) -> None:
    # Room enough: kept as given; none: raised by the budget.
    req = request(
        "claude-opus-4-1-20250805", parameters={"max_tokens": 32000}, reasoning_effort="high"
    )
    assert (await anthropic.body(req))["max_tokens"] == 32000
    req = request(
        "claude-3-7-sonnet-20250219", parameters={"max_tokens": 1000}, reasoning_effort="low"
    )
    body = await anthropic.body(req)
    assert body["max_tokens"] == 2024
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize(
    ("model", "effort", "wire"),
    [
        ("claude-opus-4-6", "low", "low"),
        ("claude-sonnet-4-6", "medium", "medium"),
        ("claude-opus-4-7", "xhigh", "high"),
        ("claude-opus-5", "high", "high"),
    ],
)
async def test_anthropic_adaptive_thinking_from_claude_4_6(
    anthropic: Upstream, model: str, effort: str, wire: str
) -> None:
    body = await anthropic.body(request(model, reasoning_effort=effort))
    assert body["thinking"] == {"type": "adaptive"}
    assert body["output_config"] == {"effort": wire}
    assert body["max_tokens"] == 4096


@pytest.mark.parametrize(
    ("options", "parameters"),
    [
        ({"reasoning_effort": "none"}, {}),
        ({"reasoning_effort": "minimal"}, {}),
        # The API refuses thinking with a forced tool call.
        ({"reasoning_effort": "high", "tool_choice": "required"}, {}),
        ({"reasoning_effort": "high", "tool_choice": ONE_FUNCTION}, {}),
        ({"reasoning_effort": "high"}, {"tool_choice": {"type": "any"}}),
    ],
)
async def test_anthropic_no_thinking(
    anthropic: Upstream, options: dict[str, Any], parameters: dict[str, Any]
) -> None:
    req = request("claude-sonnet-4-5", parameters=parameters, **options)
    body = await anthropic.body(req)
    assert "thinking" not in body and "output_config" not in body
    assert body["max_tokens"] == 4096


async def test_anthropic_parameters_win(anthropic: Upstream) -> None:
    explicit = {
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "max_tokens": 3000,
    }
    req = request(
        "claude-sonnet-4-5", parameters=explicit, tool_choice="none", reasoning_effort="high"
    )
    body = await anthropic.body(req)
    assert {key: body[key] for key in explicit} == explicit
    req = request(
        "claude-opus-4-6", parameters={"output_config": {"effort": "max"}}, reasoning_effort="low"
    )
    body = await anthropic.body(req)
    assert body["thinking"] == {"type": "adaptive"}
    assert body["output_config"] == {"effort": "max"}


async def test_anthropic_json_format_is_a_forced_tool(anthropic: Upstream) -> None:
    """Alone, the format's tool is forced; its input schema is the format's (any object for
    json_object); thinking is not asked for beside a forced call (the API refuses it)."""
    req = request("claude-sonnet-4-5", tools=[], response_format=JSON_SCHEMA)
    body = await anthropic.body(req)
    format_tool = {"name": FORMAT_TOOL, "description": "A weather report", "input_schema": SCHEMA}
    assert body["tools"] == [format_tool]
    assert body["tool_choice"] == {"type": "tool", "name": FORMAT_TOOL}
    req = request(
        "claude-sonnet-4-5",
        tools=[],
        response_format={"type": "json_object"},
        reasoning_effort="low",
    )
    body = await anthropic.body(req)
    [tool] = body["tools"]
    assert (tool["name"], tool["input_schema"]) == (FORMAT_TOOL, {"type": "object"})
    assert body["tool_choice"] == {"type": "tool", "name": FORMAT_TOOL}
    assert "thinking" not in body


@pytest.mark.parametrize(
    ("options", "wire"),
    [
        ({}, {"type": "any"}),
        (
            {"tool_choice": "auto", "parallel_tool_calls": False},
            {"type": "any", "disable_parallel_tool_use": True},
        ),
        ({"tool_choice": "none"}, {"type": "tool", "name": FORMAT_TOOL}),
        ({"tool_choice": ONE_FUNCTION}, {"type": "tool", "name": "get_time"}),
        ({"tool_choice": "required"}, {"type": "any"}),
    ],
)
async def test_anthropic_json_format_beside_tools(
    anthropic: Upstream, options: dict[str, Any], wire: Any
) -> None:
    """Beside the request's tools, some call is forced: a tool's, or the answer's."""
    body = await anthropic.body(
        request("claude-sonnet-4-5", response_format=JSON_SCHEMA, **options)
    )
    assert [tool["name"] for tool in body["tools"]] == ["get_weather", "get_time", FORMAT_TOOL]
    assert body["tool_choice"] == wire


async def test_anthropic_text_format_sends_nothing(anthropic: Upstream) -> None:
    plain = await anthropic.body(request("claude-sonnet-4-5"))
    req = request(
        "claude-sonnet-4-5", response_format={"type": "text"}, reasoning_summary="concise"
    )
    assert await anthropic.body(req) == plain
    assert set(plain) == {"max_tokens", "model", "messages", "stream", "tools"}


# ------------------------------------------------------------------------------- Gemini


def declared(body: Any) -> list[str]:
    return [d["name"] for d in body["tools"][0]["functionDeclarations"]]


@pytest.mark.parametrize(
    ("choice", "calling", "names"),
    [
        ("auto", {"mode": "AUTO"}, ["get_weather", "get_time"]),
        ("none", {"mode": "NONE"}, ["get_weather", "get_time"]),
        ("required", {"mode": "ANY"}, ["get_weather", "get_time"]),
        (
            ONE_FUNCTION,
            {"mode": "ANY", "allowedFunctionNames": ["get_time"]},
            ["get_weather", "get_time"],
        ),
        (
            ALLOWED_BOTH,
            {"mode": "ANY", "allowedFunctionNames": ["get_time", "get_weather"]},
            ["get_weather", "get_time"],
        ),
        # AUTO takes no allowedFunctionNames: only the allowed tools are declared.
        (ALLOWED_AUTO, {"mode": "AUTO"}, ["get_time"]),
    ],
)
async def test_gemini_tool_choice(
    gemini: Upstream, choice: Any, calling: dict[str, Any], names: list[str]
) -> None:
    req = request("gemini-2.5-flash", tool_choice=choice, parallel_tool_calls=False)
    body = await gemini.body(req)
    assert body["toolConfig"] == {"functionCallingConfig": calling}
    assert declared(body) == names


async def test_gemini_tool_config_only_with_tools(gemini: Upstream) -> None:
    req = request("gemini-2.5-flash", tools=[], tool_choice="required")
    assert set(await gemini.body(req)) == {"contents"}
    # None of the tools offered is allowed: none is declared.
    req = request("gemini-2.5-flash", tools=[WEATHER], tool_choice=ALLOWED_AUTO)
    assert set(await gemini.body(req)) == {"contents"}
    # Parallel calls have no switch.
    req = request("gemini-2.5-flash", parallel_tool_calls=False)
    assert set(await gemini.body(req)) == {"contents", "tools"}


@pytest.mark.parametrize(
    ("fmt", "config"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, {"responseMimeType": "application/json"}),
        (JSON_SCHEMA, {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA}),
    ],
)
async def test_gemini_response_format(
    gemini: Upstream, fmt: dict[str, Any], config: dict[str, Any] | None
) -> None:
    req = request("gemini-2.5-flash", response_format=fmt)
    assert (await gemini.body(req)).get("generationConfig") == config


@pytest.mark.parametrize(
    ("model", "effort", "thinking"),
    [
        ("gemini-2.5-flash", "none", {"thinkingBudget": 0}),
        ("gemini-2.5-flash", "minimal", {"thinkingBudget": 1024}),
        ("gemini-2.5-flash", "low", {"thinkingBudget": 1024}),
        ("gemini-2.5-flash", "medium", {"thinkingBudget": 8192}),
        ("gemini-2.5-flash", "high", {"thinkingBudget": 24576}),
        ("gemini-2.5-flash", "xhigh", {"thinkingBudget": 24576}),
        ("gemini-2.5-pro", "none", {"thinkingBudget": 128}),
        ("gemini-2.5-pro", "high", {"thinkingBudget": 24576}),
        ("gemini-3-flash-preview", "none", {"thinkingLevel": "minimal"}),
        ("gemini-3-flash-preview", "medium", {"thinkingLevel": "medium"}),
        ("gemini-3-flash-preview", "xhigh", {"thinkingLevel": "high"}),
        ("gemini-3-pro-preview", "minimal", {"thinkingLevel": "low"}),
        ("gemini-3-pro-preview", "low", {"thinkingLevel": "low"}),
        ("gemini-3-pro-preview", "medium", {"thinkingLevel": "high"}),
        ("gemini-3-pro-preview", "high", {"thinkingLevel": "high"}),
    ],
)
async def test_gemini_reasoning_effort(
    gemini: Upstream, model: str, effort: str, thinking: dict[str, Any]
) -> None:
    body = await gemini.body(request(model, reasoning_effort=effort))
    assert body["generationConfig"] == {"thinkingConfig": thinking}


async def test_gemini_reasoning_summary_includes_thoughts(gemini: Upstream) -> None:
    req = request("gemini-2.5-flash", reasoning_summary="auto")
    body = await gemini.body(req)
    assert body["generationConfig"] == {"thinkingConfig": {"includeThoughts": True}}
    req = request("gemini-3-pro-preview", reasoning_effort="high", reasoning_summary="detailed")
    body = await gemini.body(req)
    assert body["generationConfig"]["thinkingConfig"] == {
        "thinkingLevel": "high",
        "includeThoughts": True,
    }


async def test_gemini_parameters_win(gemini: Upstream) -> None:
    req = request(
        "gemini-2.5-flash",
        parameters={
            "thinking_config": {"thinkingBudget": 512},
            "response_mime_type": "text/x.enum",
            "temperature": 0.5,
        },
        response_format=JSON_SCHEMA,
        reasoning_effort="high",
        reasoning_summary="auto",
    )
    body = await gemini.body(req)
    assert body["generationConfig"] == {
        "thinkingConfig": {"thinkingBudget": 512},
        "responseMimeType": "text/x.enum",
        "temperature": 0.5,
    }
