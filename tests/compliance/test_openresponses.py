"""Parley's OpenAI Responses face against the Open Responses compliance runner.

The runner (``tests/compliance/openresponses/``, vendored unchanged, run by the bun that
``npm ci --prefix tests/compliance`` installs; ``make test`` does that) sends its 17 tests
to a real ``parley serve`` on loopback: ``POST /v1/responses`` with and without streaming,
``POST /v1/responses/compact``, and WebSocket turns on ``/v1/responses``. One test checks a
built-in sample and sends nothing.

It is pointed at two models of the session server (``tests/conftest.py``):

* ``fake/auto``: the fake OpenAI-compatible upstream in ``auto`` mode, for every test. The
  ``tool-calling`` test needs a model that calls the offered ``get_weather`` tool for
  "What's the weather like in San Francisco?", and every other test a plain text answer;
  ``auto`` calls the first offered tool when the last message is the user's and answers
  text otherwise. This also takes each request through a real provider adapter over HTTP.
* ``demo/parley``: the built-in offline demo model, for every test but ``tool-calling`` (it
  calls a tool only when the user names it, which the runner's prompt does not).

The runner checks shapes, event order and status codes, not what the model says. Without
bun these tests skip and say why; under ``CI=true`` they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.unavailable import json_report, unavailable

HERE = Path(__file__).parent
RUNNER_DIR = HERE / "openresponses"
RUNNER = RUNNER_DIR / "bin" / "compliance-test.ts"
BUN = HERE / "node_modules" / ".bin" / "bun"
#: The whole runner's time limit; it runs its tests concurrently, each turn within 30 s.
RUNNER_TIMEOUT = 120
#: The runner's tests that need the model to call a tool on its own.
NEEDS_A_TOOL_CALL = frozenset({"tool-calling"})


def runner_test_ids() -> list[str]:
    """The ids of the runner's tests, in its order, read from its source."""
    source = (RUNNER_DIR / "src" / "lib" / "compliance-tests.ts").read_text()
    return re.findall(r'^    id: "([a-z0-9-]+)",$', source, flags=re.MULTILINE)


def _cannot_run(reason: str) -> NoReturn:
    """Skip, saying why; fail under CI, where the runner must run."""
    hint = "`make test` installs it (npm ci --prefix tests/compliance)"
    unavailable(f"Open Responses runner unavailable: {reason}; {hint}")


@pytest.fixture(scope="session")
def bun() -> Path:
    """The bun of ``tests/compliance/node_modules``, checked to run."""
    if not BUN.exists():
        npm = "" if shutil.which("npm") else " (and npm is not on PATH)"
        _cannot_run(f"no {BUN.relative_to(HERE.parent.parent)}{npm}")
    try:
        version = subprocess.run(
            [str(BUN), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _cannot_run(f"{BUN} does not start ({exc!r})")
    if version.returncode != 0:
        _cannot_run(f"`bun --version` exited {version.returncode}: {version.stderr.strip()}")
    return BUN


def run_runner(
    bun: Path, base_url: str, key: str, model: str, only: list[str] | None = None
) -> dict[str, Any]:
    """One run of the runner against ``base_url`` (``.../v1``): its ``--json`` document."""
    command = [str(bun), "--no-install", "run", str(RUNNER), "-u", base_url, "-k", key]
    command += ["-m", model, "--json", *(["-f", ",".join(only)] if only else [])]
    # No telemetry, and no transpiler cache written under the home directory.
    env = {**os.environ, "DO_NOT_TRACK": "1", "BUN_RUNTIME_TRANSPILER_CACHE_PATH": "0"}
    return json_report(command, what="the runner", timeout=RUNNER_TIMEOUT, cwd=RUNNER_DIR, env=env)


def failures_report(document: dict[str, Any], model: str, order: list[str]) -> str:
    """One line per test that did not pass (in the runner's order), its errors, and the
    server's answer when the runner quotes it poorly (as ``[object Object]``)."""
    results = sorted(document.get("results", []), key=lambda r: order.index(r.get("id")))
    failed = [r for r in results if r.get("status") != "passed"]
    lines = [
        f"Open Responses compliance with -m {model}: {len(failed)} of {len(results)} "
        f"did not pass ({document.get('summary')})"
    ]
    for result in failed:
        lines.append(f"- {result.get('id')} ({result.get('status')}):")
        lines += [f"    {str(error)[:400]}" for error in result.get("errors") or ["(no errors)"]]
        if "response" in result and "[object Object]" in str(result.get("errors")):
            lines.append(f"    response: {json.dumps(result['response'])[:400]}")
    return "\n".join(lines)


def check(document: dict[str, Any], model: str, expected_ids: list[str]) -> None:
    results = document.get("results", [])
    assert sorted(r.get("id") for r in results) == sorted(expected_ids), document.get("summary")
    if any(r.get("status") != "passed" for r in results):
        pytest.fail(failures_report(document, model, expected_ids), False)


def test_runner_lists_the_tests_we_expect() -> None:
    ids = runner_test_ids()
    assert len(ids) == 17 and len(set(ids)) == 17, ids
    assert set(ids) >= NEEDS_A_TOOL_CALL


def test_compliance_with_the_fake_upstream(bun: Path, server: Any, user_key: str) -> None:
    """Every test of the runner, against ``fake/auto``."""
    model = "fake/auto"
    document = run_runner(bun, f"{server.base_url}/v1", user_key, model)
    check(document, model, runner_test_ids())


def test_compliance_with_the_demo_model(bun: Path, server: Any, user_key: str) -> None:
    """The tests that need no tool call, against ``demo/parley``."""
    model = "demo/parley"
    only = [i for i in runner_test_ids() if i not in NEEDS_A_TOOL_CALL]
    document = run_runner(bun, f"{server.base_url}/v1", user_key, model, only)
    check(document, model, only)
