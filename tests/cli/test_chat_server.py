"""The embedded server ``parley chat`` and ``parley ask`` start when they are given none
(``cli.chat_server``), as the terminal's session takes it: a child that does not start is
a ``ServerStartError`` quoting its log, which the session reports and exits 1 on. (The
child that starts and answers: ``tests/terminal/test_ask.py::test_the_embedded_server``.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from parley.cli.chat_server import EmbeddedChatServer
from parley.embedded import EmbeddedServer
from parley.terminal.session import (
    EXIT_FAILED,
    ChatOptions,
    ServerStartError,
    Session,
    setup_exit_code,
)


def _broken(tmp_path: Path) -> EmbeddedServer:
    """An embedded server whose child cannot make its data directory (it is under a file),
    so it stops before it serves."""
    nowhere = tmp_path / "a-file"
    nowhere.write_text("")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "HOME": str(nowhere),
        "XDG_DATA_HOME": str(nowhere),
    }
    return EmbeddedServer(env=env, log_path=tmp_path / "embedded-server.log")


async def test_a_child_that_does_not_start_is_a_server_start_error(tmp_path: Path) -> None:
    embedded = EmbeddedChatServer(_broken(tmp_path))
    with pytest.raises(ServerStartError, match=r"failed to start(.|\n)*Not a directory") as raised:
        await embedded.start()
    assert setup_exit_code(raised.value) == EXIT_FAILED
    await embedded.aclose()


async def test_the_session_reports_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARLEY_BASE_URL", raising=False)
    session = Session(ChatOptions(), start_server=EmbeddedChatServer(_broken(tmp_path)))
    with pytest.raises(ServerStartError, match="failed to start"):
        await session.open()
    await session.aclose()
