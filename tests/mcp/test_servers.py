"""MCP servers registered in the config file (``[mcp_servers.LABEL]``) and the server-wide
``PARLEY_MCP_*`` settings: what is read, what is refused and how, and that header values
and a stdio server's environment never show."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from parley.cli.main import main
from parley.config import ConfigError, MCPServerConfig, Settings
from parley.mcp.addresses import AddressRefused
from parley.mcp.servers import address_policy, registered

ROOT = Path(__file__).resolve().parents[2]
SECRET = "tok-5ecret-value"
MCP_VARIABLES = (
    "PARLEY_CONFIG",
    "PARLEY_MCP_SERVERS",
    "PARLEY_MCP_ALLOW_URLS",
    "PARLEY_MCP_CONNECT_TIMEOUT",
    "PARLEY_MCP_CALL_TIMEOUT",
    "PARLEY_MCP_LIST_TIMEOUT",
    "PARLEY_MCP_MAX_OUTPUT",
    "PARLEY_MCP_MAX_TOOLS",
)

VALID = """
[mcp_servers.docs]
url = "https://mcp.example.com/mcp"
description = "The team's documentation"
headers = { "X-Team" = "platform" }
headers_env = { Authorization = "DOCS_MCP_TOKEN" }
allowed_tools = ["search", "fetch"]
require_approval = "never"
users = ["alice", "user_b0b"]
keys = ["key_ci"]

[mcp_servers.events]
url = "http://127.0.0.1:8931/sse"
transport = "sse"

[mcp_servers.local-files]
transport = "stdio"
command = ["python", "-m", "files_server", "--root", "/srv/shared"]
env = { FILES_TOKEN = "tok-5ecret-value" }
"""


@pytest.fixture(autouse=True)
def _no_mcp_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*MCP_VARIABLES, "DOCS_MCP_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "parley.toml"
    path.write_text(text)
    return path


def _refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as refused:
        Settings(config=_config(tmp_path, text))
    return str(refused.value)


def test_a_file_with_http_sse_and_stdio_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCS_MCP_TOKEN", f"Bearer {SECRET}")
    settings = Settings(config=_config(tmp_path, VALID))
    assert list(settings.mcp_servers) == ["docs", "events", "local-files"]

    docs = registered(settings, "docs")
    assert docs is not None
    assert (docs.transport, docs.url) == ("streamable_http", "https://mcp.example.com/mcp")
    assert docs.description == "The team's documentation"
    assert docs.allowed_tools == ("search", "fetch")
    assert docs.require_approval == "never"
    assert docs.header_values() == {"X-Team": "platform", "Authorization": f"Bearer {SECRET}"}

    events = settings.mcp_servers["events"]
    assert (events.transport, events.url) == ("sse", "http://127.0.0.1:8931/sse")
    assert events.require_approval is None  # the request decides
    assert events.allowed_tools is None and events.header_values() == {}

    files = settings.mcp_servers["local-files"]
    assert files.transport == "stdio" and files.url is None
    assert files.command == ("python", "-m", "files_server", "--root", "/srv/shared")
    assert files.env_values() == {"FILES_TOKEN": SECRET}

    assert registered(settings, "nosuch") is None
    assert registered(Settings(), "docs") is None  # no config file: none registered


def test_servers_given_directly_join_the_files(tmp_path: Path) -> None:
    mine = MCPServerConfig(url="http://127.0.0.1:9/mcp")
    config = _config(tmp_path, '[mcp_servers.events]\nurl = "http://h/sse"\ntransport = "sse"\n')
    settings = Settings(config=config, mcp_servers={"mine": mine})
    assert set(settings.mcp_servers) == {"mine", "events"}
    assert registered(settings, "mine") == mine
    with pytest.raises(ConfigError, match="'not ok' is not a valid server label"):
        Settings(mcp_servers={"not ok": mine})


def test_a_header_variable_that_is_not_set_is_named(tmp_path: Path) -> None:
    message = _refusal(tmp_path, VALID)
    assert "[mcp_servers.docs]" in message
    assert "DOCS_MCP_TOKEN" in message and "Authorization" in message
    assert "not set" in message


def test_an_empty_header_variable_counts_as_not_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCS_MCP_TOKEN", "")
    assert "DOCS_MCP_TOKEN" in _refusal(tmp_path, VALID)


@pytest.mark.parametrize(
    "label",
    ['"has space"', '"dot.ted"', '""', f'"{"x" * 65}"', '"ümlaut"'],
)
def test_a_label_that_is_no_server_label_is_refused(tmp_path: Path, label: str) -> None:
    message = _refusal(tmp_path, f'[mcp_servers.{label}]\nurl = "https://h/mcp"\n')
    assert "is not a valid server label" in message
    assert "letters, digits, '_' or '-'" in message


def test_the_longest_label_and_every_allowed_character(tmp_path: Path) -> None:
    labels = ["x" * 64, "A-b_9"]
    text = "".join(f'[mcp_servers.{label}]\nurl = "https://h/mcp"\n' for label in labels)
    assert list(Settings(config=_config(tmp_path, text)).mcp_servers) == labels


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('url = "https://h/mcp"\ntransport = "websocket"', "transport: Input should be"),
        ('transport = "stdio"', "a stdio server needs a command"),
        ('transport = "stdio"\ncommand = []', "a stdio server needs a command"),
        ('transport = "stdio"\ncommand = "npx -y pkg"', "command: a list: the program and its"),
        (
            'transport = "stdio"\ncommand = ["srv"]\nurl = "http://h/mcp"',
            "url is for an HTTP server, not a stdio one",
        ),
        (
            'transport = "stdio"\ncommand = ["srv"]\nheaders = { A = "b" }',
            "headers is for an HTTP server",
        ),
        ('description = "no address"', "a streamable_http server needs a url"),
        ('url = "ftp://h/mcp"', "url must be an http:// or https:// URL with a host"),
        ('url = "https:///mcp"', "url must be an http:// or https:// URL with a host"),
        ('url = "http://h:99999/mcp"', "url is not a valid URL"),
        ('url = "http://h/mcp"\ncommand = ["srv"]', "command is for a stdio server"),
        ('url = "http://h/mcp"\nenv = { A = "b" }', "env is for a stdio server"),
        ('url = "http://h/mcp"\nrequire_approval = "sometimes"', "require_approval: Input"),
        ('url = "http://h/mcp"\nheaders = { "Bad Name" = "v" }', "'Bad Name' is not a valid"),
        (
            'url = "http://h/mcp"\nheaders = { authorization = "x" }\n'
            'headers_env = { Authorization = "V" }',
            "headers_env: Authorization is in headers too",
        ),
        ('url = "http://h/mcp"\nusers = [""]', "users: names must not be empty"),
        ('url = "http://h/mcp"\nkeys = [" "]', "keys: key ids must not be empty"),
        ('url = "http://h/mcp"\nallowed_tools = "search"', "allowed_tools: Input should be"),
        ('url = "http://h/mcp"\ncolour = "blue"', "colour: Extra inputs are not permitted"),
    ],
)
def test_a_table_that_cannot_be_used_says_which_field(
    tmp_path: Path, table: str, expected: str
) -> None:
    message = _refusal(tmp_path, f"[mcp_servers.srv]\n{table}\n")
    assert message.startswith(f"{tmp_path / 'parley.toml'}: [mcp_servers.srv] ")
    assert expected in message


def test_mcp_servers_must_be_tables(tmp_path: Path) -> None:
    assert "[mcp_servers] must be a table" in _refusal(tmp_path, 'mcp_servers = "docs"\n')
    assert "[mcp_servers.docs] must be a table" in _refusal(tmp_path, "[mcp_servers]\ndocs = 1\n")


def test_servers_are_not_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_MCP_SERVERS", '{"docs": {"url": "https://h/mcp"}}')
    with pytest.raises(ConfigError, match=r"\[mcp_servers\.LABEL\] tables of the config file"):
        Settings()


def test_who_may_use_a_server() -> None:
    everyone = MCPServerConfig(url="https://h/mcp")
    assert everyone.allows("user_1", None, None)
    assert everyone.allows("user_1", "alice", "key_1")

    by_user = MCPServerConfig(url="https://h/mcp", users=("alice", "user_b0b"))
    assert by_user.allows("user_a11ce", "alice", "key_1")  # by name
    assert by_user.allows("user_b0b", "bob", None)  # by id
    assert not by_user.allows("user_c4r0l", "carol", "key_1")
    assert not by_user.allows("user_c4r0l", None, None)

    by_key = MCPServerConfig(url="https://h/mcp", keys=("key_ci",))
    assert by_key.allows("user_c4r0l", "carol", "key_ci")
    assert not by_key.allows("user_c4r0l", "carol", "key_other")
    assert not by_key.allows("user_c4r0l", "carol", None)

    either = MCPServerConfig(url="https://h/mcp", users=("alice",), keys=("key_ci",))
    assert either.allows("user_a11ce", "alice", "key_laptop")
    assert either.allows("user_c4r0l", "carol", "key_ci")
    assert not either.allows("user_c4r0l", "carol", "key_laptop")

    nobody = MCPServerConfig(url="https://h/mcp", users=())
    assert not nobody.allows("user_a11ce", "alice", "key_ci")


def test_secrets_never_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCS_MCP_TOKEN", f"Bearer {SECRET}")
    literal = VALID.replace('"X-Team" = "platform"', f'"X-Key" = "{SECRET}"')
    settings = Settings(config=_config(tmp_path, literal))
    assert settings.mcp_servers["docs"].header_values()["X-Key"] == SECRET
    for shown in (
        repr(settings),
        str(settings),
        repr(settings.mcp_servers),
        str(settings.mcp_servers["docs"]),
        settings.mcp_servers["docs"].model_dump_json(),
        settings.mcp_servers["local-files"].model_dump_json(),
    ):
        assert SECRET not in shown
    assert "X-Key" in repr(settings) and "FILES_TOKEN" in repr(settings)  # names do show


def test_secrets_are_not_in_error_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCS_MCP_TOKEN", f"Bearer {SECRET}\r\nX-Evil: 1")
    message = _refusal(tmp_path, VALID)
    assert "DOCS_MCP_TOKEN has a line break" in message and SECRET not in message
    bad_value = f'[mcp_servers.a]\nurl = "https://h/mcp"\nheaders = {{ A = "{SECRET}\\n" }}\n'
    message = _refusal(tmp_path, bad_value)
    assert "the value of A has a line break" in message and SECRET not in message
    bad_type = f'[mcp_servers.a]\nurl = "https://h/mcp"\nheaders = {{ A = ["{SECRET}"] }}\n'
    message = _refusal(tmp_path, bad_type)
    assert "headers.A" in message and SECRET not in message
    # Built directly, the model's own validation error does not echo its input either.
    with pytest.raises(ValueError) as refused:
        MCPServerConfig(url="ftp://h", headers={"A": SECRET}, env={"B": SECRET})
    assert SECRET not in str(refused.value)


def test_a_broken_mcp_table_stops_parley_serve_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, VALID)
    assert main(["serve", "--config", str(config), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("parley: ") and "DOCS_MCP_TOKEN" in err


def test_the_mcp_settings_and_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert defaults.mcp_allow_urls == []
    assert (
        defaults.mcp_connect_timeout,
        defaults.mcp_call_timeout,
        defaults.mcp_list_timeout,
        defaults.mcp_max_output,
        defaults.mcp_max_tools,
    ) == (10.0, 60.0, 30.0, 100_000, 128)
    monkeypatch.setenv("PARLEY_MCP_ALLOW_URLS", " 127.0.0.1, mcp.internal:8080,,10.0.0.0/8, ")
    monkeypatch.setenv("PARLEY_MCP_CONNECT_TIMEOUT", "2.5")
    monkeypatch.setenv("PARLEY_MCP_CALL_TIMEOUT", "90")
    monkeypatch.setenv("PARLEY_MCP_LIST_TIMEOUT", "5")
    monkeypatch.setenv("PARLEY_MCP_MAX_OUTPUT", "2000")
    monkeypatch.setenv("PARLEY_MCP_MAX_TOOLS", " 16 ")
    settings = Settings()
    assert settings.mcp_allow_urls == ["127.0.0.1", "mcp.internal:8080", "10.0.0.0/8"]
    assert (settings.mcp_connect_timeout, settings.mcp_call_timeout) == (2.5, 90.0)
    assert (settings.mcp_list_timeout, settings.mcp_max_output, settings.mcp_max_tools) == (
        5.0,
        2000,
        16,
    )
    assert Settings(mcp_call_timeout=3, mcp_max_tools=4.0).mcp_call_timeout == 3.0


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("PARLEY_MCP_CONNECT_TIMEOUT", "0", "a number of seconds above 0, not '0'"),
        ("PARLEY_MCP_CALL_TIMEOUT", "-1", "a number of seconds above 0, not '-1'"),
        ("PARLEY_MCP_LIST_TIMEOUT", "soon", "a number of seconds above 0, not 'soon'"),
        ("PARLEY_MCP_CALL_TIMEOUT", "inf", "a number of seconds above 0, not 'inf'"),
        ("PARLEY_MCP_MAX_OUTPUT", "1.5", "a whole number above 0, not '1.5'"),
        ("PARLEY_MCP_MAX_OUTPUT", "0", "a whole number above 0, not '0'"),
        ("PARLEY_MCP_MAX_TOOLS", "many", "a whole number above 0, not 'many'"),
    ],
)
def test_a_bad_mcp_number_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as refused:
        Settings()
    assert str(refused.value) == f"{variable} must be {expected}"


def test_the_allowlist_widens_where_request_urls_may_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(AddressRefused, match="loopback"):
        address_policy(Settings()).check_url("http://127.0.0.1:8931/mcp")
    monkeypatch.setenv("PARLEY_MCP_ALLOW_URLS", "127.0.0.1:8931")
    policy = address_policy(Settings())
    policy.check_url("http://127.0.0.1:8931/mcp")
    with pytest.raises(AddressRefused):
        policy.check_url("http://127.0.0.1:8932/mcp")  # another port


@pytest.mark.parametrize("entry", ["http://127.0.0.1:8000", "10.0.0.0/33", "h:port", "[::1"])
def test_a_bad_allowlist_entry_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    monkeypatch.setenv("PARLEY_MCP_ALLOW_URLS", f"127.0.0.1,{entry}")
    with pytest.raises(ConfigError) as refused:
        address_policy(Settings())
    message = str(refused.value)
    assert message.startswith("PARLEY_MCP_ALLOW_URLS: ") and repr(entry) in message


def test_the_docs_example_is_a_valid_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The full example of docs/configuration.md's "MCP servers" section loads as written."""
    doc = (ROOT / "docs" / "configuration.md").read_text()
    section = doc[doc.index("\n## MCP servers\n") :]
    example = re.search(r"```toml\n(.*?)```", section, re.S)
    assert example is not None
    for variable in re.findall(r'= "([A-Z][A-Z0-9_]*)"', example[1]):
        monkeypatch.setenv(variable, f"value of {variable}")
    settings = Settings(config=_config(tmp_path, example[1]))
    transports = {c.transport for c in settings.mcp_servers.values()}
    assert transports == {"streamable_http", "sse", "stdio"}


def test_a_refused_address_names_the_setting_that_would_allow_it() -> None:
    """The refusal a user meets (a hosted MCP server on loopback, a webhook on a private
    address) names the variable the server's operator would set, not only the reason."""
    from parley.webhooks.delivery import webhook_policy

    with pytest.raises(AddressRefused) as refused:
        address_policy(Settings()).check_url("http://127.0.0.1:8765/mcp")
    assert str(refused.value) == (
        "127.0.0.1 is a loopback address (the server's operator may allow it with "
        "PARLEY_MCP_ALLOW_URLS)"
    )
    with pytest.raises(AddressRefused) as refused:
        webhook_policy(Settings()).check_url("http://10.1.2.3/hook")
    assert str(refused.value).endswith(
        "(the server's operator may allow it with PARLEY_WEBHOOK_ALLOW_URLS)"
    )
    address_policy(Settings(mcp_allow_urls=["127.0.0.1"])).check_url("http://127.0.0.1:8765/")
