"""Running the server: ``parley serve``, and ``parley run`` (``make run``): the server, the
web page next to it, and the banner with both URLs."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from parley.config import Settings
from parley.controls import log_to_stderr
from parley.server.serving import build_server

if TYPE_CHECKING:
    from parley.cli.web import WebBeside


def _log_to_stderr(settings: Settings) -> None:
    log_to_stderr(
        settings.log_level.upper(),
        "%(levelname)s %(name)s: %(message)s",
        log_format=settings.log_format,
    )


def serve(settings: Settings) -> int:
    from parley.store.local import private_database

    private_database(settings.database_url)
    _log_to_stderr(settings)
    server = build_server(settings)
    server.run()
    return 0 if server.started else 1


def run_local(settings: Settings, *, web_port: int | None = None) -> int:
    """Serve, then print the URL, a working API key and an SDK example; with ``web_port``,
    serve the web page on it too (``make run``)."""
    return asyncio.run(_run_local(settings, web_port))


async def _run_local(settings: Settings, web_port: int | None = None) -> int:
    from parley.store.db import Database
    from parley.store.local import ensure_local_key, private_database

    private_database(settings.database_url)
    _log_to_stderr(settings)
    db = Database(settings.database_url)
    try:
        await db.migrate()
        key = await ensure_local_key(db)
    finally:
        await db.dispose()
    server = build_server(settings)
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():  # noqa: ASYNC110 (uvicorn offers no event)
        await asyncio.sleep(0.05)
    web: WebBeside | None = None
    if server.started:
        web_url: str | None = None
        if web_port is not None:
            started = await asyncio.to_thread(_start_web, settings, web_port, key)
            if isinstance(started, str):
                print(started, flush=True)
            else:
                web, web_url = started, started.url
        print(
            _banner(f"http://{settings.host}:{settings.port}", key, settings.database_url, web_url),
            flush=True,
        )
    try:
        await task
    finally:
        if web is not None:
            web.stop()  # the server is down: nothing left on this loop to block
    return 0 if server.started else 1


def _start_web(settings: Settings, port: int, key: str) -> WebBeside | str:
    """The web page next to the server (or why it could not start)."""
    from parley.cli.web import start_web_beside
    from parley.web.server import url_host

    local = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    local = "::1" if local == "::" else local
    server_url = f"http://{url_host(local)}:{settings.port}"
    return start_web_beside(host=settings.host, port=port, server_url=server_url, api_key=key)


def _banner(url: str, key: str, database_url: str, web_url: str | None = None) -> str:
    web = f"Web page: {web_url}   (chat in the browser)\n" if web_url else ""
    return f"""
Parley is running at {url}   (database: {database_url})
{web}API key: {key}

Try it from Python (Ctrl+C here stops the server):

    from parley import Client

    client = Client(base_url="{url}", api_key="{key}")
    bot = client.assistants.create(name="Demo", model="demo/parley")
    result = client.respond(assistant_id=bot.id, content="Hello!")
    print(result.text)

Or over HTTP:

    curl -N {url}/v1/process -H "Authorization: Bearer {key}" \\
      -H "Content-Type: application/json" \\
      -d '{{"assistant_id": "<id from above>", "content": "Hello!"}}'
"""
