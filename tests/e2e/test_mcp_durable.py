"""Hosted MCP tools when things go wrong: a ``parley serve`` of the module's own, whose model
is a scripted Anthropic fake (so each call's tool and arguments are the test's), and real MCP
servers on loopback.

An approval waits in the database: it is answered after the server was killed (SIGKILL) and
started again, and on another replica than the one that asked for it; each time the call
runs once and the answer comes. A server whose tool hangs, one whose output is longer than
``PARLEY_MCP_MAX_OUTPUT``, one whose listing fails, one that never answers and one that dies
in the middle of a call each end the turn with a failed item or an error text the model is
told, and a completed response, within a bounded time.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sqlalchemy

from parley.store import runs as run_store
from tests.e2e.responses_helpers import sse_events
from tests.e2e.responses_providers_helpers import (
    ANSWER,
    AnthropicUpstream,
    Call,
    CallsTurn,
    RecordingMCP,
    TextTurn,
    check_json,
)
from tests.harness import FreshDatabase, ParleyServer, free_port, postgres_url, tuned
from tests.mcp.conftest import SERVER, _servers
from tests.terminal.mcp_server import CANCELLED

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: The server's MCP bounds: a call ends after 1 s, an output keeps 1000 characters.
CALL_TIMEOUT, MAX_OUTPUT = 1, 1000
ENV = tuned(
    {
        "PARLEY_MCP_ALLOW_URLS": "127.0.0.1",
        "PARLEY_MCP_CALL_TIMEOUT": str(CALL_TIMEOUT),
        "PARLEY_MCP_CONNECT_TIMEOUT": "2",
        "PARLEY_MCP_LIST_TIMEOUT": "2",
        "PARLEY_MCP_MAX_OUTPUT": str(MAX_OUTPUT),
        "PARLEY_LEASE_SECONDS": "1",
    },
    sweep_seconds=0.2,
)
#: Longest a faulty server may hold a turn (its timeouts are 1-2 s).
BOUND = 15.0
SLOTS = 12
QUESTION = "Use the tool."


@dataclass
class Setup:
    tmp: Path
    upstream: AnthropicUpstream
    mcp: RecordingMCP
    mcp_url: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setup(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setup]:
    """The scripted model's fakes and a recording MCP server, for the module."""
    tmp = tmp_path_factory.mktemp("mcp-durable")
    upstream = AnthropicUpstream(tmp, SLOTS)
    await upstream.start()
    mcp = RecordingMCP()
    try:
        with mcp.serve() as url:
            yield Setup(tmp, upstream, mcp, url)
    finally:
        await upstream.aclose()


def new_server(setup: Setup, database_url: str, **env: str) -> ParleyServer:
    return ParleyServer(
        database_url=database_url,
        workdir=setup.tmp,
        config=setup.upstream.config(),
        env=tuned(ENV, env),
    )


@pytest.fixture(scope="module")
def parley(setup: Setup) -> Iterator[ParleyServer]:
    """The module's server (killed and started again by one test)."""
    db = FreshDatabase(setup.tmp)
    server = new_server(setup, db.url).start()
    try:
        yield server
        server.stop()
        server.assert_clean_log()
    finally:
        server.stop()
        db.drop()


@asynccontextmanager
async def client(server: ParleyServer, key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"{server.base_url}/v1",
        headers={"Authorization": f"Bearer {key}"},
        timeout=BOUND,
        event_hooks={"response": [check_json]},
    ) as http:
        yield http


def mcp_tool(url: str, tools: list[str], approval: str = "never") -> dict[str, Any]:
    return {
        "type": "mcp",
        "server_label": "tests",
        "server_url": url,
        "allowed_tools": tools,
        "require_approval": approval,
    }


async def create(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    """``POST /responses`` that must complete within ``BOUND``."""
    started = time.monotonic()
    answer = await http.post("/responses", json=body)
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - started < BOUND
    response = dict(answer.json())
    assert response["status"] == "completed", response
    return response


def kinds(response: dict[str, Any]) -> list[str]:
    return [item["type"] for item in response["output"] if item["type"] != "reasoning"]


def told(body: dict[str, Any]) -> str:
    """The tool result an Anthropic request ends with, as text."""
    last = body["messages"][-1]
    (block,) = [b for b in last["content"] if b["type"] == "tool_result"]
    content = block["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


def scripted(setup: Setup, tool: str, arguments: dict[str, Any]) -> tuple[int, str]:
    """A slot whose model calls ``tool`` with ``arguments``, then answers ``ANSWER``."""
    slot = setup.upstream.take()
    call = Call(setup.upstream.call_ids[0], tool, arguments)
    model, _ = setup.upstream.script(slot, CallsTurn((call,)), TextTurn())
    return slot, model


def approval(request_id: str) -> dict[str, Any]:
    return {"type": "mcp_approval_response", "approval_request_id": request_id, "approve": True}


async def ask_approval(
    http: httpx.AsyncClient, setup: Setup, model: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A response that ends asking to approve ``echo {"text": "hi"}``; it and its request."""
    tool = mcp_tool(setup.mcp_url, ["echo"], approval="always")
    asked = await create(http, model=model, input=QUESTION, tools=[tool])
    assert kinds(asked) == ["mcp_list_tools", "mcp_approval_request"], asked["output"]
    request = asked["output"][-1]
    assert (request["name"], json.loads(request["arguments"])) == ("echo", {"text": "hi"})
    return asked, request


async def approve(
    http: httpx.AsyncClient, setup: Setup, model: str, asked: dict[str, Any], request_id: str
) -> dict[str, Any]:
    """The approval, sent with the headers-free tool again; the call ran once and the answer
    came."""
    before = len(setup.mcp.calls("echo"))
    tool = mcp_tool(setup.mcp_url, ["echo"], approval="always")
    done = await create(
        http,
        model=model,
        input=[approval(request_id)],
        tools=[tool],
        previous_response_id=asked["id"],
    )
    assert kinds(done) == ["mcp_call", "message"], done["output"]
    call = done["output"][0]
    assert (call["approval_request_id"], call["status"], call["output"]) == (
        request_id,
        "completed",
        "hi",
    )
    assert done["output"][-1]["content"][0]["text"] == "".join(ANSWER)
    assert len(setup.mcp.calls("echo")) - before == 1
    return done


# ---------------------------------------------------------------------- approvals


async def test_an_approval_after_a_kill_and_a_restart(setup: Setup, parley: ParleyServer) -> None:
    key = parley.new_user()
    slot, model = scripted(setup, "echo", {"text": "hi"})
    before = len(setup.mcp.calls())
    async with client(parley, key) as http:
        asked, request = await ask_approval(http, setup, model)
    assert setup.mcp.calls()[before:] == []
    parley.kill()
    parley.start()
    async with client(parley, key) as http:
        stored = await http.get(f"/responses/{asked['id']}")
        assert stored.json()["output"] == asked["output"]
        await approve(http, setup, model, asked, request["id"])
    _, told_model = setup.upstream.requests(slot)
    assert told(told_model) == "hi"


@pytest.fixture(scope="module")
def replicas(setup: Setup) -> Iterator[tuple[ParleyServer, ParleyServer]]:
    """Two servers on one PostgreSQL database, streaming across through Redis."""
    if not (postgres_url() and os.environ.get("PARLEY_TEST_REDIS_URL")):
        pytest.skip("two replicas need PARLEY_TEST_DATABASE_URL and PARLEY_TEST_REDIS_URL")
    db = FreshDatabase(setup.tmp)
    a = new_server(setup, db.url)
    b = new_server(setup, db.url)
    try:
        a.start()
        b.start()
        yield a, b
        for server in (a, b):
            server.stop()
            server.assert_clean_log()
    finally:
        a.stop()
        b.stop()
        db.drop()


async def test_an_approval_answered_on_the_other_replica(
    setup: Setup, replicas: tuple[ParleyServer, ParleyServer]
) -> None:
    a, b = replicas
    key = a.new_user()
    slot, model = scripted(setup, "echo", {"text": "hi"})
    async with client(a, key) as http:
        asked, request = await ask_approval(http, setup, model)
    async with client(b, key) as http:
        done = await approve(http, setup, model, asked, request["id"])
    async with client(a, key) as http:  # replica A sees the answer too
        stored = await http.get(f"/responses/{done['id']}")
        assert stored.json()["output"] == done["output"]
    _, told_model = setup.upstream.requests(slot)
    assert told(told_model) == "hi"


async def test_one_approval_sent_to_both_replicas_at_once_runs_the_call_once(
    setup: Setup, replicas: tuple[ParleyServer, ParleyServer]
) -> None:
    await approve_twice_at_once(*replicas, setup)


# --------------------------------------------------------------------------- faults


async def test_a_call_that_hangs_times_out(setup: Setup, parley: ParleyServer) -> None:
    """The call ends after ``PARLEY_MCP_CALL_TIMEOUT``, is cancelled on the server, and the
    model is told."""
    cancelled = len(CANCELLED)
    slot, model = scripted(setup, "slow", {"seconds": 30})
    async with client(parley, parley.new_user()) as http:
        tool = mcp_tool(setup.mcp_url, ["slow"])
        response = await create(http, model=model, input=QUESTION, tools=[tool])
    assert kinds(response) == ["mcp_list_tools", "mcp_call", "message"], response["output"]
    call = response["output"][2]
    assert (call["status"], call["output"]) == ("failed", None), call
    error = call["error"]
    assert error["type"] == "mcp_protocol_error", error
    assert f"did not answer within {CALL_TIMEOUT} s" in error["message"], error
    _, told_model = setup.upstream.requests(slot)
    assert "did not answer within" in told(told_model)
    deadline = time.monotonic() + 5
    while len(CANCELLED) == cancelled:  # the server was told to stop the call
        assert time.monotonic() < deadline, "the timed-out call was not cancelled"
        await asyncio.sleep(0.02)


async def test_an_output_over_the_limit_is_cut_and_says_so(
    setup: Setup, parley: ParleyServer
) -> None:
    slot, model = scripted(setup, "big", {"chars": 5000})
    async with client(parley, parley.new_user()) as http:
        tool = mcp_tool(setup.mcp_url, ["big"])
        response = await create(http, model=model, input=QUESTION, tools=[tool])
    assert kinds(response) == ["mcp_list_tools", "mcp_call", "message"], response["output"]
    call = response["output"][2]
    assert call["status"] == "completed", call
    cut = "x" * MAX_OUTPUT + f"\n[output cut: {5000 - MAX_OUTPUT} more characters]"
    assert call["output"] == cut
    _, told_model = setup.upstream.requests(slot)
    assert told(told_model) == cut


async def test_a_failing_list(setup: Setup, parley: ParleyServer) -> None:
    """The list fails: its item says why, the model is offered no tool of the server and
    answers."""
    failing = RecordingMCP(fail_list=True)
    slot = setup.upstream.take()
    (model,) = setup.upstream.script(slot, TextTurn())
    with failing.serve() as url:
        async with client(parley, parley.new_user()) as http:
            tool = mcp_tool(url, ["echo"])
            response = await create(http, model=model, input=QUESTION, tools=[tool])
    assert kinds(response) == ["mcp_list_tools", "message"], response["output"]
    listed = response["output"][0]
    assert listed["tools"] == [] and "the tool index is corrupt" in listed["error"], listed
    assert failing.calls() == []
    (sent,) = setup.upstream.requests(slot)
    assert [t["name"] for t in sent.get("tools", [])] == []


async def test_a_server_that_never_answers(setup: Setup, parley: ParleyServer) -> None:
    """Every HTTP request hangs: the listing ends at its time with an error."""
    slot = setup.upstream.take()
    (model,) = setup.upstream.script(slot, TextTurn())
    with _servers() as serve:
        url = serve(hang=True)
        async with client(parley, parley.new_user()) as http:
            tool = mcp_tool(url, ["echo"])
            response = await create(http, model=model, input=QUESTION, tools=[tool])
    assert kinds(response) == ["mcp_list_tools", "message"], response["output"]
    listed = response["output"][0]
    assert listed["tools"] == [] and listed["error"], listed


@pytest.fixture
def mortal() -> Iterator[str]:
    """The test MCP server as a process of its own (its ``crash`` tool exits it)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SERVER), "--http", str(port)])
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.kill()
        proc.wait(timeout=10)


async def test_a_server_that_dies_mid_call(setup: Setup, parley: ParleyServer, mortal: str) -> None:
    """Streamed: the call fails (``response.mcp_call.failed``), the model is told, the
    response completes."""
    slot, model = scripted(setup, "crash", {})
    body = {
        "model": model,
        "input": QUESTION,
        "tools": [mcp_tool(mortal, ["crash"])],
        "stream": True,
    }
    started = time.monotonic()
    key = parley.new_user()
    async with client(parley, key) as http, http.stream("POST", "/responses", json=body) as answer:
        text = (await answer.aread()).decode()
        assert answer.status_code == 200, text
    assert time.monotonic() - started < BOUND
    events = sse_events(text)
    names = [e["type"] for e in events]
    assert "response.mcp_call.failed" in names and names[-1] == "response.completed", names
    final = events[-1]["response"]
    assert kinds(final) == ["mcp_list_tools", "mcp_call", "message"], final["output"]
    call = final["output"][2]
    assert call["status"] == "failed" and call["error"]["type"] == "mcp_protocol_error", call
    assert call["error"]["message"], call
    _, told_model = setup.upstream.requests(slot)
    assert told(told_model).startswith("Error: "), told(told_model)


async def test_a_kill_during_a_call_leaves_a_response_that_ended(
    setup: Setup, parley: ParleyServer
) -> None:
    """The server dies while a call runs (a background response): once started again, the
    response ends (its lease runs out) and shows the call cut short (``incomplete``, its
    error saying why), none still running."""
    slot, model = scripted(setup, "slow", {"seconds": 3})
    key = parley.new_user()
    before = len(setup.mcp.calls("slow"))
    async with client(parley, key) as http:
        tool = mcp_tool(setup.mcp_url, ["slow"])
        body = {"model": model, "input": QUESTION, "tools": [tool], "background": True}
        answer = await http.post("/responses", json=body)
        assert answer.status_code == 200, answer.text
        response_id = answer.json()["id"]
        deadline = time.monotonic() + BOUND
        while len(setup.mcp.calls("slow")) == before:
            assert time.monotonic() < deadline, "the call never reached the MCP server"
            await asyncio.sleep(0.01)
        while not logged_start(parley, response_id):  # a checkpoint saves it
            assert time.monotonic() < deadline, "the call's start never reached the log"
            await asyncio.sleep(0.05)
    parley.kill()
    parley.start()
    async with client(parley, key) as http:
        deadline = time.monotonic() + BOUND
        while True:
            response = (await http.get(f"/responses/{response_id}")).json()
            if response["status"] not in ("queued", "in_progress"):
                break
            assert time.monotonic() < deadline, response
            await asyncio.sleep(0.1)
    assert response["status"] == "incomplete", response
    assert response["incomplete_details"] == {"reason": "interrupted"}, response
    running = [i for i in response["output"] if i.get("status") == "in_progress"]
    assert running == [], response["output"]
    calls = [i for i in response["output"] if i["type"] == "mcp_call"]
    assert [(c["name"], c["status"]) for c in calls] == [("slow", "incomplete")], calls
    assert json.loads(calls[0]["arguments"]) == {"seconds": 3}
    assert "stopped during the call" in calls[0]["error"]["message"], calls[0]
    assert len(setup.upstream.requests(slot)) == 1  # the turn was not run again


def logged_start(parley: ParleyServer, run_id: str) -> bool:
    """Whether the run's log holds the start of an MCP call (read from the database)."""
    engine = sqlalchemy.create_engine(parley.database_url)
    try:
        with engine.connect() as conn:
            logged = run_store.read_events(conn, run_id=run_id, after=0, kind="hosted_tool")
            return any('"mcp_call"' in e.data for e in logged)
    finally:
        engine.dispose()


async def approve_twice_at_once(
    first: ParleyServer, second: ParleyServer, setup: Setup
) -> list[httpx.Response]:
    """One approval sent twice at the same time (to ``first`` and ``second``); the answers.
    The call ran once."""
    key = first.new_user()
    _, model = scripted(setup, "echo", {"text": "hi"})
    async with client(first, key) as http:
        asked, request = await ask_approval(http, setup, model)
    before = len(setup.mcp.calls("echo"))
    tool = mcp_tool(setup.mcp_url, ["echo"], approval="always")
    body = {
        "model": model,
        "input": [approval(request["id"])],
        "tools": [tool],
        "previous_response_id": asked["id"],
    }
    async with client(first, key) as a, client(second, key) as b:
        answers = await asyncio.gather(
            a.post("/responses", json=body), b.post("/responses", json=body)
        )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses[0] == 200 and statuses[1] in (400, 409), [a.text for a in answers]
    assert len(setup.mcp.calls("echo")) - before == 1
    return list(answers)


async def test_one_approval_sent_twice_at_once_runs_the_call_once(
    setup: Setup, parley: ParleyServer
) -> None:
    await approve_twice_at_once(parley, parley, setup)


async def test_a_tool_error_over_the_limit_is_cut_too(setup: Setup, parley: ParleyServer) -> None:
    """A tool's error text longer than ``PARLEY_MCP_MAX_OUTPUT`` is cut the same way, in its
    failed item and in what the model is told."""
    slot, model = scripted(setup, "fail", {"message": "e" * 3000})
    async with client(parley, parley.new_user()) as http:
        tool = mcp_tool(setup.mcp_url, ["fail"])
        response = await create(http, model=model, input=QUESTION, tools=[tool])
    assert kinds(response) == ["mcp_list_tools", "mcp_call", "message"], response["output"]
    call = response["output"][2]
    cut = "e" * MAX_OUTPUT + f"\n[output cut: {3000 - MAX_OUTPUT} more characters]"
    assert (call["status"], call["output"]) == ("failed", None), call
    assert call["error"] == {
        "type": "mcp_tool_execution_error",
        "content": [{"type": "text", "text": cut}],
    }
    _, told_model = setup.upstream.requests(slot)
    assert told(told_model) == f"Error: {cut}"
