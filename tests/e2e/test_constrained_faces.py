"""Tool calls on a model without tool calling, through constrained output, on every face:
a real ``parley serve`` whose provider ``tiny`` (``tool_calls = "constrained"``) is the
fake upstream's ``constrained`` model, driven over loopback HTTP by the ``openai`` SDK
(Chat Completions, Responses, Assistants) and by Parley's own runs.

The fake answers as a model held to the schema would: it calls the tools a user message
names (``fake_constrained``), else replies. Each test checks what the model was sent (no
``tools``, a ``response_format`` whose schema is the choice; the history's calls and results
as plain text) and what the face's client sees (calls as that face gives calls, the reply
streamed). Hosted tools reach the model as functions: an MCP call with an approval, a file
search and the code interpreter run on it too.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio

from parley.store.db import Database
from parley.testing.fake_constrained import CONSTRAINED_TEXT, results_reply
from parley.testing.fake_upstream import FakeUpstream, expected_text
from tests.e2e.helpers import assert_no_leak
from tests.e2e.responses_providers_helpers import RecordingMCP
from tests.e2e.sse import Event, iter_events
from tests.file_search.helpers import OWLS, OWLS_FILE, indexed_store, user_id_of
from tests.harness import FreshDatabase, ParleyServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

MODEL = "tiny/constrained"
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}
#: The same tools as the Responses API and the native API write them (flat).
FLAT_WEATHER = {"type": "function", **WEATHER["function"]}
FLAT_TIME = {"type": "function", **TIME["function"]}


@dataclass
class Parley:
    server: ParleyServer
    fake: FakeUpstream
    sdk: openai.AsyncOpenAI
    http: httpx.AsyncClient
    db: Database
    mcp: RecordingMCP
    mcp_url: str

    def sent(self) -> dict[str, Any]:
        """The body of the model call made last."""
        return self.fake.requests[-1]


CONFIG = """
[providers.tiny]
kind = "openai-chat"
base_url = "{base_url}"
api_key = "sk-fake"
max_retries = 0
tool_calls = "constrained"
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def parley(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Parley]:
    tmp = tmp_path_factory.mktemp("constrained")
    mcp = RecordingMCP()
    with FakeUpstream() as fake, mcp.serve() as mcp_url, _server(tmp, fake) as server:
        key = server.new_user("constrained")
        db = Database(server.database_url)
        sdk = openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0)
        async with httpx.AsyncClient(
            base_url=f"{server.base_url}/v1",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ) as http:
            try:
                yield Parley(server, fake, sdk, http, db, mcp, mcp_url)
            finally:
                await sdk.close()
                await db.dispose()


@contextlib.contextmanager
def _server(tmp: Path, fake: FakeUpstream) -> Iterator[ParleyServer]:
    db = FreshDatabase(tmp)
    server = ParleyServer(
        database_url=db.url,
        workdir=tmp,
        config=CONFIG.format(base_url=fake.base_url),
        env={"PARLEY_MCP_ALLOW_URLS": "127.0.0.1"},
    )
    try:
        yield server.start()
        server.stop()
        server.assert_clean_log()
    finally:
        server.stop()
        db.drop()


def forms(body: dict[str, Any]) -> list[str]:
    """The forms a model call's schema allows: ``answer``, ``tool:NAME``, ``calls``."""
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    named = []
    for branch in schema.get("anyOf", [schema]):
        properties = branch["properties"]
        if "tool" in properties:
            named.append(f"tool:{properties['tool']['const']}")
        else:
            named.append(next(iter(properties)))
    return named


def check_constrained(body: dict[str, Any], *names: str) -> None:
    """The model was asked for the choice, not given tools: the tools ``names`` are
    offered through the schema and named in the system message."""
    assert "tools" not in body and "tool_choice" not in body, body
    assert "parallel_tool_calls" not in body
    assert [f for f in forms(body) if f.startswith("tool:")] == [f"tool:{n}" for n in names]
    system = body["messages"][0]
    assert system["role"] == "system"
    for name in names:
        assert f"- {name}" in system["content"]
    for message in body["messages"]:
        assert message["role"] in ("system", "user", "assistant"), message
        assert "tool_calls" not in message


# ------------------------------------------------------------------- Chat Completions


async def test_chat_completions_a_call_then_the_reply_to_its_result(parley: Parley) -> None:
    question = {"role": "user", "content": "get_weather Paris"}
    first = await parley.sdk.chat.completions.create(
        model=MODEL,
        messages=[question],  # type: ignore[list-item]
        tools=[WEATHER, TIME],  # type: ignore[list-item]
    )
    check_constrained(parley.sent(), "get_weather", "get_time")
    assert forms(parley.sent()) == ["answer", "tool:get_weather", "tool:get_time", "calls"]
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert call.id.startswith("call_")
    assert first.usage is not None and first.usage.completion_tokens > 0

    answered = await parley.sdk.chat.completions.create(
        model=MODEL,
        messages=[
            question,
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],  # type: ignore[list-item]
        tools=[WEATHER, TIME],  # type: ignore[list-item]
    )
    sent = parley.sent()
    check_constrained(sent, "get_weather", "get_time")
    assert [(m["role"], m["content"]) for m in sent["messages"][1:]] == [
        ("user", "get_weather Paris"),
        ("assistant", '{"tool":"get_weather","arguments":{"city":"Paris"}}'),
        ("user", "Result of get_weather:\nsunny"),
    ]
    assert answered.choices[0].finish_reason == "stop"
    assert answered.choices[0].message.content == results_reply("Result of get_weather:\nsunny")
    assert not answered.choices[0].message.tool_calls


async def test_chat_completions_streams_the_reply_and_the_calls(parley: Parley) -> None:
    stream = await parley.sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather like?"}],
        tools=[WEATHER],  # type: ignore[list-item]
        stream=True,
    )
    pieces = [
        c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content
    ]
    assert "".join(pieces) == CONSTRAINED_TEXT and len(pieces) > 5  # as it came

    stream = await parley.sdk.chat.completions.create(
        model="tiny/constrained:2",
        messages=[{"role": "user", "content": "get_time in Oslo and get_weather in Oslo"}],
        tools=[WEATHER, TIME],  # type: ignore[list-item]
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for delta in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            call["name"] += (delta.function and delta.function.name) or ""
            call["arguments"] += (delta.function and delta.function.arguments) or ""
    assert finish == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [
        ("get_weather", {"city": "in Oslo"}),
        ("get_time", {"zone": "in Oslo and get_weather in Oslo"}),
    ]
    assert len({c["id"] for c in calls.values()}) == 2


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "offered", "called"),
    [
        ("auto", None, ["answer", "tool:get_weather", "tool:get_time", "calls"], ["get_weather"]),
        ("required", False, ["tool:get_weather", "tool:get_time"], ["get_weather"]),
        (
            {"type": "function", "function": {"name": "get_time"}},
            None,
            ["tool:get_time", "calls"],
            ["get_time"],
        ),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "auto",
                    "tools": [{"type": "function", "function": {"name": "get_time"}}],
                },
            },
            False,
            ["answer", "tool:get_time"],
            [],
        ),
    ],
    ids=["auto", "required", "named", "allowed"],
)
async def test_chat_completions_tool_choice_picks_the_forms(
    parley: Parley, tool_choice: Any, parallel: bool | None, offered: list[str], called: list[str]
) -> None:
    more = {} if parallel is None else {"parallel_tool_calls": parallel}
    answer = await parley.sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "get_weather Rome"}],
        tools=[WEATHER, TIME],  # type: ignore[list-item]
        tool_choice=tool_choice,
        **more,  # type: ignore[arg-type]
    )
    assert forms(parley.sent()) == offered
    calls = answer.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == called  # type: ignore[union-attr]
    if not called:  # get_weather may not be called: the model replied
        assert answer.choices[0].message.content == CONSTRAINED_TEXT


async def test_chat_completions_tool_choice_none_is_a_plain_call(parley: Parley) -> None:
    answer = await parley.sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "get_weather Rome"}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="none",
    )
    sent = parley.sent()
    assert "response_format" not in sent and "tools" not in sent
    assert sent["messages"] == [{"role": "user", "content": "get_weather Rome"}]
    assert answer.choices[0].message.content == expected_text()


async def test_chat_completions_a_reply_in_the_callers_json(parley: Parley) -> None:
    city = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    answer = await parley.sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Oslo"}],
        tools=[WEATHER],  # type: ignore[list-item]
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": city}},
    )
    schema = parley.sent()["response_format"]["json_schema"]["schema"]
    assert schema["anyOf"][0]["properties"]["answer"] == city
    assert json.loads(answer.choices[0].message.content or "") == {"name": "Oslo"}


async def test_an_answer_that_is_not_the_json_asked_is_a_typed_error(parley: Parley) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        await parley.sdk.chat.completions.create(
            model="tiny/text",  # the fake's plain text, whatever it is asked
            messages=[{"role": "user", "content": "get_weather Rome"}],
            tools=[WEATHER],  # type: ignore[list-item]
        )
    assert info.value.status_code == 502
    body = info.value.body
    assert isinstance(body, dict) and body["code"] == "upstream_malformed", body
    assert "could not be read" in body["message"]
    assert_no_leak(json.dumps(body))


# --------------------------------------------------------------------------- Responses


async def test_responses_a_call_then_the_reply_to_its_output(parley: Parley) -> None:
    first = await parley.sdk.responses.create(
        model=MODEL,
        input="get_weather Lima",
        tools=[FLAT_WEATHER],  # type: ignore[list-item]
    )
    check_constrained(parley.sent(), "get_weather")
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Lima"}
    answered = await parley.sdk.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "warm"}],
        tools=[FLAT_WEATHER],  # type: ignore[list-item]
    )
    assert parley.sent()["messages"][-1] == {
        "role": "user",
        "content": "Result of get_weather:\nwarm",
    }
    assert answered.status == "completed"
    assert answered.output_text == results_reply("Result of get_weather:\nwarm")


async def test_responses_streams_the_reply_and_the_call(parley: Parley) -> None:
    stream = await parley.sdk.responses.create(
        model=MODEL,
        input="Hello there",
        tools=[FLAT_WEATHER],  # type: ignore[list-item]
        stream=True,
    )
    events = [event async for event in stream]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == CONSTRAINED_TEXT and len(deltas) > 5
    stream = await parley.sdk.responses.create(
        model=MODEL,
        input="get_weather Quito",
        tools=[FLAT_WEATHER],  # type: ignore[list-item]
        stream=True,
    )
    events = [event async for event in stream]
    [done] = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert json.loads(done.arguments) == {"city": "Quito"}
    assert events[-1].type == "response.completed"


# -------------------------------------------------------------------------- Assistants


#: The SDK marks the Assistants API deprecated, with a warning on every call.
quiet = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@quiet
async def test_assistants_a_run_pauses_for_the_call_and_answers_its_output(
    parley: Parley,
) -> None:
    assistant = await parley.sdk.beta.assistants.create(model=MODEL, tools=[WEATHER])  # type: ignore[list-item]
    thread = await parley.sdk.beta.threads.create(
        messages=[{"role": "user", "content": "get_weather Bern"}]
    )
    run = await parley.sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id
    )
    assert run.status == "requires_action", (run.status, run.last_error)
    assert run.required_action is not None
    [call] = run.required_action.submit_tool_outputs.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Bern"}
    check_constrained(parley.sent(), "get_weather")
    done = await parley.sdk.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "snow"}],
    )
    assert done.status == "completed", done.last_error
    [answer, _] = (await parley.sdk.beta.threads.messages.list(thread_id=thread.id)).data
    text = answer.content[0]
    assert text.type == "text"
    assert text.text.value == results_reply("Result of get_weather:\nsnow")


@quiet
async def test_assistants_a_streamed_run_streams_the_call_and_the_reply(parley: Parley) -> None:
    assistant = await parley.sdk.beta.assistants.create(model=MODEL, tools=[WEATHER])  # type: ignore[list-item]
    thread = await parley.sdk.beta.threads.create(
        messages=[{"role": "user", "content": "get_weather Kyiv"}]
    )
    async with parley.sdk.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id
    ) as stream:
        events = [event async for event in stream]
    assert events[-1].event == "thread.run.requires_action"
    run = events[-1].data
    [call] = run.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Kyiv"}
    async with parley.sdk.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "mild"}],
    ) as resumed:
        text = [delta async for delta in resumed.text_deltas]
    assert "".join(text) == results_reply("Result of get_weather:\nmild") and len(text) > 5


# ----------------------------------------------------------------------- Parley's runs


async def native_turn(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> list[Event]:
    async with http.stream("POST", path, json=body) as answer:
        assert answer.status_code == 200, await answer.aread()
        lines = [line async for line in answer.aiter_lines()]
    return list(iter_events(lines))


async def test_native_runs_hand_the_call_to_the_client_then_answer(parley: Parley) -> None:
    http = parley.http
    assistant = (
        await http.post("/assistants", json={"model": MODEL, "tools": [FLAT_WEATHER]})
    ).json()
    thread = (await http.post("/threads", json={})).json()
    said = {"thread_id": thread["id"], "content": "get_weather Cairo"}
    assert (await http.post("/messages", json=said)).status_code == 201
    run = await http.post(
        "/runs", json={"thread_id": thread["id"], "assistant_id": assistant["id"]}
    )
    assert run.status_code == 201, run.text
    run_id = run.json()["id"]
    events = await native_turn(http, "/completions", {"run_id": run_id})
    [manifest] = [e.data for e in events if e.event == "tool_calls"]
    [action] = manifest["actions"]
    assert action["name"] == "get_weather" and action["arguments"] == {"city": "Cairo"}
    assert events[-1].data["status"] == "action_required"
    check_constrained(parley.sent(), "get_weather")
    outputs = [{"tool_call_id": action["tool_call_id"], "output": "hot"}]
    submitted = await http.post(
        f"/runs/{run_id}/submit_tool_outputs", json={"tool_outputs": outputs}
    )
    assert submitted.status_code == 200, submitted.text
    events = await native_turn(http, "/completions", {"run_id": run_id})
    text = "".join(e.data["text"] for e in events if e.event == "content.delta")
    assert text == results_reply("Result of get_weather:\nhot")
    assert len([e for e in events if e.event == "content.delta"]) > 5  # as it came
    assert events[-1].data["status"] == "completed"


# ------------------------------------------------------------------------- hosted tools


def mcp_tool(url: str) -> dict[str, Any]:
    return {
        "type": "mcp",
        "server_label": "tests",
        "server_url": url,
        "allowed_tools": ["echo"],
        "require_approval": "always",
    }


async def test_hosted_mcp_with_an_approval_runs_on_the_model(parley: Parley) -> None:
    first = await parley.sdk.responses.create(
        model=MODEL,
        input="echo hi there",
        tools=[mcp_tool(parley.mcp_url)],  # type: ignore[list-item]
    )
    check_constrained(parley.sent(), "echo")
    kinds = [item.type for item in first.output]
    assert kinds == ["mcp_list_tools", "mcp_approval_request"], first.output
    request = first.output[-1]
    assert request.name == "echo" and json.loads(request.arguments) == {"text": "hi there"}  # type: ignore[union-attr]
    assert parley.mcp.calls("echo") == []  # not before the approval
    approved = await parley.sdk.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[
            {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
        ],  # type: ignore[list-item]
        tools=[mcp_tool(parley.mcp_url)],  # type: ignore[list-item]
    )
    assert approved.status == "completed", approved.error
    [called] = parley.mcp.calls("echo")
    assert called.params["arguments"] == {"text": "hi there"}
    [mcp_call] = [item for item in approved.output if item.type == "mcp_call"]
    assert mcp_call.output == "hi there"  # type: ignore[union-attr]
    assert approved.output_text == results_reply("Result of echo:\nhi there")


async def test_hosted_file_search_runs_on_the_model(parley: Parley) -> None:
    key = parley.http.headers["Authorization"].removeprefix("Bearer ")
    user_id = await user_id_of(parley.db, key)
    store_id, _ = await indexed_store(parley.db, parley.http, user_id, OWLS_FILE, OWLS)
    answer = await parley.sdk.responses.create(
        model=MODEL,
        input="file_search how do owls hunt?",
        tools=[{"type": "file_search", "vector_store_ids": [store_id]}],
    )
    check_constrained(parley.fake.requests[-2], "file_search")
    [search] = [item for item in answer.output if item.type == "file_search_call"]
    assert search.status == "completed" and search.queries == ["how do owls hunt?"]
    assert answer.output_text.startswith(results_reply("Result of file_search:\n"))
    assert OWLS in answer.output_text and OWLS_FILE in answer.output_text


async def test_hosted_code_interpreter_runs_on_the_model(parley: Parley) -> None:
    from tests.code_interpreter.conftest import needs_sandbox

    needs_sandbox()
    answer = await parley.sdk.responses.create(
        model=MODEL,
        input="python print(6 * 7)",
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        include=["code_interpreter_call.outputs"],
    )
    check_constrained(parley.fake.requests[-2], "python")
    [ran] = [item for item in answer.output if item.type == "code_interpreter_call"]
    assert ran.code == "print(6 * 7)" and ran.status == "completed"
    assert ran.outputs and ran.outputs[0].type == "logs" and ran.outputs[0].logs == "42\n"  # type: ignore[union-attr]
    assert answer.output_text.startswith(results_reply("Result of python:\n"))
    assert "42" in answer.output_text
