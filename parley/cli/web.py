"""``parley web``: the browser chat page, against a server or an embedded one.

Also ``start_web_beside``, which ``parley run`` uses to serve the page next to its server.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from parley.client_settings import ClientSettings
from parley.controls import clean
from parley.errors import ParleyError

if TYPE_CHECKING:
    from flask import Flask

    from parley.web.backend import Backend
    from parley.web.server import WebServer

__all__ = ["WebBeside", "WebOptions", "run_web", "start_web_beside"]


@dataclass(frozen=True, slots=True)
class WebOptions:
    host: str = "127.0.0.1"
    port: int = 5000
    server: str | None = None
    api_key: str | None = None
    model: str | None = None
    all_threads: bool = False


def run_web(options: WebOptions) -> int:
    """Serve the page until Ctrl+C (which propagates, after everything is closed)."""
    base_url, api_key = ClientSettings.chosen_server(options.server, options.api_key)
    if base_url is not None:
        return _serve(options, base_url, api_key or "", base_url)

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

    try:
        app, web = _listen(
            options.host,
            options.port,
            base_url=base_url,
            api_key=api_key,
            model=options.model,
            all_threads=options.all_threads,
        )
    except ValueError:  # the SDK client refused the address
        print(f"parley web: server URL {base_url!r}: use http(s)://host[:port]", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"parley web: cannot listen on {options.host}:{options.port}: "
            f"{exc.strerror or exc} (try --port)",
            file=sys.stderr,
        )
        return 1
    try:
        backend: Backend = app.extensions[EXTENSION]
        _warn_if_unusable(backend)
        print(
            f"\nParley web is running at {web.url}\n"
            f"Parley server: {clean(label)}   default model: {clean(backend.default_model)}\n"
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
) -> tuple[Flask, WebServer]:
    """The app, and a server bound to ``host:port`` for it (not serving yet).

    Raises:
        ValueError: ``base_url`` is no server address.
        OSError: the address cannot be bound (the app is closed).
    """
    from parley.web import create_app
    from parley.web.app import close_app
    from parley.web.server import WebServer

    app = create_app(
        base_url=base_url, api_key=api_key, default_model=model, all_threads=all_threads
    )
    try:
        return app, WebServer(app, host, port)
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


def start_web_beside(*, host: str, port: int, server_url: str, api_key: str) -> WebBeside | str:
    """For ``parley run``: serve the page next to the server at ``server_url``. Answers the
    running page, or why it could not start (a message to print)."""
    try:
        return WebBeside(*_listen(host, port, base_url=server_url, api_key=api_key))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return (
            f"The web page could not start on {host}:{port} ({reason}); "
            "use --web-port N, or --no-web."
        )
