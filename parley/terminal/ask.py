"""``parley ask "prompt"``: one exchange, for scripts and pipes.

Only the answer goes to stdout (each turn's text as it streams, then a newline); reasoning,
tool calls, notes and errors go to stderr. ``--json`` prints every event as one JSON line
instead (plus ``tool.start`` / ``tool.result`` lines for the client's tool calls).

Exit codes: 0 when the run completed, 1 when it failed, timed out or could not start,
2 for a usage error (no prompt, bad MCP config), 130 after Ctrl+C.

Confirmation needs a terminal: when stdin or stderr is not one, a call that needs it is
declined, and the model is told why (``chat.NO_TERMINAL``); a hosted MCP call that waits for
approval is denied, and stderr says so (``--confirm never`` approves it).
"""

from __future__ import annotations

import sys

from rich.console import Console

from parley.controls import clean
from parley.terminal.attach import attach_file
from parley.terminal.chat import ConversationProcessor, on_sigint
from parley.terminal.keys import quiet_input
from parley.terminal.output import JsonOutput, TerminalOutput, key_asker
from parley.terminal.session import (
    EXIT_FAILED,
    EXIT_USAGE,
    SETUP_ERRORS,
    ChatOptions,
    ServerStart,
    Session,
    setup_exit_code,
)
from parley.terminal.turns import ChatOutput, ExchangeResult

__all__ = ["exit_code", "run_ask"]

EXIT_INTERRUPTED = 130


def exit_code(result: ExchangeResult) -> int:
    if result.stopped == "interrupted":
        return EXIT_INTERRUPTED
    return 0 if result.ok else EXIT_FAILED


async def run_ask(
    options: ChatOptions,
    prompt: str | None,
    *,
    json_lines: bool = False,
    start_server: ServerStart | None = None,
) -> int:
    """Answer ``prompt`` (stdin when None or ``-``); the process exit code.
    ``start_server``: the server to start when the options name none."""
    err = Console(stderr=True, highlight=False)
    from_stdin = prompt is None or prompt == "-"
    text = sys.stdin.read() if from_stdin else prompt
    if not text or not text.strip():
        err.print("parley ask: nothing to ask (give a prompt, or text on stdin)", style="red")
        return EXIT_USAGE
    interactive = not from_stdin and sys.stdin.isatty() and sys.stderr.isatty()
    asker = key_asker(out=sys.stderr) if interactive else None
    output: ChatOutput
    if json_lines:
        output = JsonOutput(sys.stdout, sys.stderr, asker=asker)
    else:
        output = TerminalOutput(Console(highlight=False), err_console=err, asker=asker)

    def say(text: str, *, error: bool = False) -> None:
        line = f"✗ {clean(text)}" if error else clean(text)
        err.print(line, style="red" if error else "dim", markup=False, highlight=False)

    session = Session(options, start_server=start_server)
    try:
        try:
            await session.open()
            for path in options.files:
                await attach_file(session, path, say)
        except SETUP_ERRORS as exc:
            err.print(f"parley ask: {clean(str(exc))}", style="red", markup=False)
            return setup_exit_code(exc)
        for status in session.server_status():
            if not status.connected and status.state != "disabled":
                err.print(f"✗ MCP {clean(status.summary)}", style="yellow", markup=False)
        processor = ConversationProcessor(session, output)
        stdin = -1 if from_stdin else sys.stdin.fileno()
        with on_sigint(processor.interrupt), quiet_input(stdin):
            result = await processor.process_conversation(text.strip())
        return exit_code(result)
    finally:
        await session.aclose()
