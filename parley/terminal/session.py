"""What a terminal session needs before its first turn: a server, the MCP tools, an assistant
and a thread. Shared by ``parley chat`` and ``parley ask``.

    ChatOptions (the command line)
      └─ Session.open()
           ├─ the server: --server / PARLEY_BASE_URL, else the one the command   ┐ at the
           │              gives it to start (``ServerStart``: the embedded server)  │ same
           ├─ the tools:  the MCP config's servers, started by a ToolHub         ┘ time
           └─ the assistant: --assistant ID, else ours for --model with the MCP tools
              (and an ``mcp`` tool per --hosted-mcp server, and the code interpreter with
              --code-interpreter, which the Parley server runs)

The assistant made for a model is reused from one session to the next when the model and
the tools are the same (it is marked ``{"client": "parley chat"}`` in its metadata), so a
session adds no assistant to the account unless something changed. A thread is created with
the first message (its metadata holds the message's start as a ``title``), unless
``--thread`` resumes one.

Heavy imports (the MCP SDK) happen inside ``open()``, in a worker thread, so the REPL can
draw its prompt while they load; the MCP config is read before, with the standard library
(``mcp_config``), so a broken file is reported without that wait.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, get_args

from parley.client_settings import ClientSettings
from parley.errors import NotFound, ParleyError
from parley.mcp.spec import HostedSpecError, hosted_mcp_tool
from parley.sdk import AsyncClient
from parley.sdk.models import Assistant, Thread, ToolDefinition
from parley.terminal.hosted import hosted_key
from parley.terminal.mcp_config import (
    ConfirmMode,
    MCPConfigError,
    default_mcp_config_path,
    load_mcp_config,
)

if TYPE_CHECKING:
    from parley.terminal.mcp_tools import ServerStatus, ToolHub

__all__ = [
    "CODE_INTERPRETER_TOOL",
    "DEFAULT_MODEL",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "SETUP_ERRORS",
    "ChatOptions",
    "ServerStart",
    "ServerStartError",
    "Session",
    "SessionError",
    "setup_exit_code",
]

DEFAULT_MODEL = "demo/parley"
CLIENT_TAG = "parley chat"
CONFIRM_MODES: tuple[ConfirmMode, ...] = get_args(ConfirmMode)
INSTRUCTIONS = (
    "You are a helpful assistant in a terminal chat. Answer in Markdown. Use the tools when "
    "they help."
)
_TITLE_CHARS = 80
#: The assistant's code interpreter (``--code-interpreter``, ``/code``): the model's Python
#: runs on the Parley server, in the thread's own container (made at its first call).
CODE_INTERPRETER_TOOL: dict[str, Any] = {"type": "code_interpreter", "container": {"type": "auto"}}
#: A session's store expires a week after it was last searched or given a file.
STORE_EXPIRY = {"anchor": "last_active_at", "days": 7}


class SessionError(Exception):
    """The session cannot start (bad MCP config, unknown thread, server down, ...); the
    message says what to fix."""


class ServerStartError(Exception):
    """The server the command gave the session to start did not start; the message says
    why."""


class ServerStart(Protocol):
    """A Parley server the session starts when its options name none (``parley chat``
    without ``--server``: the command's embedded server, ``cli.chat_server``). ``await
    start()`` (it raises ``ServerStartError`` when the server does not start), then
    ``base_url`` and ``api_key``; ``await aclose()`` stops it."""

    @property
    def base_url(self) -> str: ...

    @property
    def api_key(self) -> str: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


#: Exit codes of ``parley chat`` / ``parley ask``: it could not start (or the run failed);
#: the command line or the MCP config must be fixed (``SessionError``).
EXIT_FAILED = 1
EXIT_USAGE = 2
#: What ``Session.open()`` raises for a set-up that failed, told to the user in one line.
SETUP_ERRORS = (SessionError, ServerStartError, ParleyError)


def setup_exit_code(exc: BaseException) -> int:
    """The exit code of a session that could not start because of ``exc``."""
    return EXIT_USAGE if isinstance(exc, SessionError) else EXIT_FAILED


@dataclass
class ChatOptions:
    """The flags of ``parley chat`` / ``parley ask``; ``model``, ``confirm`` and ``stream``
    may change during a chat (``/model``, ``/confirm``)."""

    server: str | None = None
    api_key: str | None = None
    model: str | None = None
    assistant_id: str | None = None
    thread_id: str | None = None
    mcp_config: Path | None = None
    mcp_servers: tuple[str, ...] = ()
    #: ``--hosted-mcp`` SPECs: MCP servers the Parley server runs for the assistant
    #: (``parley.mcp.spec``).
    hosted_mcp: tuple[str, ...] = ()
    #: ``--file`` PATHs: attached before the first message, searched with ``file_search``.
    files: tuple[Path, ...] = ()
    #: ``--code-interpreter`` (``/code`` in a chat): the assistant has the code interpreter.
    code_interpreter: bool = False
    confirm: ConfirmMode = "ask"
    max_parallel_tools: int = 4
    tool_timeout: float = 120.0
    first_chunk_timeout: float = 60.0
    idle_timeout: float = 45.0
    turn_timeout: float = 300.0
    stream: bool = True


class Session:
    """The connection, the tool hub and the assistant of one chat; ``await open()`` first,
    ``await aclose()`` at the end (or ``async with``). ``start_server``: the server to start
    when the options name none (without one, they must name a server)."""

    def __init__(self, options: ChatOptions, *, start_server: ServerStart | None = None) -> None:
        self.options = options
        self._start_server = start_server
        #: The server this session started (``start_server``), while it runs.
        self.started: ServerStart | None = None
        self.hub: ToolHub | None = None
        self.assistant: Assistant | None = None
        self.thread_id: str | None = options.thread_id
        #: The assistant's ``mcp`` tools, from ``--hosted-mcp``.
        self.hosted_tools: list[dict[str, Any]] = []
        #: The session's vector store, made with its first attached file (``attach``).
        self.vector_store_id: str | None = None
        self._client: AsyncClient | None = None

    @property
    def client(self) -> AsyncClient:
        if self._client is None:
            raise RuntimeError("Session.open() has not run")
        return self._client

    @property
    def model(self) -> str:
        if self.assistant is not None:
            return self.assistant.model
        return self.options.model or DEFAULT_MODEL

    @property
    def server_label(self) -> str:
        if self.started is not None:
            return f"embedded server at {self.started.base_url}"
        return self.client.base_url if self._client is not None else "(not connected)"

    async def __aenter__(self) -> Session:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Connect (starting the server it was given if the options name none) and start the MCP servers at
        the same time, then pick the assistant and check the thread.

        Raises:
            SessionError: something the user must fix; ``ParleyError`` from the server.
        """
        try:
            self.hosted_tools = [hosted_mcp_tool(spec) for spec in self.options.hosted_mcp]
        except HostedSpecError as exc:
            raise SessionError(str(exc)) from None
        connecting = asyncio.create_task(self._connect())
        try:
            await self._start_hub()
        finally:
            await asyncio.wait([connecting])  # never leave the server start half done
        connecting.result()
        if self.options.thread_id:
            await self._check_thread(self.options.thread_id)
        await self.use_model(self.options.model, assistant_id=self.options.assistant_id)

    async def aclose(self) -> None:
        """Close the client, the MCP servers and the server the session started."""
        try:
            if self._client is not None:
                await self._client.aclose()
            if self.hub is not None:
                await self.hub.aclose()
        finally:
            if self.started is not None:
                await self.started.aclose()

    # ------------------------------------------------------------------ pieces

    async def _connect(self) -> None:
        opts = self.options
        base_url, api_key = ClientSettings.chosen_server(opts.server, opts.api_key)
        if base_url is None:
            if self._start_server is None:
                raise SessionError("no server: give --server URL (or set PARLEY_BASE_URL)")
            self.started = self._start_server
            await self.started.start()
            base_url, api_key = self.started.base_url, self.started.api_key
        try:
            self._client = AsyncClient(base_url=base_url, api_key=api_key or "")
        except ValueError as exc:  # an address no request could go to
            raise SessionError(str(exc)) from None

    async def _start_hub(self) -> None:
        opts = self.options
        path = opts.mcp_config or default_mcp_config_path()
        try:
            specs = load_mcp_config(path, missing_ok=opts.mcp_config is None)
        except MCPConfigError as exc:
            raise SessionError(f"MCP config: {exc}") from None
        unknown = [name for name in opts.mcp_servers if name not in specs]
        if unknown:
            known = ", ".join(specs) or "none"
            raise SessionError(
                f"--mcp-server {', '.join(unknown)}: not in {path} (servers there: {known})"
            )
        if not specs:
            return  # no MCP server at all: the MCP SDK is never imported
        # Import the MCP SDK off the event loop: it takes a good part of a second.
        await asyncio.to_thread(importlib.import_module, "parley.terminal.mcp_tools")
        from parley.terminal.mcp_tools import ToolHub

        hub = ToolHub(default_timeout=opts.tool_timeout)
        self.hub = hub
        await hub.start(specs, only=opts.mcp_servers or None)

    async def _check_thread(self, thread_id: str) -> Thread:
        try:
            return await self.client.threads.retrieve(thread_id)
        except NotFound:
            raise SessionError(f"no thread {thread_id!r} on this server") from None

    # ------------------------------------------------------------ what changes

    def server_status(self) -> list[ServerStatus]:
        return [] if self.hub is None else list(self.hub.status.values())

    def tool_specs(self) -> list[dict[str, Any]]:
        """The assistant's tools: the MCP hub's functions, then the hosted MCP servers, then
        ``file_search`` over the session's files once it has some, then the code
        interpreter when it is on."""
        local = [] if self.hub is None else self.hub.tool_specs()
        search = []
        if self.vector_store_id is not None:
            search = [{"type": "file_search", "vector_store_ids": [self.vector_store_id]}]
        code = [dict(CODE_INTERPRETER_TOOL)] if self.options.code_interpreter else []
        return [*local, *self.hosted_tools, *search, *code]

    async def file_store(self) -> str:
        """The session's vector store: made with its first file, and the assistant switched
        to one that searches it (unless ``--assistant`` chose the assistant)."""
        if self.vector_store_id is None:
            store = await self.client.vector_stores.create(
                name="parley chat", metadata={"client": CLIENT_TAG}, expires_after=STORE_EXPIRY
            )
            self.vector_store_id = store.id
            if not self.options.assistant_id:
                await self.use_model(None)
        return self.vector_store_id

    async def use_model(self, model: str | None, *, assistant_id: str | None = None) -> Assistant:
        """Switch to ``assistant_id`` as it is, or to our assistant for ``model`` (the current
        model when None) with the MCP tools, reused when one matches."""
        if assistant_id:
            try:
                assistant = await self.client.assistants.retrieve(assistant_id)
            except NotFound:
                raise SessionError(f"no assistant {assistant_id!r} on this server") from None
        else:
            wanted = model or self.model
            tools = self.tool_specs()
            assistant = await self._find_assistant(wanted, tools) or (
                await self.client.assistants.create(
                    name=f"{CLIENT_TAG} ({wanted})",
                    model=wanted,
                    instructions=INSTRUCTIONS,
                    tools=tools,
                    metadata={"client": CLIENT_TAG},
                )
            )
        self.assistant = assistant
        self.options.model = assistant.model
        return assistant

    async def _find_assistant(
        self, model: str, tools: Sequence[Mapping[str, Any]]
    ) -> Assistant | None:
        page = await self.client.assistants.list(limit=100, order="desc")
        wanted = [_tool_key(t) for t in tools]
        for assistant in page.data:
            if (
                assistant.metadata.get("client") == CLIENT_TAG
                and assistant.model == model
                and assistant.instructions == INSTRUCTIONS
                and [_stored_key(t) for t in assistant.tools] == wanted
            ):
                return assistant
        return None

    async def ensure_thread(self, first_message: str) -> str:
        """The current thread's id; a new thread titled after ``first_message`` if none."""
        if self.thread_id is None:
            title = " ".join(first_message.split())[:_TITLE_CHARS]
            thread = await self.client.threads.create(
                metadata={"title": title, "client": CLIENT_TAG}
            )
            self.thread_id = thread.id
        return self.thread_id

    def new_thread(self) -> None:
        """Start a new conversation with the next message."""
        self.thread_id = None

    async def resume(self, thread_id: str) -> Thread:
        thread = await self._check_thread(thread_id)
        self.thread_id = thread.id
        return thread


def _stored_key(tool: ToolDefinition) -> tuple[str, str, str]:
    if tool.type in ("mcp", "file_search", "code_interpreter"):
        return _tool_key(tool.model_dump())
    return _tool_key((tool.function or tool).model_dump())


def _tool_key(spec: Mapping[str, Any]) -> tuple[str, str, str]:
    if spec.get("type") == "mcp":
        return hosted_key(spec)
    if spec.get("type") == "file_search":
        return ("file_search", "", json.dumps(spec.get("vector_store_ids") or []))
    if spec.get("type") == "code_interpreter":
        return ("code_interpreter", "", "")
    return (
        str(spec.get("name", "")),
        str(spec.get("description") or ""),
        json.dumps(spec.get("parameters") or {}, sort_keys=True),
    )
