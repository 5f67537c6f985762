"""OpenAI's Node SDK (the npm ``openai`` package, run by the bun of ``tests/compliance``) on
Parley's ``/v1/responses``: its ``responses.stream()`` helper throws "Unhandled response
stream event" on any event outside OpenAI's own names, so reasoning must stream as
``response.reasoning_text.*`` to it. ``make test`` installs the pinned package (``npm ci
--prefix tests/js_clients``); without it this skips, and fails under CI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from tests.compliance.test_openresponses import BUN
from tests.unavailable import json_report, unavailable

HERE = Path(__file__).parent
SCRIPT = HERE / "openai_node.ts"
PACKAGE = HERE / "node_modules" / "openai"


def test_the_node_sdks_stream_helper_takes_a_reasoning_models_stream(
    server: Any, user_key: str
) -> None:
    hint = "`make test` installs it (npm ci --prefix tests/js_clients)"
    if not BUN.exists():
        npm = "" if shutil.which("npm") else " (and npm is not on PATH)"
        unavailable(f"no bun at {BUN}{npm}; {hint}")
    if not PACKAGE.exists():
        unavailable(f"the openai package is not installed in {HERE / 'node_modules'}; {hint}")
    env = {**os.environ, "DO_NOT_TRACK": "1", "BUN_RUNTIME_TRANSPILER_CACHE_PATH": "0"}
    command = [str(BUN), "--no-install", "run", str(SCRIPT), f"{server.base_url}/v1", user_key]
    report = json_report(
        [*command, "demo/parley"], what="the openai Node client", timeout=60, cwd=HERE, env=env
    )
    assert "error" not in report, report
    assert "response.reasoning_text.delta" in report["types"]
    assert "response.reasoning.delta" not in report["types"]
    assert report["reasoning"] == report["finalReasoning"] != ""  # the helper built the item
    assert report["text"].startswith('Demo model: you said "Think, then answer."')
    assert report["types"][-1] == "response.completed"
