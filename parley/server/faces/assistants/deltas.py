"""The deltas of an Assistants stream, in OpenAI's shapes: a run step's tool calls
(``thread.run.step.delta``) and a message's content parts (``thread.message.delta``).

A tool call streams at its ``index`` in its step, as OpenAI streams it:

- its first delta names it (``index``, ``id``, ``type``; a function's ``name``) with its
  text still empty (a function's ``arguments`` ``""``, the code interpreter's ``input``
  ``""`` and ``outputs`` ``[]``);
- then its text in pieces (``pieces``), each a delta with only ``index``, ``type`` and the
  piece: a function's ``arguments``, the code interpreter's ``input``;
- then, for the code interpreter, its ``outputs`` (``logs``, ``image``) in one delta once
  its code has run, each output with its own ``index``;
- a file search is its one first delta, ``file_search: {}`` (its results are in the step
  once it completes).

The SDKs' stream helpers (Python's ``AssistantEventHandler``, Node's ``AssistantStream``)
take a call's first delta for "created", each later one of the same index for "delta",
and the next index or the step's end for "done": the pieces are what their
``on_tool_call_delta`` / ``toolCallDelta`` hand to the application, which is why the first
delta holds none of the text.

A message's content streams part by part at the index the part has in the finished
message: its figures (``image_file``) first, each its own delta, then its text in pieces.
"""

from __future__ import annotations

import re
from typing import Any

#: A piece of streamed text: a word or a run of punctuation with the blanks before it, as
#: a model's tokens come (``{"``, ``city``, ``":"``, ...), or the blanks that end the text.
_TOKEN = re.compile(r"\s*(?:\w+|[^\w\s]+)|\s+")
#: The most pieces one text is streamed in: a long text's pieces hold several tokens each.
MAX_PIECES = 200

#: What a call's text is, by its type: the field under the type's own key.
_TEXT_FIELD = {"function": "arguments", "code_interpreter": "input"}


def pieces(text: str) -> list[str]:
    """``text`` cut into the pieces it is streamed in, which join back to exactly it:
    token-sized, at most ``MAX_PIECES`` of them (none for an empty text)."""
    least = -(-len(text) // MAX_PIECES)
    out: list[str] = []
    piece = ""
    for token in _TOKEN.findall(text):
        piece += token
        if len(piece) >= least:
            out.append(piece)
            piece = ""
    if piece:
        out.append(piece)
    return out


def step_delta(step_id: str, call: dict[str, Any]) -> dict[str, Any]:
    """A ``thread.run.step.delta`` object holding one tool call's delta."""
    details = {"type": "tool_calls", "tool_calls": [call]}
    return {"id": step_id, "object": "thread.run.step.delta", "delta": {"step_details": details}}


def call_deltas(index: int, call: dict[str, Any]) -> list[dict[str, Any]]:
    """The deltas of a tool call (a run step's ``tool_calls`` entry) as it starts: its
    first, then its text's pieces (not its outputs: ``outputs_delta``)."""
    kind = call["type"]
    if kind == "file_search":
        return [{"index": index, "id": call["id"], "type": kind, "file_search": {}}]
    field = _TEXT_FIELD[kind]
    body = call[kind]
    if kind == "function":
        first = {"name": body["name"], "arguments": "", "output": None}
    else:
        first = {"input": "", "outputs": []}
    opened = {"index": index, "id": call["id"], "type": kind, kind: first}
    rest = [{"index": index, "type": kind, kind: {field: p}} for p in pieces(body[field])]
    return [opened, *rest]


def outputs_delta(index: int, call: dict[str, Any]) -> dict[str, Any] | None:
    """The delta of a code interpreter call's outputs, once its code has run (None for a
    call without any, or of another type)."""
    if call["type"] != "code_interpreter" or not call["code_interpreter"]["outputs"]:
        return None
    outputs = [{"index": i, **o} for i, o in enumerate(call["code_interpreter"]["outputs"])]
    return {"index": index, "type": "code_interpreter", "code_interpreter": {"outputs": outputs}}


def message_delta(message_id: str, index: int, part: dict[str, Any]) -> dict[str, Any]:
    """A ``thread.message.delta`` object holding one content part's delta at ``index``
    (a figure's ``image_file``, or a piece of text)."""
    content = [{"index": index, **part}]
    return {"id": message_id, "object": "thread.message.delta", "delta": {"content": content}}
