"""Serving the web app: cheroot's WSGI server, on a socket bound first.

Why cheroot (``docs/web.md``, measured by ``bench/web_server.py``): a bounded pool of worker
threads (an idle keep-alive connection waits in a selector, not in a thread), every write
of a streamed response flushed to the socket at once, a broken connection closes the
response, and a public ``prepare`` / ``serve`` / ``stop`` that runs in-process.

Binding the socket ourselves turns a busy port into a plain ``OSError``. ``WebServer``
serves in the calling thread (``serve_forever``) or in a daemon thread
(``start_in_thread``); ``stop()`` ends either. Its worker threads are daemons, as werkzeug's
were: ``stop`` waits ``STOP_WAIT`` seconds for answers under way, then leaves them to end
with the process.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from cheroot.workers.threadpool import ThreadPool, WorkerThread
from cheroot.wsgi import Server

__all__ = ["SPARE_THREADS", "STOP_WAIT", "WebServer", "threads_for", "url_host"]

#: Server threads beyond the bound on exchanges: the page, its scripts, the thread list and
#: history still load while every exchange slot streams.
SPARE_THREADS = 16
#: Connections the kernel holds for the server to accept (``listen``'s backlog), as
#: werkzeug's.
LISTEN_BACKLOG = 128
#: Seconds ``stop`` waits for requests under way.
STOP_WAIT = 2.0


def threads_for(max_exchanges: int) -> int:
    """Server threads for a bound of ``max_exchanges`` streaming at once."""
    return max_exchanges + SPARE_THREADS


def url_host(host: str) -> str:
    """``host`` as it goes in a URL (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host else host


class _DaemonPool(ThreadPool):
    """cheroot's pool, with daemon workers: a stream under way does not keep the process."""

    def _spawn_worker(self) -> WorkerThread:
        worker = WorkerThread(self.server)  # type: ignore[no-untyped-call]
        worker.name = f"parley-web-worker-{worker.name}"
        worker.daemon = True
        worker.start()
        return worker


class _Server(Server):  # type: ignore[misc]  # cheroot's stubs leave its base untyped
    """cheroot's WSGI server on a socket bound before (``prepare`` listens on it)."""

    def __init__(self, sock: socket.socket, app: Any, threads: int) -> None:
        super().__init__(
            sock.getsockname()[:2],
            app,
            numthreads=threads,
            max=threads,
            server_name="parley-web",
            shutdown_timeout=int(STOP_WAIT),
            # cheroot listens with a backlog of 5: a burst of browsers connecting at once
            # overflows it, and the kernel's SYN retries make some wait 1, 3 or 7 s.
            request_queue_size=LISTEN_BACKLOG,
        )
        self.requests = _DaemonPool(self, min=threads, max=threads)
        self._bound = sock

    def bind(self, family: int, type: int, proto: int = 0) -> socket.socket:
        self.socket = self._bound
        self.bind_addr = self._bound.getsockname()[:2]
        return self._bound


class WebServer:
    """The WSGI server for ``app`` on ``host:port`` (0: a free port), ``threads`` worker
    threads (requests served at once; see ``threads_for``).

    Raises:
        OSError: the address cannot be bound (the port is taken, say).
    """

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 5000, *, threads: int = 80
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted ones inherit it
        try:
            self._server = _Server(sock, app, threads)
            self._server.prepare()
        except BaseException:
            sock.close()
            raise
        self.host = host
        self.port = int(sock.getsockname()[1])
        self.threads = threads
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}"

    def serve_forever(self) -> None:
        """Serve in this thread until ``stop()`` (from another thread) or an exception;
        Ctrl+C raises ``KeyboardInterrupt`` here, after the server has stopped."""
        try:
            self._server.serve()
        finally:
            self.stop()

    def start_in_thread(self) -> WebServer:
        self._thread = threading.Thread(
            target=self.serve_forever, name=f"parley-web-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: close the socket, wait ``STOP_WAIT`` s for requests under way (the
        rest end with the process). Calling it again does nothing."""
        if self._stopped:
            return
        self._stopped = True
        # cheroot's stop joins a worker still streaming after its wait: do it aside.
        stopper = threading.Thread(target=self._server.stop, name="parley-web-stop", daemon=True)
        stopper.start()
        stopper.join(STOP_WAIT + 1.0)
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_WAIT + 1.0)
