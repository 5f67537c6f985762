"""Every provider kind through Chat Completions: ``POST /v1/chat/completions`` to a real
``parley serve``, whose models go to each kind's fake upstream over real sockets (Chat
Completions, the Responses API, Anthropic, Gemini, Ollama) or to the demo model.

The model reasons, then asks for two tools at once. What the client gets, as one
completion and as chunks accumulated the way OpenAI's clients do: the reasoning (as
``reasoning_content``), both calls with the provider's ids, names and arguments, the
``tool_calls`` finish reason and the provider's token counts. The client then sends the
calls and their results back as messages, and the answer streams as the provider streamed
it. Recorded real answers of each kind go the same way (``tests/recordings``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.e2e.responses_providers_helpers import (
    ANSWER,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    QUESTION,
    RESULTS,
    TOOLS,
    CallsTurn,
    DemoModel,
    Recorded,
    TextTurn,
    Upstream,
    serving,
)
from tests.e2e.test_responses_providers import KINDS, RECORDED, UPSTREAMS, Parley
from tests.providers.test_replay import KINDS as RECORDING_KINDS

pytestmark = pytest.mark.asyncio(loop_scope="module")

SLOTS = 5
#: The scenario's tools in Chat Completions' nested shape.
CHAT_TOOLS = [
    {"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}}
    for tool in TOOLS
]


#: The kinds whose calls' ids carry a state token: what the provider wants back with them.
STATEFUL = {"anthropic", "gemini", "openai-responses"}


def provider_id(call_id: str) -> str:
    """The provider's id of a call, without the state token (``<id>~<token>``)."""
    return call_id.partition("~")[0]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def parley(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Parley]:
    """One server for the module, every kind's fakes configured as its providers."""
    tmp = tmp_path_factory.mktemp("chat-providers")
    upstreams = {kind: UPSTREAMS[kind](tmp, SLOTS) for kind in KINDS}
    async with serving(tmp, upstreams) as (server, http):
        yield Parley(server, http, upstreams)


def request(model: str, **fields: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": QUESTION}],
        "tools": CHAT_TOOLS,
        "reasoning_effort": "low",
        **fields,
    }


@dataclass
class Answer:
    """What a client has of a completion: from the JSON, or accumulated from chunks."""

    text: str | None
    reasoning: str | None
    calls: list[tuple[str, str, Any]]  # (id, name, parsed arguments)
    finish_reason: str
    usage: dict[str, Any]


def from_completion(body: dict[str, Any], model: str) -> Answer:
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-"), body
    assert body["model"] == model and isinstance(body["created"], int)
    (choice,) = body["choices"]
    message = choice["message"]
    assert message["role"] == "assistant" and choice["index"] == 0
    calls = [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in message.get("tool_calls", [])
    ]
    assert all(c["type"] == "function" for c in message.get("tool_calls", []))
    return Answer(
        message["content"],
        message.get("reasoning_content"),
        calls,
        choice["finish_reason"],
        body["usage"],
    )


async def stream_chunks(http: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    """``stream: true`` with usage: the chunks, read to ``[DONE]`` (which must end it)."""
    options = {"stream": True, "stream_options": {"include_usage": True}}
    async with http.stream("POST", "/chat/completions", json={**body, **options}) as response:
        text = (await response.aread()).decode()
    assert response.status_code == 200, text
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in text.split("\n\n") if b.strip()]
    assert all(b.startswith("data: ") and "\n" not in b for b in blocks), blocks
    assert blocks[-1] == "data: [DONE]" and blocks.count("data: [DONE]") == 1
    return [json.loads(b.removeprefix("data: ")) for b in blocks[:-1]]


def accumulate(chunks: list[dict[str, Any]], model: str) -> Answer:
    """The chunks as OpenAI's clients put them together, each checked against the rules
    OpenAI's stream keeps."""
    *body, last = chunks
    assert last["choices"] == [] and last["usage"] is not None, last
    first = body[0]
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk" and chunk["model"] == model
        assert (chunk["id"], chunk["created"]) == (first["id"], first["created"])
    assert all(c["usage"] is None for c in body)
    assert first["choices"][0]["delta"]["role"] == "assistant"
    *middle, closing = body
    assert closing["choices"][0]["delta"] == {} and closing["choices"][0]["finish_reason"]
    text, reasoning = [], []
    calls: dict[int, dict[str, Any]] = {}
    for chunk in middle:
        (choice,) = chunk["choices"]
        assert choice["finish_reason"] is None and choice["index"] == 0
        delta = choice["delta"]
        text.append(delta.get("content") or "")
        reasoning.append(delta.get("reasoning_content") or "")
        for fragment in delta.get("tool_calls", []):
            index = fragment["index"]
            if index not in calls:  # the first delta of a call names it
                assert index == len(calls), fragment
                assert fragment["id"] and fragment["type"] == "function", fragment
                assert fragment["function"]["name"], fragment
                calls[index] = {
                    "id": fragment["id"],
                    "name": fragment["function"]["name"],
                    "arguments": fragment["function"].get("arguments", ""),
                }
            else:
                assert set(fragment) == {"index", "function"}, fragment
                calls[index]["arguments"] += fragment["function"]["arguments"]
    parsed = [(c["id"], c["name"], json.loads(c["arguments"])) for c in calls.values()]
    return Answer(
        "".join(text) or None,
        "".join(reasoning) or None,
        parsed,
        closing["choices"][0]["finish_reason"],
        last["usage"],
    )


def check_calls_answer(answer: Answer, turn: CallsTurn, upstream: Upstream) -> None:
    """The turn that reasons and calls both tools, with the provider's ids and counts."""
    assert answer.reasoning == "".join(turn.reasoning)
    assert answer.text is None
    assert [(name, args) for _, name, args in answer.calls] == [
        (call.name, call.arguments) for call in turn.calls
    ]
    for (call_id, _, _), call in zip(answer.calls, turn.calls, strict=True):
        assert provider_id(call_id) == (call.call_id or provider_id(call_id))
    assert len({call_id for call_id, _, _ in answer.calls}) == 2
    assert answer.finish_reason == "tool_calls"
    usage = answer.usage
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    if not isinstance(upstream, DemoModel):
        assert (usage["prompt_tokens"], usage["completion_tokens"]) == (
            INPUT_TOKENS,
            OUTPUT_TOKENS,
        )


# ------------------------------------------------------------------------- one turn


@pytest.mark.parametrize("kind", KINDS)
async def test_reasoning_then_two_parallel_calls(parley: Parley, kind: str) -> None:
    upstream = parley.upstreams[kind]
    slot, turn = upstream.take(), upstream.scenario()
    (model,) = upstream.script(slot, turn)
    answer = await parley.http.post("/chat/completions", json=request(model))
    assert answer.status_code == 200, answer.text
    check_calls_answer(from_completion(answer.json(), model), turn, upstream)


@pytest.mark.parametrize("kind", KINDS)
async def test_the_same_turn_in_chunks(parley: Parley, kind: str) -> None:
    upstream = parley.upstreams[kind]
    slot, turn = upstream.take(), upstream.scenario()
    (model,) = upstream.script(slot, turn)
    chunks = await stream_chunks(parley.http, request(model))
    check_calls_answer(accumulate(chunks, model), turn, upstream)


@pytest.mark.parametrize("kind", KINDS)
async def test_both_results_go_back_and_the_answer_streams(parley: Parley, kind: str) -> None:
    upstream = parley.upstreams[kind]
    slot, turn = upstream.take(), upstream.scenario()
    first_model, second_model = upstream.script(slot, turn, TextTurn())
    first = from_completion(
        (await parley.http.post("/chat/completions", json=request(first_model))).json(),
        first_model,
    )
    assistant = {
        "role": "assistant",
        "content": None,
        "reasoning_content": first.reasoning,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for call_id, name, args in first.calls
        ],
    }
    results = [
        {"role": "tool", "tool_call_id": call_id, "content": result}
        for (call_id, _, _), result in zip(first.calls, RESULTS, strict=True)
    ]
    messages = [{"role": "user", "content": QUESTION}, assistant, *results]
    chunks = await stream_chunks(parley.http, request(second_model, messages=messages))
    answer = accumulate(chunks, second_model)
    assert answer.calls == [] and answer.finish_reason == "stop"
    if isinstance(upstream, DemoModel):
        assert answer.text == upstream.answer_text()
        return
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert deltas == list(ANSWER)  # streamed as the provider streamed it
    _, second_call = upstream.requests(slot)
    sent = json.dumps(second_call)
    for (call_id, _, _), result in zip(first.calls, RESULTS, strict=True):
        assert result in sent  # both results went to the provider, in its own format
        if kind not in ("gemini", "ollama"):  # these match results by name and order
            assert f'"{provider_id(call_id)}"' in sent
        assert "~" not in sent  # the provider gets its own ids back
    if kind in STATEFUL:  # what it wanted back with the calls went with them
        upstream.check_context(second_call, turn)


# ---------------------------------------------------------------- recorded answers


@pytest.mark.parametrize(("kind", "name"), RECORDED, ids=[name for _, name in RECORDED])
async def test_a_recorded_answer(parley: Parley, kind: str, name: str) -> None:
    """A recorded real answer, in chunks: what the replay test's own parser reads from the
    recording (reasoning, text, calls with the provider's ids, usage)."""
    recording = Recorded(name)
    expect = RECORDING_KINDS[recording.path.parent.name][1]
    expected = expect(recording.path.read_bytes(), recording.path.suffix)
    upstream = parley.upstreams[kind]
    (model,) = upstream.script(upstream.take(), recording)
    tools = [
        {"type": "function", "function": {"name": call_name}}
        for call_name in dict.fromkeys(call_name for call_name, _ in expected.calls)
    ]
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    chunks = await stream_chunks(parley.http, {**body, **({"tools": tools} if tools else {})})
    answer = accumulate(chunks, model)
    assert (answer.reasoning or "") == expected.reasoning
    assert (answer.text or "") == expected.text
    assert [(n, a) for _, n, a in answer.calls] == expected.calls
    for (call_id, _, _), expected_id in zip(answer.calls, expected.call_ids, strict=True):
        assert provider_id(call_id) == (expected_id or provider_id(call_id))
    assert answer.finish_reason == ("tool_calls" if expected.calls else "stop")
    assert expected.usage is not None
    usage = answer.usage
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == expected.usage
    assert usage["completion_tokens_details"]["reasoning_tokens"] == expected.reasoning_tokens
    assert usage["prompt_tokens_details"]["cached_tokens"] == expected.cached_tokens
