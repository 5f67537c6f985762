"""An OpenAI-compatible client library other than ``openai``, in another language: the
Vercel AI SDK's ``@ai-sdk/openai-compatible`` provider (TypeScript, run by the bun of
``tests/compliance``), pointed at Parley's ``/v1/chat/completions`` on the suite's server.

``vercel_ai.ts`` streams a text answer of ``fake/text:5`` (its deltas, finish reason and
token count), then asks ``fake/auto`` about the weather with a ``get_weather`` tool that
the SDK runs itself: the model's first step calls it, the SDK sends the result back, and
the second step's text names it. ``make test`` installs the pinned packages
(``npm ci --prefix tests/js_clients``); without them this skips, and fails under CI.
"""

from __future__ import annotations

from typing import Any

from parley.testing.fake_upstream import expected_text, tool_arguments, tool_results_text
from tests.js_clients.bun import script_report


def test_the_vercel_ai_sdk_streams_text_and_runs_a_tool(server: Any, user_key: str) -> None:
    base = f"{server.base_url}/v1"
    what = "the Vercel AI SDK"
    report = script_report(
        "vercel_ai.ts",
        "@ai-sdk/openai-compatible",
        what,
        base,
        user_key,
        "fake/text:5",
        "fake/auto",
    )
    text = report["text"]
    assert "".join(text["deltas"]) == expected_text(5)
    assert len(text["deltas"]) == 5  # streamed chunk by chunk
    assert text["finishReason"] == "stop" and text["outputTokens"] == 5
    tool = report["tool"]
    weather = {"function": {"parameters": {"properties": {"city": {"type": "string"}}}}}
    assert tool["calls"] == [tool_arguments(weather, 0)]  # what fake/auto calls it with
    assert tool["steps"] == 2
    # The next step got the result, and streamed its answer.
    assert tool["text"] == tool_results_text([("get_weather", "22 C and sunny")]), tool
    assert "tool-call" in tool["parts"] and "tool-result" in tool["parts"]
