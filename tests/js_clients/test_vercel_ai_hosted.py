"""The Vercel AI SDK's OpenAI provider (``@ai-sdk/openai``, TypeScript, run by the bun of
``tests/compliance``) pointed at Parley's ``/v1/responses``, with the tools the server runs.

``vercel_ai_hosted.ts`` asks ``fake/auto`` to use a real MCP server on loopback (the
session server may reach 127.0.0.1) through ``openai.tools.mcp``: without approval, with
``generateText`` and ``streamText``; with approval, through the AI SDK's own flow (a
``tool-approval-request`` part, then a second call that sends the history with an
``item_reference`` to the request and the ``mcp_approval_response``). Then it asks the demo
model to search a vector store made through Parley's API (``openai.tools.fileSearch``) and
to run code in a real sandbox (``openai.tools.codeInterpreter``, skipped without
bubblewrap). After a turn with a hosted call (MCP, file search, code) comes a second turn,
to which the AI SDK gives the first back as ``item_reference``s (its reasoning, text and
hosted calls), which the server must find. The AI SDK checks every item and event against
its own schema: an item of another shape fails its call. ``make test`` installs the pinned
packages (``npm ci --prefix tests/js_clients``); without them this skips, and fails under
CI.
"""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest

from parley.sandbox.probe import unavailable as sandbox_unavailable
from parley.testing.fake_upstream import tool_results_text
from tests.js_clients.bun import script_report
from tests.mcp.conftest import _servers
from tests.unavailable import unavailable

WHAT = "the Vercel AI SDK's OpenAI provider"
#: What ``echo`` gets from ``fake/auto``, what it returns, and the model's answer after it.
ECHO_INPUT = {"text": "text 0"}
ECHO_OUTPUT = "text 0"
ANSWER = tool_results_text([("echo", ECHO_OUTPUT)])
#: The file the vector store holds, and the passage the search finds in it.
OWLS_FILE = "owls.txt"
OWLS = "Owls hunt at night: their soft feathers make their flight silent."
#: Seconds the store's file may take to be indexed.
INDEXING_DEADLINE = 30.0


def owls_store(server: Any, key: str) -> str:
    """A vector store made through Parley's API, holding ``OWLS_FILE``, once indexed."""
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0) as sdk:
        uploaded = sdk.files.create(file=(OWLS_FILE, OWLS.encode()), purpose="assistants")
        store = sdk.vector_stores.create(name="owls", file_ids=[uploaded.id])
        deadline = time.monotonic() + INDEXING_DEADLINE
        while sdk.vector_stores.retrieve(store.id).status == "in_progress":
            assert time.monotonic() < deadline, "the store's file was not indexed in time"
            time.sleep(0.1)
        assert sdk.vector_stores.retrieve(store.id).file_counts.completed == 1
        return store.id


@pytest.fixture(scope="module")
def report(server: Any) -> dict[str, Any]:
    """Every run of ``vercel_ai_hosted.ts``, by name: ``{"ok": ...}`` or ``{"error": ...}``."""
    key = server.new_user("vercel-ai-hosted")
    code = "yes" if sandbox_unavailable() is None else "no"
    with _servers() as start:
        mcp_url = start()
        store_id = owls_store(server, key)
        return script_report(
            "vercel_ai_hosted.ts",
            "@ai-sdk/openai",
            WHAT,
            f"{server.base_url}/v1",
            key,
            mcp_url,
            store_id,
            code,
        )


def run_of(report: dict[str, Any], name: str) -> Any:
    """One run's outcome; the test fails with the AI SDK's error when it threw."""
    outcome = report[name]
    if "error" in outcome:
        pytest.fail(f"{WHAT}, run {name}: {outcome['error']}\ncause: {outcome.get('cause')}")
    return outcome["ok"]


def said(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A step's parts but its reasoning (the demo model thinks before it answers)."""
    return [part for part in content if part["type"] != "reasoning"]


def answered_again(ran: dict[str, Any]) -> None:
    """The second turn, given the first's items back as ``item_reference``s (its reasoning,
    its hosted call, its text), was answered: with text, and no call (the demo model calls
    a tool only when the newest message names it)."""
    assert [part["type"] for part in said(ran["again"])] == ["text"], ran["again"]


def echo_result(part: dict[str, Any]) -> None:
    """A ``tool-result`` part of the MCP server's ``echo`` call that Parley ran."""
    assert part["type"] == "tool-result" and part["toolName"] == "mcp.echo", part
    output = part["output"]
    assert (output["type"], output["serverLabel"], output["name"]) == ("call", "tests", "echo")
    assert json.loads(output["arguments"]) == ECHO_INPUT
    assert output["output"] == ECHO_OUTPUT and "error" not in output, output


def test_hosted_mcp_without_approval_with_generate_text(report: dict[str, Any]) -> None:
    """Two turns: the second sends the first's call and answer back as ``item_reference``s
    (``mcp_…``, ``msg_…``), and ``fake/auto``, asked again, calls ``echo`` again."""
    ran = run_of(report, "mcp_generate")
    for content in (ran["content"], ran["again"]):
        call, result, text = content
        assert call["type"] == "tool-call" and call["toolName"] == "mcp.echo", call
        assert call["input"] == ECHO_INPUT
        echo_result(result)
        assert text == {"type": "text", "text": ANSWER}
    assert ran["text"] == ANSWER


def test_hosted_mcp_without_approval_with_stream_text(report: dict[str, Any]) -> None:
    ran = run_of(report, "mcp_stream")
    assert ran["errors"] == []
    parts = ran["parts"]
    assert parts.index("tool-call") < parts.index("tool-result") < parts.index("text-delta")
    kinds = [part["type"] for part in ran["content"]]
    assert kinds == ["tool-call", "tool-result", "text"], ran["content"]
    echo_result(ran["content"][1])
    assert ran["text"] == ANSWER


@pytest.mark.parametrize("name", ["mcp_approved", "mcp_approved_streamed"])
def test_hosted_mcp_with_the_approval_flow(report: dict[str, Any], name: str) -> None:
    """The first call asks; the second, given the approval, gets the call's result (the
    request found again through its ``item_reference``) and the model's answer."""
    ran = run_of(report, name)
    assert "approvalId" in ran, f"no tool-approval-request: {ran['asked']}"
    assert ran["approvalId"].startswith("mcpr_")
    asked = [part["type"] for part in ran["asked"]]
    assert asked == ["tool-call", "tool-approval-request"], ran["asked"]
    result = next(part for part in ran["answered"] if part["type"] == "tool-result")
    echo_result(result)
    assert ran["text"] == ANSWER


def test_file_search_over_a_vector_store(report: dict[str, Any]) -> None:
    ran = run_of(report, "file_search")
    content = said(ran["content"])
    kinds = [part["type"] for part in content]
    assert kinds[:2] == ["tool-call", "tool-result"], content
    output = content[1]["output"]
    assert output["queries"] == ["how do owls hunt?"]
    (found,) = output["results"]
    assert (found["filename"], found["text"]) == (OWLS_FILE, OWLS)
    assert 0 < found["score"] <= 1
    sources = [part for part in content if part["type"] == "source"]
    assert sources == [{"type": "source", "sourceType": "document", "title": OWLS_FILE}]
    assert OWLS in ran["text"]
    answered_again(ran)


def test_the_code_interpreter(report: dict[str, Any]) -> None:
    why = sandbox_unavailable()
    if why is not None:
        unavailable(why)
    ran = run_of(report, "code_interpreter")
    call, result = said(ran["content"])[:2]
    assert call["type"] == "tool-call" and call["toolName"] == "code_interpreter", call
    assert call["input"]["code"] == "print(6 * 7)"
    assert call["input"]["containerId"].startswith("cntr_")
    assert result["type"] == "tool-result", result
    assert result["output"]["outputs"] == [{"type": "logs", "logs": "42\n"}]
    assert "42" in ran["text"]
    answered_again(ran)
