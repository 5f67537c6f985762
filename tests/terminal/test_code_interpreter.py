"""The code interpreter in the terminal: ``parley ask --code-interpreter`` and ``parley chat``
(``--code-interpreter``, ``/code``) against the suite's real server, whose sandbox runs the
code. The demo model calls ``python`` with the text after the word. While a call runs, its
code shows as a block; when it ends, its logs under it, ``[figure: PATH]`` per figure, the
files it wrote, and its error. Also the display of an item alone, on a capture console."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from parley.events import HostedToolEvent
from parley.terminal.display import StreamView
from parley.terminal.hosted_cards import code_shown
from parley.terminal.output import TerminalOutput
from parley.terminal.repl import PROMPT
from tests.harness import ParleyServer
from tests.terminal.conftest import STARTED, StartChat, parley

PLOT = (
    "python import matplotlib.pyplot as plt; plt.plot([1, 3, 2]); "
    "open('out.csv', 'w').write('a,b\\n1,2\\n'); print(6*7)"
)


def ask(server: Any, key: str, env: dict[str, str], *args: str) -> Any:
    done = parley("ask", "--server", server.base_url, "--api-key", key, *args, env=env, timeout=90)
    assert done.returncode == 0, done.stderr
    return done


def test_ask_shows_the_code_its_output_figure_and_file(
    server: Any, user_key: str, cli_env: dict[str, str]
) -> None:
    for extra in ([], ["--no-stream"]):
        done = ask(server, user_key, cli_env, "--code-interpreter", *extra, PLOT)
        err = done.stderr
        assert "⚙ python · code interpreter" in err, err
        code = "    import matplotlib.pyplot as plt; plt.plot([1, 3, 2]); open('out.csv', 'w')"
        assert code in err
        shown = err[err.index("⚙ python") :]
        assert re.search(r"✓ python  1 line of output\n    42\n", shown), shown
        assert re.search(r"    \[figure: /mnt/data/figure-\w+\.png\]\n", shown), shown
        assert "    files written: /mnt/data/out.csv (8 bytes)\n" in shown
        assert "42" in done.stdout  # the model was told what was printed


def test_ask_shows_an_error_and_without_the_flag_no_tool(
    server: Any, user_key: str, cli_env: dict[str, str]
) -> None:
    done = ask(server, user_key, cli_env, "--code-interpreter", "python 1/0")
    assert "✗ python  error" in done.stderr
    assert "    ZeroDivisionError: division by zero" in done.stderr

    done = ask(server, user_key, cli_env, "python print(6*7)")
    assert "⚙ python" not in done.stderr
    assert "42" not in done.stdout


def test_chat_runs_code_and_code_toggles_it(start_chat: StartChat) -> None:
    chat = start_chat("--code-interpreter")
    ready = chat.expect(STARTED, timeout=60)
    chat.expect(PROMPT, since=ready.end())

    mark = chat.mark()
    chat.write("python x = 6*7; print(x)\r")
    chat.expect(r"⚙ python · code interpreter", since=mark)
    chat.expect(r"x = 6\*7; print\(x\)", since=mark)
    chat.expect(r"✓ python  1 line of output", since=mark)
    chat.expect(r" {4}42", since=mark)
    chat.expect(r"in / \d+ out tokens", since=mark)

    # The same container: the variable is still there.
    mark = chat.mark()
    chat.write("python print(x + 1)\r")
    chat.expect(r"✓ python  1 line of output", since=mark)
    chat.expect(r" {4}43", since=mark)
    chat.expect(r"in / \d+ out tokens", since=mark)

    mark = chat.mark()
    chat.write("/code off\r")
    chat.expect("code interpreter: off", since=mark)
    mark = chat.mark()
    chat.write("python print(x)\r")
    chat.expect(r"in / \d+ out tokens", since=mark)
    assert "⚙ python" not in chat.screen[mark:]

    mark = chat.mark()
    chat.write("/code on\r")
    said = chat.expect("code interpreter: on", since=mark)
    chat.expect(PROMPT, since=said.end())  # Ctrl-D once the prompt is back
    chat.write("\x04")
    assert chat.wait(15) == 0


@pytest.fixture(scope="module")
def no_code_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """A server whose operator switched the code interpreter off: it refuses the tool."""
    tmp: Path = tmp_path_factory.mktemp("no-code")
    srv = ParleyServer(
        database_url=f"sqlite:///{tmp / 'parley.db'}",
        workdir=tmp,
        env={"PARLEY_CODE_INTERPRETER_ENABLED": "false"},
    ).start()
    yield srv
    srv.stop()
    srv.assert_clean_log()


def test_a_server_that_cannot_run_code_says_why(
    no_code_server: ParleyServer, cli_env: dict[str, str]
) -> None:
    key = no_code_server.new_user()
    args = ("--server", no_code_server.base_url, "--api-key", key)
    done = parley("ask", *args, "--code-interpreter", "python print(1)", env=cli_env)
    assert done.returncode == 1
    assert "switched the code interpreter off" in done.stderr
    assert "Traceback" not in done.stderr

    # In a chat, /code on says why and stays off; the chat goes on.
    done = parley("chat", *args, env=cli_env, input="/code on\n/code\npython print(1)\n")
    assert done.returncode == 0, done.stderr
    assert "switched the code interpreter off" in done.stdout
    assert "code interpreter: off" in done.stdout
    assert "⚙ python" not in done.stderr + done.stdout
    assert 'you said "python print(1)"' in done.stdout


# ---------------------------------------------------------------- the display alone


def _item(**fields: Any) -> dict[str, Any]:
    return {
        "type": "code_interpreter_call",
        "id": "ci_1",
        "status": "completed",
        "code": "print(1)",
        "container_id": "cntr_1",
        "outputs": [],
        "files": [],
        **fields,
    }


def test_an_error_appended_to_the_logs_shows_once_and_apart() -> None:
    error = "Traceback (most recent call last):\nValueError: no"
    item = _item(outputs=[{"type": "logs", "logs": f"before\n{error}"}], error=error)
    shown = code_shown(item)
    assert (shown.ok, shown.summary, shown.logs, shown.error) == (False, "error", "before", error)

    failed = code_shown(_item(status="failed", error="the sandbox is not available"))
    assert (failed.ok, failed.summary, failed.error) == (
        False,
        "not run",
        "the sandbox is not available",
    )
    restarted = code_shown(_item(outputs=[{"type": "logs", "logs": "1\n"}], restarted=True))
    assert not restarted.ok
    assert "earlier variables are gone" in restarted.error


def test_the_display_of_a_call_is_escaped_and_long_logs_are_cut() -> None:
    out = io.StringIO()
    console = Console(file=out, width=100, height=20, color_system=None)
    output = TerminalOutput(console, plain=False)
    output.begin()
    logs = "".join(f"line {n}\n" for n in range(100)) + "\x1b]0;title\x07end"
    started = _item(status="in_progress", code="print('\x1b[2Jhi')", outputs=None)
    output.event(HostedToolEvent(run_id="run_1", phase="started", item=started))
    done = _item(
        code="print('\x1b[2Jhi')",
        outputs=[
            {"type": "logs", "logs": logs},
            {"type": "image", "url": "data:image/png;base64,AAAA", "file_id": "cfile_img"},
        ],
        files=[
            {
                "file_id": "cfile_img",
                "path": "/mnt/data/fig.png",
                "filename": "fig.png",
                "bytes": 4,
            },
            {
                "file_id": "cfile_csv",
                "path": "/mnt/data/out.csv",
                "filename": "out.csv",
                "bytes": 8,
            },
        ],
    )
    output.event(HostedToolEvent(run_id="run_1", phase="done", item=done))
    view = output.view
    assert isinstance(view, StreamView)
    view.finish()
    text = out.getvalue()
    assert "\x1b[2J" not in text and "\x1b]0;" not in text
    assert "print('hi')" in text
    assert "line 39" in text and "line 40" not in text
    assert "… 61 more lines" in text
    assert "[figure: /mnt/data/fig.png]" in text
    assert "files written: /mnt/data/out.csv (8 bytes)" in text
