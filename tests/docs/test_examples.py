"""The Python examples of the docs run, in order, against a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import openai
import pytest

from parley import Client

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
SHELL_BLOCK = re.compile(r"```sh\n(.*?)```", re.S)
PLACEHOLDER_ID = re.compile(r'"(asst|run|thread)_\.\.\."')


@pytest.mark.parametrize(
    "doc", ["docs/sdk.md", "docs/openai.md", "docs/vector-stores.md", "README.md"]
)
def test_python_examples_run(
    doc: str,
    server: Any,
    user_key: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    tmp_path: Path,
) -> None:
    # The files the examples upload, in the folder they run in.
    (tmp_path / "handbook.md").write_text(
        "# Holidays\n\nEvery employee has twenty-five days of paid holidays a year.\n"
    )
    monkeypatch.chdir(tmp_path)
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
        with warnings.catch_warnings():
            # The openai SDK marks its Assistants calls deprecated; Parley serves them.
            warnings.filterwarnings(
                "ignore", "(The Assistants API is )?deprecated", DeprecationWarning
            )
            for block in runnable:
                exec(compile(block, doc, "exec"), namespace)
    finally:
        for value in namespace.values():  # the examples' clients, and their connections
            if isinstance(value, Client | openai.OpenAI):
                value.close()
    capsys.readouterr()


def test_the_readmes_curl_example_runs_as_written(server: Any, user_key: str) -> None:
    """The README's shell block with curl, pasted into bash: it makes its own assistant and
    streams a turn, with only the key and the address swapped for this server's."""
    (block,) = [b for b in SHELL_BLOCK.findall((ROOT / "README.md").read_text()) if "curl" in b]
    script = block.replace("pk_...", user_key).replace("http://127.0.0.1:8700", server.base_url)
    env = {k: v for k, v in os.environ.items() if k != "PARLEY_API_KEY"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert '"type":"done"' in done.stdout and '"status":"completed"' in done.stdout
    assert "Hello" in done.stdout  # the demo model's echo, streamed


def test_the_assistants_migration_example_runs_unchanged(server: Any, user_key: str) -> None:
    """``docs/examples/assistants_migration.py``, as a user runs it: the official SDK
    pointed at Parley by its environment, warnings as errors."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(
        OPENAI_BASE_URL=f"{server.base_url}/v1",
        OPENAI_API_KEY=user_key,
        ASSISTANT_MODEL="demo/parley",
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", str(ROOT / "docs/examples/assistants_migration.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        'Demo model: the tool get_weather returned "18 C and sunny in Lisbon".',
        "tools called: get_weather",
    ]
