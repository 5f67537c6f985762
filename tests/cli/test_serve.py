"""``parley serve`` loads only what the server uses, and collects garbage once started."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from parley import Client
from parley.config import Settings
from parley.server.serving import build_server
from tests.harness import FreshDatabase, ParleyServer, free_port

#: Packages of the other commands (the terminal client, the web page and their libraries):
#: never in the server's process.
CLIENT_ONLY = ("parley.terminal", "parley.web", "rich", "prompt_toolkit", "flask")
#: Loaded only when needed: Alembic when the database is behind the newest revision, the
#: upstream adapters' HTTP client when a provider other than the demo model is first used,
#: the WebSocket library at the first WebSocket upgrade, the MCP SDK when a turn first
#: reaches an MCP server (hosted MCP tools).
ON_DEMAND = (
    "alembic",
    "aiohttp",
    "websockets",
    "uvicorn.protocols.websockets",
    "mcp",
    "parley.mcp.client",
)


def _imported(log: str) -> set[str]:
    """The modules ``python -X importtime`` (``PYTHONPROFILEIMPORTTIME``) reported loading."""
    return {
        line.rpartition("|")[2].strip()
        for line in log.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }


def _under(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(f"{p}.") for p in packages))


def test_the_server_imports_nothing_of_the_clients(tmp_path: Path) -> None:
    db = FreshDatabase(tmp_path)
    # `parley users create` (in start) brings the database to the newest revision first.
    server = ParleyServer(
        database_url=db.url, workdir=tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"}
    )
    try:
        server.start()
        with Client(base_url=server.base_url, api_key=server.admin_key) as client:
            bot = client.assistants.create(name="imports", model="demo/parley")
            answer = client.respond(assistant_id=bot.id, content="Hello")
        assert answer.status == "completed"
        imported = _imported(server.log())
    finally:
        server.stop()
        db.drop()
    assert {"uvicorn", "parley.server.app", "parley.providers.demo"} <= imported  # it reads
    assert _under(imported, CLIENT_ONLY) == []
    assert _under(imported, ON_DEMAND) == []


def test_the_server_collects_garbage_once_started(tmp_path: Path) -> None:
    """``parley serve`` loads with the garbage collector off; the server turns it back on as
    it starts, what loading made frozen (left out of every later pass)."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'gc.db'}", port=free_port())
    server = build_server(settings)

    async def serve() -> tuple[bool, int]:
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():  # noqa: ASYNC110 (no event to wait on)
            await asyncio.sleep(0.01)
        state = gc.isenabled(), gc.get_freeze_count()
        server.should_exit = True
        await serving
        return state

    gc.disable()
    try:
        enabled, frozen = asyncio.run(serve())
    finally:
        gc.unfreeze()
        gc.enable()
    assert server.started
    assert enabled
    assert frozen > 10_000
