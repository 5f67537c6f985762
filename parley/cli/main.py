"""The ``parley`` command: ``serve``, ``run``, ``models``, ``users``, ``keys``, ``usage``,
``import``, ``db``, ``vector-stores``, ``chat``, ``ask`` and ``web``.

Commands import what they need when they run, so ``parley --help`` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parley import __version__
from parley.cli import admin as admin_cli
from parley.cli import db as db_cli
from parley.cli import importing as import_cli
from parley.cli import local as local_cli
from parley.cli import sandbox as sandbox_cli
from parley.cli import usage as usage_cli
from parley.cli import vector_stores as vector_stores_cli
from parley.cli import webhooks as webhooks_cli
from parley.cli.extras import missing_extra

if TYPE_CHECKING:
    from parley.config import Settings
    from parley.terminal.session import ChatOptions


def _settings(args: argparse.Namespace) -> Settings:
    from parley.config import Settings

    overrides: dict[str, Any] = {}
    for name in ("host", "port", "database_url", "config", *_LIMIT_OPTIONS):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "local_model", False):
        overrides["local_model_start"] = True
    return Settings(**overrides)


def _add_server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; env PARLEY_HOST)")
    p.add_argument("--port", type=_port, help="port to listen on (default 8700; env PARLEY_PORT)")
    _add_db_options(p)
    limits = p.add_argument_group("limits and CORS (see docs/configuration.md)")
    limits.add_argument(
        "--cors-origin",
        action="append",
        dest="cors_origins",
        metavar="ORIGIN",
        help="let pages of this origin call the API (repeatable; env PARLEY_CORS_ORIGINS)",
    )
    limits.add_argument(
        "--rate-limit-requests", type=int, metavar="N", help="requests per API key per window"
    )
    limits.add_argument(
        "--rate-limit-window",
        dest="rate_limit_window_seconds",
        type=float,
        metavar="S",
        help="seconds of that window (default 60)",
    )
    limits.add_argument(
        "--concurrent-runs",
        dest="rate_limit_concurrent_runs",
        type=int,
        metavar="N",
        help="turns in progress per API key",
    )
    limits.add_argument(
        "--auth-failure-limit",
        type=int,
        metavar="N",
        help="failed authentications per client address per window (default window 60 s)",
    )
    running = p.add_argument_group("logs and shutdown")
    running.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="text (default) or one JSON object a line (env PARLEY_LOG_FORMAT)",
    )
    running.add_argument(
        "--drain-seconds",
        type=_seconds,
        metavar="S",
        help="on SIGTERM, let running turns finish this long, taking no new ones "
        "(default 30; 0: stop at once; env PARLEY_DRAIN_SECONDS)",
    )


#: ``serve`` / ``run`` options that override the ``Settings`` field of the same name.
_LIMIT_OPTIONS = (
    "cors_origins",
    "rate_limit_requests",
    "rate_limit_window_seconds",
    "rate_limit_concurrent_runs",
    "auth_failure_limit",
    "log_format",
    "drain_seconds",
)


def _add_db_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", help="SQLAlchemy URL (env PARLEY_DATABASE_URL)")
    p.add_argument("--config", type=Path, help="TOML config file (env PARLEY_CONFIG)")


def _add_page_hosted_mcp(parser: argparse.ArgumentParser) -> None:
    """``--hosted-mcp`` of ``parley web`` and ``parley run``: MCP servers for the page."""
    parser.add_argument(
        "--hosted-mcp",
        action="append",
        default=[],
        metavar="SPEC",
        help="an MCP server the Parley server runs for the page's assistant (repeatable): URL, "
        "LABEL=URL, or the LABEL of one registered on the server; #tool,tool limits its "
        "tools; ?approval=never runs its calls without asking (by default the page asks "
        "before each call, with Approve / Deny). See docs/mcp.md. A URL on a private "
        "address needs PARLEY_MCP_ALLOW_URLS on the server",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley", description="Self-hostable assistants platform."
    )
    parser.add_argument("--version", action="version", version=f"parley {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API server")
    _add_server_options(serve)

    run = sub.add_parser(
        "run", help="serve on the embedded defaults, with a local API key and the web page"
    )
    _add_server_options(run)
    run.add_argument(
        "--web-port",
        type=_port,
        help="port of the web page (default 5000; env PARLEY_WEB_PORT)",
    )
    run.add_argument("--no-web", action="store_true", help="do not serve the web page")
    run.add_argument(
        "--local-model",
        action="store_true",
        help="start the local model (SmolLM2-135M served by llama-server; `parley local "
        "setup` installs it) with the server, and make it the page's model "
        "(env PARLEY_LOCAL_MODEL_START; docs/local-models.md)",
    )
    _add_page_hosted_mcp(run)

    models = sub.add_parser("models", help="list providers, whether each is ready, and models")
    _add_db_options(models)

    chat = sub.add_parser(
        "chat",
        help="chat in the terminal, with MCP tools",
        description="Chat with an assistant in the terminal. Without --server, an embedded "
        "server starts on a free loopback port. Enter sends; Alt+Enter (or Esc then Enter) "
        "starts a new line; /help lists the commands.",
    )
    _add_chat_options(chat)

    ask = sub.add_parser(
        "ask",
        help="ask one question; only the answer goes to stdout",
        description="Ask one question and print the answer on stdout (reasoning and tool "
        "activity on stderr). Exit code 0 when the run completed, 1 when it failed.",
    )
    ask.add_argument("prompt", nargs="?", help="the question (default: read stdin; - too)")
    ask.add_argument("--json", action="store_true", help="print the events as JSON lines")
    _add_chat_options(ask)

    web = sub.add_parser(
        "web",
        help="serve the chat page for the browser",
        description="Serve a chat page for the browser (a Flask app over the SDK). Without "
        "--server, an embedded server starts on a free loopback port.",
    )
    web.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    web.add_argument(
        "--port", type=_port, help="port to listen on (default 5000; env PARLEY_WEB_PORT)"
    )
    web.add_argument("--server", metavar="URL", help="Parley server (env PARLEY_BASE_URL)")
    web.add_argument("--api-key", metavar="KEY", help="API key (env PARLEY_API_KEY)")
    web.add_argument("--model", help="default provider/model (default: demo/parley)")
    web.add_argument(
        "--all-threads",
        action="store_true",
        help="show every thread of the API key (from parley chat, the API, the Responses "
        "API), not only those each browser session started: for a page one person uses",
    )
    web.add_argument(
        "--max-exchanges",
        type=int,
        metavar="N",
        help="answers streaming at once; one more gets a 503 'busy' at once "
        "(env PARLEY_WEB_MAX_EXCHANGES, default 64)",
    )
    _add_page_hosted_mcp(web)
    web.add_argument(
        "--code-interpreter",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="offer the code interpreter: the model's Python runs in a sandbox on the Parley "
        "server, and the page shows its code, output, figures and files (default: on; the "
        "page goes on without it when the server cannot run it)",
    )

    admin_cli.add_parsers(sub, _add_db_options)  # users, keys

    _add_db_options(usage_cli.add_parser(sub))
    _add_db_options(import_cli.add_parser(sub))
    db_cli.add_parser(sub, _add_db_options)
    sandbox_cli.add_parser(sub, _add_db_options)
    local_cli.add_parser(sub, _add_db_options)
    webhooks_cli.add_parser(sub, _add_db_options)
    vector_stores_cli.add_parser(sub, _add_db_options)
    return parser


def _add_chat_options(p: argparse.ArgumentParser) -> None:
    conn = p.add_argument_group("connection")
    conn.add_argument("--server", metavar="URL", help="Parley server (env PARLEY_BASE_URL)")
    conn.add_argument("--api-key", metavar="KEY", help="API key (env PARLEY_API_KEY)")
    conn.add_argument("--model", help="provider/model (default: demo/parley)")
    conn.add_argument("--assistant", metavar="ID", help="use this assistant as it is")
    conn.add_argument("--thread", metavar="ID", help="continue this thread")
    conn.add_argument(
        "--no-stream", action="store_true", help="wait for each whole turn instead of streaming"
    )
    conn.add_argument(
        "--file",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="attach a file the answers can search (repeatable; see docs/terminal.md)",
    )
    tools = p.add_argument_group("MCP tools")
    tools.add_argument(
        "--mcp-config",
        type=Path,
        metavar="FILE",
        help='{"mcpServers": {...}} file (default: ~/.config/parley/mcp.json when present)',
    )
    tools.add_argument(
        "--mcp-server",
        action="append",
        default=[],
        metavar="NAME",
        help="use only this server of the config (repeatable)",
    )
    tools.add_argument(
        "--hosted-mcp",
        action="append",
        default=[],
        metavar="SPEC",
        help="an MCP server the Parley server runs for the assistant (repeatable): URL, "
        "LABEL=URL, or the LABEL of one registered on the server; #tool,tool limits its "
        "tools; ?approval=never runs its calls without asking (by default each call asks "
        "for approval first; --confirm never approves them all). See docs/mcp.md",
    )
    tools.add_argument(
        "--code-interpreter",
        action="store_true",
        help="let the model run Python on the Parley server (a sandbox per conversation); "
        "its code, output, figures and files show as it runs (/code toggles it in a chat)",
    )
    tools.add_argument(
        "--confirm",
        choices=("ask", "always", "never"),
        default="ask",
        help="ask before a tool runs: ask (unless allowed in the config), always, never",
    )
    tools.add_argument(
        "--max-parallel-tools", type=_positive_int, default=4, metavar="N", help="default 4"
    )
    tools.add_argument(
        "--tool-timeout", type=_positive_seconds, default=120.0, metavar="S", help="per call (120)"
    )
    times = p.add_argument_group("timeouts (seconds, 0 = none)")
    times.add_argument("--first-chunk-timeout", type=_seconds, default=60.0, metavar="S")
    times.add_argument("--idle-timeout", type=_seconds, default=45.0, metavar="S")
    times.add_argument("--turn-timeout", type=_seconds, default=300.0, metavar="S")


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be a port number, 0 to 65535")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be 0 or more seconds")
    return value


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def _chat_options(args: argparse.Namespace) -> ChatOptions:
    from parley.terminal.session import ChatOptions

    return ChatOptions(
        server=args.server,
        api_key=args.api_key,
        model=args.model,
        assistant_id=args.assistant,
        thread_id=args.thread,
        mcp_config=args.mcp_config,
        mcp_servers=tuple(args.mcp_server),
        hosted_mcp=tuple(args.hosted_mcp),
        files=tuple(args.file),
        code_interpreter=args.code_interpreter,
        confirm=args.confirm,
        max_parallel_tools=args.max_parallel_tools,
        tool_timeout=args.tool_timeout,
        first_chunk_timeout=args.first_chunk_timeout,
        idle_timeout=args.idle_timeout,
        turn_timeout=args.turn_timeout,
        stream=not args.no_stream,
    )


def _terminal(args: argparse.Namespace) -> int:
    """``parley chat`` and ``parley ask``: clients of a server, no server settings here;
    without ``--server`` (or ``PARLEY_BASE_URL``) their session starts the embedded one."""
    from parley.cli.chat_server import EmbeddedChatServer
    from parley.controls import log_to_stderr

    log_to_stderr()  # the MCP SDK's warnings quote what servers sent
    options = _chat_options(args)
    embedded = EmbeddedChatServer()
    if args.command == "ask":
        from parley.terminal.ask import run_ask

        prompt, json_lines = args.prompt, args.json
        return asyncio.run(run_ask(options, prompt, json_lines=json_lines, start_server=embedded))
    from parley.terminal.repl import run_chat

    return asyncio.run(run_chat(options, start_server=embedded))


def _web(args: argparse.Namespace) -> int:
    from parley.cli.web import WebOptions, run_web

    options = WebOptions(
        host=args.host,
        port=args.port,
        server=args.server,
        api_key=args.api_key,
        model=args.model,
        all_threads=args.all_threads,
        max_exchanges=args.max_exchanges,
        hosted_mcp=tuple(args.hosted_mcp),
        code_interpreter=args.code_interpreter,
    )
    try:
        return run_web(options)
    except KeyboardInterrupt:  # Ctrl+C: the page and the embedded server are closed
        return 130


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with missing_extra(args.command):  # an install without the command's extra: one line
        return _run_command(args)


def _run_command(args: argparse.Namespace) -> int:
    if args.command == "web":
        return _web(args)
    if args.command in ("chat", "ask"):
        try:
            return _terminal(args)
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:  # `parley ask ... | head`: the reader left
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    if args.command != "serve":
        return _server_command(args)
    # No garbage collection while the server loads: its passes over the ~170,000 objects
    # that loading makes cost a start about a tenth of its time and find next to nothing.
    # The server freezes those objects and turns it back on as it starts (``AppServer``).
    gc.disable()
    try:
        return _server_command(args)
    finally:
        gc.enable()


def _server_command(args: argparse.Namespace) -> int:
    """``serve``, ``run``, ``models``, ``usage``, ``users`` and ``keys``: the commands that
    read ``Settings``."""
    from parley.config import ConfigError

    try:
        settings = _settings(args)
        settings.checked_provider_configs()  # fail early on a broken configuration
        if args.command in ("serve", "run") and settings.redis_url:
            _check_redis(settings.redis_url)
        if args.command in ("serve", "run") and settings.files_storage_kind() == "s3":
            from parley.files.s3 import check_bucket

            check_bucket(settings)  # boto3 installed, the bucket answers
        if args.command == "serve":
            from parley.cli.serve import serve

            return serve(settings)
        if args.command == "run":
            from parley.cli.serve import run_local
            from parley.cli.web import hosted_tools_of, web_port_of

            try:
                web_port = None if args.no_web else web_port_of(args.web_port)
                hosted = hosted_tools_of(args.hosted_mcp)
            except ValueError as exc:  # PARLEY_WEB_PORT, a --hosted-mcp SPEC
                raise ConfigError(str(exc)) from None
            return run_local(settings, web_port=web_port, hosted_mcp=hosted)
        if args.command == "models":
            return asyncio.run(_print_models(settings))
        if args.command == "usage":
            return usage_cli.run(settings, args)
        if args.command == "import":
            return import_cli.run(settings, args)
        if args.command == "db":
            return db_cli.run(settings, args)
        if args.command == "sandbox":
            return sandbox_cli.run(settings, args)
        if args.command == "local":
            return local_cli.run(settings, args)
        if args.command == "vector-stores":
            return vector_stores_cli.run(settings, args)
        if args.command == "webhooks":
            return webhooks_cli.run(settings, args)
        if args.command in ("users", "keys"):
            return admin_cli.run(settings, args)
    except ConfigError as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl+C: the server has already shut down cleanly
        return 130
    return 2


def _check_redis(url: str) -> None:
    import redis

    from parley.config import ConfigError

    try:
        with redis.Redis.from_url(url, socket_connect_timeout=5) as client:
            client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise ConfigError(f"cannot reach Redis at PARLEY_REDIS_URL ({exc})") from None


async def _print_models(settings: Settings) -> int:
    from parley.controls import clean
    from parley.providers.catalog import describe
    from parley.providers.registry import ProviderRegistry

    registry = ProviderRegistry(settings)
    try:
        catalog = await describe(registry)
    finally:
        await registry.aclose()
    width = max(len(p["name"]) for p in catalog["providers"])
    for provider in catalog["providers"]:  # model ids and problems are what upstreams said
        state = "ready" if provider["ready"] else "not ready"
        note = f" ({provider['problem']})" if provider["problem"] else ""
        print(clean(f"{provider['name']:<{width}}  {provider['kind']:<12} {state}{note}"))
        for model in catalog["data"]:
            if model["provider"] == provider["name"]:
                print(clean(f"{'':<{width}}    {model['id']}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
