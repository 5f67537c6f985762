"""The OpenAI Agents SDK (``openai-agents``) against a real ``parley serve``: an ``Agent``
on the demo model with a function tool, run by ``Runner.run`` and ``Runner.run_streamed``
over the Responses WebSocket and over plain HTTP Responses (issue 31: over the socket the
SDK sends ``response.create`` with ``"stream": true``, which was once refused).

The SDK pins ``websockets<17`` (the venv has 17), so ``make test`` installs it into
``.venv/agents`` (``pip install --target``) and one subprocess runs ``agents_runs.py`` with
that folder first on ``PYTHONPATH``; each test here reads its report. Without
``.venv/agents`` these tests skip and say why; under ``CI=true`` they fail instead.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unavailable import json_report, unavailable

#: The version ``make test`` installs, and where: beside the venv's own packages.
AGENTS_VERSION = "0.24.0"
AGENTS = Path(sys.prefix) / "agents"
INSTALL = f"{sys.executable} -m pip install --target {AGENTS} 'openai-agents=={AGENTS_VERSION}'"
SCRIPT = Path(__file__).with_name("agents_runs.py")
#: The subprocess's time limit, for every run together.
TIMEOUT = 120
TRANSPORTS = ("websocket", "http")

#: The demo model's answers: to "Hello there", and after get_weather's result.
GREETING = 'Demo model: you said "Hello there". '
WEATHER_ANSWER = 'Demo model: the tool get_weather returned "22 C and sunny in {city}".'
#: A tool run's items: the demo model reasons before its call and before its answer.
TOOL_ITEMS = ["reasoning", "tool_call", "tool_call_output", "reasoning", "message_output"]


@pytest.fixture(scope="module")
def agents_report(server: Any) -> dict[str, Any]:
    """Every run of ``agents_runs.py``: ``{"versions", "sent", "runs"}``."""
    if not (AGENTS / "agents" / "__init__.py").exists():
        unavailable(f"openai-agents is not installed in {AGENTS}; `make test` does it ({INSTALL})")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(AGENTS), env.get("PYTHONPATH")]))
    request = {"base_url": f"{server.base_url}/v1", "api_key": server.new_user("agents")}
    return json_report(
        [sys.executable, "-W", "error", str(SCRIPT)],
        what="the Agents SDK runs",
        timeout=TIMEOUT,
        input=json.dumps(request),
        env=env,
    )


def run(report: dict[str, Any], transport: str, name: str) -> dict[str, Any]:
    """One run's outcome; the test fails with the SDK's traceback when it raised."""
    outcome: dict[str, Any] = report["runs"][f"{transport}_{name}"]
    if "error" in outcome:
        pytest.fail(f"the Agents SDK over {transport}:\n{outcome['error']}", False)
    return outcome


def test_the_subprocess_runs_the_pinned_sdk(agents_report: dict[str, Any]) -> None:
    versions = agents_report["versions"]
    assert versions["openai-agents"] == AGENTS_VERSION, versions
    assert versions["websockets"].startswith("16."), versions


def test_the_sdk_sends_stream_true_over_the_socket(agents_report: dict[str, Any]) -> None:
    """What the socket runs cover: every ``response.create`` carries ``"stream": true``."""
    creates = [m for m in agents_report["sent"] if m.get("type") == "response.create"]
    # The text run makes one model call, the tool runs two each.
    assert len(creates) == 5, agents_report["sent"]
    assert all(m["stream"] is True and m["model"] == "demo/parley" for m in creates), creates


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_run_answers(agents_report: dict[str, Any], transport: str) -> None:
    outcome = run(agents_report, transport, "text")
    assert outcome["final_output"].startswith(GREETING), outcome
    assert outcome["cities"] == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_run_calls_the_function_tool(agents_report: dict[str, Any], transport: str) -> None:
    outcome = run(agents_report, transport, "tool")
    assert outcome["cities"] == ["Paris"]
    assert outcome["final_output"] == WEATHER_ANSWER.format(city="Paris")
    assert outcome["items"] == [f"{kind}_item" for kind in TOOL_ITEMS]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_run_streamed_calls_the_function_tool(
    agents_report: dict[str, Any], transport: str
) -> None:
    outcome = run(agents_report, transport, "streamed")
    answer = WEATHER_ANSWER.format(city="Lyon")
    assert outcome["cities"] == ["Lyon"]
    assert outcome["final_output"] == answer
    assert outcome["text"] == answer  # the deltas of the second response, joined
    assert outcome["item_events"] == [
        "reasoning_item_created",
        "tool_called",
        "tool_output",
        "reasoning_item_created",
        "message_output_created",
    ]
    raw = outcome["raw_events"]
    assert raw.count("response.created") == raw.count("response.completed") == 2, raw
