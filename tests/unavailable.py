"""Tests that run a tool from outside the venv (bun, a second ``openai``): when it is not
installed the test skips and says why, except under CI (``CI`` set), where ``make test``
installs it and its absence is a failure; ``json_report`` runs it for its JSON report."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any, NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason``; under CI, fail with it."""
    if in_ci():
        pytest.fail(f"under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def json_report(command: list[str], *, what: str, timeout: float, **run: Any) -> dict[str, Any]:
    """The JSON object ``command`` prints; the test fails, showing what it printed, when it
    takes longer than ``timeout`` seconds or prints no JSON. ``run``: ``subprocess.run``'s
    other arguments (``cwd``, ``env``, ``input``)."""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, **run
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{what} took over {timeout} s; it printed: {exc.stdout!r}", False)
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"{what} exited {done.returncode} without a JSON report\n"
            f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-4000:]}",
            False,
        )
    return report
