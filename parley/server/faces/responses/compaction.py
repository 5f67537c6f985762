"""``POST /v1/responses/compact``: a conversation's window made short. The model summarises
the input (or a previous response's whole context) in one call that stores nothing. As
OpenAI's, the answer's ``output`` is the window's user messages, in order and as sent, then
the summary as one ``compaction`` item (``items.compaction_item``): the window a later
request takes as its ``input``, with its new items after it."""

from __future__ import annotations

import time
from typing import Any

from parley.engine import Engine, NewMessage
from parley.errors import InvalidRequest
from parley.server.faces.responses import reads
from parley.server.faces.responses.items import compaction_item, input_content, parse_input
from parley.server.faces.responses.protocol import CompactCreate
from parley.server.faces.responses.resource import usage
from parley.store.db import Database, new_id
from parley.types import Role, Usage

INSTRUCTIONS = (
    "You compact conversations. Write a summary of the conversation below that lets it "
    "go on without it: every fact, decision, name, number, open question and the user's "
    "latest request, in as few words as keep them. Write only the summary."
)


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
    instructions = (
        INSTRUCTIONS if not body.instructions else f"{INSTRUCTIONS}\n\n{body.instructions}"
    )
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
    parts = []
    if message.content:
        parts.append(message.content)
    for call in message.tool_calls or ():
        parts.append(f"[called {call['name']} with {call['arguments']}]")
    if not parts:
        return ""
    who = {"tool": f"tool result ({message.tool_call_id})"}.get(message.role, message.role)
    return f"{who}: {' '.join(parts)}"
