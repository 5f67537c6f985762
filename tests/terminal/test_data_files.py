"""What ``parley chat`` and its embedded server keep in the user data directory is the user's
only: the directory has mode 0700, every file in it 0600 (the chat history, the SQLite
database and its side files, the local key, the server's log), files from an older version
with looser bits are tightened, whatever the umask."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

from parley.terminal.repl import PROMPT
from tests.terminal.conftest import STARTED, loose_umask
from tests.terminal.pty_terminal import Terminal

#: Present while the chat runs (the database's -wal and -shm only while it is open).
WHILE_CHATTING = {
    "chat-history",
    "embedded-server.log",
    "local-api-key",
    "parley.db",
    "parley.db-shm",
    "parley.db-wal",
}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes_while_chatting(env: dict[str, str], data: Path) -> dict[str, int]:
    """Chat once on the embedded server (demo model); the modes of the data directory's
    files while the chat still runs."""
    with loose_umask():
        chat = Terminal([sys.executable, "-m", "parley.cli.main", "chat"], env=env)
    try:
        ready = chat.expect(STARTED, timeout=60)
        chat.expect(PROMPT, since=ready.end())
        mark = chat.mark()
        chat.write("hello\r")
        done = chat.expect(r"in / \d+ out tokens", since=mark)
        chat.expect(PROMPT, since=done.end())
        modes = {path.name: mode(path) for path in data.iterdir()}
        chat.write("\x04")
        assert chat.wait(30) == 0
    finally:
        chat.close()
    return modes


def test_the_data_directory_and_its_files_are_private(cli_env: dict[str, str]) -> None:
    data = Path(cli_env["XDG_DATA_HOME"]) / "parley"
    assert not data.exists()
    first = modes_while_chatting(cli_env, data)
    assert mode(data) == 0o700
    assert first == dict.fromkeys(WHILE_CHATTING, 0o600)

    # files left by an older version, readable by everyone: tightened on the next start
    for path in data.iterdir():
        path.chmod(0o644)
    again = modes_while_chatting(cli_env, data)
    assert again == dict.fromkeys(WHILE_CHATTING, 0o600)
    assert all(mode(path) == 0o600 for path in data.iterdir())
