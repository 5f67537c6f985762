"""Chunks of text by tokens: OpenAI's static chunking rules, offsets, overlap, the count."""

from __future__ import annotations

import itertools
import string

import pytest

from parley.errors import InvalidRequest
from parley.retrieval import Chunk, ChunkingStrategy, chunk, count_tokens, parse_chunking_strategy


def words(count: int) -> list[str]:
    """``count`` distinct words of two to three letters: one token each."""
    letters = string.ascii_lowercase
    pairs = ("".join(p) for n in (2, 3) for p in itertools.product(letters, repeat=n))
    return list(itertools.islice(pairs, count))


def test_no_text_gives_no_chunk() -> None:
    assert chunk("") == []
    assert chunk(" \n\t ") == []


def test_a_short_text_is_one_chunk_of_itself() -> None:
    assert chunk("Hello, world.") == [
        Chunk(index=0, text="Hello, world.", start=0, end=13, tokens=4)
    ]


def test_windows_slide_by_the_size_less_the_overlap() -> None:
    vocabulary = words(1000)
    text = " ".join(vocabulary)
    chunks = chunk(text, max_tokens=100, overlap=40)
    assert [c.text.split() for c in chunks] == [
        vocabulary[first : first + 100] for first in range(0, 1000 - 40, 60)
    ]
    for before, after in itertools.pairwise(chunks):
        assert before.text.split()[-40:] == after.text.split()[:40]
    assert chunks[-1].end == len(text)
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_no_overlap_cuts_the_text_in_consecutive_pieces() -> None:
    vocabulary = words(450)
    chunks = chunk(" ".join(vocabulary), max_tokens=100, overlap=0)
    assert [len(c.text.split()) for c in chunks] == [100, 100, 100, 100, 50]
    assert list(itertools.chain.from_iterable(c.text.split() for c in chunks)) == vocabulary


def test_offsets_map_back_to_the_text() -> None:
    text = (
        "Parley lit des fichiers: café, naïve, Ünïcödé. 检索增强生成会把文件切成小块。\n\n"
        "def f(x):\n    return x ** 2  # 12345678\n" * 300
    )
    chunks = chunk(text, max_tokens=120, overlap=60)
    assert len(chunks) > 10
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert 0 < c.tokens <= 120
        # Counted again alone, a chunk that starts inside a run may count one more.
        assert c.tokens <= count_tokens(c.text) <= c.tokens + 2
    assert chunks[0].start == 0
    assert chunks[-1].end == len(text.rstrip())


def test_a_line_without_spaces_is_cut_inside() -> None:
    text = "a" * 10_000  # 1,250 tokens of 8 letters
    chunks = chunk(text)
    assert [(c.start, c.end, c.tokens) for c in chunks] == [
        (0, 6400, 800),
        (3200, 9600, 800),
        (6400, 10_000, 450),
    ]


def test_the_count_follows_the_documented_weights() -> None:
    assert count_tokens("hello") == 1
    assert count_tokens("internationalization") == 3  # 20 letters, 8 a token
    assert count_tokens("1234567") == 3  # digits by three
    assert count_tokens("检索增强") == 4
    assert count_tokens("Привет") == 2  # other letters, 5 a token
    assert count_tokens("a, b") == 3  # the comma is a token, one space is free
    assert count_tokens("a" + " " * 17 + "b") == 4  # 8 spaces a token, fewer free
    assert count_tokens("") == 0


@pytest.mark.parametrize(
    ("max_tokens", "overlap", "param", "says"),
    [
        (99, 0, "max_chunk_size_tokens", "between 100 and 4096"),
        (4097, 0, "max_chunk_size_tokens", "between 100 and 4096"),
        (800, -1, "chunk_overlap_tokens", "0 or more"),
        (800, 401, "chunk_overlap_tokens", "must not exceed half"),
        (101, 51, "chunk_overlap_tokens", "must not exceed half"),
        (True, 0, "max_chunk_size_tokens", "must be an integer"),
    ],
)
def test_openai_limits_are_checked(max_tokens: int, overlap: int, param: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        chunk("text", max_tokens=max_tokens, overlap=overlap)
    assert raised.value.param == f"chunking_strategy.static.{param}"
    assert says in raised.value.message


def test_the_limits_themselves_are_allowed() -> None:
    assert len(chunk("x", max_tokens=100, overlap=50)) == 1
    assert len(chunk("x", max_tokens=4096, overlap=2048)) == 1


def test_strategies_of_a_request() -> None:
    assert parse_chunking_strategy(None) == ChunkingStrategy(800, 400)
    assert parse_chunking_strategy({"type": "auto"}) == ChunkingStrategy(800, 400)
    static = {"type": "static", "static": {"max_chunk_size_tokens": 300, "chunk_overlap_tokens": 0}}
    assert parse_chunking_strategy(static) == ChunkingStrategy(300, 0)
    assert ChunkingStrategy(300, 0).to_dict() == static
    for bad, param in [
        ({"type": "other"}, "chunking_strategy"),
        ({"type": "auto", "static": {}}, "chunking_strategy"),
        ({"type": "static"}, "chunking_strategy.static"),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 300}},
            "chunking_strategy.static.chunk_overlap_tokens",
        ),
        (
            {
                "type": "static",
                "static": {"max_chunk_size_tokens": 300, "chunk_overlap_tokens": 200},
            },
            "chunking_strategy.static.chunk_overlap_tokens",
        ),
    ]:
        with pytest.raises(InvalidRequest) as raised:
            parse_chunking_strategy(bad)
        assert raised.value.param == param, bad
