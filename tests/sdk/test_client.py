"""Client construction, settings, ownership of the HTTP client, and argument checks."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import httpx
import pytest

import parley.sdk
from parley.sdk import AsyncClient, Client, normalize_tools
from parley.types import FunctionSpec, ToolSpec
from tests.sdk.fake import FakeServer, call, make_client, ok

USER = {"id": "user_1", "object": "user", "name": "ada", "is_admin": True, "created_at": 1}


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_BASE_URL", "http://env.test:9000/")
    monkeypatch.setenv("PARLEY_API_KEY", "pk_env")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=USER)

    with Client(transport=httpx.MockTransport(handler)) as client:
        assert client.base_url == "http://env.test:9000"
        client.users.me()
    assert str(seen[0].url) == "http://env.test:9000/v1/me"
    assert seen[0].headers["authorization"] == "Bearer pk_env"


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_BASE_URL", "http://env.test")
    monkeypatch.setenv("PARLEY_API_KEY", "pk_env")
    with Client("http://arg.test", "pk_arg") as client:
        assert (client.base_url, client.api_key) == ("http://arg.test", "pk_arg")


def test_no_key_sends_no_authorization(
    monkeypatch: pytest.MonkeyPatch, fake_server: FakeServer
) -> None:
    monkeypatch.delenv("PARLEY_API_KEY", raising=False)
    fake_server.on("GET", "/v1/me", ok(USER))
    with Client("http://parley.test", transport=fake_server.transport()) as client:
        client.users.me()
    assert "authorization" not in fake_server.requests[0].headers


def test_given_http_client_is_not_closed(fake_server: FakeServer) -> None:
    fake_server.on("GET", "/v1/me", ok(USER))
    with httpx.Client(transport=fake_server.transport()) as http:
        with Client("http://parley.test", "k", http_client=http) as client:
            client.users.me()
        assert not http.is_closed
    with pytest.raises(ValueError, match="not both"):
        Client("http://x", "k", http_client=http, transport=fake_server.transport())


async def test_async_given_http_client_is_not_closed(fake_server: FakeServer) -> None:
    fake_server.on("GET", "/v1/me", ok(USER))
    async with httpx.AsyncClient(transport=fake_server.transport()) as http:
        async with AsyncClient("http://parley.test", "k", http_client=http) as client:
            assert (await client.users.me()).is_admin
        assert not http.is_closed


async def test_own_http_client_is_closed(kind: str, fake_server: FakeServer) -> None:
    client = make_client(kind, fake_server)
    if isinstance(client, AsyncClient):
        await client.aclose()
    else:
        client.close()
    assert client._http.is_closed


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://256.1.1.1", "Invalid IPv4 address"),
        ("localhost:8700", "must be http:// or https:// with a host"),
        ("ftp://files.test", "must be http:// or https:// with a host"),
        ("http://", "must be http:// or https:// with a host"),
    ],
)
def test_an_unusable_server_url_is_refused_at_once(url: str, problem: str) -> None:
    for make in (Client, AsyncClient):
        with pytest.raises(ValueError, match=f"server URL '{url}': {problem}"):
            make(url, "k")


def test_normalize_tools() -> None:
    flat = {"name": "f", "description": "d", "parameters": {"type": "object"}}
    wrapped = {"type": "function", "function": flat}
    spec = ToolSpec(function=FunctionSpec(name="g"))
    assert normalize_tools([flat, wrapped, {"function": flat}]) == [wrapped] * 3
    assert normalize_tools([FunctionSpec(name="g"), spec]) == [spec.model_dump()] * 2
    with pytest.raises(ValueError, match="'name' or a 'function'"):
        normalize_tools([{"description": "nameless"}])


async def test_argument_checks_happen_before_sending(client: Any, fake_server: FakeServer) -> None:
    with pytest.raises(TypeError, match="unknown fields: colour"):
        await call(client.assistants.update("asst_1", colour="red"))
    with pytest.raises(ValueError, match="assistant_id and content"):
        await call(client.process(content="hi"))
    with pytest.raises(ValueError, match="give no assistant_id"):
        await call(client.process(run_id="run_1", content="hi"))
    with pytest.raises(ValueError, match="action_id alone"):
        await call(client.submit_tool_output(run_id="run_1", output="x"))
    with pytest.raises(ValueError, match="max_turns"):
        await call(client.respond(assistant_id="a", content="c", max_turns=0))
    assert fake_server.requests == []


async def test_async_inference_stream_alias() -> None:
    async with AsyncClient("http://parley.test", "k") as client:
        assert type(client.inference_stream) is type(client.synchronous_inference_stream)
        assert client.inference_stream is not client.inference_stream  # one per access


def test_exports_are_sorted_and_importable() -> None:
    assert parley.sdk.__all__ == sorted(parley.sdk.__all__)
    for name in parley.sdk.__all__:
        assert getattr(parley.sdk, name) is not None


def test_sdk_imports_only_the_vocabulary() -> None:
    allowed = {
        "parley.sdk",
        "parley.events",
        "parley.types",
        "parley.errors",
        "parley.client_settings",
    }
    for path in Path(parley.sdk.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("parley")
            ):
                assert any(node.module.startswith(ok) for ok in allowed), (path.name, node.module)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("parley") or alias.name in allowed
