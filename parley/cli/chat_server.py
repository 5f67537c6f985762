"""The server ``parley chat`` and ``parley ask`` start when they are given none (no
``--server``, no ``PARLEY_BASE_URL``): the embedded server, a Parley server child process on
loopback with the local API key (``parley.embedded``), as the terminal's session takes it
(``terminal.session.ServerStart``). The session starts it only when it needs it, beside
the MCP servers, and stops it when it closes."""

from __future__ import annotations

from parley.embedded import EmbeddedServer, EmbeddedServerError
from parley.terminal.session import ServerStartError

__all__ = ["EmbeddedChatServer"]


class EmbeddedChatServer:
    """The embedded server of a terminal session (``server``: the default one, with this
    process's environment): ``await start()``, then ``base_url`` and ``api_key``; ``await
    aclose()`` stops it."""

    def __init__(self, server: EmbeddedServer | None = None) -> None:
        self._server = server if server is not None else EmbeddedServer()

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def api_key(self) -> str:
        return self._server.api_key

    async def start(self) -> None:
        """Start the child and wait for its address and key.

        Raises:
            ServerStartError: it did not start (the message quotes the end of its log).
        """
        try:
            await self._server.start()
        except EmbeddedServerError as exc:
            raise ServerStartError(str(exc)) from exc

    async def aclose(self) -> None:
        await self._server.aclose()
