"""The embedding model Parley runs in process (``parley.providers.minilm``): the real
all-MiniLM-L6-v2 of the embeddings extra, its files checked by hash, loaded on first use,
run off the event loop; and the default embedding model of new vector stores."""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from tokenizers import Tokenizer

from parley.config import EMBEDDINGS_MODULES, LOCAL_EMBEDDING_MODEL, Settings
from parley.errors import InvalidRequest, ServiceUnavailable
from parley.providers import minilm
from parley.providers.embeddings import EmbedRequest, EmbedResult
from parley.providers.minilm import DIMENSIONS, MAX_TOKENS, MODEL_ID, WINDOW_OVERLAP, MiniLM

ROOT = Path(__file__).resolve().parents[2]
PASSAGES = [
    "Owls hunt at night; their soft feathers make their flight silent.",
    "Bees dance to tell the hive where the flowers are.",
    "Tides rise and fall twice a day, pulled by the moon.",
]
#: The first passage in other words, and a sentence about something else.
PARAPHRASE = "Which birds catch their prey in the dark without a sound?"
UNRELATED = "The recipe needs flour, butter and sugar, baked for twenty minutes."

#: The minutes of a town council, to make long texts of: about 15 tokens a sentence.
MINUTES = [
    "The council met on Tuesday evening in the hall of the old school.",
    "The mayor opened the meeting and read the minutes of the last session.",
    "The treasurer reported that the budget for road repairs was spent by October.",
    "Two members asked why the potholes on Mill Lane had not been filled.",
    "The clerk answered that the contractor had been delayed by the rain.",
    "A resident complained about the noise of lorries in the market square at dawn.",
    "The council agreed to write to the haulage firm about its delivery hours.",
    "The headteacher of the primary school asked for money to mend the roof of the gym.",
    "Members voted to set aside part of next year's budget for the school roof.",
    "The parking charges in the town centre will stay the same until spring.",
    "A proposal to plant trees along the high street was sent to the planning committee.",
    "The library will open on Saturday afternoons from next month.",
    "Volunteers offered to paint the benches in the park before the summer fair.",
    "The council thanked the fire brigade for its help during the flooding in March.",
    "The cost of street lighting rose again because of the price of electricity.",
    "Members discussed replacing the old lamps with cheaper ones over three years.",
    "The bus company said the evening service to the villages would run twice an hour.",
    "A new crossing near the health centre was approved after a long debate.",
    "The allotment society asked for a water tap at the far end of the plots.",
    "The council noted that the recycling bins are emptied every other Thursday.",
]
#: What the minutes say once, far into them, and a question about it.
FACT = (
    "The keeper of the lighthouse on the northern cape reported that its lamp, rebuilt last "
    "winter, now shines forty kilometres out to sea. Ships far offshore can see its beam on "
    "clear nights."
)
ABOUT_THE_FACT = "How far out at sea can the light of the lighthouse be seen?"
ABOUT_SOMETHING_ELSE = "What is a good recipe for chocolate cake?"


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


def _tokenizer() -> Tokenizer:
    """The model's tokenizer, as its file has it (cutting at 128 tokens, padding to 128)."""
    return Tokenizer.from_file(str(ROOT / "parley/data/minilm/tokenizer.json"))


def _tokens(text: str) -> list[int]:
    """The ids of ``text`` by the model's tokenizer, whole ([CLS] and [SEP] included)."""
    tokenizer = _tokenizer()
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer.encode(text).ids


def _embedded_as_before(model: MiniLM, text: str) -> list[float]:
    """The vector of ``text`` as it was computed before long inputs were read in windows:
    its first 256 tokens in one run of the model, alone, mean-pooled and scaled to 1."""
    tokenizer = _tokenizer()
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.no_padding()
    ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
    mask = np.ones_like(ids)
    loaded = model.load()
    feeds = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in loaded.inputs:
        feeds["token_type_ids"] = np.zeros_like(ids)
    (hidden,) = loaded.session.run(["last_hidden_state"], feeds)
    weights = mask[:, :, None].astype(np.float32)
    means = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.clip(np.linalg.norm(means, axis=1, keepdims=True), 1e-12, None)
    vector: list[float] = (means / norms)[0].tolist()
    return vector


def minutes(sentences: int, fact_at: int | None = None) -> str:
    """The first ``sentences`` of the minutes (round and round), with ``FACT`` inserted
    before the sentence ``fact_at``."""
    parts = [MINUTES[i % len(MINUTES)] for i in range(sentences)]
    if fact_at is not None:
        parts.insert(fact_at, FACT)
    return " ".join(parts)


def test_tokens_are_the_tokenizers_whole_however_long(model: MiniLM) -> None:
    # [CLS] owls hunt [SEP]
    assert _embed(model, ["Owls hunt"]).input_tokens == 4
    long = " ".join(["owls hunt at night"] * 200)
    longer = long + " but the recipe needs flour and sugar"
    result = _embed(model, [long, longer])
    # Not the tokenizer file's 128, nor the model's 256: every token is counted, and read.
    assert result.input_tokens == 802 + 809 == len(_tokens(long) + _tokens(longer))
    assert max(abs(x - y) for x, y in zip(*result.vectors, strict=True)) > 1e-3
    for vector in result.vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, abs_tol=1e-5)


def test_an_input_of_up_to_256_tokens_has_the_vector_it_had(model: MiniLM) -> None:
    """Read in one window, as before: the very same numbers."""
    words = " ".join(f"w{i}" for i in range(300))
    fits = _tokenizer().decode(_tokens(words)[1 : MAX_TOKENS - 1])
    assert len(_tokens(fits)) == MAX_TOKENS
    for text in (PASSAGES[0], fits):
        assert _embed(model, [text]).vectors[0] == _embedded_as_before(model, text)


def test_a_long_input_is_read_to_its_end(model: MiniLM) -> None:
    """A fact past token 600 of a long text is in its vector: a question about the fact is
    nearer the text than an unrelated question, and nearer the text than the same text
    without the fact (which it would equal if only the first 256 tokens were read)."""
    with_fact = minutes(54, fact_at=44)
    ids = _tokens(with_fact)
    fact = _tokens(FACT)[1:-1]
    starts = [i for i in range(len(ids)) if ids[i : i + len(fact)] == fact]
    assert 800 < len(ids) < 1000 and starts and starts[0] > 600
    text, without, question, unrelated = _embed(
        model, [with_fact, minutes(54), ABOUT_THE_FACT, ABOUT_SOMETHING_ELSE]
    ).vectors
    assert _cosine(question, text) > _cosine(unrelated, text) + 0.1
    assert _cosine(question, text) > _cosine(question, without) + 0.05
    # Read whole, it is no longer what its first 256 tokens say.
    assert _cosine(text, _embedded_as_before(model, with_fact)) < 0.99


def test_the_windows_of_a_long_input_share_the_batches_bounds() -> None:
    """An input of 8,000 tokens is read in windows of at most 256 tokens that cover all of
    it, overlapping by ``WINDOW_OVERLAP``, and they go through batches of at most
    ``batch_tokens`` like any input: no run of the model sees 8,000 tokens at once."""
    windows = minilm._windows(3, 8000)
    assert all(w.input == 3 and not w.whole and w.size <= MAX_TOKENS for w in windows)
    assert windows[0].start == 0 and windows[-1].end == 8000 - 2
    for before, after in itertools.pairwise(windows):
        assert before.end - after.start == WINDOW_OVERLAP
    ids = [101, *range(1000, 1000 + 7998), 102]
    assert windows[1].ids(ids) == [101, *ids[1 + windows[1].start : 1 + windows[1].end], 102]
    assert minilm._windows(0, MAX_TOKENS) == [minilm._Window(0, 0, MAX_TOKENS - 2, whole=True)]
    assert len(minilm._windows(0, MAX_TOKENS + 1)) == 2

    lengths = [w.size for w in windows] + [12, 40, 256]
    batches = list(minilm._batches(lengths, 2048, 64))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) * max(lengths[i] for i in b) <= 2048 for b in batches)


def test_an_input_of_8000_tokens_is_one_unit_vector(model: MiniLM) -> None:
    text = minutes(560)
    count = len(_tokens(text))
    assert count > 8000
    result = _embed(MiniLM(batch_tokens=MAX_TOKENS * 2, max_batch=4), [text, PASSAGES[0]])
    assert result.input_tokens == count + len(_tokens(PASSAGES[0]))
    long, short = result.vectors
    assert math.isclose(math.sqrt(sum(x * x for x in long)), 1.0, abs_tol=1e-5)
    assert (
        max(abs(x - y) for x, y in zip(short, _embedded_as_before(model, PASSAGES[0]), strict=True))
        < 1e-5
    )
    # The same in the default batches, where its windows share runs with other inputs'.
    together = _embed(model, [PASSAGES[1], text]).vectors[1]
    assert max(abs(x - y) for x, y in zip(long, together, strict=True)) < 1e-4


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
