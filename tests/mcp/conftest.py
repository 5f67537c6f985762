"""Real MCP servers on loopback for the MCP layer's tests: the terminal's test server
(tests/terminal/mcp_server.py) served by uvicorn in a thread, or run as its own process
where a test kills it."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from parley.mcp import ServerTarget
from tests.harness import free_port
from tests.terminal.mcp_server import TOOLS, build_server, http_app, numbered_tools

SERVER = Path(__file__).parents[1] / "terminal" / "mcp_server.py"
#: The tools the test server offers by default.
ALL_TOOLS = len(TOOLS)

Serve = Callable[..., str]


@contextmanager
def _threaded(app: Any) -> Iterator[str]:
    """``app`` served on a loopback port by uvicorn in a thread; its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=0.3
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"mcp-test-server:{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def serve() -> Iterator[Serve]:
    """Starts test servers for the module: ``serve(sse=, hang=, many=, page_size=,
    hang_list=, fail_list=, legacy=)`` gives the endpoint URL of a new one."""
    with _servers() as start:
        yield start


@contextmanager
def _servers() -> Iterator[Serve]:
    stops: list[Any] = []

    def start(
        *,
        sse: bool = False,
        hang: bool = False,
        many: int = 0,
        page_size: int = 1000,
        hang_list: bool = False,
        fail_list: bool = False,
        legacy: bool = False,
    ) -> str:
        tools = [*TOOLS.values(), *numbered_tools(many)]
        server = build_server("test", tools, page_size, hang_list=hang_list, fail_list=fail_list)
        running = _threaded(http_app(server, sse=sse, hang=hang, legacy=legacy))
        base = running.__enter__()
        stops.append(running)
        return f"{base}/sse" if sse else f"{base}/mcp"

    try:
        yield start
    finally:
        for running in reversed(stops):
            running.__exit__(None, None, None)


@dataclass(frozen=True)
class ServerProcess:
    target: ServerTarget
    process: subprocess.Popen[bytes]


@pytest.fixture(params=["modern", "legacy", "sse"])
def server_process(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """The test server as a process of its own (a test may crash or stop it), over streamable
    HTTP speaking the newest protocol or only the ``initialize`` handshake (with an HTTP
    session), or over SSE."""
    port = free_port()
    command = [sys.executable, str(SERVER), "--http", str(port)]
    url = f"http://127.0.0.1:{port}/mcp"
    target = ServerTarget("test", url=url)
    if request.param == "legacy":
        command.append("--legacy")
    elif request.param == "sse":
        command.append("--sse")
        target = ServerTarget("test", url=f"http://127.0.0.1:{port}/sse", transport="sse")
    proc = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.02)
        yield ServerProcess(target, proc)
    finally:
        proc.kill()  # stopped or not
        proc.wait(timeout=10)
