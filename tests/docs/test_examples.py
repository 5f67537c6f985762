"""The Python examples of the docs run, in order, against a real server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import openai
import pytest

from parley import Client

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
PLACEHOLDER_ID = re.compile(r'"(asst|run|thread)_\.\.\."')


@pytest.mark.parametrize("doc", ["docs/sdk.md", "docs/openai.md", "README.md"])
def test_python_examples_run(
    doc: str, server: Any, user_key: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("PARLEY_BASE_URL", server.base_url)
    monkeypatch.setenv("PARLEY_API_KEY", user_key)
    blocks = [
        b.replace("pk_...", user_key).replace("http://127.0.0.1:8700", server.base_url)
        for b in BLOCK.findall((ROOT / doc).read_text())
    ]
    assert blocks, f"{doc} has no python examples"
    namespace: dict[str, Any] = {}
    runnable = [b for b in blocks if not PLACEHOLDER_ID.search(b)]
    assert len(runnable) >= len(blocks) - 1  # at most one block shows a call's shape only
    try:
        for block in runnable:
            exec(compile(block, doc, "exec"), namespace)
    finally:
        for value in namespace.values():  # the examples' clients, and their connections
            if isinstance(value, Client | openai.OpenAI):
                value.close()
    capsys.readouterr()
