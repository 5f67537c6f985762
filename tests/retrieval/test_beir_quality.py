"""Retrieval quality on a dataset in BEIR's format (``bench/beir_data.py``, measured by
``bench/retrieval_quality.py --beir``): the scores on rankings checked by hand, the loader on
the format sample of ``beir_format_sample/`` (written for these tests: it says nothing of
quality) and on malformed copies of it, and the bench end to end on SQLite, with the demo's
embedding and with an embedding model served by the fake upstream."""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import beir_data  # noqa: E402
import retrieval_quality  # noqa: E402

sys.path.remove(str(BENCH))

SAMPLE = Path(__file__).resolve().parent / "beir_format_sample"


# ----------------------------------------------------------------------- the scores


def test_ndcg_at_10_of_a_ranking_checked_by_hand() -> None:
    # d2 (judged 2) at rank 3, d1 (judged 1) at rank 2, an unjudged document first and one
    # judged 0 at rank 4. DCG = 1/log2(3) + 2/log2(4) = 0.63093 + 1 = 1.63093; the best
    # ranking (d2, d1) gives 2/log2(2) + 1/log2(3) = 2.63093; nDCG = 0.61991.
    judged = {"d1": 1, "d2": 2, "d0": 0}
    ranked = ["x", "d1", "d2", "d0"]
    assert beir_data.ndcg_at(ranked, judged) == pytest.approx(0.61991, abs=1e-5)
    assert beir_data.ndcg_at(["d2", "d1"], judged) == pytest.approx(1.0)
    # Only the first k count: at 2, DCG = 1/log2(3) over the same ideal.
    assert beir_data.ndcg_at(ranked, judged, k=2) == pytest.approx(
        (1 / math.log2(3)) / (2 + 1 / math.log2(3))
    )
    # A relevant document at rank 11 is not in the top 10.
    eleventh = [f"x{i}" for i in range(10)] + ["d2"]
    assert beir_data.ndcg_at(eleventh, judged) == 0.0
    # A query with nothing relevant scores 0 (as trec_eval scores it), not a division error.
    assert beir_data.ndcg_at(["d0"], {"d0": 0}) == 0.0


def test_recall_at_10_of_a_ranking_checked_by_hand() -> None:
    judged = {"d1": 1, "d2": 2, "d0": 0}
    assert beir_data.recall_at(["x", "d1", "d2", "d0"], judged) == 1.0
    assert beir_data.recall_at(["x", "d1", "d2"], judged, k=2) == 0.5
    assert beir_data.recall_at([f"x{i}" for i in range(10)] + ["d1"], judged) == 0.0
    assert beir_data.recall_at(["d0"], {"d0": 0}) == 0.0


def test_published_scores_are_all_minilm_l6_v2s_on_the_same_dataset() -> None:
    scifact = beir_data.published("local/all-minilm-l6-v2", "scifact")
    assert scifact is not None
    assert (scifact.ndcg_at_10, scifact.recall_at_10) == (0.64508, 0.78333)
    assert "SciFact.json" in scifact.source
    assert beir_data.published("local/all-minilm-l6-v2", "NFCorpus") is not None
    # Another model's, or a dataset without a published score: nothing to compare with.
    assert beir_data.published("demo/embed", "scifact") is None
    assert beir_data.published("local/all-minilm-l6-v2", "beir_format_sample") is None


# ----------------------------------------------------------------------- the loader


def test_the_loader_reads_the_format_sample() -> None:
    dataset = beir_data.load(SAMPLE)
    assert dataset.name == "beir_format_sample"
    assert dataset.split == "test"
    assert len(dataset.documents) == 12
    # q5 is in queries.jsonl but not judged by the split: not scored.
    assert list(dataset.queries) == ["q1", "q2", "q3", "arg4"]
    assert dataset.qrels["q1"] == {"d01": 2, "d03": 0}
    assert dataset.qrels["q2"] == {"d04": 2, "d05": 1}
    # The title comes first in what is indexed; a document without one is its text.
    assert dataset.documents["d01"].content.startswith("Looking after a bicycle chain\n\n")
    assert dataset.documents["d11"].content == dataset.documents["d11"].text


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "broken"
    shutil.copytree(SAMPLE, folder)
    return folder


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(line)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "qrels" / "test.tsv").unlink(), "test.tsv: missing"),
        (lambda f: _append(f / "corpus.jsonl", "{not json\n"), "corpus.jsonl:13: not JSON"),
        (lambda f: _append(f / "corpus.jsonl", '{"_id": "d01", "text": "again"}\n'), "twice"),
        (lambda f: _append(f / "corpus.jsonl", '{"text": "no id"}\n'), "corpus.jsonl:13: no '_id'"),
        (lambda f: _append(f / "queries.jsonl", '{"_id": "q9", "text": " "}\n'), "no text"),
        (lambda f: _append(f / "qrels" / "test.tsv", "q9\td01\t1\n"), "query 'q9'"),
        (lambda f: _append(f / "qrels" / "test.tsv", "q1\td99\t1\n"), "document 'd99'"),
        (lambda f: _append(f / "qrels" / "test.tsv", "q1\td02\tyes\n"), "test.tsv:8: the score"),
        (lambda f: _append(f / "qrels" / "test.tsv", "q1 d02 1\n"), "1 tab-separated fields"),
    ],
)
def test_the_loader_names_what_is_wrong(tmp_path: Path, damage: Any, message: str) -> None:
    folder = _copy(tmp_path)
    damage(folder)
    with pytest.raises(beir_data.DatasetError, match=re.escape(message)):
        beir_data.load(folder)


def test_the_loader_refuses_a_missing_folder_and_split(tmp_path: Path) -> None:
    with pytest.raises(beir_data.DatasetError, match="no such folder"):
        beir_data.load(tmp_path / "nowhere")
    with pytest.raises(beir_data.DatasetError, match=re.escape("dev.tsv: missing")):
        beir_data.load(SAMPLE, split="dev")


# ----------------------------------------------------------------------- the bench


def _bench(tmp_path: Path, *options: str) -> dict[str, Any]:
    """The bench on the sample, on SQLite; what it wrote."""
    output = tmp_path / "quality.json"
    argv = ["--beir", str(SAMPLE), "--databases", "sqlite", "--output", str(output), *options]
    assert retrieval_quality.main(argv) == 0
    written: dict[str, Any] = json.loads(output.read_text())
    return written


def test_the_bench_scores_each_mode_on_the_format_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = _bench(tmp_path, "--embedding-model", "demo/embed")
    printed = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in printed[2:5]]
    assert [row[:3] for row in rows] == [["sqlite", m, "4"] for m in retrieval_quality.MODES]
    modes = written["results"]["sqlite"]["modes"]
    for mode, scores in modes.items():
        assert set(scores["per_query"]) == {"q1", "q2", "q3", "arg4"}, mode
        assert 0 < scores["ndcg@10"] <= 1 and 0 < scores["recall@10"] <= 1, mode
    # q1 in its document's own words: found first by words and by both.
    assert modes["lexical"]["per_query"]["q1"]["ndcg@10"] == 1.0
    assert modes["hybrid"]["per_query"]["q1"]["ndcg@10"] == 1.0
    # arg4 is also a document, with the query's very words; left out, the knot it judges
    # relevant comes first (kept, it would be second: nDCG 0.63).
    assert modes["lexical"]["per_query"]["arg4"]["ndcg@10"] == 1.0
    assert written["published"] is None
    assert written["dataset"]["name"] == "beir_format_sample"


def test_the_default_embedding_model_is_the_local_minilm(tmp_path: Path) -> None:
    written = _bench(tmp_path)
    assert "vectors from local/all-minilm-l6-v2" in written["notes"]
    vector = written["results"]["sqlite"]["modes"]["vector"]["per_query"]
    # q3 asks for repotting in other words ("a bigger pot"): the model of meaning ranks
    # its document first, where the demo's hashing of words puts it second (nDCG 0.5).
    assert vector["q3"]["ndcg@10"] == 1.0


def test_a_ranking_lists_each_document_once_without_the_querys_own() -> None:
    def result(file_id: str) -> Any:
        return retrieval_quality.index.SearchResult(0.5, "vs", file_id, "", {}, 0, "", 0, 0)

    files = {f"file_{n}": f"d{n}" for n in range(14)} | {"file_q": "q"}
    found = [result("file_1"), result("file_q"), result("file_1"), result("file_2")]
    found += [result(f"file_{n}") for n in range(3, 14)]
    ranked = retrieval_quality.ranking(found, files, "q")
    assert ranked == [f"d{n}" for n in range(1, 11)]


def test_an_embedding_model_of_a_provider_is_compared_with_its_published_score(
    tmp_path: Path, upstream: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "parley.toml"
    config.write_text(
        f'[providers.fake]\nkind = "openai-chat"\nbase_url = "{upstream.base_url}"\n'
        'api_key = "sk-fake"\nmax_retries = 0\n'
    )
    upstream.embedding_requests.clear()
    options = ("--embedding-model", "fake/all-minilm-l6-v2", "--config", str(config))
    written = _bench(tmp_path, *options, "--name", "scifact")
    printed = capsys.readouterr().out
    # The chunks and the queries went to the provider's embeddings API.
    assert {path for path, _ in upstream.embedding_requests} == {"/v1/embeddings"}
    # Named as SciFact, the sample's rows stand next to the model's published SciFact score.
    assert written["published"]["ndcg_at_10"] == 0.64508
    assert "published  vector, all-MiniLM-L6-v2" in printed
    assert "mtebpaper" in written["notes"]


def test_a_corpus_is_embedded_once_for_every_database(tmp_path: Path, upstream: Any) -> None:
    config = tmp_path / "parley.toml"
    config.write_text(
        f'[providers.fake]\nkind = "openai-chat"\nbase_url = "{upstream.base_url}"\n'
        'api_key = "sk-fake"\nmax_retries = 0\n'
    )
    args = retrieval_quality.parse_args(
        ["--beir", str(SAMPLE), "--embedding-model", "fake/e", "--config", str(config)]
    )
    dataset = beir_data.load(SAMPLE)
    upstream.embedding_requests.clear()
    retrieval_quality.run_beir(["sqlite"], args, dataset)
    once = len(upstream.embedding_requests)
    upstream.embedding_requests.clear()
    # Two databases (two SQLite files here): the second reuses the first one's vectors.
    retrieval_quality.run_beir(["sqlite", "sqlite"], args, dataset)
    assert once > 0
    assert len(upstream.embedding_requests) == once


def test_the_bench_refuses_a_folder_not_in_beirs_format(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=re.escape("corpus.jsonl: missing")):
        retrieval_quality.main(["--beir", str(tmp_path), "--databases", "sqlite"])
