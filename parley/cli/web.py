"""``parley web``: the browser chat page, against a server or an embedded one.

Also ``start_web_beside``, which ``parley run`` uses to serve the page next to its server.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from parley.config import ClientSettings
from parley.errors import ParleyError

if TYPE_CHECKING:
    from flask import Flask

    from parley.web.server import WebServer

__all__ = ["WebBeside", "WebOptions", "run_web", "start_web_beside"]


@dataclass(frozen=True, slots=True)
class WebOptions:
    host: str = "127.0.0.1"
    port: int = 5000
    server: str | None = None
    api_key: str | None = None
    model: str | None = None


def _server_from_env(options: WebOptions) -> tuple[str | None, str | None]:
    """``--server`` / ``--api-key``, else ``PARLEY_BASE_URL`` / ``PARLEY_API_KEY`` when the
    base URL is set (None: start an embedded server)."""
    if options.server is not None:
        return options.server, options.api_key
    env = ClientSettings()
    if "base_url" in env.model_fields_set:
        return env.base_url, options.api_key if options.api_key is not None else env.api_key
    return None, None


def _usable_url(url: str) -> bool:
    import httpx

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


def run_web(options: WebOptions) -> int:
    """Serve the page until Ctrl+C (which propagates, after everything is closed)."""
    from parley.web.embedded import EmbeddedServerError, SyncEmbeddedServer

    base_url, api_key = _server_from_env(options)
    if base_url is not None and not _usable_url(base_url):
        print(f"parley web: server URL {base_url!r}: use http(s)://host[:port]", file=sys.stderr)
        return 2
    embedded: SyncEmbeddedServer | None = None
    if base_url is None:
        print("Starting the embedded Parley server…", file=sys.stderr, flush=True)
        embedded = SyncEmbeddedServer()
        try:
            embedded.start()
        except EmbeddedServerError as exc:
            print(f"parley web: {exc}", file=sys.stderr)
            return 1
        base_url, api_key = embedded.base_url, embedded.api_key
    try:
        label = f"{base_url} (embedded)" if embedded else base_url
        return _serve(options, base_url, api_key or "", label)
    finally:
        if embedded is not None:
            embedded.close()


def _serve(options: WebOptions, base_url: str, api_key: str, label: str) -> int:
    from parley.web import create_app
    from parley.web.app import close_app
    from parley.web.server import WebServer

    app = create_app(base_url=base_url, api_key=api_key, default_model=options.model)
    try:
        try:
            web = WebServer(app, options.host, options.port)
        except OSError as exc:
            print(
                f"parley web: cannot listen on {options.host}:{options.port}: "
                f"{exc.strerror or exc} (try --port)",
                file=sys.stderr,
            )
            return 1
        _warn_if_unusable(app)
        model = options.model or "demo/parley"
        print(
            f"\nParley web is running at {web.url}\n"
            f"Parley server: {label}   default model: {model}\n"
            "Open the page in a browser; Ctrl+C here stops it.\n",
            flush=True,
        )
        web.serve_forever()
    finally:
        close_app(app)
    return 0


def _warn_if_unusable(app: Flask) -> None:
    """Say at once when the server cannot be reached or refuses the key (the page would
    show the same error on every request)."""
    from parley.web.backend import EXTENSION, Backend, problem_of

    backend: Backend = app.extensions[EXTENSION]
    try:
        backend.client.users.me()
    except ParleyError as exc:
        problem = problem_of(exc, backend.base_url)
        print(f"parley web: warning: {problem.message}", file=sys.stderr)


class WebBeside:
    """The page served in a daemon thread next to ``parley run``'s server."""

    def __init__(self, app: Flask, server: WebServer) -> None:
        self.app = app
        self.server = server
        self.url = server.url

    def stop(self) -> None:
        from parley.web.app import close_app

        self.server.stop()
        close_app(self.app)


def start_web_beside(*, host: str, port: int, server_url: str, api_key: str) -> WebBeside | str:
    """For ``parley run``: serve the page next to the server at ``server_url``. Answers the
    running page, or why it could not start (a message to print)."""
    from parley.web import create_app
    from parley.web.app import close_app
    from parley.web.server import WebServer

    app = create_app(base_url=server_url, api_key=api_key)
    try:
        server = WebServer(app, host, port)
    except OSError as exc:
        close_app(app)
        reason = exc.strerror or str(exc)
        return (
            f"The web page could not start on {host}:{port} ({reason}); "
            "use --web-port N, or --no-web."
        )
    server.start_in_thread()
    return WebBeside(app, server)
