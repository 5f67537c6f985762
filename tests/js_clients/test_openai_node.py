"""OpenAI's Node SDK (the npm ``openai`` package, run by the bun of ``tests/compliance``) on
Parley's ``/v1/responses``: its ``responses.stream()`` helper throws "Unhandled response
stream event" on any event outside OpenAI's own names, so reasoning must stream as
``response.reasoning_text.*`` to it. ``make test`` installs the pinned package (``npm ci
--prefix tests/js_clients``); without it this skips, and fails under CI."""

from __future__ import annotations

from typing import Any

from tests.js_clients.bun import script_report


def test_the_node_sdks_stream_helper_takes_a_reasoning_models_stream(
    server: Any, user_key: str
) -> None:
    base = f"{server.base_url}/v1"
    report = script_report(
        "openai_node.ts", "openai", "the openai Node client", base, user_key, "demo/parley"
    )
    assert "error" not in report, report
    assert "response.reasoning_text.delta" in report["types"]
    assert "response.reasoning.delta" not in report["types"]
    assert report["reasoning"] == report["finalReasoning"] != ""  # the helper built the item
    assert report["text"].startswith('Demo model: you said "Think, then answer."')
    assert report["types"][-1] == "response.completed"
