"""Output formats, one rule on every face: a JSON format (Chat Completions'
``response_format``, Responses' ``text.format``, an assistant's ``response_format``) reaches
the provider in the provider's own way, or the request is a 400 naming the field; never a
200 with the format dropped.

Anthropic's Messages API has no JSON mode: the format goes as a tool whose input schema is
the format's schema, the call forced, and the tool's input is the answer's text. Gemini
takes the schema as its ``responseSchema``. Each test runs a real ``parley serve`` against
the kind's fake upstream over real sockets and checks what went upstream and what the
client got.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from parley.providers.anthropic import FORMAT_TOOL
from parley.testing.fake_anthropic import message_events, tool_use
from parley.testing.scripted import Answer
from tests.e2e.responses_providers_helpers import (
    AnthropicUpstream,
    GeminiUpstream,
    TextTurn,
    serving,
)
from tests.e2e.test_responses_providers import Parley

pytestmark = pytest.mark.asyncio(loop_scope="module")

SLOTS = 6
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "degrees": {"type": "integer"}},
    "required": ["city", "degrees"],
    "additionalProperties": False,
}
ANSWER = {"city": "Oslo", "degrees": 21}
#: The format's JSON as the model streams it, in pieces.
PIECES = ('{"city": "Os', 'lo", "degr', 'ees": 21}')


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def parley(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Parley]:
    tmp = tmp_path_factory.mktemp("output-formats")
    upstreams = {"anthropic": AnthropicUpstream(tmp, SLOTS), "gemini": GeminiUpstream(tmp, SLOTS)}
    async with serving(tmp, upstreams) as (server, http):
        yield Parley(server, http, upstreams)


def anthropic_slot(parley: Parley) -> tuple[str, Any]:
    """A fresh Anthropic slot that answers with the format tool's input; its model name."""
    upstream = parley.upstreams["anthropic"]
    slot = upstream.take()
    fake = upstream.fakes[slot]
    block = tool_use("toolu_01Fmt", FORMAT_TOOL, *PIECES)
    fake.answer(Answer(message_events([block], stop_reason="tool_use", model=upstream.model)))
    return upstream.model_name(slot), fake


def sent_to_anthropic(fake: Any) -> dict[str, Any]:
    [body] = [r.body for r in fake.requests if r.target.startswith("/v1/messages")]
    return dict(body)


def check_forced_tool(body: dict[str, Any]) -> None:
    """The format went as one tool, forced, whose input schema is the format's schema."""
    [tool] = body["tools"]
    assert tool["name"] == FORMAT_TOOL
    assert tool["input_schema"] == SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": FORMAT_TOOL}


async def test_chat_completions_json_schema_on_anthropic(parley: Parley) -> None:
    model, fake = anthropic_slot(parley)
    fmt = {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA}}
    body = {"model": model, "messages": [{"role": "user", "content": "Oslo?"}]}
    answer = await parley.http.post("/chat/completions", json={**body, "response_format": fmt})
    assert answer.status_code == 200, answer.text
    [choice] = answer.json()["choices"]
    assert json.loads(choice["message"]["content"]) == ANSWER
    assert choice["message"].get("tool_calls") in (None, [])
    assert choice["finish_reason"] == "stop"
    check_forced_tool(sent_to_anthropic(fake))


async def test_responses_json_schema_on_anthropic(parley: Parley) -> None:
    model, fake = anthropic_slot(parley)
    fmt = {"type": "json_schema", "name": "weather", "schema": SCHEMA}
    request = {"model": model, "input": "Oslo?", "text": {"format": fmt}}
    answer = await parley.http.post("/responses", json=request)
    assert answer.status_code == 200, answer.text
    response = answer.json()
    assert response["status"] == "completed"
    assert [item["type"] for item in response["output"]] == ["message"]
    assert json.loads(response["output"][0]["content"][0]["text"]) == ANSWER
    assert response["text"]["format"]["type"] == "json_schema"
    check_forced_tool(sent_to_anthropic(fake))


async def test_responses_json_object_streamed_on_anthropic(parley: Parley) -> None:
    model, fake = anthropic_slot(parley)
    request = {"model": model, "input": "Oslo?", "text": {"format": {"type": "json_object"}}}
    deltas: list[str] = []
    async with parley.http.stream("POST", "/responses", json={**request, "stream": True}) as sse:
        assert sse.status_code == 200
        async for line in sse.aiter_lines():
            if line.startswith("data: ") and '"response.output_text.delta"' in line:
                deltas.append(json.loads(line[6:])["delta"])
    assert json.loads("".join(deltas)) == ANSWER
    body = sent_to_anthropic(fake)
    [tool] = body["tools"]
    assert tool["name"] == FORMAT_TOOL and tool["input_schema"]["type"] == "object"
    assert body["tool_choice"] == {"type": "tool", "name": FORMAT_TOOL}


async def test_an_assistant_run_json_schema_on_anthropic(parley: Parley) -> None:
    model, fake = anthropic_slot(parley)
    fmt = {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA}}
    http = parley.http
    bot = (await http.post("/assistants", json={"model": model, "response_format": fmt})).json()
    thread = (await http.post("/threads", json={"messages": [{"content": "Oslo?"}]})).json()
    run = (
        await http.post(f"/threads/{thread['id']}/runs", json={"assistant_id": bot["id"]})
    ).json()
    for _ in range(200):
        run = (await http.get(f"/threads/{thread['id']}/runs/{run['id']}")).json()
        if run["status"] not in ("queued", "in_progress"):
            break
        await asyncio.sleep(0.05)
    assert run["status"] == "completed", run
    listed = (await http.get(f"/threads/{thread['id']}/messages")).json()["data"]
    answer = next(m for m in listed if m["role"] == "assistant")
    assert json.loads(answer["content"][0]["text"]["value"]) == ANSWER
    check_forced_tool(sent_to_anthropic(fake))


async def test_the_demo_model_answers_in_the_format_on_every_face(parley: Parley) -> None:
    """The offline demo honours a format too: a client parsing its answer gets JSON."""
    fmt = {"type": "json_schema", "name": "weather", "schema": SCHEMA}
    request = {"model": "demo/parley", "input": "Oslo at 21", "text": {"format": fmt}}
    answer = await parley.http.post("/responses", json=request)
    assert answer.status_code == 200, answer.text
    text = answer.json()["output"][-1]["content"][0]["text"]
    assert json.loads(text) == {"city": "Oslo at 21", "degrees": 21}
    chat = {"model": "demo/parley", "messages": [{"role": "user", "content": "hi"}]}
    answer = await parley.http.post(
        "/chat/completions", json={**chat, "response_format": {"type": "json_object"}}
    )
    assert answer.status_code == 200, answer.text
    assert "hi" in json.loads(answer.json()["choices"][0]["message"]["content"])["answer"]


async def test_responses_json_schema_on_gemini(parley: Parley) -> None:
    upstream = parley.upstreams["gemini"]
    slot = upstream.take()
    [model] = upstream.script(slot, TextTurn(text=PIECES))
    fmt = {"type": "json_schema", "name": "weather", "schema": SCHEMA}
    answer = await parley.http.post(
        "/responses", json={"model": model, "input": "Oslo?", "text": {"format": fmt}}
    )
    assert answer.status_code == 200, answer.text
    [sent] = upstream.requests(slot)
    config = sent["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    assert schema is not None and schema["properties"].keys() == SCHEMA["properties"].keys()


async def test_responses_fields_the_provider_has_no_equivalent_for_are_a_400(
    parley: Parley,
) -> None:
    """The options check on Responses: a field passed on to an API that has no such option
    is a 400 naming it, and nothing goes upstream; a hint OpenAI's APIs take
    (``prompt_cache_retention``) is not sent to others."""
    model, fake = anthropic_slot(parley)
    for field, value in (("presence_penalty", 0.5), ("frequency_penalty", 0.1)):
        answer = await parley.http.post(
            "/responses", json={"model": model, "input": "Oslo?", field: value}
        )
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert (error["param"], error["code"]) == (field, "unsupported_parameter"), error
    assert not [r for r in fake.requests if r.target.startswith("/v1/messages")]
    fmt = {"type": "json_object"}
    request = {"model": model, "input": "Oslo?", "text": {"format": fmt}}
    answer = await parley.http.post("/responses", json={**request, "prompt_cache_retention": "24h"})
    assert answer.status_code == 200, answer.text
    assert "prompt_cache_retention" not in sent_to_anthropic(fake)
