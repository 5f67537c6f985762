"""The official reference MCP server from npm (``@modelcontextprotocol/server-everything``,
over streamable HTTP) as a hosted MCP server of ``parley serve``: its tools listed, and its
``echo`` called in the turn."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from parley.testing.fake_upstream import tool_results_text
from tests.e2e.responses_helpers import create
from tests.harness import free_port

EVERYTHING = (
    Path(__file__).parents[1]
    / "js_clients/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
)

pytestmark = pytest.mark.skipif(
    not EVERYTHING.exists(),
    reason="no server-everything: `make test` installs it (npm ci --prefix tests/js_clients)",
)


@pytest.fixture(scope="module")
def everything() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PORT": str(port)}
    proc = subprocess.Popen(
        ["node", str(EVERYTHING), "streamableHttp"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "it did not start"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_reference_server_s_tools_run_in_the_turn(http: httpx.Client, everything: str) -> None:
    tool = {
        "type": "mcp",
        "server_label": "everything",
        "server_url": everything,
        "allowed_tools": ["echo"],
        "require_approval": "never",
    }
    response = create(http, model="fake/auto:2", input="echo it", tools=[tool])
    listed, call, message = response["output"]
    assert [t["name"] for t in listed["tools"]] == ["echo"], listed
    assert listed["tools"][0]["input_schema"]["properties"]["message"]["type"] == "string"
    assert call["status"] == "completed", call
    assert json.loads(call["arguments"]) == {"message": "message 0"}
    assert call["output"] == "Echo: message 0"
    assert message["content"][0]["text"] == tool_results_text([("echo", "Echo: message 0")])
