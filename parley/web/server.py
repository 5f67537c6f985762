"""Serving the web app: werkzeug's threaded server on a socket bound first.

Binding the socket ourselves turns a busy port into a plain ``OSError`` (werkzeug's own bind
prints and exits). ``WebServer`` serves in the calling thread (``serve_forever``) or in a
daemon thread (``start_in_thread``); ``stop()`` ends either.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

__all__ = ["WebServer", "url_host"]


class _QuietHandler(WSGIRequestHandler):
    """No line per request on the terminal (errors are still logged)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def url_host(host: str) -> str:
    """``host`` as it goes in a URL (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host else host


class WebServer:
    """A threaded WSGI server for ``app`` on ``host:port`` (0: a free port).

    Raises:
        OSError: the address cannot be bound (the port is taken, say).
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 5000) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family)
        try:
            self._server: BaseWSGIServer = make_server(
                host, port, app, threaded=True, request_handler=_QuietHandler, fd=sock.fileno()
            )
        finally:
            sock.close()  # the server holds its own duplicate of the socket
        self.host = host
        self.port = int(self._server.port)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}"

    def serve_forever(self) -> None:
        """Serve in this thread until ``stop()`` (from another thread) or an exception;
        Ctrl+C raises ``KeyboardInterrupt`` here (werkzeug's own loop would swallow it)."""
        try:
            socketserver.BaseServer.serve_forever(self._server)
        finally:
            self._server.server_close()

    def start_in_thread(self) -> WebServer:
        self._thread = threading.Thread(
            target=self.serve_forever, name=f"parley-web-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (requests under way finish in their own daemon threads)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        else:
            self._server.server_close()
