"""``bench/compare.py``'s table: the pair columns of a row measured every round are the
median of the rounds' own ratios, so that a machine that drifts between rounds does not
move them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def compare():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCH))  # its siblings are imported as top-level modules
    try:
        import compare as module

        yield module
    finally:
        sys.path.remove(str(BENCH))


def test_a_ratio_is_taken_round_by_round(compare) -> None:  # type: ignore[no-untyped-def]
    sides = ["chat", "stored", "stored@pg"]
    table = compare._Table(sides, sides)
    # The machine ran twice as slow in the second round: each round's own ratio is 1.2x
    # (stored) and 1.1x (PostgreSQL), while the medians of each side's rounds say 1.5x.
    rounds = {"chat": [2.0, 4.0, 2.0], "stored": [2.4, 4.8, 6.0], "stored@pg": [2.64, 5.28, 6.6]}
    medians = {side: sorted(values)[1] for side, values in rounds.items()}
    table.add("server CPU per stream", medians, "{:.2f} ms", rounds=rounds)
    table.add("the same without rounds", medians, "{:.2f} ms")
    paired, plain = table.rows
    assert paired[-2:] == ("1.20x", "1.10x")
    assert plain[-2:] == ("2.40x", "1.10x")
