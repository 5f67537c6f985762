"""Retrieval quality on the known-answer set (``bench/known_answers.py``), measured by
``bench/retrieval_quality.py``: every question asked in its passage's own words finds that
passage in the top 5, by words, by vectors and by both; and most of the questions asked in
other words do too. Vectors come from the offline default (the demo's hashing embedding),
and from an embedding model served by the fake upstream in OpenAI's wire format, through
the same provider registry a vector store embeds with."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import retrieval_quality  # noqa: E402

sys.path.remove(str(BENCH))


def _measure(tmp_path: Path, **options: Any) -> dict[str, Any]:
    args = retrieval_quality.parse_args(["--databases", "sqlite"])
    for name, value in options.items():
        setattr(args, name, value)
    return retrieval_quality.run(["sqlite"], argparse.Namespace(**vars(args)))["sqlite"]


def _check(measured: dict[str, Any]) -> None:
    for mode in retrieval_quality.MODES:
        assert measured[mode]["own words"]["recall@5"] == 1.0, mode
    # Words and vectors together find more of the answers than either alone.
    hybrid = measured["hybrid"]["all"]["recall@5"]
    assert hybrid >= 0.85
    assert hybrid >= measured["vector"]["all"]["recall@5"]
    assert measured["lexical"]["own words"]["recall@1"] == 1.0


def test_the_offline_default_finds_the_known_passages(tmp_path: Path) -> None:
    _check(_measure(tmp_path))


def test_an_embedding_model_of_a_provider_finds_them_too(tmp_path: Path, upstream: Any) -> None:
    config = tmp_path / "parley.toml"
    config.write_text(
        f'[providers.fake]\nkind = "openai-chat"\nbase_url = "{upstream.base_url}"\n'
        'api_key = "sk-fake"\nmax_retries = 0\n'
    )
    upstream.embedding_requests.clear()
    _check(_measure(tmp_path, embedding_model="fake/text-embedding-3-small", config=config))
    # The chunks and the questions were embedded by the upstream, in batches.
    paths = {path for path, _ in upstream.embedding_requests}
    assert paths == {"/v1/embeddings"}
    assert len(upstream.embedding_requests) >= len(retrieval_quality.DOCUMENTS)


def test_the_bench_prints_a_row_per_mode_and_kind_of_question(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "quality.json"
    assert retrieval_quality.main(["--databases", "sqlite", "--output", str(output)]) == 0
    printed = capsys.readouterr().out.splitlines()
    rows = [line.split(None, 1) for line in printed[2:11]]
    assert [r[0] for r in rows] == ["sqlite"] * 9
    assert output.exists()
