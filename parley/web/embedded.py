"""The embedded server of ``parley web``, for blocking code.

``parley.terminal.embedded.EmbeddedServer`` (the same child process as ``parley chat``'s)
is asyncio-based; this wrapper runs it on an event loop of its own in a daemon thread, so
the Flask side can ``start()`` and ``close()`` it from plain threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from parley.terminal.embedded import START_TIMEOUT, EmbeddedServer, EmbeddedServerError

__all__ = ["EmbeddedServerError", "SyncEmbeddedServer"]

T = TypeVar("T")


class SyncEmbeddedServer:
    """``start()``, then ``base_url`` and ``api_key``; ``close()`` stops the child."""

    def __init__(self, *, env: dict[str, str] | None = None, log_path: Path | None = None) -> None:
        self._server = EmbeddedServer(env=env, log_path=log_path)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def api_key(self) -> str:
        return self._server.api_key

    @property
    def log_path(self) -> Path:
        return self._server.log_path

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the child and wait for it (``EmbeddedServerError`` when it cannot start)."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="parley-embedded-server", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._server.start(timeout))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the child (gracefully, then harder) and the loop's thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self._call(self._server.aclose())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> SyncEmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()
