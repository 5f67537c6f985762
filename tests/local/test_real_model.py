"""The real-model tier (``make test-real``): a real ``parley serve`` running the real local
model server (llama.cpp's llama-server with SmolLM2-135M-Instruct) and the real embedding
model, never a fake. The assertions are on structure (events, items, statuses, errors),
never on the model's words.

Skipped, with the reason, where ``parley local setup`` has not been run; under ``CI=true``
that is a failure (``tests.unavailable``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.config import ProviderConfig
from parley.providers.local import server_spec
from tests.harness import ParleyServer
from tests.unavailable import unavailable

pytestmark = pytest.mark.real_model

MODEL = "local/smollm2-135m-instruct"
#: The server's context (2048 tokens) in 2 slots: 1024 a request.
WINDOW = 1024
CONFIG = """
[providers.local]
kind = "local"
context_size = 2048
parallel = 2
"""
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather now in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
METRICS_TOKEN = "local-metrics"
CHAT_WEATHER = {"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}


@pytest.fixture(scope="module")
def server(fresh_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    spec = server_spec(ProviderConfig(kind="local"))
    if isinstance(spec, str):
        unavailable(f"the local model cannot run here ({spec}): run make test-real")
    srv = ParleyServer(
        database_url=fresh_database.url,
        workdir=tmp_path_factory.mktemp("local"),
        config=CONFIG,
        env={
            "PARLEY_LOCAL_MODEL_START": "true",
            "PARLEY_MCP_ALLOW_URLS": "127.0.0.1",
            "PARLEY_METRICS_TOKEN": METRICS_TOKEN,
            # The default where the embeddings extra is installed (the harness turns it off).
            "PARLEY_EMBEDDING_MODEL": "local/all-minilm-l6-v2",
            # The model server's start and a CPU-bound answer may hold a loaded machine.
            "PARLEY_LOOP_WATCHDOG_SECONDS": "0",
        },
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def key(server: Any) -> str:
    return str(server.new_user("local"))


@pytest.fixture(scope="module")
def openai_client(server: Any, key: str) -> Iterator[Any]:
    import openai

    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, timeout=120.0)
    yield client
    client.close()


def model_servers(parent: int) -> list[int]:
    """The pids of the llama-server processes whose parent is ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == parent and name.startswith("llama-server"):
            found.append(int(entry.name))
    return found


def model_server(srv: Any) -> tuple[int, str, str]:
    """The running llama-server of ``srv``: pid, base URL and the key it wants (read from
    the host, as its owner may)."""
    deadline = time.monotonic() + 120
    assert srv.proc is not None
    while not (pids := model_servers(srv.proc.pid)):
        assert time.monotonic() < deadline, "no llama-server child"
        time.sleep(0.2)
    pid = pids[0]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    port = argv[argv.index(b"--port") + 1].decode()
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    secret = next(e for e in environ if e.startswith(b"LLAMA_API_KEY=")).partition(b"=")[2]
    assert secret.decode() not in " ".join(a.decode() for a in argv)  # never on its argv
    return pid, f"http://127.0.0.1:{port}", secret.decode()


def wait_healthy(url: str, secret: str, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("llama-server did not come up")


# ------------------------------------------------------------------------- the server


def test_the_model_is_listed_with_its_window_and_the_server_is_private(
    server: Any, key: str
) -> None:
    with server.client(key) as http:
        listed = http.get("/models").json()
    models = {m["id"]: m for m in listed["data"]}
    assert models[MODEL]["context_window"] == WINDOW
    assert "local/all-minilm-l6-v2" in models
    pid, url, secret = model_server(server)
    wait_healthy(url, secret)
    refused = httpx.post(f"{url}/v1/chat/completions", json={"messages": []}, timeout=10)
    assert refused.status_code == 401  # the key is Parley's alone
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert argv[argv.index(b"--host") + 1] == b"127.0.0.1"


def test_streaming_with_usage(openai_client: Any) -> None:
    stream = openai_client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Name three colours."}],
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas, usage, finish = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                deltas.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert len(deltas) >= 2  # streamed in pieces, not at the end
    assert usage is not None and usage.prompt_tokens > 0
    assert 0 < usage.completion_tokens <= 24
    assert finish in ("stop", "length")


def test_streams_back_to_back_all_arrive(openai_client: Any) -> None:
    """llama-server closes its connection after each stream without saying so: the next
    call, on the pooled connection, must still go through."""
    for n in range(4):
        stream = openai_client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"Count to {n + 2}."}],
            max_tokens=6,
            stream=True,
        )
        assert any(c.choices and c.choices[0].delta.content for c in stream)


def test_a_dropped_stream_stops_the_generation(server: Any, key: str) -> None:
    _pid, url, secret = model_server(server)
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write a very long story about a cat."}],
        "max_tokens": 900,
        "stream": True,
    }
    with (
        server.client(key, timeout=120) as http,
        http.stream("POST", "/chat/completions", json=body) as answer,
    ):
        assert answer.status_code == 200
        seen = 0
        for line in answer.iter_lines():
            seen += line.startswith("data: {")
            if seen >= 3:
                break
    # The slot stops generating once Parley closes its upstream call: well before the 900
    # tokens, at ~tens of tokens per second, would be done.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        slots = httpx.get(
            f"{url}/slots", headers={"Authorization": f"Bearer {secret}"}, timeout=5
        ).json()
        if not any(s.get("is_processing") for s in slots):
            return
        time.sleep(0.1)
    raise AssertionError(f"still generating: {slots}")


def test_response_format_json_schema(openai_client: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    answer = openai_client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Invent a person."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema, "strict": True},
        },
        max_tokens=60,
    )
    person = json.loads(answer.choices[0].message.content)
    assert set(person) == {"name", "age"} and isinstance(person["age"], int)


def test_a_prompt_longer_than_the_window_is_a_400_naming_it(openai_client: Any) -> None:
    import openai

    with pytest.raises(openai.BadRequestError) as refused:
        openai_client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "word " * 3000}], max_tokens=10
        )
    assert refused.value.code == "context_length_exceeded"
    assert f"{WINDOW:,}" in refused.value.message
    # Under Parley's estimate (5 characters a number) but over in the model's own tokens:
    # the model server refuses it, and the 400 names the window too.
    numbers = " ".join(str(1000 + i) for i in range(700))
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": numbers}], max_tokens=10
        )
    assert refused.value.code == "upstream_invalid_request"
    assert f"context size ({WINDOW} tokens)" in refused.value.message


# ------------------------------------------------------------------ tool calls, every face


def test_chat_completions_tool_call(openai_client: Any) -> None:
    answer = openai_client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[CHAT_WEATHER],
        tool_choice="required",
        max_tokens=200,
        temperature=0,
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)
    # The result back, tools off: an answer in text.
    follow = openai_client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"},
        ],
        tools=[CHAT_WEATHER],
        tool_choice="none",
        max_tokens=40,
    )
    assert follow.choices[0].message.content
    assert not follow.choices[0].message.tool_calls


def test_chat_completions_tool_call_streamed(openai_client: Any) -> None:
    stream = openai_client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[CHAT_WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=200,
        temperature=0,
        stream=True,
    )
    names, arguments, finish = [], "", None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or ():
                if call.function and call.function.name:
                    names.append(call.function.name)
                if call.function and call.function.arguments:
                    arguments += call.function.arguments
            finish = choice.finish_reason or finish
    assert names == ["get_weather"] and finish == "tool_calls"
    assert isinstance(json.loads(arguments)["city"], str)


def test_responses_tool_call_and_answer(openai_client: Any) -> None:
    first = openai_client.responses.create(
        model=MODEL,
        input="Weather in Rome?",
        tools=[WEATHER],
        tool_choice="required",
        max_output_tokens=200,
        temperature=0,
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    assert first.status == "completed"
    second = openai_client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "Rain, 12 C"}
        ],
        tools=[WEATHER],
        tool_choice="none",
        max_output_tokens=40,
    )
    assert second.status in ("completed", "incomplete")
    assert [item.type for item in second.output] == ["message"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK's beta Assistants
def test_assistants_run_pauses_for_the_tool_and_completes(openai_client: Any) -> None:
    assistant = openai_client.beta.assistants.create(
        model=MODEL, tools=[CHAT_WEATHER], instructions="Use the tools."
    )
    thread = openai_client.beta.threads.create(
        messages=[{"role": "user", "content": "Weather in Lima?"}]
    )
    run = openai_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, tool_choice="required", temperature=0
    )
    assert run.status == "requires_action", run.last_error
    (call,) = run.required_action.submit_tool_outputs.tool_calls[:1]
    assert call.function.name == "get_weather"
    json.loads(call.function.arguments)
    done = openai_client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[
            {"tool_call_id": c.id, "output": "Fog, 15 C"}
            for c in run.required_action.submit_tool_outputs.tool_calls
        ],
    )
    # tool_choice "required" holds for the whole run: after the outputs, another call or an
    # answer are both structure the run allows; a failure is not.
    assert done.status in ("completed", "requires_action", "incomplete"), done.last_error


def test_parley_runs_through_the_sdk(server: Any, key: str) -> None:
    from parley import Client

    with Client(base_url=server.base_url, api_key=key) as client:
        bot = client.assistants.create(name="Local", model=MODEL)
        result = client.respond(assistant_id=bot.id, content="Say hello.")
    assert result.text


# ---------------------------------------------------------------------------- hosted tools


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    command = [sys.executable, "-m", "parley.mcp.example", "--port", "0", "--seed", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    yield line.split(" on ", 1)[1].split(" ", 1)[0]
    proc.terminate()
    proc.wait(timeout=10)
    proc.stdout.close()


def test_hosted_mcp_round_trip_with_an_approval(openai_client: Any, mcp_url: str) -> None:
    tool = {
        "type": "mcp",
        "server_label": "example",
        "server_url": mcp_url,
        "allowed_tools": ["roll_dice"],
        "require_approval": "always",
    }
    first = openai_client.responses.create(
        model=MODEL, input="Roll the dice.", tools=[tool], tool_choice="required", temperature=0
    )
    kinds = [item.type for item in first.output]
    assert kinds[0] == "mcp_list_tools" and "mcp_approval_request" in kinds, kinds
    request = next(item for item in first.output if item.type == "mcp_approval_request")
    assert request.name == "roll_dice"
    second = openai_client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[
            {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
        ],
        tools=[tool],
        max_output_tokens=60,
    )
    call = next(item for item in second.output if item.type == "mcp_call")
    assert call.error is None and call.output.startswith("rolled ")


def test_file_search_with_real_embeddings(openai_client: Any, tmp_path: Path) -> None:
    note = tmp_path / "lighthouse.txt"
    note.write_text(
        "The lighthouse keeper climbs 217 steps every evening to light the lamp.\n\n"
        "Bread is baked in the village oven on Saturdays."
    )
    store = openai_client.vector_stores.create(name="local")
    with note.open("rb") as f:
        uploaded = openai_client.files.create(file=f, purpose="assistants")
    attached = openai_client.vector_stores.files.create_and_poll(
        vector_store_id=store.id, file_id=uploaded.id
    )
    assert attached.status == "completed", attached.last_error
    # Asked in other words: found by meaning.
    found = openai_client.vector_stores.search(
        vector_store_id=store.id, query="How many stairs does the beacon attendant walk up?"
    )
    assert "217 steps" in found.data[0].content[0].text
    answer = openai_client.responses.create(
        model=MODEL,
        input="How many steps does the lighthouse keeper climb?",
        tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
        tool_choice="required",
        max_tool_calls=1,
        include=["file_search_call.results"],
        # Room for the call's JSON (a call cut at the limit is no call), sampled the same
        # way each run.
        max_output_tokens=200,
        temperature=0,
    )
    searches = [item for item in answer.output if item.type == "file_search_call"]
    assert searches, answer.model_dump_json()
    assert searches[0].status == "completed" and searches[0].results, answer.model_dump_json()


def test_code_interpreter_runs_the_model_s_code(openai_client: Any) -> None:
    answer = openai_client.responses.create(
        model=MODEL,
        input="Compute 6*7 with Python.",
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        tool_choice="required",
        max_tool_calls=1,
        max_output_tokens=300,
        temperature=0,
    )
    call = next(item for item in answer.output if item.type == "code_interpreter_call")
    assert call.status in ("completed", "failed") and call.code  # ran, whatever it wrote


# ---------------------------------------------------------------------------- failures


def test_the_model_server_killed_mid_turn_is_a_typed_error_then_it_comes_back(
    server: Any, key: str
) -> None:
    pid, _url, _secret = model_server(server)
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write a long poem about the sea."}],
        "max_tokens": 600,
        "stream": True,
    }
    events = []
    with (
        server.client(key, timeout=120) as http,
        http.stream("POST", "/chat/completions", json=body) as answer,
    ):
        assert answer.status_code == 200
        for line in answer.iter_lines():
            if not line.startswith("data: "):
                continue
            events.append(line[6:])
            if len(events) == 3:
                os.kill(pid, signal.SIGKILL)
    assert events[-1] == "[DONE]" or "error" in events[-1]
    error = next(json.loads(e) for e in events if e != "[DONE]" and "error" in json.loads(e))
    assert error["error"]["code"] in ("upstream_truncated", "upstream_unreachable")
    # The next turn waits for the new server and works.
    with server.client(key, timeout=120) as http:
        again = http.post(
            "/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8},
        )
    assert again.status_code == 200, again.text
    assert again.json()["choices"][0]["message"]["content"]
    new_pid, _, _ = model_server(server)
    assert new_pid != pid
    metrics = httpx.get(
        f"{server.base_url}/metrics",
        headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
        timeout=10,
    ).text
    assert "parley_local_model_restarts_total 1.0" in metrics
    assert "parley_local_model_up 1.0" in metrics
    speeds = [
        ln
        for ln in metrics.splitlines()
        if ln.startswith("parley_local_model_tokens_per_second_count")
    ]
    assert speeds and float(speeds[0].split()[-1]) >= 1  # the answers streamed so far


def test_the_chat_model_embeds_when_its_server_is_started_to(
    fresh_database: Any, tmp_path: Path
) -> None:
    srv = ParleyServer(
        database_url=fresh_database.url,
        workdir=tmp_path,
        config=CONFIG + 'server_args = ["--embeddings", "--pooling", "mean"]\n',
        env={"PARLEY_LOOP_WATCHDOG_SECONDS": "0"},
    ).start()
    try:
        key = srv.new_user()
        with srv.client(key, timeout=120) as http:
            vectors = http.post("/embeddings", json={"model": MODEL, "input": ["a", "b c"]})
            chat = http.post(
                "/chat/completions",
                json={
                    "model": MODEL,
                    "messages": [{"role": "user", "content": "Hi"}],
                    "max_tokens": 4,
                },
            )
        assert vectors.status_code == 200, vectors.text
        data = vectors.json()["data"]
        assert len(data) == 2 and len(data[0]["embedding"]) == 576  # SmolLM2-135M's width
        assert chat.status_code == 200, chat.text
    finally:
        srv.stop()


def test_no_model_server_outlives_a_killed_parley(fresh_database: Any, tmp_path: Path) -> None:
    srv = ParleyServer(
        database_url=fresh_database.url,
        workdir=tmp_path,
        config=CONFIG,
        env={"PARLEY_LOCAL_MODEL_START": "true", "PARLEY_LOOP_WATCHDOG_SECONDS": "0"},
    ).start()
    pid, _url, _secret = model_server(srv)
    assert srv.proc is not None
    os.kill(srv.proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = (
        Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )
    assert not alive, "the model server outlived Parley"
    srv.stop()
