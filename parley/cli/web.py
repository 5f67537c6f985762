"""``parley web``: the browser chat page, against a server or an embedded one.

Also ``start_web_beside``, which ``parley run`` uses to serve the page next to its server.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from parley.cli.ports import RUN_PAGE, WEB, PortUnavailable, try_port, unavailable
from parley.client_settings import ClientSettings
from parley.controls import clean
from parley.errors import ParleyError

if TYPE_CHECKING:
    from flask import Flask

    from parley.web.backend import Backend
    from parley.web.limits import ExchangeSlots
    from parley.web.server import WebServer

__all__ = [
    "DEFAULT_WEB_PORT",
    "MAX_EXCHANGES_ENV",
    "WEB_PORT_ENV",
    "WebBeside",
    "WebOptions",
    "hosted_tools_of",
    "max_exchanges_of",
    "run_web",
    "start_web_beside",
    "web_port_of",
]

#: The bound on exchanges streaming at once, when ``--max-exchanges`` is not given.
MAX_EXCHANGES_ENV = "PARLEY_WEB_MAX_EXCHANGES"
#: The page's port (``parley web`` and ``parley run``), when no option gives it.
WEB_PORT_ENV = "PARLEY_WEB_PORT"
DEFAULT_WEB_PORT = 5000


@dataclass(frozen=True, slots=True)
class WebOptions:
    host: str = "127.0.0.1"
    #: None: ``PARLEY_WEB_PORT``, else ``DEFAULT_WEB_PORT``.
    port: int | None = None
    server: str | None = None
    api_key: str | None = None
    model: str | None = None
    all_threads: bool = False
    #: None: ``PARLEY_WEB_MAX_EXCHANGES``, else ``DEFAULT_MAX_EXCHANGES``.
    max_exchanges: int | None = None
    #: ``--hosted-mcp`` SPECs (``parley.mcp.spec``).
    hosted_mcp: tuple[str, ...] = ()
    #: The runs offer the code interpreter (``--no-code-interpreter``: they do not).
    code_interpreter: bool = True


def hosted_tools_of(specs: Iterable[str]) -> list[dict[str, Any]]:
    """The page assistant's ``mcp`` tools for ``--hosted-mcp`` SPECs (none: no import).

    Raises:
        ValueError: a SPEC is not one (the message names it).
    """
    specs = list(specs)
    if not specs:
        return []
    from parley.mcp.spec import hosted_mcp_tool

    return [hosted_mcp_tool(spec) for spec in specs]


def max_exchanges_of(option: int | None) -> int:
    """The bound on concurrent exchanges: ``option``, else ``PARLEY_WEB_MAX_EXCHANGES``, else
    the default (64).

    Raises:
        ValueError: the chosen value is not a whole number of at least 1 (the message says
            which setting).
    """
    from parley.web.limits import DEFAULT_MAX_EXCHANGES

    if option is not None:
        if option < 1:
            raise ValueError(f"--max-exchanges must be at least 1, not {option}")
        return option
    raw = (ClientSettings.from_env().web_max_exchanges or "").strip()
    if not raw:
        return DEFAULT_MAX_EXCHANGES
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{MAX_EXCHANGES_ENV} must be a whole number of at least 1, not {raw!r}")
    return int(raw)


def web_port_of(option: int | None) -> int:
    """The page's port: ``option``, else ``PARLEY_WEB_PORT``, else 5000.

    Raises:
        ValueError: ``PARLEY_WEB_PORT`` is no port number.
    """
    if option is not None:
        return option
    raw = (ClientSettings.from_env().web_port or "").strip()
    if not raw:
        return DEFAULT_WEB_PORT
    if not raw.isdigit() or int(raw) > 65535:
        raise ValueError(f"{WEB_PORT_ENV} must be a port number (0 to 65535), not {raw!r}")
    return int(raw)


def run_web(options: WebOptions) -> int:
    """Serve the page until Ctrl+C (which propagates, after everything is closed). Exit
    codes: 1 when the page's port is taken (or the embedded server did not start), 2 for
    an option or variable to fix."""
    try:
        max_exchanges_of(options.max_exchanges)
        port = web_port_of(options.port)
        hosted_tools_of(options.hosted_mcp)
    except ValueError as exc:
        print(f"parley web: {exc}", file=sys.stderr)
        return 2
    options = replace(options, port=port)
    base_url, api_key = ClientSettings.chosen_server(options.server, options.api_key)
    if base_url is not None:
        return _serve(options, base_url, api_key or "", base_url)
    try:  # before the embedded server's start: a taken port is said at once
        try_port(options.host, port, WEB)
    except PortUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1

    from parley.embedded import EmbeddedServer, EmbeddedServerError

    print("Starting the embedded Parley server…", file=sys.stderr, flush=True)
    embedded = EmbeddedServer()
    # The child is asyncio's: its loop runs to start and to stop it, and sleeps in between.
    with asyncio.Runner() as runner:
        try:
            runner.run(embedded.start())
            label = f"{embedded.base_url} (embedded)"
            return _serve(options, embedded.base_url, embedded.api_key, label)
        except EmbeddedServerError as exc:
            print(f"parley web: {clean(str(exc))}", file=sys.stderr)
            return 1
        finally:
            runner.run(embedded.aclose())


def _serve(options: WebOptions, base_url: str, api_key: str, label: str) -> int:
    from parley.web.app import close_app
    from parley.web.backend import EXTENSION
    from parley.web.limits import SLOTS

    port = web_port_of(options.port)
    try:
        app, web = _listen(
            options.host,
            port,
            base_url=base_url,
            api_key=api_key,
            model=options.model,
            all_threads=options.all_threads,
            max_exchanges=max_exchanges_of(options.max_exchanges),
            hosted_mcp=hosted_tools_of(options.hosted_mcp),
            code_interpreter=options.code_interpreter,
        )
    except ValueError:  # the SDK client refused the address
        print(f"parley web: server URL {base_url!r}: use http(s)://host[:port]", file=sys.stderr)
        return 2
    except OSError as exc:  # taken since ``try_port``
        print(unavailable(options.host, port, exc, WEB), file=sys.stderr)
        return 1
    try:
        backend: Backend = app.extensions[EXTENSION]
        slots: ExchangeSlots = app.extensions[SLOTS]
        _warn_if_unusable(backend)
        print(
            f"\nParley web is running at {web.url}\n"
            f"Parley server: {clean(label)}   default model: {clean(backend.default_model)}\n"
            f"At most {slots.limit} answers stream at once (--max-exchanges).\n"
            "Open the page in a browser; Ctrl+C here stops it.\n",
            flush=True,
        )
        web.serve_forever()
    finally:
        close_app(app)
    return 0


def _listen(
    host: str,
    port: int,
    *,
    base_url: str,
    api_key: str,
    model: str | None = None,
    all_threads: bool = False,
    max_exchanges: int | None = None,
    hosted_mcp: Sequence[Mapping[str, Any]] = (),
    code_interpreter: bool = True,
) -> tuple[Flask, WebServer]:
    """The app, and a server bound to ``host:port`` for it (not serving yet), with threads
    for ``max_exchanges`` streaming answers and the page's other requests beside them.

    Raises:
        ValueError: ``base_url`` is no server address.
        OSError: the address cannot be bound (the app is closed).
    """
    from parley.web import create_app
    from parley.web.app import close_app
    from parley.web.limits import DEFAULT_MAX_EXCHANGES
    from parley.web.server import WebServer, threads_for

    bound = max_exchanges or DEFAULT_MAX_EXCHANGES
    app = create_app(
        base_url=base_url,
        api_key=api_key,
        default_model=model,
        all_threads=all_threads,
        max_exchanges=bound,
        hosted_mcp=hosted_mcp,
        code_interpreter=code_interpreter,
    )
    try:
        return app, WebServer(app, host, port, threads=threads_for(bound))
    except OSError:
        close_app(app)
        raise


def _warn_if_unusable(backend: Backend) -> None:
    """Say at once when the server cannot be reached or refuses the key (the page would
    show the same error on every request)."""
    from parley.web.backend import problem_of

    try:
        backend.client.users.me()
    except ParleyError as exc:
        problem = problem_of(exc, backend.base_url)
        print(f"parley web: warning: {clean(problem.message)}", file=sys.stderr)


class WebBeside:
    """The page served in a daemon thread next to ``parley run``'s server."""

    def __init__(self, app: Flask, server: WebServer) -> None:
        self.app = app
        self.server = server.start_in_thread()
        self.url = server.url

    def stop(self) -> None:
        from parley.web.app import close_app

        self.server.stop()
        close_app(self.app)


def start_web_beside(
    *,
    host: str,
    port: int,
    server_url: str,
    api_key: str,
    hosted_mcp: Sequence[Mapping[str, Any]] = (),
    code_interpreter: bool = True,
    model: str | None = None,
) -> WebBeside | str:
    """For ``parley run``: serve the page next to the server at ``server_url`` (its
    assistant with the ``hosted_mcp`` tools, ``--hosted-mcp``; its runs offering the code
    interpreter unless ``code_interpreter`` is false). Answers the
    running page, or why it could not start (a message to print). The bound on exchanges is
    ``PARLEY_WEB_MAX_EXCHANGES`` or the default.

    Raises:
        PortUnavailable: the port cannot be listened on (``parley run`` stops).
    """
    try:
        bound = max_exchanges_of(None)
    except ValueError as exc:
        return f"The web page could not start: {exc}."
    try:
        return WebBeside(
            *_listen(
                host,
                port,
                base_url=server_url,
                api_key=api_key,
                max_exchanges=bound,
                hosted_mcp=hosted_mcp,
                code_interpreter=code_interpreter,
                model=model,
            )
        )
    except OSError as exc:
        raise PortUnavailable(unavailable(host, port, exc, RUN_PAGE)) from None
