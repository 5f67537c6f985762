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

import os
import shutil
from pathlib import Path
from typing import Any

from parley.testing.fake_upstream import expected_text, tool_arguments, tool_results_text
from tests.compliance.test_openresponses import BUN
from tests.unavailable import json_report, unavailable

HERE = Path(__file__).parent
SCRIPT = HERE / "vercel_ai.ts"
PACKAGES = HERE / "node_modules" / "@ai-sdk" / "openai-compatible"


def test_the_vercel_ai_sdk_streams_text_and_runs_a_tool(server: Any, user_key: str) -> None:
    hint = "`make test` installs them (npm ci --prefix tests/js_clients)"
    if not BUN.exists():
        npm = "" if shutil.which("npm") else " (and npm is not on PATH)"
        unavailable(f"no bun at {BUN}{npm}; {hint}")
    if not PACKAGES.exists():
        unavailable(f"the Vercel AI SDK is not installed in {HERE / 'node_modules'}; {hint}")
    env = {**os.environ, "DO_NOT_TRACK": "1", "BUN_RUNTIME_TRANSPILER_CACHE_PATH": "0"}
    command = [str(BUN), "--no-install", "run", str(SCRIPT), f"{server.base_url}/v1", user_key]
    report = json_report(
        [*command, "fake/text:5", "fake/auto"],
        what="the Vercel AI SDK client",
        timeout=60,
        cwd=HERE,
        env=env,
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
