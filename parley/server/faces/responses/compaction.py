"""``POST /v1/responses/compact``: a conversation's window made short. The model summarises
the input (or a previous response's whole context) in one call that stores nothing. As
OpenAI's, the answer's ``output`` is the window's user messages, in order and as sent, then
the summary as one ``compaction`` item (``engine.compaction``): the window a later
request takes as its ``input``, with its new items after it. A request's
``context_management`` asks the engine to compact on its own (``context_options``)."""

from __future__ import annotations

import time
from typing import Any

from parley.engine import (
    COMPACTION_INSTRUCTIONS,
    COMPACTION_TYPE,
    LEAST_COMPACTION_THRESHOLD,
    Engine,
    NewMessage,
    compaction_item,
    transcript_line,
)
from parley.errors import InvalidRequest
from parley.server.faces.responses import reads
from parley.server.faces.responses.items import input_content, parse_input
from parley.server.faces.responses.protocol import CompactCreate, ResponseCreate
from parley.server.faces.responses.resource import usage
from parley.store.db import Database, new_id
from parley.types import Role, Usage


async def compact(
    db: Database, engine: Engine, *, user_id: str, body: CompactCreate
) -> tuple[dict[str, Any], Usage]:
    """The compaction object, and the tokens its model call used."""
    messages = parse_input(body.input)
    if body.previous_response_id is not None:
        earlier = await db.read(
            reads.previous_context, user_id=user_id, response_id=body.previous_response_id
        )
        messages = earlier + messages
    if not messages:
        raise InvalidRequest(
            "Missing required parameter: 'input'.", code="missing_required_parameter", param="input"
        )
    transcript = "\n\n".join(_line(m) for m in messages if _line(m))
    ask = [NewMessage(role=Role.USER, content=transcript)]
    instructions = COMPACTION_INSTRUCTIONS
    if body.instructions:
        instructions = f"{instructions}\n\n{body.instructions}"
    summary, used = await engine.complete(model=body.model, messages=ask, instructions=instructions)
    made = {
        "id": new_id("cmp"),
        "object": "response.compaction",
        "created_at": int(time.time()),
        "output": [
            *(_user_item(m) for m in messages if m.role == Role.USER),
            compaction_item(new_id("cmp"), summary.strip()),
        ],
        "usage": usage(used),
    }
    return made, used


def triggers(body: ResponseCreate) -> bool:
    """Whether a response's input ends with a ``compaction_trigger`` item (Codex sends one
    when it compacts its session remotely): the response is then that compaction."""
    given = body.input
    return (
        isinstance(given, list)
        and bool(given)
        and isinstance(given[-1], dict)
        and given[-1].get("type") == "compaction_trigger"
    )


async def triggered(
    db: Database, engine: Engine, *, user_id: str, body: ResponseCreate
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The response of a ``compaction_trigger``: the window before the trigger (and a
    ``previous_response_id``'s context) compacted as ``POST /v1/responses/compact`` does,
    its output the ``compaction`` item (the summary holds the user messages too; an output
    has no user message in OpenAI's shape), completed at once;
    and its events (created, in progress, each item added and done, completed). Nothing is
    stored: the client keeps the window (``store: false`` is what such clients send)."""
    assert isinstance(body.input, list)
    before = body.input[:-1]
    if any(isinstance(i, dict) and i.get("type") == "compaction_trigger" for i in before):
        raise InvalidRequest(
            "A compaction_trigger item must be the last input item.",
            code="invalid_value",
            param="input",
        )
    if body.model is None:
        raise InvalidRequest(
            "Missing required parameter: 'model'.", code="missing_required_parameter", param="model"
        )
    made, _ = await compact(
        db,
        engine,
        user_id=user_id,
        body=CompactCreate(
            model=body.model,
            input=before,
            instructions=body.instructions,
            previous_response_id=body.previous_response_id,
        ),
    )
    at = int(time.time())
    response: dict[str, Any] = {
        "id": new_id("resp"),
        "object": "response",
        "created_at": at,
        "status": "in_progress",
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": body.instructions,
        "model": body.model,
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": body.previous_response_id,
        "store": False,
        "tools": [],
        "tool_choice": "auto",
        "usage": None,
        "metadata": body.metadata or {},
    }
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": dict(response)},
        {"type": "response.in_progress", "response": dict(response)},
    ]
    output = [i for i in made["output"] if i.get("type") == "compaction"]
    for index, item in enumerate(output):
        events.append({"type": "response.output_item.added", "output_index": index, "item": item})
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    response.update(status="completed", completed_at=at, output=output, usage=made["usage"])
    events.append({"type": "response.completed", "response": response})
    for seq, event in enumerate(events):
        event["sequence_number"] = seq
    return response, events


def _user_item(message: NewMessage) -> dict[str, Any]:
    """A kept user message, as the ``message`` item a later request takes back as input."""
    return {
        "type": "message",
        "id": new_id("msg"),
        "status": "completed",
        "role": "user",
        "content": input_content(message.content, message.images),
    }


def _line(message: NewMessage) -> str:
    """One message of the transcript the model summarises."""
    calls = ((c["name"], c["arguments"]) for c in message.tool_calls or ())
    return transcript_line(message.role, message.content, calls, message.tool_call_id)


def context_options(given: list[Any] | None) -> dict[str, Any] | None:
    """The run option of a request's ``context_management``: ``{"threshold": T}`` (None:
    at the engine's ``COMPACTION_SHARE`` of the model's context window) for its one
    ``compaction`` entry; None when it has none. Raises ``InvalidRequest`` for an entry
    of another type, a second one, or a threshold that is not a whole number of at
    least ``LEAST_THRESHOLD`` tokens."""
    if given is None:
        return None
    found: dict[str, Any] | None = None
    for index, entry in enumerate(given):
        where = f"context_management[{index}]"
        if not isinstance(entry, dict):
            raise InvalidRequest(
                f"Invalid type for '{where}': expected an object.",
                code="invalid_type",
                param=where,
            )
        if entry.get("type") != COMPACTION_TYPE:
            raise InvalidRequest(
                f"Invalid value for '{where}.type': expected 'compaction'.",
                code="invalid_value",
                param=f"{where}.type",
            )
        if found is not None:
            raise InvalidRequest(
                "context_management may hold one 'compaction' entry.",
                code="invalid_value",
                param=where,
            )
        limit = entry.get("compact_threshold")
        least = LEAST_COMPACTION_THRESHOLD
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < least
        ):
            raise InvalidRequest(
                f"Invalid value for '{where}.compact_threshold': expected a whole number of "
                f"tokens, at least {least}, or null.",
                code="invalid_value",
                param=f"{where}.compact_threshold",
            )
        found = {"threshold": limit}
    return found
