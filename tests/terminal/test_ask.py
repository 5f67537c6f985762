"""``parley ask`` in a child process with pipes, against the suite's real server and the test
MCP server: stdout carries only the answer, exit codes tell failures, tools that need a
confirmation are declined when no terminal is attached."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from parley.terminal.chat import NO_TERMINAL
from parley.testing.fake_upstream import expected_text, text_chunks, tool_results_text
from tests.terminal.conftest import McpConfig, parley, stored_messages


def connection(server: Any, key: str) -> list[str]:
    return ["--server", server.base_url, "--api-key", key]


def runs(server: Any, key: str) -> list[dict[str, Any]]:
    with server.client(key) as http:
        return list(http.get("/runs", params={"order": "desc"}).json()["data"])


def test_stdout_is_only_the_answer(server: Any, user_key: str, cli_env: dict[str, str]) -> None:
    done = parley("ask", *connection(server, user_key), "--model", "fake/text:5", "hi", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected_text(5) + "\n"
    assert "tokens" in done.stderr  # the footer: elapsed time and usage


def test_server_given_on_the_command_line_takes_the_exported_key(
    server: Any, user_key: str, cli_env: dict[str, str]
) -> None:
    """``--server URL`` with ``PARLEY_API_KEY`` exported: the variable is ``--api-key``'s
    (it was ignored, and the user was told to set it)."""
    env = {**cli_env, "PARLEY_API_KEY": user_key}
    env.pop("PARLEY_BASE_URL", None)
    done = parley("ask", "--server", server.base_url, "--model", "fake/echo", "hi", env=env)
    assert (done.returncode, done.stdout) == (0, "hi\n"), done.stderr


def test_prompt_from_stdin(server: Any, user_key: str, cli_env: dict[str, str]) -> None:
    done = parley(
        "ask", *connection(server, user_key), "--model", "fake/echo", env=cli_env, input="a b c\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "a b c\n"


def test_a_tool_call_on_stderr_and_its_result_in_the_answer(
    server: Any, user_key: str, cli_env: dict[str, str], mcp_config: McpConfig
) -> None:
    config = mcp_config({"t": ("echo,add", ["echo"])})
    args = [*connection(server, user_key), "--model", "fake/tools:1", "--mcp-config", str(config)]
    done = parley("ask", *args, "use a tool", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == tool_results_text([("echo", "text 0")]) + "\n"
    assert '▸ echo(text="text 0")' in done.stderr
    assert "✓ echo  text 0" in done.stderr

    # the same with the whole turns at once
    done = parley("ask", *args, "--no-stream", "use a tool", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == tool_results_text([("echo", "text 0")]) + "\n"


def test_json_lines(server: Any, user_key: str, cli_env: dict[str, str]) -> None:
    done = parley(
        "ask", *connection(server, user_key), "--model", "fake/text:3", "--json", "hi", env=cli_env
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    types = [e["type"] for e in events]
    assert types[0] == "run.status" and types[-1] == "done"
    assert events[-1]["status"] == "completed"
    assert "usage" in types
    text = "".join(e["text"] for e in events if e["type"] == "content.delta")
    assert text == expected_text(3)


@pytest.mark.parametrize("whole", [False, True], ids=["streamed", "no-stream"])
def test_json_lines_carry_the_usage_details(
    server: Any, user_key: str, cli_env: dict[str, str], whole: bool
) -> None:
    # The fake upstream counts each reasoning chunk as a reasoning token, and the words of
    # the messages before the newest ("hi") as cached.
    args = [*connection(server, user_key), "--model", "fake/reasoning:3", "--json"]
    done = parley("ask", *args, *["--no-stream"] * whole, "hi", env=cli_env)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    (usage,) = [e for e in events if e["type"] == "usage"]
    assert (usage["output_tokens"], usage["reasoning_tokens"]) == (6, 3)
    assert usage["cached_tokens"] == usage["input_tokens"] - 1 > 0


@pytest.mark.parametrize(
    ("model", "code"), [("dead/x", "upstream_unreachable"), ("fake/error:401", "upstream_auth")]
)
def test_a_failed_run_exits_non_zero(
    server: Any, user_key: str, cli_env: dict[str, str], model: str, code: str
) -> None:
    done = parley("ask", *connection(server, user_key), "--model", model, "hi", env=cli_env)
    assert done.returncode == 1
    assert done.stdout.strip() == ""
    # The run's error, whole, and nothing before it (no timing line of an answer never given).
    (line,) = done.stderr.splitlines()
    assert line.startswith("✗ ") and line.endswith(f" ({code})"), line
    assert run_error(server, user_key)["message"] in line

    done = parley("ask", "--server", server.base_url, "--api-key", "pk_wrong", "hi", env=cli_env)
    assert done.returncode == 1
    assert "parley ask:" in done.stderr and "Traceback" not in done.stderr


def run_error(server: Any, key: str) -> dict[str, Any]:
    """The error of the user's newest run, as the server keeps it."""
    error = runs(server, key)[0]["last_error"]
    assert isinstance(error, dict), error
    return error


def test_a_tool_needing_confirmation_is_declined_without_a_terminal(
    server: Any, user_key: str, cli_env: dict[str, str], mcp_config: McpConfig
) -> None:
    config = mcp_config({"t": ("echo", False)})  # nothing allowed: --confirm ask asks
    done = parley(
        "ask",
        *connection(server, user_key),
        *("--model", "fake/tools:1", "--mcp-config", str(config)),
        "use a tool",
        env=cli_env,
    )
    assert done.returncode == 0, done.stderr
    assert "✗ echo" in done.stderr and "no terminal" in done.stderr
    assert done.stdout == tool_results_text([("echo", f"Error: {NO_TERMINAL}")]) + "\n"

    # --confirm never runs it
    done = parley(
        "ask",
        *connection(server, user_key),
        *("--model", "fake/tools:1", "--mcp-config", str(config), "--confirm", "never"),
        "use a tool",
        env=cli_env,
    )
    assert done.stdout == tool_results_text([("echo", "text 0")]) + "\n"


def test_two_parallel_calls_run_as_two_calls(
    server: Any, user_key: str, cli_env: dict[str, str], mcp_config: McpConfig
) -> None:
    config = mcp_config({"t": ("echo,add", True)})
    done = parley(
        "ask",
        *connection(server, user_key),
        *("--model", "fake/tools:2", "--mcp-config", str(config), "--json"),
        "use two tools",
        env=cli_env,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    manifest = next(e for e in events if e["type"] == "tool_calls")
    assert [a["name"] for a in manifest["actions"]] == ["echo", "add"]
    started = [e for e in events if e["type"] == "tool.start"]
    results = [e for e in events if e["type"] == "tool.result"]
    assert sorted(e["name"] for e in started) == ["add", "echo"]
    assert len({e["tool_call_id"] for e in results}) == 2
    outputs = {e["name"]: e["output"] for e in results}
    assert outputs == {"echo": "text 0", "add": "3.0"}
    final = "".join(e["text"] for e in events if e["type"] == "content.delta")
    assert final == tool_results_text([("echo", "text 0"), ("add", "3.0")])

    # the server got both outputs, each as its own tool message, as text
    stored = stored_messages(server, user_key)
    assert [m.role for m in stored] == ["user", "assistant", "tool", "tool", "assistant"]
    assert len(stored[1].tool_calls) == 2 and stored[1].content == []
    assert [m.text for m in stored[2:4]] == ["text 0", "3.0"]


def test_an_idle_timeout_keeps_the_partial_answer(
    server: Any, user_key: str, cli_env: dict[str, str]
) -> None:
    done = parley(
        "ask",
        *connection(server, user_key),
        *("--model", "fake/stall:2", "--idle-timeout", "1"),
        "hi",
        env=cli_env,
    )
    partial = "".join(text_chunks(2))
    assert done.returncode == 1
    assert done.stdout == partial + "\n"
    assert "timed out: nothing for 1 s" in done.stderr
    run = runs(server, user_key)[0]
    assert run["status"] == "cancelled"
    stored = stored_messages(server, user_key)
    assert stored[-1].role == "assistant" and stored[-1].text == partial


def test_the_embedded_server(cli_env: dict[str, str]) -> None:
    """No --server: a server starts on loopback with the local key, and the demo model
    answers."""
    done = parley("ask", "hello", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Demo model")
    key = Path(cli_env["XDG_DATA_HOME"], "parley", "local-api-key")
    assert key.read_text().startswith("pk_")  # the local key of `parley run`


#: Loaded into every Python process of the test (``parley ask``, its embedded server, the
#: MCP server): records each socket connection and name lookup in ``PARLEY_TEST_NET_LOG``.
NET_AUDIT = """
import os, sys

def _audit(event, args):
    if event in ("socket.connect", "socket.getaddrinfo"):
        target = args[1] if event == "socket.connect" else args[0]
        with open(os.environ["PARLEY_TEST_NET_LOG"], "a") as log:
            log.write(f"{event} {target!r}\\n")

sys.addaudithook(_audit)
"""
LOOPBACK = re.compile(r"socket\.(connect|getaddrinfo) \(?'?(127\.0\.0\.1|::1|localhost|b?'?/)")


def test_nothing_but_loopback_is_reached(
    cli_env: dict[str, str], mcp_config: McpConfig, tmp_path: Path
) -> None:
    """With the embedded server and an MCP server, a whole exchange with a tool call
    connects to nothing but loopback and local sockets: no download, no telemetry."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NET_AUDIT)
    log = tmp_path / "net.log"
    env = {**cli_env, "PYTHONPATH": f"{site}{os.pathsep}{cli_env['PYTHONPATH']}"}
    env["PARLEY_TEST_NET_LOG"] = str(log)
    config = mcp_config({"t": ("echo", True)})
    done = parley("ask", "--mcp-config", str(config), "use echo hello", env=env)
    assert done.returncode == 0, done.stderr
    assert "✓ echo" in done.stderr  # the demo model called the MCP tool
    lines = log.read_text().splitlines()
    assert any(line.startswith("socket.connect ('127.0.0.1'") for line in lines), lines
    assert [line for line in lines if not LOOPBACK.match(line)] == []
