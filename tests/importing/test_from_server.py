"""``parley import --from-url``: a source Parley server filled through its Assistants API
with the ``openai`` SDK (a run with a function call and its output, by the demo model),
imported into a second server's database twice; the imported thread read back through the
Assistants API, then continued through the Responses API as a conversation."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.harness import FreshDatabase, ParleyServer

WEATHER = {
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
OUTPUT = "22 C and sunny"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _server(tmp: Path) -> Iterator[ParleyServer]:
    db = FreshDatabase(tmp)
    srv = ParleyServer(database_url=db.url, workdir=tmp)
    try:
        yield srv.start()
    finally:
        srv.stop()
        db.drop()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    yield from _server(tmp_path_factory.mktemp("source"))


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    yield from _server(tmp_path_factory.mktemp("target"))


def _sdk(srv: ParleyServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{srv.base_url}/v1", api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def source_sdk(source: ParleyServer) -> Iterator[openai.OpenAI]:
    with _sdk(source, source.admin_key) as client:
        yield client


@pytest.fixture(scope="module")
def target_sdk(target: ParleyServer) -> Iterator[openai.OpenAI]:
    with _sdk(target, target.admin_key) as client:
        yield client


def _text(message: Any) -> str:
    return "".join(p.text.value for p in message.content if p.type == "text")


@pytest.fixture(scope="module")
def filled(source_sdk: openai.OpenAI) -> dict[str, Any]:
    """The source's assistant and thread: a question that calls a tool, its output, the
    answer, and a second exchange."""
    client = source_sdk
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assistant = client.beta.assistants.create(
            model="demo/parley",
            name="Weather",
            instructions="Answer about the weather.",
            tools=[WEATHER],  # type: ignore[list-item]
            metadata={"team": "north"},
        )
        thread = client.beta.threads.create(metadata={"topic": "weather"})
        client.beta.threads.messages.create(
            thread_id=thread.id, role="user", content="get_weather Paris", metadata={"n": "1"}
        )
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id
        )
        assert run.status == "requires_action", run.last_error
        assert run.required_action is not None
        [call] = run.required_action.submit_tool_outputs.tool_calls
        done = client.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=run.id,
            thread_id=thread.id,
            tool_outputs=[{"tool_call_id": call.id, "output": OUTPUT}],
        )
        assert done.status == "completed"
        client.beta.threads.messages.create(thread_id=thread.id, role="user", content="Thanks")
        second = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id
        )
        assert second.status == "completed"
        messages = client.beta.threads.messages.list(thread_id=thread.id, order="asc").data
    return {
        "assistant": assistant,
        "thread": thread,
        "call": call,
        "runs": [done, second],
        "messages": messages,
    }


def _import(target: ParleyServer, source: ParleyServer, *extra: str) -> Any:
    return target.cli(
        "import", "--from-url", source.base_url, "--api-key", source.admin_key, *extra
    )


@pytest.fixture(scope="module")
def imported(target: ParleyServer, source: ParleyServer, filled: dict[str, Any]) -> str:
    """The Parley id of the imported thread (imported once)."""
    done = _import(target, source)
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(rf"thread {filled['thread'].id} -> (thread_\w+) \(new\)", done.stdout)
    assert found, done.stdout
    assert "imported: 1 assistants" in done.stdout
    return found.group(1)


def test_messages_runs_and_tool_calls_come_in_order(
    target_sdk: openai.OpenAI, filled: dict[str, Any], imported: str
) -> None:
    client = target_sdk
    thread = client.beta.threads.retrieve(imported)
    assert thread.metadata == {"topic": "weather"}
    assert thread.created_at == filled["thread"].created_at
    got = client.beta.threads.messages.list(thread_id=imported, order="asc").data
    want = filled["messages"]
    assert [(m.role, _text(m), m.metadata, m.created_at) for m in got] == [
        (m.role, _text(m), m.metadata, m.created_at) for m in want
    ]
    [assistant] = client.beta.assistants.list().data
    source_assistant = filled["assistant"]
    assert (assistant.name, assistant.model, assistant.instructions, assistant.metadata) == (
        "Weather",
        "demo/parley",
        "Answer about the weather.",
        {"team": "north"},
    )
    assert assistant.created_at == source_assistant.created_at
    assert [t.function.name for t in assistant.tools if t.type == "function"] == ["get_weather"]
    runs = client.beta.threads.runs.list(thread_id=imported, order="asc").data
    assert [(r.status, r.model, r.assistant_id) for r in runs] == [
        ("completed", "demo/parley", assistant.id)
    ] * 2
    assert [r.created_at for r in runs] == [r.created_at for r in filled["runs"]]
    assert [r.usage.total_tokens for r in runs if r.usage] == [
        r.usage.total_tokens for r in filled["runs"] if r.usage
    ]
    steps = client.beta.threads.runs.steps.list(
        thread_id=imported, run_id=runs[0].id, order="asc"
    ).data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    [detail] = steps[0].step_details.tool_calls  # type: ignore[union-attr]
    call = filled["call"]
    assert (detail.id, detail.function.name, detail.function.output) == (  # type: ignore[union-attr]
        call.id,
        "get_weather",
        OUTPUT,
    )
    answers = [m for m in got if m.role == "assistant"]
    assert [m.run_id for m in answers] == [r.id for r in runs]
    assert [m.assistant_id for m in answers] == [assistant.id] * 2


def test_a_second_import_adds_nothing(
    target: ParleyServer, source: ParleyServer, imported: str
) -> None:
    with target.client(target.admin_key) as http:
        _same_after_import(http, target, source, imported)


def _same_after_import(
    http: Any, target: ParleyServer, source: ParleyServer, imported: str
) -> None:
    before = http.get(f"/conversations/{imported}/items", params={"limit": 100}).json()["data"]
    again = _import(target, source)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"-> {imported} (already there)" in again.stdout
    assert "0 messages and 0 runs added" in again.stdout
    assert "imported: 0 assistants (1 already there), 0 threads (1 already there)" in again.stdout
    after = http.get(f"/conversations/{imported}/items", params={"limit": 100}).json()["data"]
    assert after == before
    assert len(http.get("/assistants").json()["data"]) == 1
    assert len(http.get("/threads").json()["data"]) == 1


def test_new_source_messages_are_added_after_the_others(
    target: ParleyServer,
    source: ParleyServer,
    source_sdk: openai.OpenAI,
    target_sdk: openai.OpenAI,
    filled: dict[str, Any],
    imported: str,
    tmp_path: Path,
) -> None:
    source_sdk.beta.threads.messages.create(
        thread_id=filled["thread"].id, role="user", content="One more thing"
    )
    ids = tmp_path / "threads.txt"
    ids.write_text(f"# the threads to bring\n{filled['thread'].id}  # weather\n\n")
    again = _import(target, source, "--threads-file", str(ids))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 messages and 0 runs added" in again.stdout
    got = target_sdk.beta.threads.messages.list(thread_id=imported).data
    assert _text(got[0]) == "One more thing" and len(got) == len(filled["messages"]) + 1


def test_an_imported_thread_goes_on_as_a_conversation(
    target_sdk: openai.OpenAI, imported: str
) -> None:
    client = target_sdk
    items = client.conversations.items.list(imported, order="asc", limit=100).data
    kinds = [(i.type, getattr(i, "role", None)) for i in items]
    assert kinds[:4] == [
        ("message", "user"),
        ("function_call", None),
        ("function_call_output", None),
        ("message", "assistant"),
    ]
    call, output = items[1], items[2]
    assert call.call_id == output.call_id  # type: ignore[union-attr]
    assert output.output == OUTPUT  # type: ignore[union-attr]
    response = client.responses.create(
        model="demo/parley", conversation=imported, input="And tomorrow?"
    )
    assert response.status == "completed", response.error
    assert "tomorrow" in response.output_text
    later = client.conversations.items.list(imported, order="asc", limit=100).data
    assert [i.id for i in later[: len(items)]] == [i.id for i in items]
    added = [(i.type, getattr(i, "role", None)) for i in later[len(items) :]]
    assert [k for k in added if k[0] == "message"] == [
        ("message", "user"),
        ("message", "assistant"),
    ]
    following = client.responses.create(
        model="demo/parley", previous_response_id=response.id, input="Thanks"
    )
    assert following.status == "completed", following.error


def test_an_imported_run_is_a_previous_response(
    target_sdk: openai.OpenAI, filled: dict[str, Any], imported: str
) -> None:
    """An imported run, ended, is a response a new one may follow: it starts a branch of
    the thread from that run's answer."""
    client = target_sdk
    first = client.beta.threads.runs.list(thread_id=imported, order="asc").data[0]
    kept = client.responses.retrieve(first.id)
    assert kept.status == "completed"
    assert kept.output_text == _text(filled["messages"][1])
    assert [i.type for i in kept.output if i.type != "reasoning"] == ["function_call", "message"]
    branch = client.responses.create(
        model="demo/parley", previous_response_id=first.id, input="And in Lyon?"
    )
    assert branch.status == "completed", branch.error


def test_a_refused_key_or_a_missing_thread_is_an_error(
    target: ParleyServer, source: ParleyServer, imported: str
) -> None:
    refused = target.cli(
        "import", "--from-url", source.base_url, "--api-key", "sk-wrong", "--thread", "x"
    )
    assert refused.returncode == 1
    assert "401" in refused.stderr and "refused the API key" in refused.stderr
    missing = _import(target, source, "--thread", "thread_nothere")
    assert missing.returncode == 1
    assert "thread thread_nothere" in missing.stderr and "404" in missing.stderr
    nowhere = target.cli("import", "--from-url", "http://127.0.0.1:9", "--api-key", "k")
    assert nowhere.returncode == 1 and "parley import: GET" in nowhere.stderr
    no_key = target.cli("import", "--from-url", source.base_url)
    assert no_key.returncode == 2 and "--from-url needs --api-key" in no_key.stderr
