"""MCP servers the operator registers (``[mcp_servers.LABEL]`` in the config): a request
names one by ``server_label`` alone; its headers come from the server's environment and
reach the MCP server, never the client; who may use it is the config's to say; a stdio
server runs on the server. Its own ``parley serve``, which allows no MCP URL of a request
on loopback: a registered server is reached at its address as the operator wrote it."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import tool_results_text
from tests.e2e.responses_helpers import openai_error
from tests.e2e.responses_providers_helpers import RecordingMCP
from tests.harness import ParleyServer, free_port, provider_config

SERVER = Path(__file__).parents[1] / "terminal" / "mcp_server.py"
AUTO = "fake/auto:2"


@pytest.fixture(scope="module")
def registered(
    upstream: Any, fresh_database: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ParleyServer, RecordingMCP, str]]:
    mcp = RecordingMCP()
    token = f"tok{secrets.token_hex(12)}"
    with mcp.serve() as url:
        config = (
            provider_config(upstream.base_url, free_port())
            + f"""
[mcp_servers.files]
url = "{url}"
headers_env = {{ Authorization = "FILES_TOKEN" }}
description = "The team's files"
require_approval = "never"

[mcp_servers.onlyalice]
url = "{url}"
users = ["alice"]
require_approval = "never"

[mcp_servers.local]
transport = "stdio"
command = ["{sys.executable}", "{SERVER}"]
require_approval = "never"
"""
        )
        server = ParleyServer(
            database_url=fresh_database.url,
            workdir=tmp_path_factory.mktemp("registered"),
            config=config,
            env={"FILES_TOKEN": f"Bearer {token}"},
        ).start()
        try:
            yield server, mcp, token
        finally:
            server.stop()


def client(server: ParleyServer, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.base_url}/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def by_label(label: str) -> dict[str, Any]:
    return {"type": "mcp", "server_label": label, "allowed_tools": ["echo"]}


def test_a_registered_server_by_its_label_with_the_operator_s_secret(
    registered: tuple[ParleyServer, RecordingMCP, str],
) -> None:
    server, mcp, token = registered
    before = len(mcp.calls("echo"))
    with client(server, server.new_user("bob")) as http:
        answer = http.post(
            "/responses", json={"model": AUTO, "input": "go", "tools": [by_label("files")]}
        )
    assert answer.status_code == 200, answer.text
    listed, call, message = answer.json()["output"]
    assert listed["server_label"] == "files" and call["output"] == "text 0"
    assert message["content"][0]["text"] == tool_results_text([("echo", "text 0")])
    (received,) = mcp.calls("echo")[before:]
    assert received.headers["authorization"] == f"Bearer {token}"
    assert token not in answer.text
    assert answer.json()["tools"][0].get("server_url") is None  # the address stays hidden


def test_a_server_registered_for_some_users_only(
    registered: tuple[ParleyServer, RecordingMCP, str],
) -> None:
    server, _, _ = registered
    body = {"model": AUTO, "input": "go", "tools": [by_label("onlyalice")]}
    with client(server, server.new_user("bob")) as http:
        refused = http.post("/responses", json=body)
        openai_error(refused, 400, "tools[0].server_label", "invalid_value")
        unknown = http.post("/responses", json={**body, "tools": [by_label("nowhere")]})
        openai_error(unknown, 400, "tools[0].server_url", "missing_required_parameter")
    with client(server, server.new_user("alice")) as http:
        answer = http.post("/responses", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"][1]["output"] == "text 0"


def test_a_stdio_server_runs_on_the_server(
    registered: tuple[ParleyServer, RecordingMCP, str],
) -> None:
    server, _, _ = registered
    with client(server, server.new_user("carol")) as http:
        answer = http.post(
            "/responses", json={"model": AUTO, "input": "go", "tools": [by_label("local")]}
        )
    assert answer.status_code == 200, answer.text
    assert [i["type"] for i in answer.json()["output"]] == ["mcp_list_tools", "mcp_call", "message"]
    assert answer.json()["output"][1]["output"] == "text 0"
