"""Every provider kind through the Responses face: ``POST /v1/responses`` to a real ``parley
serve``, whose models go to each kind's fake upstream over real sockets (Chat Completions,
the Responses API, Anthropic, Gemini, Ollama) or to the demo model.

The model reasons, then asks for two tools at once. What the client sees: the items in
order (reasoning ``rs_``, then the calls ``fc_`` with the provider's call ids, order and
arguments), as JSON and streamed item by item (``sequence_number`` without a gap, each
item's events at its ``output_index`` naming its final id), the streamed response the one
``GET /v1/responses/{id}`` answers. Then the client sends both results with
``previous_response_id``: the next model call carries, in the provider's own format, the
reasoning where the provider needs it back (Anthropic's signed thinking, the Responses API's
encrypted reasoning, Gemini's thought signature, Ollama's and DeepSeek's thinking), both
calls and both results; and the answer streams. Recorded real answers of each kind go the
same way (``tests/recordings``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from parley.testing.fake_anthropic import Block, message_events, thinking, tool_use
from parley.testing.fake_anthropic import text as text_block
from parley.testing.scripted import Answer
from tests.e2e.responses_helpers import call_output, sse_events
from tests.e2e.responses_providers_helpers import (
    ANSWER,
    CACHED_TOKENS,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    QUESTION,
    REASONING_TOKENS,
    RESULTS,
    TOOLS,
    AnthropicUpstream,
    CallsTurn,
    ChatUpstream,
    DeepSeekUpstream,
    DemoModel,
    GeminiUpstream,
    OllamaUpstream,
    Recorded,
    ResponsesUpstream,
    TextTurn,
    Upstream,
    calls,
    serving,
)
from tests.harness import ParleyServer
from tests.providers.test_replay import KINDS as RECORDING_KINDS

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: Each kind's fakes, by the test id that names it.
UPSTREAMS: dict[str, type[Upstream]] = {
    "openai-chat": ChatUpstream,
    "openai-chat-reasoning-back": DeepSeekUpstream,
    "openai-responses": ResponsesUpstream,
    "anthropic": AnthropicUpstream,
    "gemini": GeminiUpstream,
    "ollama": OllamaUpstream,
    "demo": DemoModel,
}
KINDS = [kind for kind in UPSTREAMS if kind != "openai-chat-reasoning-back"]
#: The kinds whose providers give a summary of the reasoning (OpenAI's reasoning summaries,
#: Gemini's thought summaries), shown in a reasoning item's ``summary``.
SUMMARIZING = {"openai-responses", "gemini"}
#: Slots (fakes) of each kind: at least one per test that uses the kind.
SLOTS = 9


@dataclass
class Parley:
    server: ParleyServer
    http: httpx.AsyncClient
    upstreams: dict[str, Upstream]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def parley(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Parley]:
    """One server for the module, every kind's fakes configured as its providers."""
    tmp = tmp_path_factory.mktemp("responses-providers")
    upstreams = {kind: cls(tmp, SLOTS) for kind, cls in UPSTREAMS.items()}
    async with serving(tmp, upstreams) as (server, http):
        yield Parley(server, http, upstreams)


def request(model: str, **fields: Any) -> dict[str, Any]:
    """A response asking the question, with both tools and reasoning."""
    return {
        "model": model,
        "input": QUESTION,
        "tools": TOOLS,
        "reasoning": {"effort": "low", "summary": "auto"},
        **fields,
    }


def reasoning_parts(text: str, *, summary: bool) -> dict[str, Any]:
    """A reasoning item's ``content`` and ``summary``: the reasoning as the provider gave
    it, in ``summary`` when it gave a summary of it."""
    if summary:
        return {"content": [], "summary": [{"type": "summary_text", "text": text}]}
    return {"content": [{"type": "reasoning_text", "text": text}], "summary": []}


def check_turn_output(
    output: list[dict[str, Any]], turn: CallsTurn, *, summary: bool = False
) -> None:
    """The output of the turn that reasons and calls both tools: the reasoning, then the
    calls in the provider's order, each with its own item id and the provider's call id
    (the demo model makes its own)."""
    assert [item["type"] for item in output] == ["reasoning", "function_call", "function_call"]
    thought, *call_items = output
    assert thought["id"].startswith("rs_") and thought["status"] == "completed", thought
    # Reasoning is shown as the provider gave it; what the provider keeps to itself
    # (signatures, encrypted reasoning) is not shown (docs/openai.md).
    parts = {"content": thought["content"], "summary": thought["summary"]}
    assert parts == reasoning_parts("".join(turn.reasoning), summary=summary), thought
    assert "encrypted_content" not in thought, thought
    for item, call in zip(call_items, turn.calls, strict=True):
        assert item["id"].startswith("fc_") and item["status"] == "completed", item
        assert (item["name"], json.loads(item["arguments"])) == (call.name, call.arguments)
        if call.call_id:
            assert item["call_id"] == call.call_id, item
    assert len({item["id"] for item in output}) == 3
    assert len({item["call_id"] for item in call_items}) == 2


def results(call_ids: list[str]) -> list[dict[str, Any]]:
    """The client's ``function_call_output`` items: ``RESULTS``, one for each call."""
    return [call_output(c, result) for c, result in zip(call_ids, RESULTS, strict=True)]


def check_usage(usage: dict[str, Any], input_tokens: int, output_tokens: int) -> None:
    assert (usage["input_tokens"], usage["output_tokens"]) == (input_tokens, output_tokens)
    assert usage["total_tokens"] == input_tokens + output_tokens


async def retrieved(http: httpx.AsyncClient, response_id: str) -> dict[str, Any]:
    answer = await http.get(f"/responses/{response_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def same_response(streamed: dict[str, Any], stored: dict[str, Any]) -> None:
    """The streamed final response is the stored one, ``completed_at`` included."""
    assert streamed == stored


# ---------------------------------------------------------------------- the streams


async def stream_response(http: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    """``POST /v1/responses`` with ``stream: true``: its events, read to ``[DONE]``."""
    async with http.stream("POST", "/responses", json={**body, "stream": True}) as response:
        return await read_events(response)


async def replay_response(http: httpx.AsyncClient, response_id: str) -> list[dict[str, Any]]:
    """``GET /v1/responses/{id}?stream=true``: the response's events replayed from its log."""
    path = f"/responses/{response_id}"
    async with http.stream("GET", path, params={"stream": "true"}) as response:
        return await read_events(response)


async def read_events(response: httpx.Response) -> list[dict[str, Any]]:
    """The events of a Responses stream, read to its end and checked (``sse_events``)."""
    body = (await response.aread()).decode()
    assert response.status_code == 200, body
    assert response.headers["content-type"].startswith("text/event-stream")
    return sse_events(body)


#: The events of one content part, by the item type that streams it (``summary``: a
#: reasoning item's summary part): part added, deltas, done, part done.
_PARTS = {
    "message": (
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
    ),
    "reasoning": (
        "response.content_part.added",
        "response.reasoning.delta",
        "response.reasoning.done",
        "response.content_part.done",
    ),
    "summary": (
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
    ),
}


def check_stream(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The stream is one response's, told item by item as the specification says; answers
    its final response (``response.completed``'s)."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    types = [e["type"] for e in events]
    assert types[:2] == ["response.created", "response.in_progress"], types
    assert types[-1] == "response.completed", types
    assert types.count("response.completed") == 1 and "response.failed" not in types, types
    final: dict[str, Any] = events[-1]["response"]
    assert final["status"] == "completed"
    for event in events[:2]:
        assert event["response"]["id"] == final["id"]
        assert event["response"]["status"] == "in_progress" and event["response"]["output"] == []
    body, index = events[2:-1], 0
    while body:
        assert body[0]["type"] == "response.output_item.added", body[0]
        end = next(n for n, e in enumerate(body) if e["type"] == "response.output_item.done")
        assert index < len(final["output"]), "a streamed item the response does not list"
        check_item(body[: end + 1], index, final["output"][index])
        body, index = body[end + 1 :], index + 1
    assert index == len(final["output"]), "an item of the response was never streamed"
    return final


def check_item(events: list[dict[str, Any]], index: int, item: dict[str, Any]) -> None:
    """The events of output item ``index``: added, its parts or arguments, done; each at
    ``output_index`` ``index`` and naming the final item's id."""
    added, *middle, done = events
    assert all(e["output_index"] == index for e in events), events
    assert added["item"]["id"] == item["id"] and added["item"]["type"] == item["type"]
    assert added["item"]["status"] == "in_progress", added
    assert done["item"] == item, (done["item"], item)
    assert all(e["item_id"] == item["id"] for e in middle), middle
    if item["type"] == "function_call":
        assert {k: added["item"][k] for k in ("call_id", "name")} == {
            k: item[k] for k in ("call_id", "name")
        }
        *deltas, finished = middle
        assert deltas and {e["type"] for e in deltas} == {"response.function_call_arguments.delta"}
        assert finished["type"] == "response.function_call_arguments.done", finished
        assert "".join(e["delta"] for e in deltas) == finished["arguments"] == item["arguments"]
        return
    kinds = ("message",) if item["type"] == "message" else ("reasoning", "summary")
    allowed = {t for kind in kinds for t in _PARTS[kind]}
    assert {e["type"] for e in middle} <= allowed, [e["type"] for e in middle]
    content = _streamed_parts([e for e in middle if e["type"] in _PARTS[kinds[0]]], kinds[0])
    assert content == [part["text"] for part in item["content"]], (content, item)
    if item["type"] == "reasoning":
        summary = _streamed_parts([e for e in middle if e["type"] in _PARTS["summary"]], "summary")
        assert summary == [part["text"] for part in item["summary"]], (summary, item)


def _streamed_parts(events: list[dict[str, Any]], kind: str) -> list[str]:
    """The texts of the parts these events stream, in order of their index."""
    added, delta, done, closed = _PARTS[kind]
    key = "summary_index" if kind == "summary" else "content_index"
    texts: list[str] = []
    while events:
        n = len(texts)
        assert events[0]["type"] == added and events[0][key] == n, events[0]
        assert events[0]["part"]["text"] == "", events[0]
        end = next(i for i, e in enumerate(events) if e["type"] == closed)
        part, deltas = events[: end + 1], events[1 : end - 1]
        assert deltas and all(e["type"] == delta for e in deltas), part
        assert part[-2]["type"] == done, part
        assert all(e[key] == n for e in part), part
        text = "".join(e["delta"] for e in deltas)
        assert part[-2]["text"] == text == part[-1]["part"]["text"], part
        texts.append(text)
        events = events[end + 1 :]
    return texts


# ------------------------------------------------------------------------- one turn


@pytest.mark.parametrize("kind", KINDS)
async def test_reasoning_then_two_parallel_calls(parley: Parley, kind: str) -> None:
    upstream = parley.upstreams[kind]
    slot, turn = upstream.take(), upstream.scenario()
    (model,) = upstream.script(slot, turn)
    answer = await parley.http.post("/responses", json=request(model))
    assert answer.status_code == 200, answer.text
    response = answer.json()
    assert (response["status"], response["model"]) == ("completed", model)
    check_turn_output(response["output"], turn, summary=kind in SUMMARIZING)
    if not isinstance(upstream, DemoModel):
        check_usage(response["usage"], INPUT_TOKENS, OUTPUT_TOKENS)
    assert await retrieved(parley.http, response["id"]) == response


@pytest.mark.parametrize("kind", KINDS)
async def test_reasoning_then_two_parallel_calls_streamed(parley: Parley, kind: str) -> None:
    upstream = parley.upstreams[kind]
    slot, turn = upstream.take(), upstream.scenario()
    (model,) = upstream.script(slot, turn)
    events = await stream_response(parley.http, request(model))
    final = check_stream(events)
    check_turn_output(final["output"], turn, summary=kind in SUMMARIZING)
    if not isinstance(upstream, DemoModel):
        check_usage(final["usage"], INPUT_TOKENS, OUTPUT_TOKENS)
        # the reasoning streams in the provider's pieces
        name = "reasoning_summary_text" if kind in SUMMARIZING else "reasoning"
        deltas = [e["delta"] for e in events if e["type"] == f"response.{name}.delta"]
        assert deltas == list(turn.reasoning)
    same_response(final, await retrieved(parley.http, final["id"]))
    # A replay from the run's log tells the same events, numbered the same.
    replayed = await replay_response(parley.http, final["id"])
    assert replayed[:-1] == events[:-1]
    same_response(replayed[-1]["response"], final)


@pytest.mark.parametrize(
    "kind", [kind for kind in KINDS if UPSTREAMS[kind].reports_reasoning_tokens]
)
async def test_usage_counts_the_reasoning_tokens(parley: Parley, kind: str) -> None:
    upstream = parley.upstreams[kind]
    slot = upstream.take()
    (model,) = upstream.script(slot, upstream.scenario())
    response = (await parley.http.post("/responses", json=request(model))).json()
    check_usage(response["usage"], INPUT_TOKENS, OUTPUT_TOKENS)
    assert response["usage"]["output_tokens_details"] == {"reasoning_tokens": REASONING_TOKENS}


@pytest.mark.parametrize("kind", KINDS)
async def test_usage_details_as_the_provider_reports_them(parley: Parley, kind: str) -> None:
    """The cached tokens among the input and the reasoning tokens among the output, in the
    response and at the end of its stream; 0 where the provider does not say (Ollama). The
    demo model counts words: its reasoning preamble's are its reasoning tokens."""
    upstream = parley.upstreams[kind]
    slot, turn = upstream.take(), upstream.scenario()
    (model,) = upstream.script(slot, turn)
    final = check_stream(await stream_response(parley.http, request(model)))
    usage = final["usage"]
    assert usage == (await retrieved(parley.http, final["id"]))["usage"]
    if isinstance(upstream, DemoModel):
        words = len("".join(turn.reasoning).split())
        assert usage["output_tokens_details"] == {"reasoning_tokens": words}
        assert 0 < words < usage["output_tokens"]
        assert usage["input_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 0}
        return
    check_usage(usage, INPUT_TOKENS, OUTPUT_TOKENS)
    reasoning = REASONING_TOKENS if upstream.reports_reasoning_tokens else 0
    cached = CACHED_TOKENS if upstream.reports_cached_tokens else 0
    assert usage["output_tokens_details"] == {"reasoning_tokens": reasoning}
    assert usage["input_tokens_details"] == {"cached_tokens": cached, "cache_write_tokens": 0}


# ------------------------------------------------------------------- the tool results


@pytest.mark.parametrize("kind", list(UPSTREAMS))
async def test_both_results_go_back_and_the_answer_streams(parley: Parley, kind: str) -> None:
    upstream = parley.upstreams[kind]
    slot, turn = upstream.take(), upstream.scenario()
    first_model, second_model = upstream.script(slot, turn, TextTurn())
    first = (await parley.http.post("/responses", json=request(first_model))).json()
    check_turn_output(first["output"], turn, summary=kind in SUMMARIZING)
    outputs = results([item["call_id"] for item in first["output"][1:]])
    body = request(second_model, input=outputs, previous_response_id=first["id"])
    events = await stream_response(parley.http, body)
    final = check_stream(events)
    assert final["previous_response_id"] == first["id"]
    *thought, answer = final["output"]
    assert answer["type"] == "message" and answer["id"].startswith("msg_"), answer
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    if isinstance(upstream, DemoModel):  # it reasons on every turn
        assert [item["type"] for item in thought] == ["reasoning"]
        assert "".join(deltas) == upstream.answer_text()
    else:
        assert thought == []
        assert deltas == list(ANSWER)  # streamed as the provider streamed it
        _, second_call = upstream.requests(slot)
        upstream.check_context(second_call, turn)
    same_response(final, await retrieved(parley.http, final["id"]))
    # The first response still shows what it asked for.
    assert (await retrieved(parley.http, first["id"]))["output"] == first["output"]


# ---------------------------------------------------------------- recorded answers


#: Recorded real answers with reasoning or tool calls, by the kind that replays them.
RECORDED = [
    ("openai-chat", "openai_chat/langchaingo_gpt41_parallel_tool_calls.sse"),
    ("openai-chat", "openai_chat/pydantic_ai_groq_gpt_oss_reasoning_then_whole_tool_call.sse"),
    ("openai-responses", "openai_responses/pydantic_ai_o3_mini_reasoning_summary_then_text.sse"),
    ("openai-responses", "openai_responses/llm_gpt55_function_call_streamed_arguments.sse"),
    ("anthropic", "anthropic/llm_anthropic_text_then_two_tool_uses.sse"),
    ("anthropic", "anthropic/pydantic_ai_thinking_signature_then_text.sse"),
    ("gemini", "gemini/pydantic_ai_function_call_thought_signature.sse"),
    ("gemini", "gemini/pydantic_ai_thought_parts_then_text.sse"),
    ("ollama", "ollama/langchaingo_gpt_oss_thinking_and_tool_call_unstreamed.json"),
    ("ollama", "ollama/langchaingo_gpt_oss_thinking_then_text.ndjson"),
]


@pytest.mark.parametrize(("kind", "name"), RECORDED, ids=[name for _, name in RECORDED])
async def test_a_recorded_answer(parley: Parley, kind: str, name: str) -> None:
    """The items of a recorded answer, read from the recording by the replay test's own
    parser: reasoning, text, then the calls with the provider's ids, and its usage."""
    recording = Recorded(name)
    expect = RECORDING_KINDS[recording.path.parent.name][1]
    expected = expect(recording.path.read_bytes(), recording.path.suffix)
    upstream = parley.upstreams[kind]
    slot = upstream.take()
    (model,) = upstream.script(slot, recording)
    tools = [
        {"type": "function", "name": tool, "parameters": {"type": "object", "properties": {}}}
        for tool in dict.fromkeys(call_name for call_name, _ in expected.calls)
    ]
    events = await stream_response(parley.http, {"model": model, "input": "hi", "tools": tools})
    final = check_stream(events)
    kinds = ["reasoning"] * bool(expected.reasoning) + ["message"] * bool(expected.text)
    assert [item["type"] for item in final["output"]] == kinds + ["function_call"] * len(
        expected.calls
    )
    items = iter(final["output"])
    if expected.reasoning:
        thought = next(items)
        parts = {"content": thought["content"], "summary": thought["summary"]}
        assert parts == reasoning_parts(expected.reasoning, summary=kind in SUMMARIZING)
    if expected.text:
        assert next(items)["content"][0]["text"] == expected.text
    call_items = list(items)
    assert [(c["name"], json.loads(c["arguments"])) for c in call_items] == expected.calls
    for item, call_id in zip(call_items, expected.call_ids, strict=True):
        assert item["id"].startswith("fc_") and item["call_id"] == (call_id or item["call_id"])
    assert len({c["id"] for c in call_items}) == len({c["call_id"] for c in call_items})
    assert len({c["id"] for c in call_items}) == len(call_items)
    assert expected.usage is not None
    check_usage(final["usage"], *expected.usage)
    details = final["usage"]["output_tokens_details"], final["usage"]["input_tokens_details"]
    assert details == (
        {"reasoning_tokens": expected.reasoning_tokens},
        {"cached_tokens": expected.cached_tokens, "cache_write_tokens": 0},
    )
    same_response(final, await retrieved(parley.http, final["id"]))


# ----------------------------------------------------------------------- replays


async def test_a_replayed_stream_ends_with_the_stored_response(parley: Parley) -> None:
    """Replayed a second later, the stream ends with the response as it ended live and as
    GET answers it: completed when the turn ended, not when it is replayed."""
    started = int(time.time())
    live = check_stream(await stream_response(parley.http, {"model": "demo/parley", "input": "Hi"}))
    assert started <= live["completed_at"] <= int(time.time())
    await asyncio.sleep(1.1)
    replayed = await replay_response(parley.http, live["id"])
    assert replayed[-1]["response"] == live == await retrieved(parley.http, live["id"])


async def test_a_response_keeps_its_completed_at_once_its_outputs_are_sent(
    parley: Parley,
) -> None:
    """A response that ended with function calls was completed when its turn paused: live,
    on GET and replayed, before its outputs are sent and after (when the next response
    completes its run)."""
    events = await stream_response(parley.http, request("demo/parley"))
    first = check_stream(events)
    same_response(first, await retrieved(parley.http, first["id"]))
    await asyncio.sleep(1.1)
    outputs = results([item["call_id"] for item in first["output"][1:]])
    body = request("demo/parley", input=outputs, previous_response_id=first["id"])
    second = check_stream(await stream_response(parley.http, body))
    assert second["completed_at"] > first["completed_at"]
    replayed = await replay_response(parley.http, first["id"])
    assert replayed[-1]["response"] == first == await retrieved(parley.http, first["id"])


# ------------------------------------------------------------- interleaved thinking


def claude_turn(*blocks: Block) -> Answer:
    return Answer(message_events(list(blocks), stop_reason="tool_use", model="claude-test-1"))


async def test_thinking_between_parallel_calls_goes_back_in_place(parley: Parley) -> None:
    """Claude thinks between its two calls (interleaved thinking): the response shows one
    reasoning item and both calls, streamed as stored; the next call carries the assistant
    message as it came, each thinking block where it was (the API refuses it otherwise)."""
    upstream = parley.upstreams["anthropic"]
    slot = upstream.take()
    weather, time = calls("toolu_01A09q90qw90lq917835lq9", "toolu_01PwTzBMsHUfRqTS2ak7n5vt")
    upstream.fakes[slot].answer(
        claude_turn(
            thinking("Weather first. ", signature="c2lnLTE="),
            tool_use(weather.call_id, weather.name, weather.raw),
            thinking("Now the time.", signature="c2lnLTI="),
            tool_use(time.call_id, time.name, time.raw),
        ),
        Answer(message_events([text_block(*ANSWER)])),
    )
    model = upstream.model_name(slot)
    events = await stream_response(parley.http, request(model))
    first = check_stream(events)
    thoughts = ("Weather first. ", "Now the time.")
    check_turn_output(first["output"], CallsTurn((weather, time), thoughts))
    same_response(first, await retrieved(parley.http, first["id"]))
    body = request(
        model, input=results([weather.call_id, time.call_id]), previous_response_id=first["id"]
    )
    check_stream(await stream_response(parley.http, body))
    second = upstream.requests(slot)[1]
    assert second["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Weather first. ", "signature": "c2lnLTE="},
            {
                "type": "tool_use",
                "id": weather.call_id,
                "name": weather.name,
                "input": weather.arguments,
            },
            {"type": "thinking", "thinking": "Now the time.", "signature": "c2lnLTI="},
            {"type": "tool_use", "id": time.call_id, "name": time.name, "input": time.arguments},
        ],
    }


async def test_thinking_after_text_streams_the_items_it_stores(parley: Parley) -> None:
    upstream = parley.upstreams["anthropic"]
    slot = upstream.take()
    weather, time = calls("toolu_01A09q90qw90lq917835lq9", "toolu_01PwTzBMsHUfRqTS2ak7n5vt")
    upstream.fakes[slot].answer(
        claude_turn(
            thinking("Two tools. ", signature="c2lnLTE="),
            text_block("Let me check both."),
            thinking("Weather, then time.", signature="c2lnLTI="),
            tool_use(weather.call_id, weather.name, weather.raw),
            tool_use(time.call_id, time.name, time.raw),
        )
    )
    conversation = (await parley.http.post("/conversations", json={})).json()["id"]
    body = request(upstream.model_name(slot), conversation=conversation)
    final = check_stream(await stream_response(parley.http, body))
    stored = await retrieved(parley.http, final["id"])
    message_id = final["output"][1]["id"]
    token = message_id.removeprefix("msg_")
    assert [(i["type"], i["id"]) for i in final["output"]] == [
        ("reasoning", f"rs_{token}"),
        ("message", message_id),
        ("reasoning", f"rs_{token}_2"),
        ("function_call", final["output"][3]["id"]),
        ("function_call", final["output"][4]["id"]),
    ]
    assert [i.get("content") for i in final["output"][:3]] == [
        [{"type": "reasoning_text", "text": "Two tools. "}],
        [{"type": "output_text", "text": "Let me check both.", "annotations": [], "logprobs": []}],
        [{"type": "reasoning_text", "text": "Weather, then time."}],
    ]
    assert [(i["type"], i["id"]) for i in final["output"]] == [
        (i["type"], i["id"]) for i in stored["output"]
    ]
    same_response(final, stored)
    # Each item, by its id, among the conversation's items too.
    for item in final["output"]:
        answer = await parley.http.get(f"/conversations/{conversation}/items/{item['id']}")
        assert answer.status_code == 200, answer.text
        assert answer.json() == item
