"""parley.mcp.client against real MCP servers on loopback: the test server of
tests/terminal/mcp_server.py over streamable HTTP and SSE, and as a stdio process."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Mapping

import httpx2
import pytest

from parley.mcp import Bounds, ServerTarget, Session, open_session
from parley.mcp.addresses import AddressPolicy, guarded_client_factory
from parley.mcp.client import MAX_PAGES
from tests.harness import free_port
from tests.mcp.conftest import ALL_TOOLS, SERVER, Serve, ServerProcess

QUICK = Bounds(connect_timeout=5, list_timeout=5, call_timeout=5, close_timeout=1)


def target(url: str, **settings: object) -> ServerTarget:
    return ServerTarget("test", url=url, **settings)  # type: ignore[arg-type]


def connected(opened: Session | str) -> Session:
    assert isinstance(opened, Session), opened
    return opened


# --------------------------------------------------------------------------- what works


async def test_list_and_call_over_streamable_http(serve: Serve) -> None:
    url = serve(page_size=3)  # the listing comes in pages
    async with open_session(target(url, headers={"X-Token": "sekrit"}), QUICK) as opened:
        session = connected(opened)
        listing = await session.list_tools()
        echo = await session.call("echo", {"text": "hello"})
        header = await session.call("header", {"name": "x-token"})
        lookup = await session.call("lookup", {"key": "k"})

    assert (listing.error, listing.cut, len(listing.tools)) == (None, False, ALL_TOOLS)
    add = next(tool for tool in listing.tools if tool.name == "add")
    assert add.description == "Add two numbers."
    assert set(add.input_schema["properties"]) == {"a", "b"}
    assert (echo.output, echo.error, echo.cut, echo.failure) == ("hello", None, False, None)
    assert header.output == "sekrit"
    assert lookup.output == '{"key":"k","found":true,"tags":["a","b"]}'
    assert lookup.structured == {"key": "k", "found": True, "tags": ["a", "b"]}


async def test_list_and_call_over_sse(serve: Serve) -> None:
    url = serve(sse=True)
    sse = target(url, transport="sse", headers={"X-Token": "over sse"})
    async with open_session(sse, QUICK) as opened:
        session = connected(opened)
        listing = await session.list_tools()
        add = await session.call("add", {"a": 2, "b": 3})
        header = await session.call("header", {"name": "x-token"})

    assert len(listing.tools) == ALL_TOOLS and listing.error is None
    assert add.output == "5"
    assert header.output == "over sse"


async def test_the_http_client_comes_from_the_factory(serve: Serve) -> None:
    url = serve()
    built: list[tuple[dict[str, str], httpx2.Timeout]] = []

    def factory(headers: Mapping[str, str], timeout: httpx2.Timeout) -> httpx2.AsyncClient:
        built.append((dict(headers), timeout))
        return httpx2.AsyncClient(headers={**headers, "X-Added": "by factory"}, timeout=timeout)

    for transport in ("streamable_http", "sse"):
        where = serve(sse=True) if transport == "sse" else url
        server = target(where, transport=transport, headers={"X-Token": "t"})
        async with open_session(server, QUICK, http_client_factory=factory) as opened:
            added = await connected(opened).call("header", {"name": "x-added"})
        assert added.output == "by factory"
    assert [headers.get("X-Token") for headers, _ in built] == ["t", "t"]
    assert all(timeout.connect == QUICK.connect_timeout for _, timeout in built)


async def test_stdio_is_refused_unless_allowed() -> None:
    stdio = ServerTarget(
        "local", transport="stdio", command=(sys.executable, str(SERVER), "--tools", "echo")
    )
    async with open_session(stdio, QUICK) as refused:
        assert isinstance(refused, str) and "stdio" in refused

    async with open_session(stdio, QUICK, allow_stdio=True) as opened:
        session = connected(opened)
        assert [tool.name for tool in (await session.list_tools()).tools] == ["echo"]
        assert (await session.call("echo", {"text": "local"})).output == "local"


def test_the_repr_of_a_target_shows_no_secret() -> None:
    server = ServerTarget(
        "files",
        url="https://mcp.example/mcp",
        headers={"Authorization": "Bearer sk-very-secret"},
        env={"API_KEY": "env-secret"},
    )
    shown = repr(server)
    assert "files" in shown and "mcp.example" in shown
    assert "sk-very-secret" not in shown and "env-secret" not in shown


# --------------------------------------------------------------------------- faulty servers


async def test_a_server_that_does_not_answer_times_out_connecting(serve: Serve) -> None:
    url = serve(hang=True)
    started = time.monotonic()
    async with open_session(target(url), Bounds(connect_timeout=0.3, close_timeout=1)) as opened:
        assert opened == "no answer within 0.3 s"
    assert time.monotonic() - started < 2


async def test_nothing_listening_is_a_reason_not_an_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    started = time.monotonic()
    async with open_session(target(url), QUICK) as opened:
        assert isinstance(opened, str) and opened
    assert time.monotonic() - started < 2
    async with open_session(ServerTarget("nowhere"), QUICK) as opened:
        assert opened == "no URL for the server"


async def test_a_listing_that_hangs_times_out(serve: Serve) -> None:
    url = serve(hang_list=True)
    bounds = Bounds(list_timeout=0.3, close_timeout=1)
    async with open_session(target(url), bounds) as opened:
        session = connected(opened)
        started = time.monotonic()
        listing = await session.list_tools()
        assert time.monotonic() - started < 1.5
        assert listing.tools == [] and listing.error == "the server listed no tools within 0.3 s"


async def test_a_failing_listing_is_an_error(serve: Serve) -> None:
    async with open_session(target(serve(fail_list=True)), QUICK) as opened:
        listing = await connected(opened).list_tools()
    assert listing.tools == []
    assert listing.error == "the server could not list its tools: the tool index is corrupt"


async def test_more_tools_than_max_tools_are_cut(serve: Serve) -> None:
    url = serve(many=30, page_size=7)
    async with open_session(target(url), Bounds(max_tools=20)) as opened:
        listing = await connected(opened).list_tools()
    assert listing.cut and listing.error is None
    assert len(listing.tools) == 20
    assert [tool.name for tool in listing.tools[:2]] == ["echo", "add"]  # the first ones

    async with open_session(target(url), Bounds(max_tools=ALL_TOOLS + 30)) as opened:
        whole = await connected(opened).list_tools()
    assert not whole.cut and len(whole.tools) == ALL_TOOLS + 30


async def test_a_listing_of_endless_pages_stops_at_the_page_cap(serve: Serve) -> None:
    url = serve(many=MAX_PAGES + 20, page_size=1)
    async with open_session(target(url), Bounds(max_tools=1000)) as opened:
        listing = await connected(opened).list_tools()
    assert listing.cut and len(listing.tools) == MAX_PAGES


async def test_a_call_that_hangs_times_out_and_the_session_goes_on(serve: Serve) -> None:
    async with open_session(target(serve()), Bounds(call_timeout=0.3)) as opened:
        session = connected(opened)
        started = time.monotonic()
        slow = await session.call("slow", {"seconds": 10})
        assert time.monotonic() - started < 1.5
        assert (slow.output, slow.failure) == (None, "timeout")
        assert slow.error == "the tool 'slow' did not answer within 0.3 s and was cancelled"
        longer = await session.call("slow", {"seconds": 0.4}, timeout=5)
        assert longer.output == "slept 0.4"


async def test_oversized_output_is_cut_and_marked(serve: Serve) -> None:
    async with open_session(target(serve()), Bounds(max_output_chars=1000)) as opened:
        session = connected(opened)
        big = await session.call("big", {"chars": 5000})
        small = await session.call("big", {"chars": 1000})
    assert big.cut and big.output == "x" * 1000 + "\n[output cut: 4000 more characters]"
    assert not small.cut and small.output == "x" * 1000


async def test_a_tool_error_is_the_error_text(serve: Serve) -> None:
    async with open_session(target(serve()), QUICK) as opened:
        session = connected(opened)
        failed = await session.call("fail", {"message": "disk full"})
        broken = await session.call("add", {"a": 1, "b": "two"})  # the handler raises
    assert (failed.output, failed.error, failed.failure) == (None, "disk full", "tool")
    assert (broken.output, broken.failure) == (None, "protocol")
    assert (broken.error or "").startswith("the server failed to run 'add': "), broken.error


async def test_a_server_that_dies_mid_call(server_process: ServerProcess) -> None:
    started = time.monotonic()
    async with open_session(server_process.target, QUICK) as opened:
        session = connected(opened)
        assert (await session.call("echo", {"text": "up"})).output == "up"
        crashed = await session.call("crash", {})
        assert time.monotonic() - started < 3
        assert (crashed.output, crashed.failure) == (None, "lost")
        assert (crashed.error or "").startswith("the connection to the server was lost")
        after = await session.call("echo", {"text": "anyone?"})
        assert after.output is None and after.error
    assert time.monotonic() - started < 5  # closing did not wait on the dead server


async def test_a_server_that_hangs_mid_session(server_process: ServerProcess) -> None:
    """A server that stops answering (a stopped process): the call times out, and leaving
    the session, whose closing the server never answers, takes ``close_timeout``."""
    bounds = Bounds(connect_timeout=5, call_timeout=0.3, close_timeout=0.3)
    async with open_session(server_process.target, bounds) as opened:
        session = connected(opened)
        assert (await session.call("echo", {"text": "up"})).output == "up"
        server_process.process.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            hung = await session.call("echo", {"text": "anyone?"})
            assert hung.failure == "timeout"
        finally:
            closing = time.monotonic()
    try:
        assert time.monotonic() - closing < 1.5
        assert time.monotonic() - started < 2.5
    finally:
        server_process.process.send_signal(signal.SIGCONT)


# --------------------------------------------------------------------------- the address guard


@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
async def test_the_address_guard_refuses_loopback_unless_allowed(
    serve: Serve, transport: str
) -> None:
    url = serve(sse=transport == "sse")
    server = target(url, transport=transport)
    guarded = guarded_client_factory(AddressPolicy())
    started = time.monotonic()
    async with open_session(server, QUICK, http_client_factory=guarded) as refused:
        assert isinstance(refused, str) and "loopback" in refused, refused
    assert time.monotonic() - started < 2

    allowed = guarded_client_factory(AddressPolicy(allow=("127.0.0.1",)))
    async with open_session(server, QUICK, http_client_factory=allowed) as opened:
        assert (await connected(opened).call("echo", {"text": "let in"})).output == "let in"


async def test_cancelling_while_connecting_ends_at_once(serve: Serve) -> None:
    url = serve(hang=True)
    entered: list[object] = []

    async def connect() -> None:
        async with open_session(target(url), Bounds(connect_timeout=30, close_timeout=5)) as s:
            entered.append(s)

    attempt = asyncio.create_task(connect())
    await asyncio.sleep(0.2)
    started = time.monotonic()
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    assert time.monotonic() - started < 1
    assert entered == []
