"""What the web app does on the Parley server, through the SDK only.

``Backend`` holds the app's ``parley.sdk.Client``, its tools and its default model. It finds
(or creates) the app's one assistant, and it keeps the sessions apart: a thread is this
session's when its metadata carries the session's owner tag; anything else answers
``NotFound``, exactly as an unknown id does.

``problem_of`` turns an SDK error into what the browser is told.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from parley.errors import (
    APIConnectionError,
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    ParleyError,
    PayloadTooLarge,
    PermissionDenied,
)
from parley.events import ActionItem
from parley.sdk import Client
from parley.sdk.models import Assistant, Run, Thread
from parley.sdk.tools import ToolRegistry
from parley.types import RunStatus
from parley.web.attachments import DEFAULT_MAX_UPLOAD_BYTES, Attachments, file_search_tool
from parley.web.security import same_tag

__all__ = [
    "ASSISTANT_NAME",
    "CODE_INTERPRETER_TOOL",
    "DEFAULT_MODEL",
    "EXTENSION",
    "Backend",
    "Problem",
    "problem_of",
]

#: Where the app keeps its ``Backend``: ``app.extensions[EXTENSION]``.
EXTENSION = "parley_web"
DEFAULT_MODEL = "demo/parley"
ASSISTANT_NAME = "Parley web"
CLIENT_TAG = "parley web"
OWNER_KEY = "web_session"
DEFAULT_TITLE = "New chat"
TITLE_CHARS = 60
#: The tool of the conversation's runs that runs the model's Python on the Parley server, in
#: the conversation's own container (made at its first call).
CODE_INTERPRETER_TOOL: dict[str, Any] = {"type": "code_interpreter", "container": {"type": "auto"}}
INSTRUCTIONS = (
    "You are a helpful assistant in a browser chat. Answer in Markdown. Use the tools when "
    "they help: current_time for dates and times, calculator for arithmetic."
)


@dataclass(frozen=True, slots=True)
class Problem:
    """An error as the browser sees it: HTTP status, ``type`` and a message to show."""

    status: int
    type: str
    message: str

    def body(self) -> dict[str, Any]:
        return {"error": {"type": self.type, "message": self.message}}


def problem_of(exc: ParleyError, base_url: str) -> Problem:
    """What to tell the browser about an SDK error (never internal text)."""
    if isinstance(exc, APIConnectionError):
        return Problem(502, "server_unreachable", f"Cannot reach the Parley server at {base_url}.")
    if isinstance(exc, AuthenticationFailed | PermissionDenied):
        return Problem(
            502,
            "server_auth_failed",
            f"The Parley server at {base_url} refused the web app's API key.",
        )
    if isinstance(exc, NotFound):
        return Problem(404, "not_found", exc.message)
    if isinstance(exc, Conflict):
        return Problem(409, exc.code, exc.message)
    if isinstance(exc, InvalidRequest | PayloadTooLarge):  # 400, 413, 422
        # The class's status, not the server's: a failed validation is a 422 here whether
        # the server answered it on its own paths (422) or on the Assistants paths (400).
        return Problem(type(exc).status_code, exc.error_type, exc.message)
    return Problem(502, "server_error", f"The Parley server failed: {exc.message}")


def title_of(text: str) -> str:
    """A thread title: the first words of ``text`` on one line, at most ~60 characters."""
    flat = " ".join(text.split())
    if len(flat) <= TITLE_CHARS:
        return flat or DEFAULT_TITLE
    return flat[: TITLE_CHARS - 1].rstrip() + "…"


def thread_public(thread: Thread) -> dict[str, Any]:
    title = thread.metadata.get("title")
    return {
        "id": thread.id,
        "title": title if isinstance(title, str) and title else DEFAULT_TITLE,
        "created_at": thread.created_at,
    }


class Backend:
    """The Parley side of the web app; safe to use from many request threads at once."""

    def __init__(
        self,
        client: Client,
        tools: ToolRegistry,
        default_model: str,
        *,
        owns_client: bool,
        all_threads: bool = False,
        hosted: Sequence[Mapping[str, Any]] = (),
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        code_interpreter: bool = False,
    ) -> None:
        self.client = client
        #: The conversations' files, and the largest one the page takes.
        self.attachments = Attachments(client)
        self.max_upload_bytes = max_upload_bytes
        self.owns_client = owns_client
        #: Every session sees every thread of the API key (``create_app(all_threads=True)``).
        self.all_threads = all_threads
        self.tools = tools
        #: The ``mcp`` tools the server runs for the assistant (``parley.mcp.spec``).
        self.hosted = [dict(tool) for tool in hosted]
        self.default_model = default_model
        #: The runs offer ``CODE_INTERPRETER_TOOL`` (until the server refuses it: then
        #: ``code_refused`` says why and the page goes on without it).
        self.code_interpreter = code_interpreter
        self.code_refused: str | None = None
        self._lock = threading.Lock()
        self._assistant_id: str | None = None

    @property
    def base_url(self) -> str:
        return self.client.base_url

    # ------------------------------------------------------------------ assistant

    def assistant_id(self) -> str:
        """The app's assistant: found by name (its tools brought up to date) or created."""
        with self._lock:
            if self._assistant_id is None:
                self._assistant_id = self._find_or_create_assistant().id
            return self._assistant_id

    def forget_assistant(self) -> None:
        """Look the assistant up again next time (it was deleted behind our back)."""
        with self._lock:
            self._assistant_id = None

    def _find_or_create_assistant(self) -> Assistant:
        tools: list[dict[str, Any]] = [*self.tools.definitions(), *self.hosted]
        for assistant in self.client.assistants.list(limit=100, order="desc").iter_all():
            if assistant.name != ASSISTANT_NAME or assistant.metadata.get("client") != CLIENT_TAG:
                continue
            current = [(t.function or t).model_dump(exclude_none=True) for t in assistant.tools]
            if _tool_keys(current) != _tool_keys(tools) or assistant.instructions != INSTRUCTIONS:
                assistant = self.client.assistants.update(
                    assistant.id, tools=tools, instructions=INSTRUCTIONS
                )
            return assistant
        return self.client.assistants.create(
            name=ASSISTANT_NAME,
            model=self.default_model,
            instructions=INSTRUCTIONS,
            tools=tools,
            metadata={"client": CLIENT_TAG},
        )

    def run_tools(self, thread: Thread | None) -> list[dict[str, Any]] | None:
        """The tools of a run of ``thread``: the assistant's, ``file_search`` over the
        conversation's files once it has some, and the code interpreter when offered;
        None (the assistant's as they are) when neither is."""
        search = file_search_tool(thread)
        code = [dict(CODE_INTERPRETER_TOOL)] if self.code_interpreter else []
        if search is None and not code:
            return None
        return [*self.tools.definitions(), *self.hosted, *([search] if search else []), *code]

    def code_interpreter_refused(
        self, exc: ParleyError, tools: Sequence[Mapping[str, Any]] | None
    ) -> bool:
        """Whether ``exc`` is the server refusing the code interpreter among ``tools`` (a
        400 ``unsupported_parameter`` naming its ``tools[i].type``: this server cannot run
        it). If so, the runs no longer offer it, and ``code_refused`` says why."""
        if not (isinstance(exc, InvalidRequest) and exc.code == "unsupported_parameter"):
            return False
        named = [
            f"tools[{i}].type"
            for i, tool in enumerate(tools or ())
            if tool.get("type") == "code_interpreter"
        ]
        if exc.param not in named:
            return False
        with self._lock:
            self.code_interpreter = False
            self.code_refused = exc.message
        return True

    # ------------------------------------------------------------------- threads

    def create_thread(self, owner: str, title: str) -> Thread:
        metadata = {"client": CLIENT_TAG, OWNER_KEY: owner, "title": title}
        return self.client.threads.create(metadata=metadata)

    def owned_thread(self, thread_id: str, owner: str) -> Thread:
        """The thread if it is this owner's (any thread of the key with ``all_threads``).

        Raises:
            NotFound: unknown, or another session's.
        """
        thread = self.client.threads.retrieve(thread_id)
        if not self.all_threads and not same_tag(thread.metadata.get(OWNER_KEY), owner):
            raise NotFound(f"No thread found with id {thread_id!r}.")
        return thread

    def owned_run(self, run_id: str, owner: str) -> Run:
        """The run if its thread is this owner's (``NotFound`` otherwise)."""
        run = self.client.runs.retrieve(run_id)
        try:
            self.owned_thread(run.thread_id, owner)
        except NotFound:
            raise NotFound(f"No run found with id {run_id!r}.") from None
        return run

    def threads_of(self, owner: str) -> list[Thread]:
        """This owner's threads, newest first (the server filters them by metadata); with
        ``all_threads``, every thread of the key."""
        if self.all_threads:
            return list(self.client.threads.list(limit=100, order="desc").iter_all())
        pages = self.client.threads.list(limit=100, order="desc", metadata={OWNER_KEY: owner})
        return [t for t in pages.iter_all() if same_tag(t.metadata.get(OWNER_KEY), owner)]

    def code_file(
        self, thread_id: str, owner: str, *, container_id: str, file_id: str
    ) -> tuple[str, bytes]:
        """The name and bytes of a file that a code interpreter call of this owner's thread
        wrote (the file of ``container_id`` the call's item lists).

        Raises:
            NotFound: the thread is not this owner's, none of its calls wrote that file, or
                the server no longer has it (its container expired).
        """
        self.owned_thread(thread_id, owner)
        page = self.client.messages.list(thread_id=thread_id, limit=100, order="asc")
        for message in page.iter_all():
            item = message.item
            if item is None or item.get("type") != "code_interpreter_call":
                continue
            if item.get("container_id") != container_id:
                continue
            for written in item.get("files") or ():
                if isinstance(written, Mapping) and written.get("file_id") == file_id:
                    path = str(written.get("path") or file_id)
                    name = _download_name(str(written.get("filename") or path.rsplit("/", 1)[-1]))
                    content = self.client.containers.files.content(
                        file_id, container_id=container_id
                    )
                    return name, content
        raise NotFound(f"No file found with id {file_id!r} in this conversation.")

    def pending_approvals(self, thread_id: str) -> tuple[Run, list[ActionItem]] | None:
        """The thread's newest run when it waits for calls to be approved, and those calls
        (what a reload shows as approval cards); None when nothing waits."""
        newest = self.client.runs.list(thread_id=thread_id, limit=1, order="desc").data
        if not newest or newest[0].status != RunStatus.ACTION_REQUIRED:
            return None
        run = newest[0]
        waiting = run.required_action.actions if run.required_action else []
        approvals = [action for action in waiting if action.approval is not None]
        return (run, approvals) if approvals else None


def _download_name(name: str) -> str:
    """A file name the model's code chose, fit for a ``Content-Disposition`` header: no
    control characters (a line break would end the header), never empty."""
    return "".join(c if c.isprintable() else "_" for c in name).strip() or "file"


#: The fields of an ``mcp`` tool that tell whether the assistant's is the one configured.
_MCP_KEYS = ("server_label", "server_url", "allowed_tools", "require_approval")


def _tool_keys(specs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """What tells two tool lists apart: a function's name, description and parameters; an
    ``mcp`` tool's server, filter and approval."""
    return [
        (
            "mcp",
            str(spec.get("server_label", "")),
            json.dumps({k: spec.get(k) for k in _MCP_KEYS}, sort_keys=True),
        )
        if spec.get("type") == "mcp"
        else (
            str(spec.get("name", "")),
            str(spec.get("description") or ""),
            json.dumps(spec.get("parameters") or {}, sort_keys=True),
        )
        for spec in specs
    ]
