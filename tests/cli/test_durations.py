"""Durations of the command line (``parley.cli.durations``)."""

from __future__ import annotations

import pytest

from parley.cli.durations import seconds_of


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90m", 5400), ("24h", 86400), ("2w", 1_209_600), ("1d12h", 129_600), (" 1.5H ", 5400)],
)
def test_a_duration_is_its_seconds(text: str, seconds: float) -> None:
    assert seconds_of(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "-3d", "3 d", "1y", "d", "2026-12-31", "1h30"])
def test_anything_else_is_no_duration(text: str) -> None:
    assert seconds_of(text) is None
