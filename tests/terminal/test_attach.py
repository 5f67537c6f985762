"""Files in the terminal client: ``parley chat --file``, ``/attach PATH`` and ``parley ask
--file``. Each file is uploaded to the suite's real server, indexed by its ingestion worker,
and searched with ``file_search`` in the turns after (the demo model calls it when the
message names it); the search shows as a block: its queries, then each passage's file and
first line."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from rich.console import Console

from parley.events import HostedToolEvent
from parley.terminal.output import TerminalOutput
from parley.terminal.repl import PROMPT
from tests.terminal.conftest import STARTED, StartChat, parley

#: Between two lines printed while the prompt waits: the prompt drawn again, then a backspace.
GAP = rf"[\s{re.escape(PROMPT.strip())}\x08]+"
HERON = "The launch of the Heron rocket is on Tuesday,\nfrom the north harbour.\n"


def test_chat_attaches_files_and_searches_them(start_chat: StartChat, tmp_path: Path) -> None:
    heron = tmp_path / "heron.txt"
    heron.write_text(HERON)
    (tmp_path / "crane.txt").write_text("Cranes nest by the river.\n")
    term = start_chat("--file", str(heron))
    term.expect(STARTED)
    ready = term.expect(rf"indexing heron\.txt \(\d+ B\)…{GAP}✓ heron\.txt ready")
    at = term.expect(PROMPT, since=ready.end()).end()

    term.write(f"/attach {tmp_path / 'nowhere.txt'}\r")
    missing = term.expect(r"✗ no file at \S*nowhere\.txt", since=at)
    term.write(f"/attach {tmp_path / 'crane.txt'}\r")
    at = term.expect(r"✓ crane\.txt ready", since=missing.end()).end()

    term.write("file_search Heron launch\r")
    # The block's lines, in order (the live status line is drawn between them); a passage
    # shows its first line only.
    at = term.expect(r'⚙ file_search "Heron launch"\n', since=at).end()
    at = term.expect(r"✓ file_search  1 passage\n", since=at).end()
    at = term.expect(
        r"    heron\.txt  The launch of the Heron rocket is on Tuesday,\n", since=at
    ).end()
    term.expect(r"in / \d+ out tokens", since=at)


def test_ask_with_a_file(
    cli_env: dict[str, str], server: Any, user_key: str, tmp_path: Path
) -> None:
    heron = tmp_path / "heron.txt"
    heron.write_text(HERON)
    connect = ("--server", server.base_url, "--api-key", user_key)
    # --no-stream: the search shows from the turn's items, before the answer.
    asked = ("--no-stream", "--file", str(heron), "file_search Heron launch")
    done = parley("ask", *connect, *asked, env=cli_env)
    assert done.returncode == 0, done.stderr
    assert re.search(r"✓ heron\.txt ready", done.stderr), done.stderr
    assert re.search(r"✓ file_search\s+\d+ passages?\s+heron\.txt\s+The launch", done.stderr)
    assert "heron.txt" in done.stdout  # the demo's answer quotes what the search found

    missing = parley("ask", *connect, "--file", str(tmp_path / "nope.txt"), "hi", env=cli_env)
    assert missing.returncode == 2
    assert "no file at" in missing.stderr


def test_a_search_that_failed_and_hostile_passages_show_as_text() -> None:
    """The block as a pure consumer of events: a failed search is a red line with its
    error; a passage's escape sequences never reach the terminal."""
    out = io.StringIO()
    output = TerminalOutput(
        Console(file=out, width=80, color_system=None), err_console=Console(file=out), plain=True
    )
    item: dict[str, Any] = {"type": "file_search_call", "id": "fs_1", "queries": ["q"]}
    output.begin()
    output.event(HostedToolEvent(run_id="run_1", phase="started", item=item))
    hostile = {"file_id": "file-1", "filename": "a\x1b]0;pwned\x07.txt", "text": "\x1b[2Jhi"}
    output.event(HostedToolEvent(run_id="run_1", phase="done", item={**item, "results": [hostile]}))
    output.event(
        HostedToolEvent(
            run_id="run_1",
            phase="done",
            item={**item, "status": "failed", "error": "the store is gone", "results": None},
        )
    )
    shown = out.getvalue()
    assert "\x1b" not in shown
    assert re.search(r'⚙ file_search "q"\n✓ file_search  1 passage\n    a\.txt  hi\n', shown)
    assert "✗ file_search  the store is gone" in shown
