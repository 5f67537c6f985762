"""The translator's framed output (``ResponseEvents.frames``, the HTTP stream) is exactly the
server-sent events of its events (``feed``, the WebSocket and replays), from any point."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from parley.events import (
    ActionItem,
    ContentDelta,
    DoneEvent,
    ReasoningDelta,
    RunStatusEvent,
    ToolCallsEvent,
    UsageEvent,
)
from parley.server.faces.responses.stream import ResponseEvents, sse_frame
from parley.types import RunStatus

RUN = "run_0123456789abcdef01234567"
FIRST = "msg_0123456789abcdef01234567"
SECOND = "msg_89abcdef0123456789abcdef"

HEAD: dict[str, Any] = {"id": RUN, "object": "response", "status": "in_progress", "output": []}


def log() -> list[tuple[int, str, bytes]]:
    """A turn that thinks, writes (with an empty piece and characters JSON escapes), thinks
    again, writes again, calls a tool, and a second model call that writes and ends."""
    events: list[BaseModel] = [
        RunStatusEvent(run_id=RUN, status=RunStatus.IN_PROGRESS),
        ReasoningDelta(run_id=RUN, message_id=FIRST, text="Let me see. "),
        ReasoningDelta(run_id=RUN, message_id=FIRST, text="Sum it.", summary=True),
        ContentDelta(run_id=RUN, message_id=FIRST, text="Hello"),
        ContentDelta(run_id=RUN, message_id=FIRST, text=""),
        ContentDelta(run_id=RUN, message_id=FIRST, text=' "world"\n\\ é 🙂 \u2028'),
        ReasoningDelta(run_id=RUN, message_id=FIRST, text="Again."),
        ContentDelta(run_id=RUN, message_id=FIRST, text="More."),
        ToolCallsEvent(
            run_id=RUN,
            message_id=FIRST,
            actions=[
                ActionItem(action_id="act_1", tool_call_id="call_1", name="f", arguments={"x": 1})
            ],
        ),
        ContentDelta(run_id=RUN, message_id=SECOND, text=""),
        ContentDelta(run_id=RUN, message_id=SECOND, text="Done"),
        ContentDelta(run_id=RUN, message_id=SECOND, text=" now."),
        UsageEvent(run_id=RUN, input_tokens=10, output_tokens=5, reasoning_tokens=2),
        DoneEvent(run_id=RUN, status=RunStatus.COMPLETED, ended_at=1_700_000_000),
    ]
    return [
        (seq, e.type, e.model_dump_json().encode())  # type: ignore[attr-defined]
        for seq, e in enumerate(events, start=1)
    ]


def fed(after: int) -> bytes:
    events = ResponseEvents(dict(HEAD))
    events.start()
    return b"".join(
        sse_frame(e) for entry in log() for e in events.feed(entry) if e["sequence_number"] > after
    )


@pytest.mark.parametrize("batch_size", [1, 3, 100])
@pytest.mark.parametrize("after", [-1, 0, 5, 9, 10, 17, 1000])
def test_frames_are_the_feed_framed(after: int, batch_size: int) -> None:
    events = ResponseEvents(dict(HEAD))
    events.start()
    entries = log()
    framed = b"".join(
        events.frames(entries[i : i + batch_size], after)
        for i in range(0, len(entries), batch_size)
    )
    assert framed == fed(after)
    assert events.finished


def test_text_deltas_are_numbered_json() -> None:
    """The directly written text deltas parse as the protocol's events, numbered on."""
    events = ResponseEvents(dict(HEAD))
    events.start()
    frames = events.frames(log()).decode().split("\n\n")
    deltas = [
        orjson.loads(f.split("\ndata: ", 1)[1])
        for f in frames
        if f.startswith("event: response.output_text.delta\n")
    ]
    assert [d["delta"] for d in deltas] == [
        "Hello",
        "",
        ' "world"\n\\ é 🙂 \u2028',
        "More.",
        "Done",
        " now.",
    ]
    numbers = [d["sequence_number"] for d in deltas]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert {d["item_id"] for d in deltas[:3]} == {deltas[0]["item_id"]}
    assert deltas[3]["item_id"] != deltas[0]["item_id"]
    assert all(d["logprobs"] == [] and d["content_index"] == 0 for d in deltas)
