"""A run's events as the Assistants API streams them.

One turn's run events (``content.delta``, ``tool_calls``, ``done``, ...) become OpenAI's
``thread.*`` events, in OpenAI's order::

    thread.run.created, thread.run.queued, thread.run.in_progress   (a new run)
    thread.run.step.completed, thread.run.queued, thread.run.in_progress
                                                       (after tool outputs: their step)
    thread.run.step.created, thread.run.step.in_progress            (at the first text)
    thread.message.created, thread.message.in_progress
    thread.message.delta ...
    thread.message.completed, thread.run.step.completed             (when the text ends)
    thread.run.step.created, thread.run.step.in_progress            (the tool calls)
    thread.run.step.delta ...                                       (one per call)
    thread.run.requires_action | thread.run.completed | .failed | .cancelled
        | .incomplete | .expired
    done                                                            (data: [DONE])

The step and message objects are the ones the list endpoints answer (``objects``), read
once the turn has ended: a completed step has its ``usage``, a step in progress none.
Reasoning is not streamed: the Assistants API has no event for it (the message keeps it,
as ``reasoning``). ``error`` is sent only when the stream itself breaks off before the
run's end.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import orjson

from parley.engine import Entry
from parley.errors import ParleyError
from parley.server.faces.assistants import files, reads
from parley.server.faces.kit import sse
from parley.server.faces.kit.resources import (
    MessagePublic,
    RunPublic,
    RunStepPublic,
    message_step_id,
    run_step,
    run_steps,
)
from parley.store.db import Database
from parley.store.records import Action, Message, Run
from parley.types import ActionStatus, RunStatus

#: The end of the stream: ``event: done`` and ``data: [DONE]``.
DONE_FRAME = sse.frame(b"[DONE]", "done")

#: The closing event of a run, by the status its turn ended with.
_CLOSING = {
    RunStatus.ACTION_REQUIRED: "thread.run.requires_action",
    RunStatus.COMPLETED: "thread.run.completed",
    RunStatus.FAILED: "thread.run.failed",
    RunStatus.CANCELLED: "thread.run.cancelled",
    RunStatus.INCOMPLETE: "thread.run.incomplete",
    RunStatus.EXPIRED: "thread.run.expired",
}


def frame(event: str, data: Any) -> bytes:
    """One server-sent event: ``event: <name>`` and its JSON ``data``."""
    if hasattr(data, "model_dump"):
        data = data.model_dump(mode="json")
    return sse.frame(orjson.dumps(data), event)


def run_frames(run: Run, *, new: bool, resumed: Sequence[RunStepPublic] = ()) -> bytes:
    """How a stream of a run starts: a new run is created and queued; a run given its
    tool outputs first completes their step (``resumed``), then is queued again. Both
    then go in progress."""
    queued = RunPublic.of(run).model_copy(update={"status": "queued"})
    running = RunPublic.of(run).model_copy(update={"status": "in_progress"})
    head = [frame("thread.run.step.completed", step) for step in resumed]
    if new:
        head.append(frame("thread.run.created", queued))
    head += [frame("thread.run.queued", queued), frame("thread.run.in_progress", running)]
    return b"".join(head)


class TurnEvents:
    """One turn's run events as Assistants events: the translator of its stream for the
    kit's pump (``kit.streams``). It opens with ``head`` (``run_frames``); ``add`` takes
    the run events in order and gives the frames they make; the turn's end is answered by
    ``closing`` with the run, message and actions as stored (read from ``db``); a stream
    cut off before it ends with an ``error`` event."""

    def __init__(self, db: Database, run: Run, message: Message, head: bytes) -> None:
        self.db = db
        self.run = run
        self.message = message
        self.head = head
        self.text = ""
        self.writing = False
        #: The step of the searches the server ran for the current message, while open.
        self.searches: RunStepPublic | None = None

    def opening(self) -> bytes:
        return self.head

    def add(self, batch: list[Entry]) -> bytes:
        return b"".join([self._entry(kind, data) for _, kind, data in batch])

    def _entry(self, kind: str, data: str) -> bytes:
        if kind == "content.delta":
            event = orjson.loads(data)
            ended = self._follow(event.get("message_id"))
            return ended + self._text(event["text"])
        if kind == "tool_calls":
            return self._end_searches() + self._calls(orjson.loads(data)["actions"])
        if kind == "hosted_tool":
            event = orjson.loads(data)
            item = event["item"]
            if event["phase"] == "done" and item.get("type") in (
                "file_search_call",
                "code_interpreter_call",
            ):
                return self._search(item)
        return b""

    def _search(self, item: dict[str, Any]) -> bytes:
        """A search or code call the server ran: the ``tool_calls`` step of the message
        that asked for it (created with its first such call), and a delta with the call."""
        head = b""
        if self.searches is None:
            self.searches = run_step(self.run, self.message, "tool_calls")
            head = frame("thread.run.step.created", self.searches) + frame(
                "thread.run.step.in_progress", self.searches
            )
        call_id = item.get("call_id") or item["id"]
        if item.get("type") == "code_interpreter_call":
            call = files.code_call(call_id, item)
        else:
            call = files.search_call(call_id, item, self.run.tools, False)
        calls = [*self.searches.step_details["tool_calls"], call]
        self.searches = self.searches.model_copy(
            update={"step_details": {"type": "tool_calls", "tool_calls": calls}}
        )
        delta = {
            "id": self.searches.id,
            "object": "thread.run.step.delta",
            "delta": {
                "step_details": {
                    "type": "tool_calls",
                    "tool_calls": [{"index": len(calls) - 1, **call}],
                }
            },
        }
        return head + frame("thread.run.step.delta", delta)

    def _end_searches(self) -> bytes:
        """The searches' step completes once the model goes on."""
        step, self.searches = self.searches, None
        if step is None:
            return b""
        done = step.model_copy(update={"status": "completed", "completed_at": int(time.time())})
        return frame("thread.run.step.completed", done)

    def _follow(self, message_id: str | None) -> bytes:
        """The answer's text goes to a message after the one the turn began with when the
        server ran tools first (a file search): the stream's message is that one, and the
        step of those tools completes."""
        if message_id and message_id != self.message.id and not self.writing:
            self.message = replace(
                self.message, id=message_id, content="", tool_calls=None, item=None
            )
            return self._end_searches()
        return b""

    def _text(self, text: str) -> bytes:
        head = b""
        if not self.writing:
            self.writing = True
            step = run_step(self.run, self.message, "message_creation")
            message = MessagePublic.of(self.message, (self.run, self.message.seq))
            message = message.model_copy(update={"content": [], "status": "in_progress"})
            head = b"".join(
                (
                    frame("thread.run.step.created", step),
                    frame("thread.run.step.in_progress", step),
                    frame("thread.message.created", message),
                    frame("thread.message.in_progress", message),
                )
            )
        self.text += text
        delta = {
            "id": self.message.id,
            "object": "thread.message.delta",
            "delta": {
                "content": [
                    {"index": 0, "type": "text", "text": {"value": text, "annotations": []}}
                ]
            },
        }
        return head + frame("thread.message.delta", delta)

    def _calls(self, actions: list[dict[str, Any]]) -> bytes:
        step = run_step(self.run, self.message, "tool_calls")
        frames = [
            frame("thread.run.step.created", step),
            frame("thread.run.step.in_progress", step),
        ]
        for i, action in enumerate(actions):
            call = {
                "index": i,
                "id": action["tool_call_id"],
                "type": "function",
                "function": {
                    "name": action["name"],
                    "arguments": orjson.dumps(action["arguments"]).decode(),
                    "output": None,
                },
            }
            delta = {
                "id": step.id,
                "object": "thread.run.step.delta",
                "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}},
            }
            frames.append(frame("thread.run.step.delta", delta))
        return b"".join(frames)

    async def closing(self) -> bytes:
        """The frames that close the turn: the message and its step as they ended, then
        the run's closing event."""
        run, message, actions = await self.db.read(
            reads.turn_end, run_id=self.run.id, message_id=self.message.id
        )
        found = await self.db.read(reads.run_files, run_ids=[run.id]) if message.content else {}
        drawn = (
            await self.db.read(reads.message_figures, run_ids=[run.id]) if message.content else {}
        )
        return self.ended(run, message, actions, found.get(run.id), drawn.get(message.id, []))

    def cut_off(self, error: ParleyError | None) -> bytes:
        if error is not None:
            raise error
        return frame("error", _INTERRUPTED)

    def ended(
        self,
        run: Run,
        message: Message,
        actions: list[Action],
        found: Mapping[str, str] | None = None,
        figures: Sequence[str] = (),
    ) -> bytes:
        """The closing frames of the turn, given the run, message and actions as stored
        (and the files its searches ``found``, which the message may cite)."""
        frames = [self._end_searches()]
        if self.writing:
            seq = max(message.seq, self.message.seq)
            steps = {s.id: s for s in run_steps(run, [message], actions)}
            final = files.cited(MessagePublic.of(message, (run, seq)), found or {})
            final = files.with_figures(final, figures)
            name = "thread.message.completed"
            if final.status == "incomplete":
                name = "thread.message.incomplete"
            frames.append(frame(name, final))
            step = steps.get(message_step_id(message.id))
            if step is not None:
                frames.append(frame(f"thread.run.step.{_step_event(step.status)}", step))
        status = RunStatus(run.status)
        pending = [a for a in actions if a.status == ActionStatus.PENDING]
        if status in _CLOSING:
            frames.append(frame(_CLOSING[status], RunPublic.of(run, pending)))
        return b"".join(frames)


def _step_event(status: str) -> str:
    """The event that ends a step: OpenAI's stream has no ``thread.run.step.incomplete``,
    so a step cut short (its object reads ``incomplete``) ends with ``completed``, which
    clients take for "the step ended" as they take ``failed`` or ``cancelled``."""
    return {"in_progress": "completed", "incomplete": "completed"}.get(status, status)


_INTERRUPTED = {
    "error": {
        "message": "The stream ended before the run did; retrieve the run to see how it ends.",
        "type": "server_error",
        "param": None,
        "code": "stream_interrupted",
    }
}
