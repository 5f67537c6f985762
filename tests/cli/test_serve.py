"""``parley serve`` loads only what the server uses."""

from __future__ import annotations

from pathlib import Path

from parley import Client
from tests.harness import FreshDatabase, ParleyServer

#: Packages of the other commands (the terminal client, the web page and their libraries):
#: never in the server's process.
CLIENT_ONLY = ("parley.terminal", "parley.web", "mcp", "rich", "prompt_toolkit", "flask")
#: Loaded only when needed: Alembic when the database is behind the newest revision, the
#: upstream adapters' HTTP client when a provider other than the demo model is first used.
ON_DEMAND = ("alembic", "aiohttp")


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
