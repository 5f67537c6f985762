"""What a test does when a tool it needs outside the venv (bun, a second ``openai``) is not
installed: it skips and says why, except under CI (``CI`` set), where ``make test`` installs
the tool and its absence is a failure."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason``; under CI, fail with it."""
    if in_ci():
        pytest.fail(f"under CI: {reason}", pytrace=False)
    pytest.skip(reason)
