"""The scenarios with the installed ``openai`` 3.x (the ``test`` extra), in this process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.openai_sdk.scenarios import SCENARIOS, Setup, Unsupported

pytestmark = pytest.mark.skipif(
    not openai.__version__.startswith("3."),
    reason=f"the installed openai is {openai.__version__}, not 3.x: pip install -e '.[test]'",
)


@pytest.fixture
def client(server: Any, user_key: str) -> Iterator[openai.OpenAI]:
    """A fresh user's client; no retries, so every answer is the server's first."""
    with openai.OpenAI(
        base_url=f"{server.base_url}/v1", api_key=user_key, max_retries=0, timeout=30
    ) as sdk:
        yield sdk


def test_scenario(scenario: str, client: openai.OpenAI, sdk_setup: Setup) -> None:
    try:
        SCENARIOS[scenario](client, sdk_setup)
    except Unsupported as exc:
        pytest.skip(str(exc))
