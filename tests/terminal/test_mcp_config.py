"""The MCP config file of the terminal client: both transports, Parley's own keys, errors
that name the server and field, and where the file is looked for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from parley.terminal.mcp_config import (
    MCPConfigError,
    default_mcp_config_path,
    load_mcp_config,
    parse_mcp_config,
)


def test_config_reads_both_transports_and_parley_keys(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "files": {
                        "command": "npx",
                        "args": ["-y", "server-files", "~/src"],
                        "env": {"TOKEN": "t"},
                        "cwd": "~/src",
                        "timeout": 30,
                        "allow": ["read_file"],
                    },
                    "remote": {"url": "https://example.com/mcp", "headers": {"Authorization": "x"}},
                    "typed": {"type": "streamable-http", "url": "http://127.0.0.1:1/mcp"},
                    "local": {"type": "stdio", "command": "srv", "allow": True, "disabled": True},
                }
            }
        )
    )
    config = load_mcp_config(path)

    assert list(config) == ["files", "remote", "typed", "local"]
    files = config["files"]
    assert (files.transport, files.command, files.args) == (
        "stdio",
        "npx",
        ("-y", "server-files", "~/src"),
    )
    assert files.env == {"TOKEN": "t"}
    assert files.cwd == str(Path("~/src").expanduser())
    assert files.timeout == 30.0
    assert files.allows("read_file") and not files.allows("write_file")
    remote = config["remote"]
    assert (remote.transport, remote.url, remote.headers) == (
        "http",
        "https://example.com/mcp",
        {"Authorization": "x"},
    )
    assert remote.timeout is None and not remote.allows("anything") and not remote.disabled
    assert config["typed"].transport == "http"
    assert config["local"].allows("anything") and config["local"].disabled


@pytest.mark.parametrize(
    ("entry", "field", "words"),
    [
        ({}, None, '"command"'),
        ({"command": "a", "url": "http://x"}, None, "both"),
        ({"type": "sse", "url": "http://x"}, "type", "stdio"),
        ({"type": "stdio", "url": "http://x"}, "command", "missing"),
        ({"command": ""}, "command", "non-empty string"),
        ({"command": ["srv"]}, "command", "string"),
        ({"command": "srv", "args": "--flag"}, "args", "list of strings"),
        ({"command": "srv", "args": [1]}, "args", "list of strings"),
        ({"command": "srv", "env": {"N": 1}}, "env", "strings"),
        ({"url": "ftp://x"}, "url", "http"),
        ({"url": "http://x", "headers": ["a"]}, "headers", "strings"),
        ({"command": "srv", "timeout": 0}, "timeout", "positive"),
        ({"command": "srv", "timeout": "10"}, "timeout", "positive"),
        ({"command": "srv", "timeout": True}, "timeout", "positive"),
        ({"command": "srv", "allow": "read"}, "allow", "list of tool names"),
        ({"command": "srv", "allow": [1]}, "allow", "list of tool names"),
        ({"command": "srv", "disabled": "yes"}, "disabled", "true or false"),
        ("srv", None, "JSON object"),
    ],
)
def test_config_errors_name_the_server_and_field(entry: Any, field: str | None, words: str) -> None:
    with pytest.raises(MCPConfigError) as caught:
        parse_mcp_config(json.dumps({"mcpServers": {"web": entry}}), path=Path("mcp.json"))

    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.server, error.field) == ("web", field)
    assert str(error).startswith("mcp.json: server 'web': ")
    assert words in str(error)
    if field:
        assert repr(field) in str(error)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "mcpServers"),
        ('{"servers": {}}', "mcpServers"),
        ('{"mcpServers": []}', "mcpServers"),
    ],
)
def test_config_errors_for_the_whole_file(text: str, words: str) -> None:
    with pytest.raises(MCPConfigError, match=words):
        parse_mcp_config(text)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(MCPConfigError, match="no such file"):
        load_mcp_config(tmp_path / "mcp.json")
    assert load_mcp_config(tmp_path / "mcp.json", missing_ok=True) == {}


def test_default_config_path_honours_xdg(tmp_path: Path) -> None:
    assert (
        default_mcp_config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "parley/mcp.json"
    )
    assert default_mcp_config_path({}) == Path.home() / ".config/parley/mcp.json"


def test_default_config_path_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "/somewhere")
    assert default_mcp_config_path() == Path("/somewhere/parley/mcp.json")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert default_mcp_config_path() == Path.home() / ".config/parley/mcp.json"
