"""What the SDK reads from the environment when not given arguments: ``PARLEY_BASE_URL``
and ``PARLEY_API_KEY`` (and ``parley web`` its ``PARLEY_WEB_MAX_EXCHANGES`` and
``PARLEY_WEB_PORT``, which ``parley run``'s page reads too). Plain ``os.environ``, so that the
SDK alone (``pip install parley-ai``) needs nothing but httpx and pydantic."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_BASE_URL = "http://127.0.0.1:8700"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    #: Whether ``PARLEY_BASE_URL`` was set (``base_url`` then comes from it).
    base_url_set: bool = False
    #: ``PARLEY_WEB_MAX_EXCHANGES`` as written (``cli.web.max_exchanges_of`` checks it).
    web_max_exchanges: str | None = None
    #: ``PARLEY_WEB_PORT`` as written (``cli.web.web_port_of`` checks it).
    web_port: str | None = None

    @classmethod
    def from_env(cls) -> ClientSettings:
        base_url = os.environ.get("PARLEY_BASE_URL")
        return cls(
            base_url=base_url if base_url is not None else DEFAULT_BASE_URL,
            api_key=os.environ.get("PARLEY_API_KEY"),
            base_url_set=base_url is not None,
            web_max_exchanges=os.environ.get("PARLEY_WEB_MAX_EXCHANGES"),
            web_port=os.environ.get("PARLEY_WEB_PORT"),
        )

    @classmethod
    def chosen_server(
        cls, server: str | None, api_key: str | None
    ) -> tuple[str | None, str | None]:
        """The server of ``parley chat`` / ``ask`` / ``web``: ``--server``, else
        ``PARLEY_BASE_URL`` when that variable is set; with either, the key of
        ``--api-key``, else ``PARLEY_API_KEY`` (the two are the same option, as ``--help``
        says). ``(None, None)``: start an embedded server."""
        env = cls.from_env()
        if server is not None:
            return server, api_key if api_key is not None else env.api_key
        if env.base_url_set:
            return env.base_url, api_key if api_key is not None else env.api_key
        return None, None
