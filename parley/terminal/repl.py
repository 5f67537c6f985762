"""``parley chat``: the terminal chat loop.

The prompt shows at once: the server (embedded or not), the MCP servers and the assistant
are set up in a background task, whose start-up lines appear above the prompt when it is
done (a message sent before that waits for it).

Keys: Enter sends; Alt+Enter, or Esc then Enter, starts a new line (pasted text keeps its
lines); Up/Down walk the history, kept in ``chat-history`` in the user data directory
(mode 0600, the directory 0700 when the chat makes it).
Ctrl+C while an answer streams stops it (the partial answer is kept); at the prompt,
Ctrl+C twice in a row, or Ctrl+D on an empty line, exits. While an exchange runs, the
terminal does not echo what is typed (it would be drawn into the live answer); the text is
kept and shows at the next prompt. A tool's confirmation question takes one key
(``output.key_asker``).

Without a terminal on stdin, each line of stdin is one message (or command).

A set-up that fails (server unreachable, API key refused, bad MCP config, unknown
``--thread``) is reported in one line and ends the chat. Exit codes: 0 when the user left,
1 when it could not start, 2 when the command line or MCP config must be fixed
(``SessionError``).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import shlex
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from parley.config import data_dir, make_private
from parley.controls import clean
from parley.errors import APIConnectionError, ParleyError
from parley.sdk.models import Message
from parley.terminal.attach import attach_file
from parley.terminal.chat import ConversationProcessor, on_sigint
from parley.terminal.keys import TypedAhead, quiet_input
from parley.terminal.output import TerminalOutput, key_asker
from parley.terminal.rendering import render_answer
from parley.terminal.session import (
    CONFIRM_MODES,
    SETUP_ERRORS,
    ChatOptions,
    ServerStart,
    Session,
    SessionError,
    setup_exit_code,
)

if TYPE_CHECKING:
    from parley.terminal.mcp_tools import ServerStatus

__all__ = ["COMMANDS", "ChatRepl", "history_path", "run_chat"]

HELP_KEYS = (
    "Enter sends · Alt+Enter (or Esc, Enter) new line · Ctrl+C stops an answer · "
    "Ctrl+C twice or Ctrl+D exits"
)
COMMANDS: dict[str, str] = {
    "/help": "this list",
    "/tools": "the MCP tools the assistant can call",
    "/servers": "the MCP servers and their state",
    "/model [NAME]": "show the model, or switch to provider/model NAME",
    "/models": "the server's providers and models",
    "/threads": "your recent threads",
    "/new": "start a new conversation",
    "/resume ID": "continue thread ID",
    "/history": "the messages of this conversation",
    "/attach PATH": "attach a file: the answers can search it",
    "/code [on|off]": "show, or turn on or off, the code interpreter (Python on the server)",
    "/clear": "clear the screen",
    "/export md|json FILE": "save this conversation to FILE",
    "/confirm [ask|always|never]": "show or set when tools ask before running",
    "/exit": "leave (also Ctrl+D)",
}
_EXPORT_FORMATS = ("md", "json")
PROMPT = "\u203a"  # a single right-pointing angle quote


def history_path() -> Path:
    return data_dir() / "chat-history"


async def run_chat(options: ChatOptions, *, start_server: ServerStart | None = None) -> int:
    """``parley chat``: the prompt loop until the user leaves; the process exit code.
    ``start_server``: the server to start when the options name none."""
    return await ChatRepl(options, start_server=start_server).run()


class _Exit(Exception):
    pass


class ChatRepl:
    """The prompt loop, the slash commands and the Ctrl+C handling of ``parley chat``."""

    def __init__(
        self,
        options: ChatOptions,
        console: Console | None = None,
        *,
        start_server: ServerStart | None = None,
    ) -> None:
        self.console = console or Console(highlight=False)
        self.session = Session(options, start_server=start_server)
        interactive = sys.stdin.isatty()
        #: Typed while an answer streamed and a tool question came: the next prompt's start.
        self.typed_ahead = TypedAhead()
        asker = key_asker(typed_ahead=self.typed_ahead) if interactive else None
        self.output = TerminalOutput(self.console, asker=asker)
        self.processor = ConversationProcessor(self.session, self.output)
        self._setup: asyncio.Task[None] | None = None
        self._command: asyncio.Task[Any] | None = None
        self._commands: dict[str, Callable[[list[str]], Awaitable[None]]] = {
            "/help": self._help,
            "/tools": self._tools,
            "/servers": self._servers,
            "/model": self._model,
            "/models": self._models,
            "/threads": self._threads,
            "/new": self._new,
            "/resume": self._resume,
            "/history": self._history,
            "/attach": self._attach,
            "/code": self._code,
            "/clear": self._clear,
            "/export": self._export,
            "/confirm": self._confirm,
            "/exit": self._exit,
            "/quit": self._exit,
        }

    # -------------------------------------------------------------------- loop

    async def run(self) -> int:
        self.console.print(
            Text.assemble(("Parley chat", "bold"), " · /help for commands · ", (HELP_KEYS, "dim"))
        )
        self._setup = asyncio.create_task(self._start())
        try:
            with on_sigint(self._on_sigint):
                if sys.stdin.isatty():
                    await self._prompt_loop()
                else:
                    await self._line_loop()
        finally:
            if not self._setup.done():
                self._setup.cancel()
            await asyncio.wait([self._setup])
            await self.session.aclose()
        failure = self._setup_failure()
        if failure is None:
            return 0
        if not isinstance(failure, SETUP_ERRORS):  # anything else is a bug: raised as it is
            raise failure
        return setup_exit_code(failure)

    async def _prompt_loop(self) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory
        from prompt_toolkit.key_binding import KeyBindings
        from prompt_toolkit.key_binding.key_processor import KeyPressEvent
        from prompt_toolkit.patch_stdout import patch_stdout

        keys = KeyBindings()

        @keys.add("escape", "enter")
        def _newline(event: KeyPressEvent) -> None:
            event.current_buffer.insert_text("\n")

        path = history_path()
        make_private(path, create=True)  # what the user typed is theirs only
        prompt: PromptSession[str] = PromptSession(
            history=FileHistory(str(path)), key_bindings=keys, prompt_continuation="  "
        )

        def leave_if_failed() -> None:
            """A failed set-up ends the prompt that waits (or the next one, at its start)."""
            future = prompt.app.future
            if self._setup_failure() is not None and future is not None and not future.done():
                prompt.app.exit(exception=EOFError)

        assert self._setup is not None
        self._setup.add_done_callback(lambda _: leave_if_failed())
        armed = False  # a Ctrl+C at the prompt: the next one exits
        while True:
            try:
                with patch_stdout(raw=True):
                    text = await prompt.prompt_async(
                        f"{PROMPT} ",
                        default=self.typed_ahead.take(),
                        handle_sigint=False,
                        pre_run=leave_if_failed,
                    )
            except KeyboardInterrupt:
                if armed:
                    return
                armed = True
                self.console.print("(Ctrl+C again, or Ctrl+D, to exit)", style="dim")
                continue
            except EOFError:
                return
            armed = False
            if not await self.handle(text):
                return

    async def _line_loop(self) -> None:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                return
            if not await self.handle(line):
                return

    async def handle(self, text: str) -> bool:
        """One input: a command or a message. False when the chat should end."""
        text = text.strip()
        if not text:
            return True
        try:
            if text.startswith("/"):
                await self._run_command(text)
            else:
                await self.send(text)
        except _Exit:
            return False
        return True

    async def send(self, text: str) -> None:
        await self._ready()
        with quiet_input(sys.stdin.fileno()):  # typed keys kept, but not drawn over the answer
            await self.processor.process_conversation(text)

    def _on_sigint(self) -> None:
        if self.processor.busy:
            self.processor.interrupt()
        elif self._command is not None and not self._command.done():
            self._command.cancel()

    # ------------------------------------------------------------------ set-up

    async def _start(self) -> None:
        try:
            await self.session.open()
        except asyncio.CancelledError:
            raise
        except SETUP_ERRORS as exc:
            text = str(exc)
            if isinstance(exc, ParleyError) and not isinstance(exc, APIConnectionError):
                text = f"{self.session.server_label}: {text}"  # which server said no
            self._print_error(f"could not start: {text}")
            raise
        self.console.print(self._startup_lines())
        try:
            for path in self.session.options.files:
                await attach_file(self.session, path, self._attach_line)
        except SETUP_ERRORS as exc:
            self._print_error(f"could not start: --file: {exc}")
            raise

    def _startup_lines(self) -> Text:
        session = self.session
        assistant = session.assistant
        lines = Text()
        lines.append("model ", style="dim")
        lines.append(clean(session.model), style="bold")
        if assistant is not None:
            lines.append(f" · assistant {clean(assistant.id)}", style="dim")
        lines.append(f" · {clean(session.server_label)}", style="dim")
        if session.thread_id:
            lines.append(f" · thread {clean(session.thread_id)}", style="dim")
        for status in session.server_status():
            lines.append("\n")
            lines.append_text(_status_line(status))
        return lines

    async def _ready(self) -> None:
        """Wait for the set-up; ``_Exit`` when it failed (the reason is printed by then)."""
        assert self._setup is not None
        if not self._setup.done():
            await asyncio.wait([self._setup])
        if self._setup.cancelled() or self._setup.exception() is not None:
            raise _Exit

    def _setup_failure(self) -> BaseException | None:
        """Why the set-up failed; None while it runs, when it worked or was cancelled."""
        setup = self._setup
        if setup is None or not setup.done() or setup.cancelled():
            return None
        return setup.exception()

    # ---------------------------------------------------------------- commands

    async def _run_command(self, text: str) -> None:
        try:
            words = shlex.split(text)
        except ValueError as exc:
            self._print_error(f"cannot read the command: {exc}")
            return
        name, args = words[0].lower(), words[1:]
        handler = self._commands.get(name)
        if handler is None:
            self._print_error(f"unknown command {name}; /help lists them")
            return
        if name in ("/help", "/exit", "/quit", "/clear"):
            await handler(args)
            return
        await self._ready()
        self._command = asyncio.create_task(self._guarded(handler(args)))
        try:
            await asyncio.wait([self._command])
            if not self._command.cancelled():
                self._command.result()
        finally:
            self._command = None

    async def _guarded(self, coro: Awaitable[None]) -> None:
        try:
            await coro
        except (ParleyError, SessionError, OSError) as exc:
            self._print_error(str(exc))

    async def _help(self, args: list[str]) -> None:
        table = Table.grid(padding=(0, 2))
        for command, what in COMMANDS.items():
            table.add_row(Text(command, style="bold"), Text(what))
        self.console.print(table)
        self.console.print(HELP_KEYS, style="dim")

    async def _tools(self, args: list[str]) -> None:
        hub = self.session.hub
        tools = hub.tools if hub is not None else []
        if not tools:
            self.console.print("no MCP tools (see --mcp-config)", style="dim")
            return
        table = Table.grid(padding=(0, 2))
        for tool in tools:
            summary = tool.description.strip().splitlines()[0] if tool.description else ""
            table.add_row(
                Text(clean(tool.name), style="bold"),
                Text(clean(tool.server), style="dim"),
                Text(clean(summary)),
            )
        self.console.print(table)

    async def _servers(self, args: list[str]) -> None:
        statuses = self.session.server_status()
        if not statuses:
            self.console.print("no MCP servers (see --mcp-config)", style="dim")
            return
        for status in statuses:
            self.console.print(_status_line(status))

    async def _model(self, args: list[str]) -> None:
        if args:
            assistant = await self.session.use_model(args[0])
            self._say(f"model {assistant.model} · assistant {assistant.id}")
        else:
            self._say(f"model {self.session.model}")

    async def _models(self, args: list[str]) -> None:
        client = self.session.client
        catalog = await client.models.list()
        for provider in catalog.get("providers", []):
            ready = provider.get("ready")
            line = Text.assemble(
                ("✓ " if ready else "- ", "green" if ready else "dim"),
                (clean(str(provider.get("name"))), "bold"),
                f"  {clean(str(provider.get('kind')))}",
            )
            if provider.get("problem"):
                line.append(f"  ({clean(str(provider['problem']))})", style="dim")
            self.console.print(line)
            for model in catalog.get("data", []):
                if model.get("provider") == provider.get("name"):
                    self._say(f"    {model.get('id')}")

    async def _threads(self, args: list[str]) -> None:
        page = await self.session.client.threads.list(limit=20, order="desc")
        if not page.data:
            self.console.print("no threads yet", style="dim")
        for thread in page.data:
            title = str(thread.metadata.get("title") or "")
            line = Text.assemble(
                (clean(thread.id), "bold"),
                "  ",
                (_when(thread.created_at), "dim"),
                "  ",
                clean(title),
            )
            if thread.id == self.session.thread_id:
                line.append("  (current)", style="green")
            self.console.print(line, no_wrap=True, overflow="ellipsis")

    async def _new(self, args: list[str]) -> None:
        self.session.new_thread()
        self.console.print("new conversation", style="dim")

    async def _resume(self, args: list[str]) -> None:
        if len(args) != 1:
            self._print_error("usage: /resume THREAD_ID")
            return
        thread = await self.session.resume(args[0])
        count = len(await self._messages())
        self._say(f"resumed {thread.id} ({count} messages; /history shows them)")

    async def _history(self, args: list[str]) -> None:
        messages = await self._messages()
        if not messages:
            self.console.print("nothing yet", style="dim")
        for message in messages:
            self._show_message(message)

    async def _attach(self, args: list[str]) -> None:
        if len(args) != 1:
            self._print_error("usage: /attach PATH")
            return
        await attach_file(self.session, Path(args[0]), self._attach_line)

    def _attach_line(self, text: str, *, error: bool = False) -> None:
        if error:
            self._print_error(text)
        else:
            self._say(text)

    async def _code(self, args: list[str]) -> None:
        """``/code on|off``: the assistant with or without the code interpreter."""
        options = self.session.options
        if args:
            if args[0] not in ("on", "off"):
                self._print_error("usage: /code on|off")
                return
            wanted = args[0] == "on"
            if options.assistant_id:
                self._print_error("--assistant chose the assistant: its tools stay as they are")
                return
            if wanted != options.code_interpreter:
                options.code_interpreter = wanted
                try:
                    await self.session.use_model(None)
                except (ParleyError, SessionError):
                    options.code_interpreter = not wanted
                    raise
        self._say(f"code interpreter: {'on' if options.code_interpreter else 'off'}")

    async def _clear(self, args: list[str]) -> None:
        self.console.clear()

    async def _export(self, args: list[str]) -> None:
        if len(args) != 2 or args[0] not in _EXPORT_FORMATS:
            self._print_error("usage: /export md|json FILE")
            return
        messages = await self._messages()
        if args[0] == "json":
            body = {
                "thread_id": self.session.thread_id,
                "model": self.session.model,
                "messages": [m.model_dump(mode="json") for m in messages],
            }
            text = json.dumps(body, indent=2, ensure_ascii=False) + "\n"
        else:
            text = export_markdown(self.session.thread_id, messages)
        path = await asyncio.to_thread(_write, args[1], text)
        self._say(f"saved {len(messages)} messages to {path}")

    async def _confirm(self, args: list[str]) -> None:
        if args:
            if args[0] not in CONFIRM_MODES:
                self._print_error("usage: /confirm ask|always|never")
                return
            self.session.options.confirm = args[0]  # type: ignore[assignment]
        self._say(f"confirm: {self.session.options.confirm}")

    async def _exit(self, args: list[str]) -> None:
        raise _Exit

    # ----------------------------------------------------------------- helpers

    async def _messages(self) -> list[Message]:
        thread_id = self.session.thread_id
        if thread_id is None:
            return []
        # Oldest first, tool calls and results too (the SDK's default).
        page = await self.session.client.messages.list(thread_id=thread_id, limit=100)
        return [message async for message in page.aiter_all()]

    def _show_message(self, message: Message) -> None:
        if message.role == "user":
            self.console.print(Text.assemble((f"{PROMPT} ", "bold cyan"), clean(message.text)))
        elif message.role == "tool":
            preview = " ".join(clean(message.text).split())[:200]
            self.console.print(Text.assemble(("  ↳ ", "dim"), (preview, "dim")))
        else:
            if message.text.strip():
                self.console.print(render_answer(message.text))
            for call in message.tool_calls:
                arguments = json.dumps(call.arguments, ensure_ascii=False)[:200]
                self.console.print(
                    Text.assemble(
                        ("▸ ", "cyan"), (clean(call.name), "bold"), f"({clean(arguments)})"
                    )
                )

    def _say(self, text: str) -> None:
        """One line that may quote what a server sent: cleaned, and never read as markup."""
        self.console.print(Text(clean(text)))

    def _print_error(self, text: str) -> None:
        self.console.print(Text(f"✗ {clean(text)}", style="red"))


def export_markdown(thread_id: str | None, messages: list[Message]) -> str:
    """A conversation as Markdown: one section per message."""
    parts = [f"# Parley conversation {thread_id or ''}".rstrip(), ""]
    for message in messages:
        if message.role == "tool":
            parts += [
                f"**tool result** (`{message.tool_call_id}`):",
                "",
                "```",
                message.text,
                "```",
                "",
            ]
            continue
        parts += [f"## {message.role}", ""]
        if message.text:
            parts += [message.text, ""]
        for call in message.tool_calls:
            arguments = json.dumps(call.arguments, ensure_ascii=False)
            parts += [f"- tool call `{call.name}` {arguments}", ""]
    return "\n".join(parts)


def _write(name: str, text: str) -> Path:
    path = Path(name).expanduser()
    path.write_text(text, encoding="utf-8")
    return path


def _when(timestamp: int) -> str:
    if not timestamp:
        return ""
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def _status_line(status: ServerStatus) -> Text:
    """``✓ files: 12 tools``, ``- old: disabled`` or ``✗ web: failed: why``."""
    if status.connected:
        mark = ("✓ ", "green")
    elif status.state == "disabled":
        mark = ("- ", "dim")
    else:
        mark = ("✗ ", "red")
    return Text.assemble(mark, clean(status.summary))
