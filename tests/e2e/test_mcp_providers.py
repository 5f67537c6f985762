"""Hosted MCP tools on every provider kind: ``POST /v1/responses`` to a real ``parley
serve`` whose models go to each kind's scripted fake over real sockets, with an ``mcp`` tool
whose server (the test MCP server, on loopback) the server itself calls.

The scripted model reasons, then calls the server's ``echo`` tool with ``{"text": "hi"}`` in
its provider's own wire format; the server runs the call on the MCP server within the turn
and calls the model again. That second model call must carry, in the provider's own format,
the question, the reasoning where the provider needs it back, the call and its result
(``hi``); the response's output is the server's tool list, the call and the answer (with
the model's reasoning). Each kind goes through an approval as well (the approved call's
result reaches the provider the same way), and through a turn that calls the MCP tool beside
a client function (both results go back together, once the client sent its own).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.e2e.responses_helpers import WEATHER_TOOL
from tests.e2e.responses_providers_helpers import (
    ANSWER,
    ENCRYPTED,
    SIGNATURE,
    THINKING,
    AnthropicUpstream,
    Call,
    CallsTurn,
    ChatUpstream,
    DeepSeekUpstream,
    DemoModel,
    GeminiUpstream,
    OllamaUpstream,
    RecordingMCP,
    ResponsesUpstream,
    TextTurn,
    Upstream,
    one_model_turns,
    serving_with,
)
from tests.harness import ParleyServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

UPSTREAMS: dict[str, type[Upstream]] = {
    "openai-chat": ChatUpstream,
    "openai-chat-reasoning-back": DeepSeekUpstream,
    "openai-responses": ResponsesUpstream,
    "anthropic": AnthropicUpstream,
    "gemini": GeminiUpstream,
    "ollama": OllamaUpstream,
    "demo": DemoModel,
}
SLOTS = 6
#: What the user asks (the demo model calls ``echo`` with ``hi`` for it).
QUESTION = "echo hi"
ARGUMENTS = {"text": "hi"}
RESULT = "hi"


@dataclass
class Parley:
    server: ParleyServer
    http: httpx.AsyncClient
    upstreams: dict[str, Upstream]
    mcp: RecordingMCP
    mcp_url: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def parley(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Parley]:
    """One server for the module, every kind's fakes its providers, one MCP server."""
    tmp = tmp_path_factory.mktemp("mcp-providers")
    upstreams = {kind: cls(tmp, SLOTS) for kind, cls in UPSTREAMS.items()}
    mcp = RecordingMCP()
    with mcp.serve() as url:
        env = {"PARLEY_MCP_ALLOW_URLS": "127.0.0.1"}
        async with serving_with(tmp, upstreams, env) as (server, http):
            yield Parley(server, http, upstreams, mcp, url)


def mcp_tool(url: str, approval: str = "never") -> dict[str, Any]:
    return {
        "type": "mcp",
        "server_label": "tests",
        "server_url": url,
        "allowed_tools": ["echo"],
        "require_approval": approval,
    }


def echo_call(upstream: Upstream) -> Call:
    """The scripted model's call of ``echo``, with the provider's call id."""
    return Call(upstream.call_ids[0], "echo", ARGUMENTS)


# ------------------------------------------------------- each provider's own format


def offered_names(kind: str, body: dict[str, Any]) -> list[str]:
    """The names of the functions a model call offers, read in the provider's format."""
    tools = body.get("tools") or []
    if kind in ("openai-chat", "openai-chat-reasoning-back", "ollama"):
        return [t["function"]["name"] for t in tools]
    if kind == "gemini":
        return [d["name"] for t in tools for d in t.get("functionDeclarations", [])]
    return [t["name"] for t in tools]


#: Calls and what each returned, in the model's order.
Pairs = list[tuple[Call, str]]


def _compact(arguments: dict[str, Any]) -> str:
    return json.dumps(arguments, separators=(",", ":"))


def chat_context(body: dict[str, Any], pairs: Pairs, reasoning_back: bool) -> None:
    assistant: dict[str, Any] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": c.call_id,
                "type": "function",
                "function": {"name": c.name, "arguments": _compact(c.arguments)},
            }
            for c, _ in pairs
        ],
    }
    if reasoning_back:
        assistant["reasoning_content"] = "".join(THINKING)
    assert body["messages"] == [
        {"role": "user", "content": QUESTION},
        assistant,
        *({"role": "tool", "tool_call_id": c.call_id, "content": out} for c, out in pairs),
    ]


def responses_context(body: dict[str, Any], pairs: Pairs) -> None:
    assert body["store"] is False
    summary = [{"type": "summary_text", "text": "".join(THINKING)}]
    assert body["input"] == [
        {"role": "user", "content": QUESTION},
        {"id": "rs_up1", "type": "reasoning", "summary": summary, "encrypted_content": ENCRYPTED},
        *(
            {
                "type": "function_call",
                "call_id": c.call_id,
                "name": c.name,
                "arguments": _compact(c.arguments),
                "id": f"fc_up{n}",
            }
            for n, (c, _) in enumerate(pairs)
        ),
        *(
            {"type": "function_call_output", "call_id": c.call_id, "output": out}
            for c, out in pairs
        ),
    ]


def anthropic_context(body: dict[str, Any], pairs: Pairs) -> None:
    """One assistant message with the signed thinking and every call, then one user
    message with every result (the API refuses results split over messages)."""
    signed = {"type": "thinking", "thinking": "".join(THINKING), "signature": SIGNATURE}
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
        {
            "role": "assistant",
            "content": [
                signed,
                *(
                    {"type": "tool_use", "id": c.call_id, "name": c.name, "input": c.arguments}
                    for c, _ in pairs
                ),
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": c.call_id, "content": out}
                for c, out in pairs
            ],
        },
    ]


def gemini_context(body: dict[str, Any], pairs: Pairs) -> None:
    question, answer, results = body["contents"]
    assert question == {"role": "user", "parts": [{"text": QUESTION}]}
    assert answer["role"] == "model" and results["role"] == "user"
    assert [p.get("thoughtSignature") for p in answer["parts"]] == [SIGNATURE] + [None] * (
        len(pairs) - 1
    )
    for part, (call, _) in zip(answer["parts"], pairs, strict=True):
        assert (part["functionCall"]["name"], part["functionCall"]["args"]) == (
            call.name,
            call.arguments,
        )
        assert part["functionCall"].get("id", call.call_id) == call.call_id
    for part, (call, out) in zip(results["parts"], pairs, strict=True):
        response = part["functionResponse"]
        assert (response["name"], response["response"]) == (call.name, {"content": out})
        assert response.get("id", call.call_id) == call.call_id


def ollama_context(body: dict[str, Any], pairs: Pairs) -> None:
    assert body["messages"] == [
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "content": "",
            "thinking": "".join(THINKING),
            "tool_calls": [
                {"function": {"name": c.name, "arguments": c.arguments}} for c, _ in pairs
            ],
        },
        *({"role": "tool", "content": out, "tool_name": c.name} for c, out in pairs),
    ]


#: Each kind's check of the model call after the MCP call: it carries the call and ``hi``.
CONTEXT: dict[str, Callable[[dict[str, Any], Pairs], None]] = {
    "openai-chat": lambda body, pairs: chat_context(body, pairs, reasoning_back=False),
    "openai-chat-reasoning-back": lambda body, pairs: chat_context(
        body, pairs, reasoning_back=True
    ),
    "openai-responses": responses_context,
    "anthropic": anthropic_context,
    "gemini": gemini_context,
    "ollama": ollama_context,
}


def check_output(output: list[dict[str, Any]], reasoning: int = 1) -> dict[str, Any]:
    """The list, the call that echoed ``hi`` and the answer (the scripted model's reasoning
    before its call, ``reasoning`` items in all); the call item."""
    shown = [item["type"] for item in output if item["type"] != "reasoning"]
    assert shown == ["mcp_list_tools", "mcp_call", "message"], output
    assert [item["type"] for item in output[1:3]] == ["reasoning", "mcp_call"], output
    assert sum(item["type"] == "reasoning" for item in output) == reasoning, output
    listed, _, call, *_ = output
    assert listed["server_label"] == "tests" and listed.get("error") is None, listed
    assert [tool["name"] for tool in listed["tools"]] == ["echo"]
    assert (call["name"], call["server_label"], call["status"]) == ("echo", "tests", "completed")
    assert json.loads(call["arguments"]) == ARGUMENTS
    assert (call["output"], call["error"]) == (RESULT, None), call
    return dict(call)


def answer_text(response: dict[str, Any]) -> str:
    message = response["output"][-1]
    assert message["type"] == "message", message
    return "".join(part["text"] for part in message["content"])


async def create(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    answer = await http.post("/responses", json=body)
    assert answer.status_code == 200, answer.text
    response = dict(answer.json())
    assert response["status"] == "completed", response
    return response


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("kind", list(UPSTREAMS))
async def test_an_mcp_call_and_its_result_reach_the_provider(parley: Parley, kind: str) -> None:
    upstream = parley.upstreams[kind]
    slot, call = upstream.take(), echo_call(upstream)
    model, then = one_model_turns(upstream, slot, CallsTurn((call,)), TextTurn())
    before = len(parley.mcp.calls("echo"))
    parley.mcp.on_call = lambda _: then()
    try:
        response = await create(
            parley.http,
            model=model,
            input=QUESTION,
            tools=[mcp_tool(parley.mcp_url)],
            reasoning={"effort": "low", "summary": "auto"},
        )
    finally:
        parley.mcp.on_call = None
    check_output(response["output"], reasoning=2 if isinstance(upstream, DemoModel) else 1)
    (ran,) = parley.mcp.calls("echo")[before:]
    assert ran.params["arguments"] == ARGUMENTS
    if isinstance(upstream, DemoModel):  # it quotes the result it was given
        assert answer_text(response) == f'Demo model: the tool echo returned "{RESULT}".'
        return
    assert answer_text(response) == "".join(ANSWER)
    asked, told = upstream.requests(slot)
    assert offered_names(kind, asked) == ["echo"]
    CONTEXT[kind](told, [(call, RESULT)])
    stored = await parley.http.get(f"/responses/{response['id']}")
    assert stored.json()["output"] == response["output"]


@pytest.mark.parametrize("kind", [kind for kind in UPSTREAMS if kind != "demo"])
async def test_an_approved_call_reaches_the_provider(parley: Parley, kind: str) -> None:
    """The call waits for approval; approved, it runs before the next model call, which
    carries the call and its result as the provider wants them."""
    upstream = parley.upstreams[kind]
    slot, call = upstream.take(), echo_call(upstream)
    first, second = upstream.script(slot, CallsTurn((call,)), TextTurn())
    tool = mcp_tool(parley.mcp_url, approval="always")
    before = len(parley.mcp.calls("echo"))
    asked = await create(parley.http, model=first, input=QUESTION, tools=[tool])
    kinds = [item["type"] for item in asked["output"]]
    assert kinds == ["mcp_list_tools", "reasoning", "mcp_approval_request"], asked["output"]
    request = asked["output"][2]
    assert (request["name"], json.loads(request["arguments"])) == ("echo", ARGUMENTS)
    assert parley.mcp.calls("echo")[before:] == []  # nothing ran before the approval
    approval = {
        "type": "mcp_approval_response",
        "approval_request_id": request["id"],
        "approve": True,
    }
    done = await create(
        parley.http, model=second, input=[approval], tools=[tool], previous_response_id=asked["id"]
    )
    assert [item["type"] for item in done["output"]] == ["mcp_call", "message"], done["output"]
    ran = done["output"][0]
    assert ran["approval_request_id"] == request["id"]
    assert (ran["output"], ran["status"]) == (RESULT, "completed")
    assert len(parley.mcp.calls("echo")[before:]) == 1
    assert answer_text(done) == "".join(ANSWER)
    _, told = upstream.requests(slot)
    CONTEXT[kind](told, [(call, RESULT)])


@pytest.mark.parametrize("kind", [kind for kind in UPSTREAMS if kind != "demo"])
async def test_an_mcp_call_beside_a_client_function_call(parley: Parley, kind: str) -> None:
    """The model calls the MCP tool and a client function at once: the server runs the MCP
    call, the response ends with the function call for the client; with its output, the next
    model call carries both calls and both results as the provider wants them (one
    assistant turn, then the results, in the model's order)."""
    upstream = parley.upstreams[kind]
    slot = upstream.take()
    echo = echo_call(upstream)
    weather = Call(upstream.call_ids[1], "get_weather", {"city": "Oslo"})
    first, second = upstream.script(slot, CallsTurn((echo, weather)), TextTurn())
    tools = [mcp_tool(parley.mcp_url), WEATHER_TOOL]
    before = len(parley.mcp.calls("echo"))
    asked = await create(parley.http, model=first, input=QUESTION, tools=tools)
    kinds = [item["type"] for item in asked["output"] if item["type"] != "reasoning"]
    assert kinds == ["mcp_list_tools", "mcp_call", "function_call"], asked["output"]
    ran, wanted = asked["output"][-2:]
    assert (ran["name"], ran["output"], ran["status"]) == ("echo", RESULT, "completed"), ran
    assert (wanted["name"], json.loads(wanted["arguments"])) == ("get_weather", {"city": "Oslo"})
    assert len(parley.mcp.calls("echo")) - before == 1
    output = {"type": "function_call_output", "call_id": wanted["call_id"], "output": "sunny"}
    done = await create(
        parley.http, model=second, input=[output], tools=tools, previous_response_id=asked["id"]
    )
    assert [item["type"] for item in done["output"]] == ["message"], done["output"]
    assert answer_text(done) == "".join(ANSWER)
    assert len(parley.mcp.calls("echo")) - before == 1  # not run again
    _, told = upstream.requests(slot)
    CONTEXT[kind](told, [(echo, RESULT), (weather, "sunny")])


def results_of(kind: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """The tool results a model call carries, in its order: (call id, or tool name where
    the provider's format has no id, and the result)."""
    if kind in ("openai-chat", "openai-chat-reasoning-back"):
        return [(m["tool_call_id"], m["content"]) for m in body["messages"] if m["role"] == "tool"]
    if kind == "openai-responses":
        return [
            (i["call_id"], i["output"])
            for i in body["input"]
            if i.get("type") == "function_call_output"
        ]
    if kind == "anthropic":
        return [
            (b["tool_use_id"], b["content"])
            for m in body["messages"]
            if isinstance(m["content"], list)
            for b in m["content"]
            if b["type"] == "tool_result"
        ]
    if kind == "gemini":
        return [
            (p["functionResponse"]["name"], p["functionResponse"]["response"]["content"])
            for c in body["contents"]
            for p in c["parts"]
            if "functionResponse" in p
        ]
    return [(m["tool_name"], m["content"]) for m in body["messages"] if m["role"] == "tool"]


#: The kinds of the approval beside a client function.
BESIDE = ["anthropic", "openai-chat", "gemini", "ollama"]


async def approval_beside_a_function(parley: Parley, kind: str) -> tuple[dict[str, Any], Pairs]:
    """The model calls a tool that needs approval and a client function at once: the
    response asks for both; the approval and the function's output, sent together, run the
    call once and the answer comes. The next model call's body, and the calls with their
    results in the model's order."""
    upstream = parley.upstreams[kind]
    slot = upstream.take()
    echo = echo_call(upstream)
    weather = Call(upstream.call_ids[1], "get_weather", {"city": "Oslo"})
    first, second = upstream.script(slot, CallsTurn((echo, weather)), TextTurn())
    tools = [mcp_tool(parley.mcp_url, approval="always"), WEATHER_TOOL]
    before = len(parley.mcp.calls("echo"))
    asked = await create(parley.http, model=first, input=QUESTION, tools=tools)
    kinds = [item["type"] for item in asked["output"] if item["type"] != "reasoning"]
    assert kinds == ["mcp_list_tools", "mcp_approval_request", "function_call"], asked["output"]
    request, wanted = asked["output"][-2:]
    assert parley.mcp.calls("echo")[before:] == []
    answers = [
        {"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": True},
        {"type": "function_call_output", "call_id": wanted["call_id"], "output": "sunny"},
    ]
    done = await create(
        parley.http, model=second, input=answers, tools=tools, previous_response_id=asked["id"]
    )
    assert [item["type"] for item in done["output"]] == ["mcp_call", "message"], done["output"]
    assert done["output"][0]["output"] == RESULT
    assert answer_text(done) == "".join(ANSWER)
    assert len(parley.mcp.calls("echo")) - before == 1
    _, told = upstream.requests(slot)
    return told, [(echo, RESULT), (weather, "sunny")]


@pytest.mark.parametrize("kind", BESIDE)
async def test_an_approval_beside_a_client_function_call(parley: Parley, kind: str) -> None:
    """Both results go back with the next model call (in some order)."""
    told, pairs = await approval_beside_a_function(parley, kind)
    named = kind in ("gemini", "ollama")
    expected = [(c.name if named else c.call_id, out) for c, out in pairs]
    assert sorted(results_of(kind, told)) == sorted(expected)


@pytest.mark.parametrize("kind", BESIDE)
async def test_an_approval_beside_a_client_function_keeps_the_call_order(
    parley: Parley, kind: str
) -> None:
    """The next model call is what it would be had both calls run in the turn: the calls,
    then their results in the model's order (as the provider gets them without approval)."""
    told, pairs = await approval_beside_a_function(parley, kind)
    CONTEXT[kind](told, pairs)
