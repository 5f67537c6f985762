"""The embedding model Parley runs in process (``parley.providers.minilm``): the real
all-MiniLM-L6-v2 of the embeddings extra, its files checked by hash, loaded on first use,
run off the event loop; and the default embedding model of new vector stores."""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from parley.config import EMBEDDINGS_MODULES, LOCAL_EMBEDDING_MODEL, Settings
from parley.errors import InvalidRequest, ServiceUnavailable
from parley.providers import minilm
from parley.providers.embeddings import EmbedRequest, EmbedResult
from parley.providers.minilm import DIMENSIONS, MAX_TOKENS, MODEL_ID, MiniLM

ROOT = Path(__file__).resolve().parents[2]
PASSAGES = [
    "Owls hunt at night; their soft feathers make their flight silent.",
    "Bees dance to tell the hive where the flowers are.",
    "Tides rise and fall twice a day, pulled by the moon.",
]
#: The first passage in other words, and a sentence about something else.
PARAPHRASE = "Which birds catch their prey in the dark without a sound?"
UNRELATED = "The recipe needs flour, butter and sugar, baked for twenty minutes."


def _embed(model: MiniLM, texts: list[str], **kw: object) -> EmbedResult:
    return asyncio.run(model.embed(EmbedRequest(model=MODEL_ID, inputs=texts, **kw)))  # type: ignore[arg-type]


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return MiniLM()


def test_vectors_have_384_dimensions_unit_length_and_say_what_is_near(model: MiniLM) -> None:
    result = _embed(model, [*PASSAGES, PARAPHRASE, UNRELATED])
    assert result.model == MODEL_ID
    assert [len(v) for v in result.vectors] == [DIMENSIONS] * 5
    for vector in result.vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, abs_tol=1e-5)
    owls, bees, tides, question, recipe = result.vectors
    # The question shares no word with the owls' passage, and finds it first.
    near = [_cosine(question, v) for v in (owls, bees, tides, recipe)]
    assert max(near) == near[0]
    assert near[0] > near[3] + 0.2


def test_the_same_text_gives_the_same_vector_in_any_batch_or_instance(model: MiniLM) -> None:
    texts = [PARAPHRASE, *PASSAGES, "a", UNRELATED * 3]
    together = _embed(model, texts).vectors
    # In batches of two, sorted by length: each vector still lands at its input.
    small = _embed(MiniLM(batch_tokens=MAX_TOKENS, max_batch=2), texts).vectors
    alone = [_embed(model, [text]).vectors[0] for text in texts]
    for mine, other, single in zip(together, small, alone, strict=True):
        assert max(abs(x - y) for x, y in zip(mine, other, strict=True)) < 1e-4
        assert max(abs(x - y) for x, y in zip(mine, single, strict=True)) < 1e-4
    assert _embed(model, texts).vectors == together


def test_tokens_are_the_tokenizers_and_long_inputs_are_cut(model: MiniLM) -> None:
    # [CLS] owls hunt [SEP]
    assert _embed(model, ["Owls hunt"]).input_tokens == 4
    long = " ".join(["owls hunt at night"] * 200)
    result = _embed(model, [long, long + " but the recipe needs flour and sugar"])
    assert result.input_tokens == 2 * MAX_TOKENS
    # What lies past the 256th token is not read.
    assert max(abs(x - y) for x, y in zip(*result.vectors, strict=True)) < 1e-6


def test_what_the_model_cannot_take_is_refused(model: MiniLM) -> None:
    with pytest.raises(InvalidRequest) as refused:
        _embed(model, ["owls"], dimensions=256)
    assert refused.value.param == "dimensions"
    assert "384" in refused.value.message
    assert len(_embed(model, ["owls"], dimensions=DIMENSIONS).vectors[0]) == DIMENSIONS
    with pytest.raises(InvalidRequest) as refused:
        _embed(model, [[101, 2023, 102]])  # type: ignore[list-item]
    assert refused.value.code == "token_input_unsupported"


def test_a_model_file_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    tampered = tmp_path / "model.onnx"
    shutil.copyfile(minilm.model_file(), tampered)
    with tampered.open("r+b") as f:  # one byte of the weights, past the header
        f.seek(tampered.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    model = MiniLM(model_path=tampered)
    for _ in range(2):  # refused at every call, not once
        with pytest.raises(ServiceUnavailable) as refused:
            _embed(model, ["owls"])
        assert refused.value.code == "embedding_model_unavailable"
        assert minilm.MODEL_SHA256 in refused.value.message
        assert "pip install 'parley-ai[embeddings]'" in refused.value.message
        assert str(tmp_path) not in refused.value.message  # no paths to a client
    assert not model.loaded


def test_a_tokenizer_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    vocabulary = tmp_path / "tokenizer.json"
    vocabulary.write_bytes(
        (ROOT / "parley/data/minilm/tokenizer.json").read_bytes().replace(b'"owl"', b'"own"', 1)
    )
    with pytest.raises(ServiceUnavailable) as refused:
        _embed(MiniLM(tokenizer_path=vocabulary), ["owls"])
    assert minilm.TOKENIZER_SHA256 in refused.value.message


def test_nothing_loads_before_the_first_call() -> None:
    """Importing the module, reading the settings and making the shared instance load
    neither onnxruntime nor the model: a server starts without them."""
    script = (
        "import sys\n"
        "from parley.config import Settings\n"
        "from parley.providers import minilm\n"
        "Settings()\n"
        "shared = minilm.shared()\n"
        "assert shared is minilm.shared()\n"
        "print('onnxruntime' in sys.modules, 'numpy' in sys.modules, shared.loaded)\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert shown.stdout.split() == ["False", "False", "False"]


async def test_the_event_loop_runs_while_a_batch_is_embedded() -> None:
    """One batch of 256 inputs is one run of the model, on the worker thread: the loop
    goes round many times meanwhile (it would go round once if the run blocked it)."""
    model = MiniLM(batch_tokens=256 * 64, max_batch=256)
    texts = [f"{PASSAGES[i % 3]} ({i})" for i in range(256)]
    embedding = asyncio.create_task(model.embed(EmbedRequest(model=MODEL_ID, inputs=texts)))
    rounds = 0
    while not embedding.done():
        await asyncio.sleep(0.001)
        rounds += 1
    assert len((await embedding).vectors) == 256
    assert model.loaded
    assert rounds > 10


def test_the_threads_are_bounded_by_the_cpus() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert 1 <= MiniLM().threads <= min(minilm.MAX_THREADS, cpus)
    assert MiniLM(threads=1000).threads <= cpus


def test_the_embeddings_extra_holds_the_modules_parley_looks_for() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = [Requirement(line).name.replace("-", "_") for line in extras["embeddings"]]
    assert sorted(names) == sorted(EMBEDDINGS_MODULES)
    assert "embeddings" in Requirement(extras["all"][0]).extras
    assert minilm.problem() is None  # installed here: the suite runs with `all`


def test_the_tokenizer_and_its_licence_are_in_the_package() -> None:
    data = ROOT / "parley/data/minilm"
    assert {p.name for p in data.iterdir()} >= {"tokenizer.json", "LICENSE", "README.md"}
    assert "Apache License" in (data / "LICENSE").read_text()
    assert minilm.TOKENIZER_SHA256 in (data / "README.md").read_text()


# ---------------------------------------------------------------- the default of new stores


def test_new_stores_embed_with_the_local_model_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PARLEY_EMBEDDING_MODEL", raising=False)
    monkeypatch.delenv("PARLEY_CONFIG", raising=False)
    assert Settings().embedding_model == LOCAL_EMBEDDING_MODEL == f"local/{MODEL_ID}"
    assert Settings(embedding_model="demo/embed").embedding_model == "demo/embed"
    # Empty turns vectors off: stores are searched by their words.
    assert Settings(embedding_model="").embedding_model is None
    monkeypatch.setenv("PARLEY_EMBEDDING_MODEL", "")
    assert Settings().embedding_model is None
    monkeypatch.setenv("PARLEY_EMBEDDING_MODEL", "openai/text-embedding-3-small")
    assert Settings().embedding_model == "openai/text-embedding-3-small"
    monkeypatch.delenv("PARLEY_EMBEDDING_MODEL")
    config = tmp_path / "parley.toml"
    config.write_text('[retrieval]\nembedding_model = ""\n')
    assert Settings(config=config).embedding_model is None
    config.write_text('[retrieval]\nembedding_model = "demo/embed"\n')
    assert Settings(config=config).embedding_model == "demo/embed"
