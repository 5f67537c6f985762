"""A run's events as the Assistants API streams them.

One turn's run events (``content.delta``, ``tool_calls``, ``hosted_tool``, ``done``, ...)
become OpenAI's ``thread.*`` events, in OpenAI's order::

    thread.run.created, thread.run.queued, thread.run.in_progress   (a new run)
    thread.run.step.completed, thread.run.queued, thread.run.in_progress
                                                       (after tool outputs: their step)
    thread.run.step.created, thread.run.step.in_progress            (at the first text)
    thread.message.created, thread.message.in_progress
    thread.message.delta ...                  (its figures, then its text, in pieces)
    thread.message.completed, thread.run.step.completed             (when the text ends)
    thread.run.step.created, thread.run.step.in_progress            (the tool calls)
    thread.run.step.delta ...                 (each call: named, then its text in pieces)
    thread.run.step.completed                 (calls the server ran, once the model goes on)
    ... (the answer the model writes after them: a step and a message as above)
    thread.run.requires_action | thread.run.completed | .failed | .cancelled
        | .incomplete | .expired
    done                                                            (data: [DONE])

One step is open at a time, and one message, as OpenAI's stream has them (Node's
``AssistantStream`` refuses a step created while another is open): the text of a message
ends before the calls that follow it start, and the calls the server ran (a file search,
the code interpreter) end once the model goes on. The calls' deltas are ``deltas``': the
code interpreter's ``input`` as the call starts, its ``outputs`` once it has run; the
calls the client runs (functions) are sent when the turn ends with them, after the message
they follow, which is read then as stored. A message's parts stream at the index they have
in the finished message: the figures the run's code drew before it, then its text.

The step and message objects are the ones the list endpoints answer (``objects``), read
once the turn has ended: a completed step has its ``usage``, a step in progress none. A
message whose turn goes on past it (the model then called a tool the server runs) ends as
it was streamed, and its step without ``usage`` (the list endpoints give it).
Reasoning is not streamed: the Assistants API has no event for it (the message keeps it,
as ``reasoning``). ``error`` is sent only when the stream itself breaks off before the
run's end.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson

from parley.engine import Entry, cited_files
from parley.errors import ParleyError
from parley.server.faces.assistants import deltas, files, reads
from parley.server.faces.kit import sse
from parley.server.faces.kit.resources import MessagePublic, RunPublic
from parley.server.faces.kit.run_steps import (
    RunStepPublic,
    message_step_id,
    run_step,
    run_steps,
    tool_call_detail,
)
from parley.store.db import Database
from parley.store.records import Message, Run
from parley.types import ActionStatus, RunStatus, ToolCall

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

    def __init__(
        self, db: Database, run: Run, message: Message, head: bytes, figures: Sequence[str] = ()
    ) -> None:
        self.db = db
        self.run = run
        #: The message the model writes now (the turn's, then each one after tools).
        self.message = message
        self.head = head
        #: The message's text so far, while it is open (``writing``).
        self.text = ""
        self.writing = False
        #: The figures shown as the open message's first parts (file ids).
        self.shown: list[str] = []
        #: The figures the run's code drew that no message has shown yet (``figures``:
        #: those drawn before the tool outputs a turn follows).
        self.figures: list[str] = list(figures)
        #: The files the turn's searches found (id by name), which a text may cite.
        self.found: dict[str, str] = {}
        #: The step of the tool calls of the current message, while open, and the index of
        #: each of its calls, by call id.
        self.calls: RunStepPublic | None = None
        self.indices: dict[str, int] = {}
        #: The calls the turn ends with (its manifest's actions): sent by ``closing``.
        self.pending: list[dict[str, Any]] | None = None

    def opening(self) -> bytes:
        return self.head

    def add(self, batch: list[Entry]) -> bytes:
        return b"".join([self._entry(kind, data) for _, kind, data in batch])

    def _entry(self, kind: str, data: str) -> bytes:
        if kind == "content.delta":
            event = orjson.loads(data)
            return self._follow(event.get("message_id")) + self._text(event["text"])
        if kind == "reasoning.delta":  # not shown, but it says a new model call began
            return self._follow(orjson.loads(data).get("message_id"))
        if kind == "tool_calls":
            event = orjson.loads(data)
            self.pending = event["actions"]
            return self._follow(event.get("message_id"))
        if kind == "hosted_tool":
            event = orjson.loads(data)
            item = event["item"]
            if item.get("type") in files.STEPS:
                return self._hosted(event["phase"], item)
        return b""

    # ------------------------------------------------------------------ the messages

    def _follow(self, message_id: str | None) -> bytes:
        """The model answers into a new message after the server ran its calls (a file
        search, the code interpreter), or answered calls it could not run: the first event
        of that message (its reasoning, its text or the calls it ends with) makes it the
        stream's message, and what was open of the one before ends."""
        if not message_id or message_id == self.message.id:
            return b""
        ended = self._end_message() + self._end_calls()
        self.message = replace(self.message, id=message_id, content="", tool_calls=None, item=None)
        return ended

    def _text(self, text: str) -> bytes:
        head = b"" if self.writing else self._open_message()
        self.text += text
        part = {"type": "text", "text": {"value": text, "annotations": []}}
        delta = deltas.message_delta(self.message.id, len(self.shown), part)
        return head + frame("thread.message.delta", delta)

    def _open_message(self) -> bytes:
        """The message's step and the message, at its first text; the figures drawn
        since the last message shown are its first parts, each its own delta."""
        head = [self._end_calls()]
        self.writing = True
        step = run_step(self.run, self.message, "message_creation")
        message = MessagePublic.of(self.message, (self.run, self.message.seq))
        message = message.model_copy(update={"content": [], "status": "in_progress"})
        head += [
            frame("thread.run.step.created", step),
            frame("thread.run.step.in_progress", step),
            frame("thread.message.created", message),
            frame("thread.message.in_progress", message),
        ]
        self.shown, self.figures = self.figures, []
        for i, file_id in enumerate(self.shown):
            delta = deltas.message_delta(self.message.id, i, files.figure_part(file_id))
            head.append(frame("thread.message.delta", delta))
        return b"".join(head)

    def _end_message(self) -> bytes:
        """The open message ends before the turn does (the model goes on to call a tool
        the server runs): the message as it was streamed, and its step (its usage is
        stored with the message later: the list endpoints give it)."""
        if not self.writing:
            return b""
        now = int(time.time())
        written = replace(self.message, content=self.text)
        # Not the run's newest message: a later one follows it, so it reads completed.
        final = MessagePublic.of(written, (self.run, written.seq + 1))
        final = files.with_figures(files.cited(final, self.found), self.shown)
        final = final.model_copy(update={"completed_at": now})
        step = run_step(self.run, self.message, "message_creation", state="completed", ended_at=now)
        self.writing, self.text, self.shown = False, "", []
        return frame("thread.message.completed", final) + frame("thread.run.step.completed", step)

    # ---------------------------------------------------------------- the tool calls

    def _open_calls(self) -> bytes:
        """The ``tool_calls`` step of the current message, created with its first call
        (the message's text, if any, ends first)."""
        if self.calls is not None:
            return b""
        head = self._end_message()
        self.calls = run_step(self.run, self.message, "tool_calls")
        self.indices = {}
        return (
            head
            + frame("thread.run.step.created", self.calls)
            + frame("thread.run.step.in_progress", self.calls)
        )

    def _call(self, call: dict[str, Any]) -> bytes:
        """A call in the open step: its deltas as it starts (once), its place in the
        step's details as it now stands."""
        assert self.calls is not None
        out = b""
        index = self.indices.get(call["id"])
        if index is None:
            index = self.indices[call["id"]] = len(self.indices)
            for delta in deltas.call_deltas(index, call):
                out += frame("thread.run.step.delta", deltas.step_delta(self.calls.id, delta))
        calls = list(self.calls.step_details["tool_calls"])
        calls[index : index + 1] = [call]
        details = {"type": "tool_calls", "tool_calls": calls}
        self.calls = self.calls.model_copy(update={"step_details": details})
        return out

    def _hosted(self, phase: str, item: dict[str, Any]) -> bytes:
        """A search or code call the server runs, in the ``tool_calls`` step of the
        message that asked for it: named with its input as it starts, its outputs once it
        has run (a call first seen ended, as a turn that died ends its calls, is both)."""
        call_id = item.get("call_id") or item["id"]
        call = files.step_call(call_id, item, self.run.tools, False)
        out = self._open_calls() + self._call(call)
        if phase != "done":
            return out
        assert self.calls is not None
        self.figures += files.figures([item])
        self.found.update(cited_files([item]))
        outputs = deltas.outputs_delta(self.indices[call_id], call)
        if outputs is not None:
            out += frame("thread.run.step.delta", deltas.step_delta(self.calls.id, outputs))
        return out

    def _end_calls(self) -> bytes:
        """The calls' step completes once the model goes on."""
        step, self.calls = self.calls, None
        if step is None:
            return b""
        done = step.model_copy(update={"status": "completed", "completed_at": int(time.time())})
        return frame("thread.run.step.completed", done)

    def _client_calls(self, actions: list[dict[str, Any]]) -> bytes:
        """The calls the turn ends with, for the client: in the step of the message's
        calls (with those the server ran, if any), each named, then its arguments."""
        out = self._open_calls()
        for action in actions:
            call = ToolCall(
                id=action["tool_call_id"], name=action["name"], arguments=action["arguments"]
            )
            out += self._call(tool_call_detail(call, None))
        return out

    # ------------------------------------------------------------------ the turn's end

    async def closing(self) -> bytes:
        """The frames that close the turn: the message and its step as they ended, the
        calls it ends with, then the run's closing event."""
        return self.ended(
            await self.db.read(reads.turn_end, run_id=self.run.id, message_id=self.message.id)
        )

    def cut_off(self, error: ParleyError | None) -> bytes:
        if error is not None:
            raise error
        return frame("error", _INTERRUPTED)

    def ended(self, end: reads.TurnEnd) -> bytes:
        """The closing frames of the turn, given the run, message and actions as stored
        (and the files its searches found, which the message may cite, and the figures it
        shows)."""
        run, message, actions = end.run, end.message, end.actions
        frames = []
        if self.writing:
            self.writing = False
            seq = max(message.seq, self.message.seq)
            steps = {s.id: s for s in run_steps(run, [message], actions)}
            final = files.cited(MessagePublic.of(message, (run, seq)), end.found)
            final = files.with_figures(final, end.figures)
            name = "thread.message.completed"
            if final.status == "incomplete":
                name = "thread.message.incomplete"
            frames.append(frame(name, final))
            step = steps.get(message_step_id(message.id))
            if step is not None:
                frames.append(frame(f"thread.run.step.{_step_event(step.status)}", step))
        if self.pending is not None:
            frames.append(self._client_calls(self.pending))  # the step waits for outputs
        else:
            frames.append(self._end_calls())
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
