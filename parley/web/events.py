"""The chat page's own events, beside the vocabulary's (``parley.events``).

One exchange streams to the browser the run events of each turn as they came
(``content.delta``, ``reasoning.delta``, ``tool_calls``, ``hosted_tool`` for the calls of the
MCP servers the Parley server runs, ``error``), the client tool events
of the tools this app runs (``tool.start``, ``tool.result``), the exchange's ``usage``
(``UsageEvent``, every turn added up), and these: where the exchange is, the calls that wait
for the user's approval, the answer's citations of the conversation's files, a notice of
something the page stopped offering, and how it ended.
Each is framed by ``parley.events.encode_event``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from parley.types import RunStatus


class ThreadOpened(BaseModel):
    """The exchange's thread: the session's, or a new one named after the message."""

    type: Literal["thread"] = "thread"
    thread_id: str
    title: str


class RunStarted(BaseModel):
    """The run that answers the message (the page's Stop button cancels it)."""

    type: Literal["run"] = "run"
    run_id: str


class StatusNote(BaseModel):
    """Where the exchange is, in words for the status line (``state`` for code)."""

    type: Literal["status"] = "status"
    state: Literal["message", "run", "streaming", "tools", "tools_done", "approval", "done"]
    text: str


class ApprovalAsked(BaseModel):
    """A call of an MCP server (run by the Parley server) that waits for the user: the page
    shows it with Approve and Deny, and answers with ``POST /api/runs/<run_id>/approval``.
    The exchange ends after these, its run ``action_required``."""

    type: Literal["approval"] = "approval"
    run_id: str
    action_id: str
    #: The model's call (the history's tool call of the same id).
    tool_call_id: str
    server_label: str
    name: str
    arguments: dict[str, Any]


class CitationsFound(BaseModel):
    """The passages of the conversation's files the answer cites (its text's
    ``file_citation`` annotations, each ``{"file_id", "filename", "index"}``), sent once the
    run's turns are over when a ``file_search`` call ran in them."""

    type: Literal["citations"] = "citations"
    run_id: str
    citations: list[dict[str, Any]]


class NoticeGiven(BaseModel):
    """Something the page says once, beside the answer: ``code_interpreter_off`` when the
    server refused the code interpreter (the page then goes on without it)."""

    type: Literal["notice"] = "notice"
    code: str
    text: str


class ExchangeDone(BaseModel):
    """The last event of every exchange: the run's status when it ended (``failed`` when
    no run was made; ``action_required`` when calls wait for approval)."""

    type: Literal["done"] = "done"
    status: RunStatus
    run_id: str | None
    thread_id: str | None
