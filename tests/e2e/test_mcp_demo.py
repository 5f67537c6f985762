"""Hosted MCP with no key: the offline demo model (``demo/parley``) and the example MCP
server (``python -m parley.mcp.example``, run as its own process) against ``parley serve``
(which allows MCP servers on 127.0.0.1). A message naming one of the server's tools makes
the demo call it; its answer quotes the result. This is the first try docs/mcp.md shows."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.responses_helpers import create, output_text, stream_create

DEMO = "demo/parley"
EXAMPLE_TOOLS = ["clock", "roll_dice", "word_count", "add_note", "list_notes"]


@pytest.fixture(scope="module")
def example_url() -> Iterator[str]:
    """The example MCP server as its own process, as a user starts it."""
    command = [sys.executable, "-m", "parley.mcp.example", "--port", "0", "--seed", "4"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        # It prints its address once it listens, on the port it was given by the system.
        assert proc.stdout is not None
        line = proc.stdout.readline()
        said = re.search(r"(http://\S+/mcp)", line)
        assert said is not None, line
        yield said.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def example(url: str, **fields: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "example", "server_url": url, **fields}


def items(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The output items, less the demo's reasoning (it thinks aloud before each answer)."""
    return [item for item in response["output"] if item["type"] != "reasoning"]


def kinds(response: dict[str, Any]) -> list[str]:
    return [item["type"] for item in items(response)]


def quoted(tool: str, output: str) -> str:
    return f'Demo model: the tool {tool} returned "{output}".'


def test_the_demo_calls_the_tool_the_user_names(http: httpx.Client, example_url: str) -> None:
    tool = example(example_url, require_approval="never")
    response = create(http, model=DEMO, input="roll_dice please", tools=[tool])
    assert response["status"] == "completed", response
    assert kinds(response) == ["mcp_list_tools", "mcp_call", "message"], response["output"]
    listed, call, _ = items(response)
    assert [t["name"] for t in listed["tools"]] == EXAMPLE_TOOLS
    assert (call["server_label"], call["name"], call["status"]) == (
        "example",
        "roll_dice",
        "completed",
    )
    assert json.loads(call["arguments"]) == {"sides": 6, "count": 2}
    assert call["output"].startswith("rolled 2d6: ") and call["error"] is None
    assert output_text(response) == quoted("roll_dice", call["output"])


def test_with_approval_the_call_waits_for_it(http: httpx.Client, example_url: str) -> None:
    tool = example(example_url, require_approval="always")
    asked = create(http, model=DEMO, input="roll_dice please", tools=[tool])
    assert kinds(asked) == ["mcp_list_tools", "mcp_approval_request"], asked["output"]
    request = items(asked)[1]
    assert (request["server_label"], request["name"]) == ("example", "roll_dice")
    assert json.loads(request["arguments"]) == {"sides": 6, "count": 2}
    approval = {
        "type": "mcp_approval_response",
        "approval_request_id": request["id"],
        "approve": True,
    }
    done = create(
        http, model=DEMO, input=[approval], tools=[tool], previous_response_id=asked["id"]
    )
    assert kinds(done) == ["mcp_call", "message"], done["output"]
    call = items(done)[0]
    assert call["approval_request_id"] == request["id"] and call["status"] == "completed"
    assert call["output"].startswith("rolled 2d6: ")
    assert output_text(done) == quoted("roll_dice", call["output"])


def test_read_only_tools_run_and_the_rest_ask(http: httpx.Client, example_url: str) -> None:
    """``require_approval: {"never": {"read_only": true}}``: word_count (read-only) runs at
    once; add_note (not read-only) waits for approval, and a denial leaves it unrun."""
    tool = example(example_url, require_approval={"never": {"read_only": True}})
    counted = create(http, model=DEMO, input="word_count one two three", tools=[tool])
    assert kinds(counted)[-2:] == ["mcp_call", "message"]
    assert items(counted)[-2]["output"] == "3 words, 1 line, 13 characters"
    asked = create(
        http,
        model=DEMO,
        input="add_note buy milk",
        tools=[tool],
        previous_response_id=counted["id"],
    )
    assert kinds(asked) == ["mcp_approval_request"], asked["output"]  # listed once already
    denial = {
        "type": "mcp_approval_response",
        "approval_request_id": items(asked)[0]["id"],
        "approve": False,
    }
    denied = create(
        http, model=DEMO, input=[denial], tools=[tool], previous_response_id=asked["id"]
    )
    assert kinds(denied) == ["message"]
    notes = create(
        http, model=DEMO, input="list_notes", tools=[tool], previous_response_id=denied["id"]
    )
    assert items(notes)[0]["output"] == "no notes yet"


def test_read_only_allowed_tools_hide_the_others(http: httpx.Client, example_url: str) -> None:
    tool = example(example_url, allowed_tools={"read_only": True}, require_approval="never")
    response = create(http, model=DEMO, input="add_note buy milk", tools=[tool])
    listed = items(response)[0]
    assert [t["name"] for t in listed["tools"]] == [
        "clock",
        "roll_dice",
        "word_count",
        "list_notes",
    ]
    assert kinds(response) == ["mcp_list_tools", "message"]  # add_note is not offered


def test_the_stream_shows_the_list_the_call_and_the_answer(
    http: httpx.Client, example_url: str
) -> None:
    tool = example(example_url, require_approval="never")
    events = stream_create(http, model=DEMO, input="what does the clock say", tools=[tool])
    names = [e["type"] for e in events]
    for name in [
        "response.mcp_list_tools.completed",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
        "response.output_text.delta",
        "response.completed",
    ]:
        assert name in names, names
    final = events[-1]["response"]
    call = items(final)[1]
    assert call["name"] == "clock" and call["output"].endswith("Z")
    assert output_text(final) == quoted("clock", call["output"])


GUIDE = Path(__file__).resolve().parents[2] / "docs" / "mcp.md"


def guide_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", GUIDE.read_text(), re.S)


def as_here(block: str, server: Any, example_url: str) -> str:
    """A block of docs/mcp.md pointed at the test's Parley and example server."""
    block = block.replace("http://127.0.0.1:8765/mcp", example_url)
    return block.replace("http://127.0.0.1:8700", server.base_url)


def test_the_guides_python_examples_run(
    server: Any,
    user_key: str,
    example_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", user_key)
    monkeypatch.setenv("PARLEY_API_KEY", user_key)
    blocks = guide_blocks("python")
    assert len(blocks) == 2, "docs/mcp.md: the openai example and the SDK example"
    for block in blocks:
        namespace: dict[str, Any] = {}
        try:
            exec(compile(as_here(block, server, example_url), str(GUIDE), "exec"), namespace)
        finally:
            if "client" in namespace:
                namespace["client"].close()
    printed = capsys.readouterr().out.splitlines()
    dice = r"rolled 2d6: [1-6], [1-6] \(total \d+\)"
    asked, _, arguments = printed[0].rpartition(" ")
    assert asked == "asks to run roll_dice"
    assert json.loads(arguments) == {"sides": 6, "count": 2}  # PostgreSQL orders keys its way
    assert re.fullmatch(rf"ran roll_dice -> {dice}", printed[1]), printed
    assert re.fullmatch(rf'Demo model: the tool roll_dice returned "{dice}"\.', printed[2])
    assert printed[3] == "approve? {'type': 'mcp', 'server_label': 'example', 'name': 'roll_dice'}"
    assert re.fullmatch(rf'Demo model: the tool roll_dice returned "{dice}"\.', printed[4])


def test_the_guides_first_request_runs(server: Any, user_key: str, example_url: str) -> None:
    (first,) = [b for b in guide_blocks("sh") if "curl" in b]
    script = as_here(first, server, example_url).replace("pk_...", user_key)
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    assert [words[0] for words in lines] == [
        "mcp_list_tools",
        "reasoning",
        "mcp_call",
        "reasoning",
        "message",
    ], done.stdout
    assert lines[2][:3] == ["mcp_call", "roll_dice", "rolled"]
