"""MCP servers the operator registers (``[mcp_servers.LABEL]`` in the config): a request
names one by ``server_label`` alone; its headers come from the server's environment and
reach the MCP server, never the client; a stdio server runs on the server. Its own
``parley serve``, which allows no MCP URL of a request on loopback: a registered server is
reached at its address as the operator wrote it.

Who may use a server is the config's to say (``users``: by name or id; ``keys``: by key
id; either one lets a caller in): a request that names it otherwise is a 400 naming the
label and nothing behind it, and the server hears nothing of it. It holds when the call
is made too: a turn of another key (an approval it gives, an assistant another key made)
neither lists the server's tools nor calls one."""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import tool_results_text
from tests.e2e.helpers import (
    create_assistant,
    create_run,
    create_thread,
    stream_process,
    wait_run,
)
from tests.e2e.responses_helpers import create, openai_error, stream_create
from tests.e2e.responses_providers_helpers import RecordingMCP
from tests.harness import ParleyServer, free_port, provider_config

SERVER = Path(__file__).parents[1] / "terminal" / "mcp_server.py"
AUTO = "fake/auto:2"


@dataclass(frozen=True)
class Registered:
    """The server, the MCP server its config names (at ``url``) and the operator's token
    for it; and the API keys of the users the config names, made before the server
    starts (a config names a key by its id, which exists only once the key does)."""

    server: ParleyServer
    mcp: RecordingMCP
    token: str
    url: str
    dana: str  #: the key ``onlykey`` and ``askfirst`` are registered for
    dana_other: str  #: dana's first key, which they are not
    erin: str  #: erin is named by her user id (``byid``)
    gina: str  #: gina's key is named by ``either``, gina herself is not


def made(server: ParleyServer, *args: str) -> tuple[str, str]:
    """A user or key made with ``parley users|keys create``: the id it prints, its secret."""
    done = server.cli(*args)
    assert done.returncode == 0, done.stderr
    first, *_, secret = done.stdout.strip().splitlines()
    found = re.search(r"\b((?:user|key)_\w+)", first.split(" for ")[0])
    assert found, first
    return found.group(1), secret


@pytest.fixture(scope="module")
def registered(
    upstream: Any, fresh_database: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registered]:
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
        )
        dana, dana_other = made(server, "users", "create", "dana")
        dana_key, dana_secret = made(server, "keys", "create", "--user", dana)
        erin, erin_secret = made(server, "users", "create", "erin")
        gina, _ = made(server, "users", "create", "gina")
        gina_key, gina_secret = made(server, "keys", "create", "--user", gina)
        server.config_path.write_text(
            config
            + f"""
[mcp_servers.onlykey]
url = "{url}"
keys = ["{dana_key}"]
require_approval = "never"

[mcp_servers.askfirst]
url = "{url}"
keys = ["{dana_key}"]
require_approval = "always"

[mcp_servers.byid]
url = "{url}"
users = ["{erin}"]
require_approval = "never"

[mcp_servers.either]
url = "{url}"
users = ["frank"]
keys = ["{gina_key}"]
require_approval = "never"
"""
        )
        server.start()
        try:
            yield Registered(
                server, mcp, token, url, dana_secret, dana_other, erin_secret, gina_secret
            )
        finally:
            server.stop()


def client(server: ParleyServer, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.base_url}/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def by_label(label: str) -> dict[str, Any]:
    return {"type": "mcp", "server_label": label, "allowed_tools": ["echo"]}


def test_a_registered_server_by_its_label_with_the_operator_s_secret(
    registered: Registered,
) -> None:
    server, mcp, token = registered.server, registered.mcp, registered.token
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
    registered: Registered,
) -> None:
    server = registered.server
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
    registered: Registered,
) -> None:
    server = registered.server
    with client(server, server.new_user("carol")) as http:
        answer = http.post(
            "/responses", json={"model": AUTO, "input": "go", "tools": [by_label("local")]}
        )
    assert answer.status_code == 200, answer.text
    assert [i["type"] for i in answer.json()["output"]] == ["mcp_list_tools", "mcp_call", "message"]
    assert answer.json()["output"][1]["output"] == "text 0"


# ------------------------------------------------------------------ who may use a server


def refused(answer: httpx.Response, label: str, url: str, param: str = "tools[0]") -> None:
    """A 400 naming the label the caller may not use, and nothing of the server behind it."""
    error = openai_error(answer, 400, f"{param}.server_label", "invalid_value")
    assert repr(label) in error["message"], error
    assert url not in answer.text and "127.0.0.1" not in answer.text and "/mcp" not in answer.text


def done_items(turn: Any) -> list[dict[str, Any]]:
    """The items of a native turn's hosted tools, as each one ended."""
    return [e.data["item"] for e in turn.of_type("hosted_tool") if e.data["phase"] == "done"]


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
def test_a_server_registered_for_one_key_serves_that_key_alone(
    registered: Registered, streamed: bool
) -> None:
    server, mcp = registered.server, registered.mcp
    url = registered.url
    body = {"model": AUTO, "input": "go", "tools": [by_label("onlykey")], "stream": streamed}
    with client(server, registered.dana) as http:
        if streamed:
            events = stream_create(http, **body)
            done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
            output = events[-1]["response"]["output"]
            assert done[1]["type"] == "mcp_call" and done[1]["output"] == "text 0"
        else:
            answer = http.post("/responses", json=body)
            assert answer.status_code == 200, answer.text
            output = answer.json()["output"]
    assert [i["type"] for i in output] == ["mcp_list_tools", "mcp_call", "message"]
    assert output[1]["status"] == "completed" and output[1]["output"] == "text 0"
    before = len(mcp.received)
    for key in (registered.dana_other, server.new_user("bob"), registered.gina):
        with client(server, key) as http:
            refused(http.post("/responses", json=body), "onlykey", url)
    assert mcp.received[before:] == []  # not even a listing of its tools


def test_a_server_registered_for_a_user_by_id(
    registered: Registered,
) -> None:
    server, mcp = registered.server, registered.mcp
    body = {"model": AUTO, "input": "go", "tools": [by_label("byid")]}
    with client(server, registered.erin) as http:
        answer = http.post("/responses", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"][1]["output"] == "text 0"
    before = len(mcp.received)
    # A user who has erin's name, but not her id, is not her.
    with client(server, server.new_user("erin")) as http:
        refused(http.post("/responses", json=body), "byid", registered.url)
    assert mcp.received[before:] == []


def test_a_server_registered_for_a_user_and_a_key(
    registered: Registered,
) -> None:
    server, mcp = registered.server, registered.mcp
    body = {"model": AUTO, "input": "go", "tools": [by_label("either")]}
    for key in (registered.gina, server.new_user("frank")):  # the listed key; the listed user
        with client(server, key) as http:
            answer = http.post("/responses", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"][1]["output"] == "text 0"
    before = len(mcp.received)
    with client(server, registered.dana) as http:
        refused(http.post("/responses", json=body), "either", registered.url)
    assert mcp.received[before:] == []


def test_an_approval_runs_only_for_a_key_that_may_use_the_server(
    registered: Registered,
) -> None:
    server, mcp = registered.server, registered.mcp
    tool = by_label("askfirst")
    with client(server, registered.dana) as http:
        asked = create(http, model=AUTO, input="go", tools=[tool])
    *_, request = asked["output"]
    assert request["type"] == "mcp_approval_request" and request["server_label"] == "askfirst"
    approval = {"type": "mcp_approval_response", "approval_request_id": request["id"]}
    body = {
        "model": AUTO,
        "input": [{**approval, "approve": True}],
        "tools": [tool],
        "previous_response_id": asked["id"],
    }
    calls = len(mcp.calls())
    with client(server, server.new_user("bob")) as http:  # another user's: as one never made
        answer = http.post("/responses", json=body)
        openai_error(answer, 400, "previous_response_id", "previous_response_not_found")
        made_up = http.post("/responses", json={**body, "previous_response_id": "resp_nope"})
        assert answer.json()["error"]["code"] == made_up.json()["error"]["code"]
        assert "askfirst" not in answer.text
    with client(server, registered.dana_other) as http:  # the same user, with another key
        refused(http.post("/responses", json=body), "askfirst", registered.url)
        for streamed in (False, True):
            refused(
                http.post("/responses", json={**body, "stream": streamed}),
                "askfirst",
                registered.url,
            )
    assert mcp.calls()[calls:] == []
    with client(server, registered.dana) as http:
        done = create(http, **body)
    call = next(i for i in done["output"] if i["type"] == "mcp_call")
    assert call["output"] == "text 0" and call["approval_request_id"] == request["id"]
    assert len(mcp.calls()[calls:]) == 1


def test_an_approval_without_the_tool_runs_nothing(
    registered: Registered,
) -> None:
    server, mcp = registered.server, registered.mcp
    with client(server, registered.dana) as http:
        asked = create(http, model=AUTO, input="go", tools=[by_label("askfirst")])
    *_, request = asked["output"]
    approval = {"type": "mcp_approval_response", "approval_request_id": request["id"]}
    before = len(mcp.received)
    with client(server, registered.dana_other) as http:
        answer = http.post(
            "/responses",
            json={
                "model": AUTO,
                "input": [{**approval, "approve": True}],
                "previous_response_id": asked["id"],
            },
        )
    assert answer.status_code == 200, answer.text
    (call,) = [i for i in answer.json()["output"] if i["type"] == "mcp_call"]
    assert call["status"] == "failed" and call["output"] is None
    assert "'askfirst'" in call["error"]["message"]
    assert mcp.received[before:] == []


# ------------------------------------------------------------------- the native API


def test_an_assistant_uses_a_server_registered_for_its_key(
    registered: Registered,
) -> None:
    server, mcp = registered.server, registered.mcp
    url = registered.url
    tools = [by_label("onlykey")]
    with client(server, registered.dana) as http:
        bot = create_assistant(http, AUTO, tools=tools)
        turn = stream_process(http, assistant_id=bot["id"], content="go")
        assert turn.final_status == "completed", turn.events
        assert [i["type"] for i in done_items(turn)] == ["mcp_list_tools", "mcp_call"]
        assert done_items(turn)[-1]["output"] == "text 0"
        calls = len(mcp.calls())
        thread = {"messages": [{"role": "user", "content": "go"}]}
        made = {"assistant_id": bot["id"], "tools": tools, "thread": thread}
        run = http.post("/threads/runs", json=made)
        assert run.status_code == 200, run.text
        assert wait_run(http, run.json()["id"])["status"] == "completed"
        assert len(mcp.calls()) == calls + 1
        thread_id = create_thread(http)["id"]
        create_run(http, thread_id, bot["id"], tools=tools)  # queued: kept for later
        assert http.post(f"/assistants/{bot['id']}", json={"tools": tools}).status_code == 200
    before = len(mcp.received)
    with client(server, registered.dana_other) as http:
        refused(http.post("/assistants", json={"model": AUTO, "tools": tools}), "onlykey", url)
        refused(http.post("/threads/runs", json=made), "onlykey", url)
        refused(http.post(f"/assistants/{bot['id']}", json={"tools": tools}), "onlykey", url)
        other = create_thread(http)["id"]
        queued = {"thread_id": other, "assistant_id": bot["id"], "tools": tools}
        refused(http.post("/runs", json=queued), "onlykey", url)
        # The assistant dana's key made: its server is listed for none of her other keys.
        turn = stream_process(http, assistant_id=bot["id"], content="go")
    assert mcp.received[before:] == []
    assert turn.final_status == "completed", turn.events
    (listed,) = done_items(turn)
    assert listed["type"] == "mcp_list_tools"
    assert listed["error"] == "this key may not use the MCP server 'onlykey'"
    assert url not in str(turn.events) and "text 0" not in turn.text


def test_a_native_approval_by_a_key_that_may_not_use_the_server_runs_nothing(
    registered: Registered,
) -> None:
    server, mcp = registered.server, registered.mcp
    with client(server, registered.dana) as http:
        bot = create_assistant(http, AUTO, tools=[by_label("askfirst")])
        first = stream_process(http, assistant_id=bot["id"], content="go")
    assert first.final_status == "action_required"
    (item,) = first.manifest
    assert item["approval"]["server_label"] == "askfirst"
    approve = {"action_id": item["action_id"], "approve": True}
    with client(server, server.new_user("bob")) as http:
        assert http.post("/submit_tool_output", json=approve).status_code == 404
    before = len(mcp.received)
    with client(server, registered.dana_other) as http:
        answer = http.post("/submit_tool_output", json=approve)
        assert answer.status_code == 200, answer.text
        second = stream_process(http, run_id=first.run_id)
    assert mcp.received[before:] == []
    call = done_items(second)[-1]
    assert call["type"] == "mcp_call" and call["status"] == "failed", call
    assert call["error"]["message"] == "this key may not use the MCP server 'askfirst'"
    assert registered.url not in str(second.events)
