"""A turn's ``tool_choice`` is kept even when the model does not keep it: a call the choice
does not allow (``none``, another function, a tool outside ``allowed_tools``) is not handed
to the client but answered with a tool error, as unreadable arguments are. The model's
calls are replayed from SSE files in the Chat Completions wire format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import marker, messages, replayed_tool_calls, upstream_requests
from tests.e2e.responses_helpers import calls, create, thread_of

TOOLS = [
    {"type": "function", "name": name, "parameters": {"type": "object", "properties": {}}}
    for name in ("get_weather", "get_time")
]


@pytest.mark.parametrize(
    "choice",
    [
        {"type": "function", "name": "get_time"},
        {
            "type": "allowed_tools",
            "mode": "auto",
            "tools": [{"type": "function", "name": "get_time"}],
        },
    ],
    ids=["one-function", "allowed-tools"],
)
def test_a_call_outside_the_choice_is_answered_with_a_tool_error(
    http: httpx.Client, upstream: Any, tmp_path: Path, choice: dict[str, Any]
) -> None:
    model = replayed_tool_calls(
        tmp_path / "both.sse",
        ("call_w", "get_weather", "{}"),
        ("call_t", "get_time", "{}"),
    )
    word = marker()
    response = create(http, model=model, input=f"time {word}", tools=TOOLS, tool_choice=choice)
    assert [(c["call_id"], c["name"]) for c in calls(response)] == [("call_t", "get_time")]

    error = next(m for m in messages(http, thread_of(http, response["id"])) if m["role"] == "tool")
    assert error["tool_call_id"] == "call_w"
    assert error["content"].startswith("Error: no tool was run: get_weather may not be called")
    assert "get_time" in error["content"]
    (request,) = upstream_requests(upstream, word)
    assert "get_time" in json.dumps(request["tool_choice"])  # the choice reached the model


def test_tool_choice_none_hands_no_call_to_the_client(
    http: httpx.Client, upstream: Any, tmp_path: Path
) -> None:
    model = replayed_tool_calls(tmp_path / "one.sse", ("call_w", "get_weather", "{}"))
    word = marker()
    response = create(http, model=model, input=f"weather {word}", tools=TOOLS, tool_choice="none")
    # the model is asked again after each refused call, and gives up with an error
    assert not calls(response)
    assert response["status"] == "failed"
    assert response["error"]["code"] == "malformed_tool_call"
    assert len(upstream_requests(upstream, word)) == 3
