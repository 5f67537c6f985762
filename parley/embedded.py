"""The embedded server of ``parley chat`` / ``parley ask`` / ``parley web``: a real Parley
server on loopback. It belongs to no face: the commands start it (``cli.chat_server`` for
``parley chat`` and ``parley ask``, ``cli.web`` for ``parley web``), and the child side uses
only the server and the store.

With no ``--server`` (and no ``PARLEY_BASE_URL``), a client starts the same server
code in a child process (``python -m parley.embedded``) on a free loopback port, with
the default settings: the SQLite file in the user data directory and, unless a provider key is
in the environment, only the offline demo model. The child authenticates the client with the
local key of ``parley run`` (``parley.store.local.ensure_local_key``).

Why a process and not a thread: the server's imports (FastAPI, SQLAlchemy, the engine) then
load on the other CPU while the client draws its first prompt, and a busy server never holds
the client's GIL while it streams.

The handshake: the child binds its own socket (port 0, so no race for a port), starts
serving, and writes one JSON line ``{"url": ..., "api_key": ...}`` on stdout. It then reads
its stdin until end of file: the client holds the other end of that pipe, so the server stops
when the client closes it, and also when the client dies without cleaning up. The child runs
in its own session, so a Ctrl+C in the terminal reaches the client only (the client cancels
what it streams; the server keeps running until the client exits). Its log goes to
``embedded-server.log`` in the user data directory.

What it keeps there (the SQLite database and its ``-wal``/``-shm``/``-journal`` files, the
local key, the log) is its owner's only: the directory is made with mode 0700, the files
0600 (looser ones are tightened), and the child runs with umask 077.

The parent side (``EmbeddedServer``) imports nothing heavy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from pathlib import Path

from parley.config import data_dir, private_dir

__all__ = ["EmbeddedServer", "EmbeddedServerError"]

#: Seconds to wait for the child's handshake line.
START_TIMEOUT = 30.0
#: Seconds the child gets to shut down after its stdin closes, before it is terminated.
STOP_TIMEOUT = 10.0
_LOG_TAIL = 1500


class EmbeddedServerError(RuntimeError):
    """The embedded server did not start; the message quotes the end of its log."""


class EmbeddedServer:
    """A Parley server child process on loopback; ``await start()``, then ``base_url`` and
    ``api_key``; ``await aclose()`` stops it.

    ``env`` replaces the child's environment (tests); ``log_path`` defaults to
    ``embedded-server.log`` in the user data directory.
    """

    def __init__(self, *, env: dict[str, str] | None = None, log_path: Path | None = None) -> None:
        self._env = env
        self.log_path = log_path or data_dir() / "embedded-server.log"
        self.base_url = ""
        self.api_key = ""
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = START_TIMEOUT) -> None:  # noqa: ASYNC109
        """Start the child and wait for its handshake.

        Raises:
            EmbeddedServerError: it exited or did not answer within ``timeout`` seconds.
        """
        private_dir(self.log_path.parent)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an older log may have looser bits
        with os.fdopen(fd, "wb") as log:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "parley.embedded",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=self._env,
                start_new_session=True,
            )
        assert self._proc.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                line = await self._proc.stdout.readline()
        except TimeoutError:
            await self.aclose()
            raise EmbeddedServerError(
                f"the embedded server did not start within {timeout:g} s{self._log_tail()}"
            ) from None
        try:
            ready = json.loads(line)
            self.base_url, self.api_key = str(ready["url"]), str(ready["api_key"])
        except (ValueError, KeyError, TypeError):
            await self.aclose()
            raise EmbeddedServerError(
                f"the embedded server failed to start{self._log_tail()}"
            ) from None

    async def aclose(self) -> None:
        """Stop the child: close its stdin (a graceful shutdown), terminate it if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    async def __aenter__(self) -> EmbeddedServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _log_tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")[-_LOG_TAIL:].strip()
        except OSError:
            return ""
        return f":\n{text}" if text else f" (log: {self.log_path})"


# ---------------------------------------------------------------------- the child


async def _serve_child() -> int:
    """Serve on a free loopback port until stdin closes (runs in the child process)."""
    from parley.config import Settings
    from parley.controls import log_to_stderr
    from parley.server.serving import build_server
    from parley.store.local import ensure_local_key, private_database

    os.umask(0o077)  # what the server writes is the user's only
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    settings = Settings(host="127.0.0.1", port=port)
    private_database(settings.database_url)
    log_to_stderr(settings.log_level.upper(), "%(levelname)s %(name)s: %(message)s")
    server = build_server(settings)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn offers no event)
        await asyncio.sleep(0.01)
    if not server.started:
        await serving
        return 1
    key = await ensure_local_key(server.parley_app.state.services.db)
    ready = {"url": f"http://127.0.0.1:{port}", "api_key": key}
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    watcher = asyncio.create_task(_wait_for_eof())
    await asyncio.wait([serving, watcher], return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    await serving
    watcher.cancel()
    return 0


async def _wait_for_eof() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", closefd=False)
    )
    try:
        while await reader.read(4096):
            pass
    finally:
        transport.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(_serve_child()))
