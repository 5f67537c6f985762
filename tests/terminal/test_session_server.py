"""Where a terminal session's server comes from: the address it is given (``--server``,
``PARLEY_BASE_URL``), else the server the command gives it to start (``ServerStart``: the
embedded server of ``parley chat`` and ``parley ask``, ``cli.chat_server``). The terminal
starts no server of its own. Against the suite's real server: the server given to start
here is that one, its start and stop counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from parley.terminal.session import ChatOptions, ServerStartError, Session, SessionError
from tests.test_layers import _imports

TERMINAL = Path(__file__).resolve().parents[2] / "parley" / "terminal"


class Counted:
    """A ``ServerStart`` that is the suite's server, counting its starts and stops; or one
    that fails to start with ``why``."""

    def __init__(self, base_url: str, api_key: str, why: str | None = None) -> None:
        self._address, self._key, self._why = base_url, api_key, why
        self.base_url = self.api_key = ""
        self.starts = self.stops = 0

    async def start(self) -> None:
        self.starts += 1
        if self._why is not None:
            raise ServerStartError(self._why)
        self.base_url, self.api_key = self._address, self._key

    async def aclose(self) -> None:
        self.stops += 1


@pytest.fixture(autouse=True)
def _no_server_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARLEY_BASE_URL", raising=False)
    monkeypatch.delenv("PARLEY_API_KEY", raising=False)


def test_no_module_of_the_terminal_starts_a_server() -> None:
    launching = [
        f"{path.name}:{line}"
        for path in sorted(TERMINAL.rglob("*.py"))
        for line, module in _imports(path)
        if module == "parley.embedded" or module.split(".")[:2] == ["parley", "cli"]
    ]
    assert launching == []


async def test_without_an_address_the_session_starts_the_server_it_is_given(
    server: Any, user_key: str
) -> None:
    given = Counted(server.base_url, user_key)
    session = Session(ChatOptions(model="demo/parley"), start_server=given)
    try:
        await session.open()
        assert given.starts == 1
        assert session.client.base_url.rstrip("/") == server.base_url.rstrip("/")
        assert session.server_label == f"embedded server at {server.base_url}"
        assert session.assistant is not None  # made on the server it started
    finally:
        await session.aclose()
    assert given.stops == 1


async def test_with_an_address_the_server_given_to_start_is_not_started(
    server: Any, user_key: str
) -> None:
    given = Counted("http://127.0.0.1:9", "unused")
    options = ChatOptions(server=server.base_url, api_key=user_key, model="demo/parley")
    async with Session(options, start_server=given) as session:
        assert session.server_label == session.client.base_url
    assert (given.starts, given.stops) == (0, 0)


async def test_a_server_that_does_not_start_says_why_and_is_stopped() -> None:
    given = Counted("", "", why="the embedded server exited: port in use")
    session = Session(ChatOptions(), start_server=given)
    with pytest.raises(ServerStartError, match="port in use"):
        await session.open()
    await session.aclose()
    assert (given.starts, given.stops) == (1, 1)


async def test_without_an_address_or_a_server_to_start_the_session_asks_for_one() -> None:
    session = Session(ChatOptions())
    with pytest.raises(SessionError, match="--server"):
        await session.open()
    await session.aclose()
