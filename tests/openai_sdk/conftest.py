"""Fixtures of the SDK tests: each scenario by name (``scenario``), the scenarios' ``Setup``
on the session server (its fake upstream's models, and a response and a conversation of
another user), and the check that no turn leaves its upstream open."""

from __future__ import annotations

from typing import Any

import pytest

from parley.testing.fake_upstream import expected_text, tool_arguments, tool_results_text
from tests.openai_sdk.scenarios import KNOWN_BUGS, SCENARIOS, WEATHER_TOOL, Setup

TEXT_CHUNKS = 6
#: 16 deltas 60 ms apart: about a second, to drop a stream after the third and resume.
SLOW_CHUNKS, SLOW_GAP_MS = 16, 60


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes ``scenario`` runs once for each scenario, by name; one that fails
    because of a known Parley bug is a strict xfail, with either SDK."""
    if "scenario" in metafunc.fixturenames:
        metafunc.parametrize(
            "scenario",
            [
                pytest.param(name, marks=pytest.mark.xfail(reason=KNOWN_BUGS[name], strict=True))
                if name in KNOWN_BUGS
                else name
                for name in SCENARIOS
            ],
        )


@pytest.fixture(scope="session")
def sdk_setup(server: Any) -> Setup:
    other = server.new_user("other")
    with server.client(other) as http:
        answer = http.post("/responses", json={"model": "fake/text:2", "input": "Mine"})
        assert answer.status_code == 200, answer.text
        response_id = answer.json()["id"]
        answer = http.post("/conversations", json={"metadata": {"owner": "other"}})
        assert answer.status_code == 200, answer.text
        conversation_id = answer.json()["id"]
    chat_tool = {
        "type": "function",
        "function": {k: v for k, v in WEATHER_TOOL.items() if k not in ("type", "strict")},
    }
    return Setup(
        text_model=f"fake/text:{TEXT_CHUNKS}",
        text=expected_text(TEXT_CHUNKS),
        text_chunks=TEXT_CHUNKS,
        slow_model=f"fake/text:{SLOW_CHUNKS}:{SLOW_GAP_MS}",
        slow_text=expected_text(SLOW_CHUNKS),
        slow_chunks=SLOW_CHUNKS,
        hang_model="fake/hang",
        tool_model="fake/auto",
        tool_arguments=tool_arguments(chat_tool, 0),
        tool_answer=tool_results_text([("{name}", "{output}")]),
        other_api_key=other,
        other_response_id=response_id,
        other_conversation_id=conversation_id,
    )


@pytest.fixture(autouse=True)
def _no_upstream_stream_left(upstream_left_idle: None) -> None:
    """Every response a scenario starts closes its upstream stream."""
