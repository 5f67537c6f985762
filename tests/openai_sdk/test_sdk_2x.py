"""The scenarios with ``openai`` 2.x, in a subprocess whose ``import openai`` finds the
2.54.0 that ``make test`` installs into ``.venv/openai2`` (``pip install --target``).

One subprocess runs every scenario (``scenarios.py`` as a script) with a fresh user's key
and reports each outcome; each test here reads one. Without ``.venv/openai2`` these tests
skip and say why; under ``CI=true`` they fail instead.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.openai_sdk import scenarios
from tests.openai_sdk.scenarios import SCENARIOS, Setup
from tests.unavailable import json_report, unavailable

#: Where ``make test`` installs openai 2.x: beside the venv's own packages, not among them.
OPENAI2 = Path(sys.prefix) / "openai2"
INSTALL = f"{sys.executable} -m pip install --target {OPENAI2} 'openai==2.54.0'"
#: The subprocess's time limit, for every scenario together.
TIMEOUT = 120


@pytest.fixture(scope="session")
def report_2x(server: Any, sdk_setup: Setup) -> dict[str, Any]:
    """Every scenario run once by openai 2.x: ``{"openai_version", "results"}``."""
    if not (OPENAI2 / "openai" / "__init__.py").exists():
        unavailable(f"openai 2.x is not installed in {OPENAI2}; `make test` does it ({INSTALL})")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(OPENAI2), env.get("PYTHONPATH")]))
    request = {
        "base_url": f"{server.base_url}/v1",
        "api_key": server.new_user("sdk2"),
        "setup": scenarios.setup_as_json(sdk_setup),
        "scenarios": list(SCENARIOS),
    }
    return json_report(
        [sys.executable, "-W", "error", scenarios.__file__],
        what="the openai 2.x scenarios",
        timeout=TIMEOUT,
        input=json.dumps(request),
        env=env,
    )


def test_the_subprocess_runs_openai_2x(report_2x: dict[str, Any]) -> None:
    assert report_2x["openai_version"].startswith("2."), report_2x["openai_version"]
    assert sorted(report_2x["results"]) == sorted(SCENARIOS)


def test_scenario(scenario: str, report_2x: dict[str, Any]) -> None:
    assert report_2x["openai_version"].startswith("2."), report_2x["openai_version"]
    result = report_2x["results"][scenario]
    if result["outcome"] == "skipped":
        pytest.skip(f"openai {report_2x['openai_version']}: {result['detail']}")
    if result["outcome"] != "passed":
        pytest.fail(f"with openai {report_2x['openai_version']}:\n{result['detail']}", False)
