"""Running the server: ``parley serve``, and ``parley run`` (``make run``): the server, the
web page next to it, and the banner with both URLs.

Both bind their ports before the slow part of the start (migrations, the app); a port that
is taken is one message (``cli.ports``) and exit code 1. ``parley serve`` says in one log
record (its log format's, at the default level and below) where it listens, on which
database, with which providers, and where the API docs are, once it takes requests."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parley.cli.ports import RUN, RUN_PAGE, SERVE, PortUnavailable, listen, try_port, url_of
from parley.config import Settings
from parley.controls import log_to_stderr
from parley.server.serving import build_server

if TYPE_CHECKING:
    from parley.cli.web import WebBeside
    from parley.providers.registry import ProviderRegistry

#: Where ``parley serve``'s start-up record goes.
log = logging.getLogger("parley.serve")


def _log_to_stderr(settings: Settings) -> None:
    log_to_stderr(
        settings.log_level.upper(),
        "%(levelname)s %(name)s: %(message)s",
        log_format=settings.log_format,
    )


def redacted_url(url: str) -> str:
    """A database URL as it may be shown: its password (and a ``password`` query
    parameter) replaced with ``***``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:  # not a URL: nothing to find a password in
        return url
    if parsed.password is None and "password" not in parsed.query:
        return url
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True)


def provider_states(settings: Settings, registry: ProviderRegistry) -> dict[str, str]:
    """The providers a turn may use, by name, as far as is known without asking them:
    ``ready`` (the demo model), ``key set``, or ``not checked`` (one that needs no key, as
    Ollama: whether it runs is not asked). ``parley models`` asks them."""
    configs = settings.provider_configs()
    states: dict[str, str] = {}
    for info in registry.catalog():
        if not info.ready:
            continue
        config = configs.get(info.name)
        if config is None or config.kind == "demo":
            states[info.name] = "ready"
        elif config.kind == "local":
            from parley.providers.local_models import server_spec

            chat = server_spec(config)
            states[info.name] = "embeddings only" if isinstance(chat, str) else "ready"
        elif settings.provider_api_key(config):
            states[info.name] = "key set"
        else:
            states[info.name] = "not checked"
    return states


def _listen_url(settings: Settings, sockets: list[socket.socket]) -> str:
    host = settings.host or "0.0.0.0"
    return url_of(host, int(sockets[0].getsockname()[1]))


def serve(settings: Settings) -> int:
    from parley.providers.registry import ProviderRegistry
    from parley.store.local import private_database

    try:
        sockets = listen(settings.host, settings.port, SERVE)
    except PortUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        private_database(settings.database_url)
        _log_to_stderr(settings)
        if logging.getLogger().getEffectiveLevel() <= logging.WARNING:
            log.setLevel(logging.INFO)  # the start-up record, at the default level too
        registry = ProviderRegistry(settings)
        server = build_server(settings, providers=registry)
        server.on_started = _start_up_record(settings, registry, _listen_url(settings, sockets))
        server.run(sockets=sockets)
    finally:
        for sock in sockets:  # closed already once served
            sock.close()
    return 0 if server.started else 1


def _start_up_record(
    settings: Settings, registry: ProviderRegistry, url: str
) -> Callable[[], None]:
    """What logs the start-up record, all worked out now (nothing is read once it runs)."""
    database = redacted_url(settings.database_url)
    states = provider_states(settings, registry)
    shown = [name if state == "ready" else f"{name} ({state})" for name, state in states.items()]
    docs = f"{url}/docs"
    fields = {"url": url, "database": database, "providers": states, "docs": docs}
    sandbox = code_interpreter_note(settings)
    bound = code_interpreter_bound(settings) if sandbox is None else None

    def say() -> None:
        log.info(
            "Parley is listening on %s; database: %s; providers: %s; API docs: %s, guides in docs/",
            url,
            database,
            ", ".join(shown) or "none",
            docs,
            extra=fields,
        )
        if sandbox is not None:
            log.warning("%s", sandbox, extra={"code_interpreter": "unavailable"})
        elif bound is not None:
            log.info("%s", bound, extra={"code_interpreter": "available"})

    return say


def code_interpreter_note(settings: Settings) -> str | None:
    """What the start-up says of the code interpreter when this server cannot run it (None
    when it can, or when the operator switched it off): requests with the tool get 400,
    everything else works."""
    if not settings.code_interpreter_enabled:
        return None
    from parley.sandbox.probe import code_interpreter_unavailable

    why = code_interpreter_unavailable(settings)
    if why is None:
        return None
    return (
        f"The code_interpreter tool is unavailable on this server: {why}. Requests with it "
        "get 400; everything else works (docs/code-interpreter.md)."
    )


def code_interpreter_bound(settings: Settings) -> str | None:
    """What the start-up says bounds each code interpreter container's memory, when the
    tool runs here (None when it does not)."""
    from parley.sandbox import seccomp
    from parley.sandbox.probe import (
        bwrap_path,
        code_interpreter_unavailable,
        denies_userns,
        memory_bound,
        sandbox_user,
    )

    if code_interpreter_unavailable(settings) is not None:
        return None
    said = (
        f"The code interpreter's containers are bounded by {memory_bound(settings)}; "
        f"their code runs on the host as {sandbox_user(settings)[1]}."
    )
    if seccomp.program() is None:
        said += (
            " No system call is filtered in them: Parley has no seccomp filter for this "
            "machine's architecture (x86-64 and AArch64 only)."
        )
    if not denies_userns(bwrap_path()):
        said += (
            " Their code may make user namespaces of its own: bubblewrap 0.8 or newer "
            "denies them (docs/code-interpreter.md)."
        )
    return said


def run_local(
    settings: Settings,
    *,
    web_port: int | None = None,
    hosted_mcp: Sequence[Mapping[str, Any]] = (),
) -> int:
    """Serve, then print the URL, a working API key and an SDK example; with ``web_port``,
    serve the web page on it too (``make run``), its assistant with the ``hosted_mcp``
    tools. Both ports are tried first: 1 when one is taken."""
    try:
        if web_port is not None and web_port == settings.port != 0:
            raise PortUnavailable(
                f"parley run: the server and the web page cannot share port {web_port}: "
                "give the page another (--web-port, make run WEB_PORT=, PARLEY_WEB_PORT)."
            )
        sockets = listen(settings.host, settings.port, RUN)
    except PortUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        if web_port is not None:
            try_port(settings.host, web_port, RUN_PAGE)
        return asyncio.run(_run_local(settings, sockets, web_port, hosted_mcp))
    except PortUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        for sock in sockets:
            sock.close()


async def _run_local(
    settings: Settings,
    sockets: list[socket.socket],
    web_port: int | None = None,
    hosted_mcp: Sequence[Mapping[str, Any]] = (),
) -> int:
    from parley.providers.registry import ProviderRegistry
    from parley.store.db import Database
    from parley.store.local import ensure_local_key, private_database

    private_database(settings.database_url)
    _log_to_stderr(settings)
    db = Database(settings.database_url, pool_size=settings.database_pool_size)
    try:
        await db.migrate()
        key = await ensure_local_key(db)
    finally:
        await db.dispose()
    registry = ProviderRegistry(settings)
    providers = provider_states(settings, registry)
    server = build_server(settings, providers=registry)
    task = asyncio.create_task(server.serve(sockets=sockets))
    while not server.started and not task.done():  # noqa: ASYNC110 (uvicorn offers no event)
        await asyncio.sleep(0.05)
    web: WebBeside | None = None
    url = _listen_url(settings, sockets)
    try:
        if server.started:
            web_url: str | None = None
            if web_port is not None:
                # Taken since ``run_local`` tried it: PortUnavailable, and the server stops.
                started = await asyncio.to_thread(
                    _start_web, settings, url, web_port, key, hosted_mcp, local_model(settings)
                )
                if isinstance(started, str):
                    print(started, flush=True)
                else:
                    web, web_url = started, started.url
            banner = _banner(url, key, settings.database_url, web_url, providers)
            print(banner + _local_lines(settings), flush=True)
        await task
    finally:
        if not task.done():
            server.should_exit = True
            await task
        if web is not None:
            web.stop()  # the server is down: nothing left on this loop to block
    return 0 if server.started else 1


def _start_web(
    settings: Settings,
    url: str,
    port: int,
    key: str,
    hosted_mcp: Sequence[Mapping[str, Any]] = (),
    model: str | None = None,
) -> WebBeside | str:
    """The web page next to the server (or why it could not start), its assistant on
    ``model`` (None: the demo model).

    Raises:
        PortUnavailable: its port is taken.
    """
    from parley.cli.web import start_web_beside
    from parley.web.server import url_host

    local = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    local = "::1" if local == "::" else local
    server_url = f"http://{url_host(local)}:{url.rpartition(':')[2]}"
    return start_web_beside(
        host=settings.host,
        port=port,
        server_url=server_url,
        api_key=key,
        hosted_mcp=hosted_mcp,
        model=model,
    )


def local_model(settings: Settings) -> str | None:
    """With ``--local-model``: the local chat model (``local/NAME``) when it can run here;
    else None."""
    if not settings.local_model_start:
        return None
    from parley.providers.local_models import server_spec

    for name, config in sorted(settings.provider_configs().items()):
        if config.kind == "local" and not isinstance(spec := server_spec(config), str):
            return f"{name}/{spec.name}"
    return None


def parley_command() -> str:
    """How a user in this directory runs this install's ``parley``: ``parley`` when the one
    on PATH is it, else its path (``.venv/bin/parley`` from a clone after ``make run``,
    whose venv is not on PATH)."""
    import shutil

    mine = Path(sys.prefix) / "bin" / "parley"
    found = shutil.which("parley")
    if found is not None and Path(found).resolve() == mine.resolve():
        return "parley"
    return _as_typed_here(mine)


#: The example MCP server (``parley.mcp.example``) at its default address, as a
#: ``--hosted-mcp`` SPEC.
_EXAMPLE_MCP = "example=http://127.0.0.1:8765/mcp"


def _hosted_mcp_example(parley: str, url: str, web_url: str | None) -> str:
    """The two commands that give the page's assistant the example MCP server, as a user
    here types them: ``make mcp-example`` and ``make run HOSTED_MCP=...`` in a clone (its
    Makefile in this directory), else this install's Python and ``parley run``. The ports
    of this start are carried over when they are not the defaults."""
    from parley.cli.web import DEFAULT_WEB_PORT

    port = _unless(url.rpartition(":")[2], Settings.model_fields["port"].default)
    web_port = _unless(web_url.rpartition(":")[2], DEFAULT_WEB_PORT) if web_url else None
    allow = "PARLEY_MCP_ALLOW_URLS=127.0.0.1"
    makefile = Path("Makefile")
    if makefile.is_file() and "\nmcp-example:" in makefile.read_text(errors="replace"):
        ports = (f" PORT={port}" if port else "") + (f" WEB_PORT={web_port}" if web_port else "")
        return f"make mcp-example &\n{allow} make run{ports} HOSTED_MCP={_EXAMPLE_MCP}"
    ports = (f" --port {port}" if port else "") + (f" --web-port {web_port}" if web_port else "")
    return (
        f"{_as_typed_here(Path(sys.executable))} -m parley.mcp.example &\n"
        f"{allow} {parley} run{ports} --hosted-mcp {_EXAMPLE_MCP}"
    )


def _unless(port: str, default: int) -> str | None:
    """``port``, or None when it is ``default``."""
    return None if port == str(default) else port


def _as_typed_here(program: Path) -> str:
    """``program`` (this install's ``parley``, its Python) as a user here types it: relative
    to the current directory when it is below it."""
    try:
        return str(program.relative_to(Path.cwd()))
    except ValueError:
        return str(program)


def _local_lines(settings: Settings) -> str:
    """What the banner says of ``--local-model``: the model, honestly, or why it cannot run."""
    if not settings.local_model_start:
        return ""
    model = local_model(settings)
    if model is None:
        from parley.providers.local_models import server_spec

        local = settings.provider_configs().get("local")
        why = server_spec(local) if local is not None else "no local provider"
        return f"\nLocal model: cannot run: {why}.\n"
    return (
        f"\nLocal model: {model} (starting; the page uses it). SmolLM2-135M-Instruct is a "
        "135M model:\nsmall and fast, for trying things offline; its answers and tool calls "
        "are often wrong.\n"
    )


def _banner(
    url: str,
    key: str,
    database_url: str,
    web_url: str | None = None,
    providers: dict[str, str] | None = None,
) -> str:
    web = f"Web page: {web_url}   (chat in the browser)\n" if web_url else ""
    shown = [f"{n} ({s})" if s != "ready" else n for n, s in (providers or {}).items()]
    parley = parley_command()
    mcp = "\n".join(f"    {line}" for line in _hosted_mcp_example(parley, url, web_url).split("\n"))
    return f"""
Parley is running at {url}   (database: {redacted_url(database_url)})
{web}API key: {key}
Providers: {", ".join(shown) or "none"}   ({parley} models checks them)
API docs: {url}/docs

In another terminal (the parley command of this install is {parley}):

    PARLEY_API_KEY={key} {parley} ask --server {url} "Hello!"

Try it from Python (Ctrl+C here stops the server):

    from parley import Client

    client = Client(base_url="{url}", api_key="{key}")
    bot = client.assistants.create(name="Demo", model="demo/parley")
    result = client.respond(assistant_id=bot.id, content="Hello!")  # a failed run raises RunFailed
    print(result.text)

Or over HTTP, in a shell (an assistant, then a turn streamed as server-sent events):

    ASSISTANT=$(curl -s {url}/v1/assistants -H "Authorization: Bearer {key}" \\
      -H "Content-Type: application/json" -d '{{"name": "Demo", "model": "demo/parley"}}' \\
      | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
    curl -sN {url}/v1/process -H "Authorization: Bearer {key}" \\
      -H "Content-Type: application/json" \\
      -d "{{\\"assistant_id\\": \\"$ASSISTANT\\", \\"content\\": \\"Hello!\\"}}"

Tools the server runs (hosted MCP): with the example MCP server (dice, clock, notes), the
page's assistant gets its tools; Ctrl+C here, then (docs/mcp.md):

{mcp}

and ask the page to "roll_dice please".
"""
