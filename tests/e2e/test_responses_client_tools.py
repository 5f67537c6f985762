"""The Responses API's tools that coding agents send beside plain functions, through the
official ``openai`` SDK: a ``custom`` (freeform) tool, a ``namespace`` of functions, a
client-executed ``tool_search`` and a ``web_search``. The model sees functions; the calls
come back as ``custom_tool_call``, namespaced ``function_call`` and ``tool_search_call``
items, streamed with their own events, answered back as given in ``tools``, and taken back
as input (with their outputs) both with ``previous_response_id`` and with the whole history
sent again (``store: false``, as Codex does)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
GRAMMAR = 'start: "*** Begin Patch" /(.|\\n)*/ "*** End Patch"'
TOOLS: list[dict[str, Any]] = [
    {
        "type": "custom",
        "name": "apply_patch",
        "description": "Edit files. This is a FREEFORM tool.",
        "format": {"type": "grammar", "syntax": "lark", "definition": GRAMMAR},
    },
    {
        "type": "namespace",
        "name": "agents",
        "description": "Sub-agents.",
        "tools": [
            {
                "type": "function",
                "name": "spawn",
                "description": "Start a sub-agent.",
                "parameters": {"type": "object", "properties": {"task": {"type": "string"}}},
            }
        ],
    },
    {
        "type": "tool_search",
        "execution": "client",
        "description": "Search for deferred tools.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    },
    {"type": "web_search", "external_web_access": False},
    {
        "type": "function",
        "name": "exec_command",
        "defer_loading": True,
        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
    },
]


@pytest.fixture
def client(server: Any, user_key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=user_key, max_retries=0) as sdk:
        yield sdk


def ask(client: openai.OpenAI, text: str, **more: Any) -> Any:
    return client.responses.create(model="demo/parley", input=text, tools=TOOLS, **more)  # type: ignore[arg-type]


def handed(response: Any) -> Any:
    (item,) = [i for i in response.output if i.type not in ("reasoning", "message")]
    return item


def test_each_kind_of_call_comes_back_as_its_own_item(client: openai.OpenAI) -> None:
    patch = handed(ask(client, "apply_patch *** Begin Patch"))
    assert (patch.type, patch.name, patch.input) == (
        "custom_tool_call",
        "apply_patch",
        "*** Begin Patch",
    )
    assert patch.id.startswith("ctc_") and patch.call_id
    spawn = handed(ask(client, "agents__spawn write the tests"))
    assert (spawn.type, spawn.namespace, spawn.name) == ("function_call", "agents", "spawn")
    assert spawn.arguments == '{"task":"write the tests"}'
    search = handed(ask(client, "tool_search a linter"))
    assert (search.type, search.execution, search.arguments) == (
        "tool_search_call",
        "client",
        {"query": "a linter"},
    )
    response = ask(client, "exec_command ls")  # offered though deferred
    assert handed(response).name == "exec_command"
    assert [t.type for t in response.tools] == [
        "function",
        "custom",
        "namespace",
        "tool_search",
        "web_search",
    ]
    stored = client.responses.retrieve(response.id)
    assert stored.model_dump()["output"] == response.model_dump()["output"]


def test_the_stream_has_each_kind_s_events(client: openai.OpenAI) -> None:
    events = list(ask(client, "apply_patch *** Begin Patch", stream=True))
    for event in events:
        STREAM_EVENT.validate_python(event.model_dump())
    names = [e.type for e in events]
    assert "response.custom_tool_call_input.delta" in names
    done = next(e for e in events if e.type == "response.custom_tool_call_input.done")
    assert done.input == "*** Begin Patch"
    final = events[-1].response  # type: ignore[union-attr]
    assert handed(final).type == "custom_tool_call"


def test_outputs_continue_a_stored_response(client: openai.OpenAI) -> None:
    first = ask(client, "apply_patch *** Begin Patch")
    patch = handed(first)
    answered = client.responses.create(
        model="demo/parley",
        previous_response_id=first.id,
        input=[{"type": "custom_tool_call_output", "call_id": patch.call_id, "output": "Done!"}],
        tools=TOOLS,  # type: ignore[arg-type]
    )
    assert answered.status == "completed"
    assert "Done!" in answered.output_text


def test_the_whole_history_is_taken_back(client: openai.OpenAI) -> None:
    """As Codex sends it: ``store: false``, every item again, outputs after calls."""
    history: list[Any] = [{"role": "user", "content": "go"}]
    for text, output in (
        ("apply_patch *** Begin Patch", "patched"),
        ("agents__spawn lint", "spawned"),
        ("tool_search a linter", None),
    ):
        response = ask(client, text, store=False)
        item = handed(response).model_dump(exclude_none=True)
        history.append(item)
        if item["type"] == "tool_search_call":
            found = [{"type": "function", "name": "lint", "description": "Lint the code."}]
            history.append(
                {
                    "type": "tool_search_output",
                    "call_id": item["call_id"],
                    "execution": "client",
                    "tools": found,
                }
            )
        elif item["type"] == "custom_tool_call":
            history.append(
                {"type": "custom_tool_call_output", "call_id": item["call_id"], "output": output}
            )
        else:
            history.append(
                {"type": "function_call_output", "call_id": item["call_id"], "output": output}
            )
    again = client.responses.create(
        model="demo/parley",
        input=history,
        tools=TOOLS,  # type: ignore[arg-type]
        store=False,
    )
    assert again.status == "completed"
    assert "lint: Lint the code." in again.output_text  # the search's result, quoted
    bad = [
        *history[:1],
        {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": 5},
    ]
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="demo/parley", input=bad, tools=TOOLS)  # type: ignore[arg-type]
    assert refused.value.body["param"] == "input[1].input"  # type: ignore[index]


def test_bad_tools_are_refused_by_field(client: openai.OpenAI) -> None:
    cases = [
        ({"type": "custom"}, "tools[0].name"),
        ({"type": "custom", "name": "x", "format": {"type": "yaml"}}, "tools[0].format"),
        ({"type": "namespace", "name": "n", "tools": []}, "tools[0].tools"),
        (
            {"type": "namespace", "name": "n", "tools": [{"type": "mcp"}]},
            "tools[0].tools[0].type",
        ),
    ]
    for tool, param in cases:
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.create(model="demo/parley", input="hi", tools=[tool])  # type: ignore[list-item]
        assert refused.value.body["param"] == param, (tool, refused.value.body)  # type: ignore[index]


def test_a_compaction_trigger_compacts_the_window(client: openai.OpenAI) -> None:
    """Codex's remote compaction: the input ends with ``compaction_trigger``; the response
    is the window compacted into a ``compaction`` item, which a later request takes as its
    input."""
    window: list[Any] = [
        {"role": "user", "content": "My name is Ada and I keep owls."},
        {"role": "assistant", "content": "Noted."},
    ]
    compacted = client.responses.create(
        model="demo/parley",
        input=[*window, {"type": "compaction_trigger"}],  # type: ignore[list-item]
        store=False,
    )
    assert compacted.status == "completed"
    kinds = [item.type for item in compacted.output]
    assert kinds == ["compaction"], kinds
    events = list(
        client.responses.create(
            model="demo/parley",
            input=[*window, {"type": "compaction_trigger"}],  # type: ignore[list-item]
            store=False,
            stream=True,
        )
    )
    names = [e.type for e in events]
    assert names[0] == "response.created" and names[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    later = [*(i.model_dump(exclude_none=True) for i in compacted.output)]
    later.append({"role": "user", "content": "What is my name?"})
    answer = client.responses.create(model="demo/parley", input=later, store=False)
    assert answer.status == "completed"
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(
            model="demo/parley",
            input=[{"type": "compaction_trigger"}, *window, {"type": "compaction_trigger"}],  # type: ignore[list-item]
        )
    assert refused.value.body["param"] == "input"  # type: ignore[index]
