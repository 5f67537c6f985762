"""A stateless client keeps the provider's hidden state: ``store: false``, the whole history
sent again on every request, as Codex does over HTTP. ``POST /v1/responses`` to a real
``parley serve`` whose models go to the fake Gemini 3 (which refuses a function call step
without its thought signature) and the fake Anthropic (whose signed thinking must go back
with the tool results), over real sockets.

With ``include: ["reasoning.encrypted_content"]``, the reasoning item of an answer that has
provider state carries it in ``encrypted_content`` (Parley's own envelope, not encrypted),
as JSON and streamed; a request that sends that item back gives the state back to the
provider. Without the ``include``, the state is never shown.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from parley.server.faces.responses.items import state_blob
from tests.e2e.responses_helpers import call_output, sse_events, websocket
from tests.e2e.responses_providers_helpers import (
    QUESTION,
    RESULTS,
    TOOLS,
    AnthropicUpstream,
    CallsTurn,
    GeminiUpstream,
    Recorded,
    TextTurn,
    Upstream,
    serving,
)
from tests.e2e.test_responses_providers import Parley

pytestmark = pytest.mark.asyncio(loop_scope="module")

INCLUDE = ["reasoning.encrypted_content"]
UPSTREAMS: dict[str, type[Upstream]] = {"gemini": GeminiUpstream, "anthropic": AnthropicUpstream}
#: Slots (fakes) of each kind: at least one per test that uses the kind.
SLOTS = 8


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def parley(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Parley]:
    tmp = tmp_path_factory.mktemp("responses-state")
    upstreams = {kind: cls(tmp, SLOTS) for kind, cls in UPSTREAMS.items()}
    async with serving(tmp, upstreams) as (server, http):
        yield Parley(server, http, upstreams)


def request(model: str, input_: Any, **fields: Any) -> dict[str, Any]:
    """A stateless request, as Codex sends it."""
    return {
        "model": model,
        "input": input_,
        "tools": TOOLS,
        "reasoning": {"effort": "low", "summary": "auto"},
        "store": False,
        "include": INCLUDE,
        **fields,
    }


def question() -> list[dict[str, Any]]:
    return [{"type": "message", "role": "user", "content": QUESTION}]


async def create(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = await http.post("/responses", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def streamed(http: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    async with http.stream("POST", "/responses", json={**body, "stream": True}) as answer:
        text = (await answer.aread()).decode()
        assert answer.status_code == 200, text
    return sse_events(text)


def carried(output: list[dict[str, Any]]) -> str:
    """The ``encrypted_content`` of the first item of ``output``: the reasoning, before the
    calls, the only item that carries one."""
    assert [item["type"] for item in output] == ["reasoning", "function_call", "function_call"]
    assert [("encrypted_content" in item) for item in output] == [True, False, False]
    blob: str = output[0]["encrypted_content"]
    return blob


def outputs(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    calls = [item["call_id"] for item in output if item["type"] == "function_call"]
    return [call_output(c, result) for c, result in zip(calls, RESULTS, strict=True)]


def history(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The whole history a stateless client sends next: the question, the items of the
    answer as it received them (less their status, as Codex keeps them), the results."""
    kept = [{k: v for k, v in item.items() if k != "status"} for item in output]
    return [*question(), *kept, *outputs(output)]


@pytest.mark.parametrize("kind", list(UPSTREAMS))
async def test_the_whole_history_sent_again_gives_the_state_back(parley: Parley, kind: str) -> None:
    upstream = parley.upstreams[kind]
    slot, turn = upstream.take(), upstream.scenario()
    first_model, second_model = upstream.script(slot, turn, TextTurn())
    first = await create(parley.http, request(first_model, question()))
    carried(first["output"])
    second = await create(parley.http, request(second_model, history(first["output"])))
    assert second["status"] == "completed", second
    _, second_call = upstream.requests(slot)
    upstream.check_context(second_call, turn)


@pytest.mark.parametrize("kind", list(UPSTREAMS))
async def test_streamed_the_reasoning_item_done_carries_the_state(
    parley: Parley, kind: str
) -> None:
    upstream = parley.upstreams[kind]
    slot, turn = upstream.take(), upstream.scenario()
    first_model, second_model = upstream.script(slot, turn, TextTurn())
    events = await streamed(parley.http, request(first_model, question()))
    final = events[-1]["response"]
    blob = carried(final["output"])
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert done == final["output"]
    added = [e["item"] for e in events if e["type"] == "response.output_item.added"]
    assert all("encrypted_content" not in item for item in added)
    # Codex keeps the items of ``output_item.done``, and sends them back.
    second = await streamed(parley.http, request(second_model, history(done)))
    assert second[-1]["type"] == "response.completed", second[-1]
    _, second_call = upstream.requests(slot)
    upstream.check_context(second_call, turn)
    assert blob.startswith("parley.state.v1:")


async def test_an_answer_without_reasoning_text_still_carries_its_state(parley: Parley) -> None:
    """Gemini 3 signs its call without showing its thoughts: a reasoning item with nothing
    to read but the state comes before the calls."""
    upstream = parley.upstreams["gemini"]
    slot = upstream.take()
    turn = CallsTurn(upstream.scenario().calls, reasoning=())
    first_model, second_model = upstream.script(slot, turn, TextTurn())
    events = await streamed(parley.http, request(first_model, question()))
    final = events[-1]["response"]
    carried(final["output"])
    thought = final["output"][0]
    assert (thought["summary"], thought["content"]) == ([], [])
    assert thought["id"].startswith("rs_")
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert done == final["output"]
    await create(parley.http, request(second_model, history(done)))
    _, second_call = upstream.requests(slot)
    upstream.check_context(second_call, turn)


@pytest.mark.parametrize("kind", list(UPSTREAMS))
async def test_without_include_the_state_is_not_shown(parley: Parley, kind: str) -> None:
    upstream = parley.upstreams[kind]
    slot = upstream.take()
    (model,) = upstream.script(slot, upstream.scenario())
    body = request(model, question())
    del body["include"]
    events = await streamed(parley.http, body)
    items = [e["item"] for e in events if "item" in e] + events[-1]["response"]["output"]
    assert items and all("encrypted_content" not in item for item in items)


async def test_a_stored_response_shows_its_state_when_asked(parley: Parley) -> None:
    upstream = parley.upstreams["anthropic"]
    slot = upstream.take()
    (model,) = upstream.script(slot, upstream.scenario())
    events = await streamed(parley.http, request(model, question(), store=True))
    final = events[-1]["response"]
    blob = carried(final["output"])
    path = f"/responses/{final['id']}"
    plain = (await parley.http.get(path)).json()
    assert all("encrypted_content" not in item for item in plain["output"])
    asked = await parley.http.get(path, params={"include": INCLUDE})
    assert asked.json() == final
    async with parley.http.stream(
        "GET", path, params={"stream": "true", "include": INCLUDE}
    ) as replay:
        replayed = sse_events((await replay.aread()).decode())
    assert replayed[-1]["response"]["output"][0]["encrypted_content"] == blob
    assert replayed[:-1] == events[:-1]


async def test_an_envelope_that_does_not_parse_is_refused(parley: Parley) -> None:
    upstream = parley.upstreams["anthropic"]
    slot = upstream.take()
    (model,) = upstream.script(slot, TextTurn())
    broken = "parley.state.v1:" + base64.urlsafe_b64encode(b"[not json").decode()
    thought = {"type": "reasoning", "summary": [], "encrypted_content": broken}
    call = {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"}
    body = request(model, [*question(), thought, call, call_output("c1", "sunny")])
    answer = await parley.http.post("/responses", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "input[1].encrypted_content"
    assert upstream.requests(slot) == []


async def test_a_changed_state_does_not_fail_the_turn(parley: Parley) -> None:
    """A well-formed envelope whose state a client changed goes without it: the turn
    completes (it failed as an internal error)."""
    upstream = parley.upstreams["anthropic"]
    slot = upstream.take()
    (model,) = upstream.script(slot, TextTurn())
    state = json.dumps({"provider": "anthropic", "thinking_blocks": 5}).encode()
    changed = "parley.state.v1:" + base64.urlsafe_b64encode(state).decode()
    thought = {"type": "reasoning", "summary": [], "encrypted_content": changed}
    call = {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"}
    body = request(model, [*question(), thought, call, call_output("c1", "sunny")])
    answer = await create(parley.http, body)
    assert answer["status"] == "completed", answer
    (sent,) = upstream.requests(slot)
    assert [block["type"] for block in sent["messages"][1]["content"]] == ["tool_use"]


async def test_an_encrypted_content_not_of_parley_is_ignored(parley: Parley) -> None:
    """OpenAI's own encrypted reasoning, passed through by a client, is not Parley's: the
    message goes to the provider without state."""
    upstream = parley.upstreams["anthropic"]
    slot = upstream.take()
    (model,) = upstream.script(slot, TextTurn())
    thought = {"type": "reasoning", "summary": [], "encrypted_content": "gAAAAABpQ_enc=="}
    call = {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"}
    body = request(model, [*question(), thought, call, call_output("c1", "sunny")])
    await create(parley.http, body)
    (sent,) = upstream.requests(slot)
    assert [block["type"] for block in sent["messages"][1]["content"]] == ["tool_use"]


async def test_the_envelope_is_base64url_json_of_the_state() -> None:
    """What a client holds is opaque to it, but not secret: the state, marked and encoded."""
    blob = state_blob({"provider": "gemini0", "signatures": {"0": "EqQB+/=="}})
    prefix, _, encoded = blob.partition(":")
    assert prefix == "parley.state.v1"
    assert orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))) == {
        "provider": "gemini0",
        "signatures": {"0": "EqQB+/=="},
    }


async def test_after_text_the_state_has_a_reasoning_item_of_its_own(parley: Parley) -> None:
    """A recorded Claude answer that thinks, then writes: its signed thinking goes in a
    reasoning item after the text (the stream tells it once the answer has ended), the same
    in the stream and in ``GET``; sent back with the next question, it joins the answer and
    the thinking goes back signed."""
    upstream = parley.upstreams["anthropic"]
    slot = upstream.take()
    first_model, second_model = upstream.script(
        slot, Recorded("anthropic/pydantic_ai_thinking_signature_then_text.sse"), TextTurn()
    )
    body = request(first_model, question(), store=True)
    events = await streamed(parley.http, body)
    final = events[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["reasoning", "message", "reasoning"]
    thought, _, state = final["output"]
    assert "encrypted_content" not in thought and state["encrypted_content"]
    assert (state["summary"], state["content"]) == ([], [])
    assert state["id"] == thought["id"] + "_2"
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert done == final["output"]
    asked = await parley.http.get(f"/responses/{final['id']}", params={"include": INCLUDE})
    assert asked.json() == final
    again = {"type": "message", "role": "user", "content": "And at night?"}
    kept = [{k: v for k, v in item.items() if k != "status"} for item in done]
    await create(parley.http, request(second_model, [*question(), *kept, again]))
    answer = upstream.requests(slot)[-1]["messages"][1]
    assert answer["role"] == "assistant"
    blocks = [block["type"] for block in answer["content"]]
    assert blocks == ["thinking", "text"], answer
    assert answer["content"][0]["signature"]
    assert answer["content"][0]["thinking"] == thought["content"][0]["text"]


async def test_over_a_websocket_too(parley: Parley) -> None:
    """A WebSocket client that sends its whole history (no ``previous_response_id``) gets
    the state in the reasoning item's ``output_item.done`` as well."""
    upstream = parley.upstreams["gemini"]
    slot, turn = upstream.take(), upstream.scenario()
    first_model, second_model = upstream.script(slot, turn, TextTurn())
    key = parley.http.headers["Authorization"].removeprefix("Bearer ")

    def session() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        with websocket(parley.server, key) as socket:
            create = {"type": "response.create"}
            first = socket.turn({**create, **request(first_model, question())})
            done = [e["item"] for e in first if e["type"] == "response.output_item.done"]
            second = socket.turn({**create, **request(second_model, history(done))})
            return first, second

    first, second = await asyncio.to_thread(session)
    final = first[-1]["response"]
    carried(final["output"])
    assert [e["item"] for e in first if e["type"] == "response.output_item.done"] == final["output"]
    assert second[-1]["type"] == "response.completed", second[-1]
    upstream.check_context(upstream.requests(slot)[-1], turn)
