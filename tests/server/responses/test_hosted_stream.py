"""The Responses events of the tools the server runs (``responses.hosted``), from the run's
``hosted_tool`` events: each item's lifecycle in order, at its own output index, and a call
the turn never finished (it stopped, or its server died) ended ``incomplete``."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from parley.events import DoneEvent, HostedToolEvent, RunStatusEvent
from parley.server.faces.responses.stream import ResponseEvents
from parley.types import RunStatus

RUN = "run_0123456789abcdef01234567"
HEAD: dict[str, Any] = {"id": RUN, "object": "response", "status": "in_progress", "output": []}
LISTED = {"type": "mcp_list_tools", "id": "mcpl_1", "server_label": "s", "tools": []}
CALL = {
    "type": "mcp_call",
    "id": "mcp_1",
    "server_label": "s",
    "name": "echo",
    "arguments": '{"text":"hi"}',
    "output": None,
    "error": None,
    "approval_request_id": None,
}


def feed(*events: Any) -> list[dict[str, Any]]:
    translator = ResponseEvents(HEAD)
    out = translator.start()
    for seq, event in enumerate(events, start=1):
        out += translator.feed((seq, event.type, event.model_dump_json()))
    return out


def hosted(phase: str, item: dict[str, Any], status: str) -> HostedToolEvent:
    return HostedToolEvent(run_id=RUN, phase=phase, item={**item, "status": status})  # type: ignore[arg-type]


def test_a_list_and_a_call_each_have_their_lifecycle() -> None:
    done_call = {**CALL, "output": "hi"}
    out = feed(
        RunStatusEvent(run_id=RUN, status=RunStatus.IN_PROGRESS),
        hosted("started", LISTED, "in_progress"),
        hosted("done", {**LISTED, "tools": [{"name": "echo"}]}, "completed"),
        hosted("started", CALL, "in_progress"),
        hosted("done", done_call, "completed"),
        DoneEvent(run_id=RUN, status=RunStatus.COMPLETED, ended_at=1),
    )
    kinds = [(e["type"], e.get("output_index")) for e in out[2:]]
    assert kinds == [
        ("response.output_item.added", 0),
        ("response.mcp_list_tools.in_progress", 0),
        ("response.mcp_list_tools.completed", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1),
        ("response.mcp_call.in_progress", 1),
        ("response.mcp_call_arguments.delta", 1),
        ("response.mcp_call_arguments.done", 1),
        ("response.mcp_call.completed", 1),
        ("response.output_item.done", 1),
        ("response.completed", None),
    ]
    listed, call = out[-1]["response"]["output"]
    assert "status" not in listed and listed["tools"] == [{"name": "echo"}]
    assert call["output"] == "hi" and call["status"] == "completed"
    assert [e["sequence_number"] for e in out] == list(range(len(out)))


def test_a_call_the_turn_never_finished_ends_incomplete() -> None:
    out = feed(
        hosted("started", CALL, "in_progress"),
        DoneEvent(run_id=RUN, status=RunStatus.INCOMPLETE, ended_at=1, reason="interrupted"),
    )
    assert [e["type"] for e in out[-2:]] == ["response.output_item.done", "response.incomplete"]
    assert out[-2]["item"]["status"] == "incomplete"
    assert out[-1]["response"]["output"][0]["status"] == "incomplete"


def test_a_call_cut_short_by_a_dead_server_is_neither_completed_nor_failed() -> None:
    """The sweep that closes a dead turn ends its running call ``incomplete``
    (``engine.sweeps``): a follower sees the item end so, with no completed event."""
    error = {"type": "mcp_protocol_error", "code": -32000, "message": "stopped"}
    out = feed(
        hosted("started", CALL, "in_progress"),
        hosted("done", {**CALL, "error": error}, "incomplete"),
        DoneEvent(run_id=RUN, status=RunStatus.INCOMPLETE, ended_at=1, reason="interrupted"),
    )
    kinds = [e["type"] for e in out if "mcp_call." in e["type"] or "item.done" in e["type"]]
    assert kinds == ["response.mcp_call.in_progress", "response.output_item.done"]
    assert out[-1]["response"]["output"][0]["status"] == "incomplete"
    assert out[-1]["response"]["output"][0]["error"] == error


def test_a_stream_is_freed_without_the_garbage_collector() -> None:
    # The translator and its hosted items hold no cycle: a stream's translator, and the
    # output it built, go when its stream does (each cycle costs the collector's passes).
    translator = ResponseEvents(HEAD)
    translator.start()
    for seq, event in enumerate(
        [
            hosted("started", CALL, "in_progress"),
            hosted("done", {**CALL, "output": "hi"}, "completed"),
            DoneEvent(run_id=RUN, status=RunStatus.COMPLETED, ended_at=1),
        ],
        start=1,
    ):
        translator.feed((seq, event.type, event.model_dump_json()))
    gone = weakref.ref(translator)
    gc.disable()
    try:
        del translator
        assert gone() is None
    finally:
        gc.enable()
