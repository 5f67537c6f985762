"""The MCP layer of the terminal client, against real server processes (tests/terminal/mcp_server.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from parley.terminal.mcp_config import ServerSpec, parse_mcp_config
from parley.terminal.mcp_tools import DECLINED, HubTool, PendingCall, ToolHub, needs_confirmation
from tests.harness import free_port

SERVER = Path(__file__).with_name("mcp_server.py")
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ALL_TOOLS = 11  # what mcp_server.py offers by default


def stdio(name: str, *args: str, **settings: Any) -> ServerSpec:
    """The test server as a config entry would describe it."""
    entry = {"command": sys.executable, "args": [str(SERVER), "--name", name, *args], **settings}
    return parse_mcp_config(json.dumps({"mcpServers": {name: entry}}))[name]


def specs(*servers: ServerSpec) -> dict[str, ServerSpec]:
    return {spec.name: spec for spec in servers}


@pytest.fixture
async def hub() -> AsyncIterator[ToolHub]:
    async with ToolHub() as hub:
        yield hub


@pytest.fixture
async def one(hub: ToolHub) -> ToolHub:
    """A hub with one test server, ``t``, whose tools keep their own names."""
    await hub.start(specs(stdio("t")))
    assert hub.status["t"].connected
    return hub


# --------------------------------------------------------------------------- starting


async def test_start_prefixes_colliding_names_and_counts_tools(hub: ToolHub) -> None:
    odd = "odd name/with.dots"
    await hub.start(
        specs(
            stdio("a", "--page-size", "3"),  # the listing comes in pages
            stdio("b", "--tools", f"echo,{odd},{'x' * 80}"),
            stdio("off", disabled=True),
        )
    )

    assert {name: s.summary for name, s in hub.status.items()} == {
        "a": f"a: {ALL_TOOLS} tools",
        "b": "b: 3 tools",
        "off": "off: disabled",
    }
    by_name = {tool.name: tool for tool in hub.tools}
    assert "echo" not in by_name
    assert (by_name["a__echo"].server, by_name["a__echo"].original_name) == ("a", "echo")
    assert (by_name["b__echo"].server, by_name["b__echo"].original_name) == ("b", "echo")
    assert by_name["add"].server == "a"
    assert by_name["odd_name_with_dots"].original_name == odd
    assert by_name["x" * 64].original_name == "x" * 80
    assert all(NAME.match(name) for name in by_name)
    assert len(by_name) == ALL_TOOLS + 3

    spec = next(s for s in hub.tool_specs() if s["name"] == "add")
    assert spec["description"] == "Add two numbers."
    assert spec["parameters"]["type"] == "object"
    assert set(spec["parameters"]["properties"]) == {"a", "b"}
    bare = next(s for s in hub.tool_specs() if s["name"] == "odd_name_with_dots")
    assert bare["parameters"] == {"type": "object", "properties": {}}


async def test_a_failing_server_does_not_stop_the_others(hub: ToolHub) -> None:
    broken = ServerSpec(
        name="broken",
        transport="stdio",
        command=sys.executable,
        args=("-c", "import sys; sys.exit('config file is missing')"),
    )
    absent = ServerSpec(name="absent", transport="stdio", command="no-such-command-anywhere")
    nowhere = ServerSpec(
        name="nowhere", transport="http", url=f"http://127.0.0.1:{free_port()}/mcp"
    )
    await hub.start(specs(broken, absent, nowhere, stdio("ok")))

    status = hub.status
    assert status["ok"].connected and status["ok"].tool_count == ALL_TOOLS
    assert status["broken"].state == "failed" and status["broken"].tool_count == 0
    assert "config file is missing" in (status["broken"].error or "")
    assert "no-such-command-anywhere" in (status["absent"].error or "")
    assert status["nowhere"].state == "failed" and status["nowhere"].error
    assert {tool.server for tool in hub.tools} == {"ok"}


async def test_only_picks_servers_even_disabled_ones(hub: ToolHub) -> None:
    await hub.start(specs(stdio("a"), stdio("b", disabled=True)), only=["b", "nope"])

    assert list(hub.status) == ["b", "nope"]
    assert hub.status["b"].connected
    assert hub.status["nope"].error == "not in the MCP config"


# --------------------------------------------------------------------------- calls


async def test_call_results_of_each_kind(one: ToolHub) -> None:
    echo = await one.call("echo", {"text": "hello"})
    assert (echo.text, echo.is_error, echo.kind, echo.server) == ("hello", False, "ok", "t")
    assert (await one.call("add", {"a": 2, "b": 3})).text == "5"

    picture = await one.call("picture", {})
    assert picture.text == "[image: image/png, 100 bytes]\na tiny picture"

    lookup = await one.call("lookup", {"key": "k"})
    assert lookup.text == '{"key":"k","found":true,"tags":["a","b"]}'
    assert lookup.structured == {"key": "k", "found": True, "tags": ["a", "b"]}

    resources = await one.call("resources", {})
    assert resources.text.splitlines() == [
        "hello notes",
        '{"rows": 2}',
        "[resource: file:///data.bin, application/octet-stream, 100 bytes]",
        "[resource link: readme <file:///README.md>, text/markdown]",
    ]


async def test_tool_errors_and_unknown_tools_are_error_outcomes(one: ToolHub) -> None:
    failed = await one.call("fail", {"message": "disk full"})
    assert (failed.text, failed.is_error, failed.kind) == ("disk full", True, "tool_error")
    assert failed.output == "Error: disk full"

    unknown = await one.call("nope", {})
    assert unknown.is_error and unknown.kind == "unknown_tool"
    assert "'nope'" in unknown.text

    bad_arguments = await one.call("add", {"a": 1, "b": "two"})  # the server's handler raises
    assert bad_arguments.is_error and bad_arguments.kind == "server_error"
    assert (await one.call("echo", {"text": "still up"})).text == "still up"


async def test_timeout_cancels_the_call_and_keeps_the_session(one: ToolHub) -> None:
    started = time.monotonic()
    outcome = await one.call("slow", {"seconds": 10}, timeout=0.3)

    assert time.monotonic() - started < 2
    assert (outcome.is_error, outcome.kind) == (True, "timeout")
    assert "timed out after 0.3 s" in outcome.text
    await _server_cancelled(one, "cancelled", 1)
    assert (await one.call("echo", {"text": "next"})).text == "next"


async def test_server_timeout_overrides_the_call_timeout(hub: ToolHub) -> None:
    await hub.start(specs(stdio("t", timeout=0.3)))

    outcome = await hub.call("slow", {"seconds": 10}, timeout=60)

    assert outcome.kind == "timeout" and "0.3 s" in outcome.text


async def test_a_crashed_server_restarts_on_next_use(one: ToolHub) -> None:
    first_pid = int((await one.call("pid", {})).text)
    assert int((await one.call("pid", {})).text) == first_pid  # one session across calls

    crashed = await one.call("crash", {})

    assert (crashed.is_error, crashed.kind) == (True, "server_error")
    assert "'t' stopped" in crashed.text and "restarts on the next call" in crashed.text
    assert one.status["t"].state == "down"
    assert len(one.tools) == ALL_TOOLS  # still offered: using one restarts the server
    second_pid = int((await one.call("pid", {})).text)
    assert second_pid != first_pid
    assert one.status["t"].connected
    await _assert_gone(first_pid)


# --------------------------------------------------------------------------- turns


async def test_calls_of_a_turn_overlap_and_keep_their_order(one: ToolHub) -> None:
    started = time.monotonic()
    outcomes = await one.run_calls(
        [
            ("c1", "slow", {"seconds": 0.5}),
            ("c2", "slow", {"seconds": 0.5}),
            ("c3", "echo", {"text": "x"}),
        ]
    )

    assert time.monotonic() - started < 0.9
    assert [o.call_id for o in outcomes] == ["c1", "c2", "c3"]
    assert [o.text for o in outcomes] == ["slept 0.5", "slept 0.5", "x"]


async def test_limit_one_runs_calls_one_after_another(one: ToolHub) -> None:
    started = time.monotonic()
    calls = [("c1", "slow", {"seconds": 0.3}), ("c2", "slow", {"seconds": 0.3})]
    outcomes = await one.run_calls(calls, limit=1)

    assert time.monotonic() - started >= 0.6
    assert [o.text for o in outcomes] == ["slept 0.3", "slept 0.3"]


async def test_a_declined_call_affects_only_itself(hub: ToolHub) -> None:
    await hub.start(specs(stdio("t", allow=["add"])))
    asked: list[tuple[str, Mapping[str, Any]]] = []

    async def approve(name: str, arguments: Mapping[str, Any]) -> bool:
        asked.append((name, arguments))
        return name != "fail"

    calls: list[PendingCall] = [
        ("c1", "fail", {"message": "m"}),
        ("c2", "echo", {"text": "yes"}),
        ("c3", "add", {"a": 1, "b": 1}),
        ("c4", "nope", {}),
    ]
    outcomes = await hub.run_calls(calls, approve=approve)

    assert asked == [("fail", {"message": "m"}), ("echo", {"text": "yes"})]  # add is allowed
    declined, echo, add, nope = outcomes
    assert (declined.text, declined.is_error, declined.kind) == (DECLINED, True, "declined")
    assert declined.call_id == "c1"
    assert (echo.text, add.text) == ("yes", "2")
    assert nope.kind == "unknown_tool"

    asked.clear()
    await hub.run_calls(calls[2:3], approve=approve, confirm="always")
    assert asked == [("add", {"a": 1, "b": 1})]
    asked.clear()
    await hub.run_calls(calls[:1], approve=approve, confirm="never")
    assert asked == []


async def test_approve_can_give_the_reason_for_declining(hub: ToolHub) -> None:
    await hub.start(specs(stdio("t")))

    async def approve(name: str, arguments: Mapping[str, Any]) -> str:
        return "No terminal to ask on."

    [outcome] = await hub.run_calls([("c1", "echo", {"text": "x"})], approve=approve)
    assert (outcome.kind, outcome.is_error) == ("declined", True)
    assert outcome.output == "Error: No terminal to ask on."


def test_needs_confirmation_modes() -> None:
    spec = ServerSpec(name="s", transport="stdio", command="srv", allow=frozenset({"read"}))
    read = HubTool("s__read", "s", "read", "", {})
    write = HubTool("write", "s", "write", "", {})
    assert not needs_confirmation("ask", read, spec)
    assert needs_confirmation("ask", write, spec)
    assert needs_confirmation("always", read, spec)
    assert not needs_confirmation("never", write, spec)


async def test_cancelling_a_turn_stops_its_calls_and_keeps_the_session(one: ToolHub) -> None:
    events: list[str] = []
    turn = asyncio.create_task(
        one.run_calls(
            [("c1", "slow", {"seconds": 10}), ("c2", "slow", {"seconds": 10})],
            on_start=lambda call_id, name, arguments: events.append(f"start {call_id}"),
            on_done=lambda outcome: events.append(f"done {outcome.call_id}"),
        )
    )
    await asyncio.sleep(0.3)
    started = time.monotonic()
    turn.cancel()
    with pytest.raises(asyncio.CancelledError):
        await turn

    assert time.monotonic() - started < 1
    assert events == ["start c1", "start c2"]
    await _server_cancelled(one, "cancelled", 2)
    assert (await one.call("echo", {"text": "still here"})).text == "still here"
    assert one.status["t"].connected


# --------------------------------------------------------------------------- HTTP and closing


@pytest.fixture
def http_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SERVER), "--name", "web", "--http", str(port)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_streamable_http_server(http_server: str, hub: ToolHub) -> None:
    entry = {"url": http_server, "headers": {"X-Token": "sekrit"}}
    await hub.start(parse_mcp_config(json.dumps({"mcpServers": {"web": entry}})))

    assert hub.status["web"].summary == f"web: {ALL_TOOLS} tools"
    assert (await hub.call("echo", {"text": "over http"})).text == "over http"
    assert (await hub.call("header", {"name": "x-token"})).text == "sekrit"
    outcomes = await hub.run_calls(
        [("c1", "slow", {"seconds": 5}), ("c2", "echo", {"text": "x"})], timeout=0.3
    )
    assert [o.kind for o in outcomes] == ["timeout", "ok"]
    await _server_cancelled(hub, "cancelled", 1)


async def test_aclose_stops_every_server_process() -> None:
    hub = ToolHub()
    await hub.start(specs(stdio("a"), stdio("b")))
    pids = [int((await hub.call(f"{server}__pid", {})).text) for server in ("a", "b")]

    await hub.aclose()

    for pid in pids:
        await _assert_gone(pid)
    await hub.aclose()  # closing twice is harmless


async def _server_cancelled(hub: ToolHub, tool: str, count: int) -> None:
    """The server saw ``count`` slow calls cancelled (cancellation reaches it shortly after)."""
    for _ in range(50):
        seen = int((await hub.call(tool, {})).text)
        if seen >= count:
            assert seen == count
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the server saw {seen} cancelled calls, not {count}")


async def _assert_gone(pid: int) -> None:
    """The process has exited and been reaped (no zombie is left)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"process {pid} is still there")
