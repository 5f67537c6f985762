"""The chat page's own events, beside the vocabulary's (``parley.events``).

One exchange streams to the browser the run events of each turn as they came
(``content.delta``, ``reasoning.delta``, ``tool_calls``, ``error``), the client tool events
of the tools this app runs (``tool.start``, ``tool.result``), the exchange's ``usage``
(``UsageEvent``, every turn added up), and these: where the exchange is, and how it ended.
Each is framed by ``parley.events.encode_event``.
"""

from __future__ import annotations

from typing import Literal

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
    state: Literal["message", "run", "streaming", "tools", "tools_done", "done"]
    text: str


class ExchangeDone(BaseModel):
    """The last event of every exchange: the run's status when it ended (``failed`` when
    no run was made)."""

    type: Literal["done"] = "done"
    status: RunStatus
    run_id: str | None
    thread_id: str | None
