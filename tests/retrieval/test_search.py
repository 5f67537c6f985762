"""Search over the chunk index (``parley.store.index``) on every database: known
answers, filters, ranking options and isolation."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

import pytest

from parley.errors import InvalidRequest
from parley.retrieval import chunk
from parley.store import index
from parley.store.db import Database
from tests.retrieval.conftest import make_file, make_user

DOCUMENTS = {
    "volcanoes.txt": (
        "Volcanoes form where molten rock called magma rises through the crust. Shield"
        " volcanoes such as Mauna Loa have gentle slopes built by runny basalt lava, while"
        " stratovolcanoes erupt explosively because their sticky magma traps gas."
    ),
    "bees.txt": (
        "Honeybees communicate the direction of flowers with a waggle dance. The angle of"
        " the dance against the vertical comb tells the other foragers the bearing of the"
        " nectar relative to the sun."
    ),
    "bread.txt": (
        "Sourdough bread rises thanks to a starter of wild yeast and lactic acid bacteria."
        " The long fermentation gives the loaf its sour taste and open crumb; bakers feed"
        " the starter with flour and water every day."
    ),
    "chess.txt": (
        "In chess, castling moves the king two squares toward a rook, and that rook jumps"
        " to the other side of the king. Castling is not allowed when the king is in check"
        " or has moved before."
    ),
    "tides.txt": (
        "Ocean tides are caused mainly by the gravitational pull of the Moon. Spring tides,"
        " with the largest range, happen at new and full moon when the Sun and Moon line"
        " up."
    ),
    "owls.txt": (
        "Owls hunt at night using hearing so precise that barn owls can catch mice in total"
        " darkness. Their asymmetrical ear openings let them locate prey in both height"
        " and direction."
    ),
    "compilers.txt": (
        "A compiler translates source code into machine code in phases: lexing turns"
        " characters into tokens, parsing builds a syntax tree, and the back end performs"
        " register allocation before emitting instructions."
    ),
    "coffee.txt": (
        "Espresso is brewed by forcing hot water through finely ground coffee under about"
        " nine bars of pressure. A good shot takes twenty five to thirty seconds and has a"
        " layer of crema on top."
    ),
    "glaciers.txt": (
        "Glaciers carve U-shaped valleys as they grind over bedrock. Moraines are ridges"
        " of rock debris that a glacier pushes ahead of it or leaves at its sides when the"
        " ice melts."
    ),
    "vaccines.txt": (
        "Vaccines train the immune system by exposing it to a harmless piece or weakened"
        " form of a pathogen, so that memory cells and antibodies respond quickly to a"
        " later infection."
    ),
    "bicycles.txt": (
        "Bicycle gears change the ratio between pedal turns and wheel turns. A small front"
        " chainring with a large rear cog makes climbing hills easier at the cost of speed."
    ),
    "tea.txt": (
        "Green tea and black tea come from the same plant, Camellia sinensis. Black tea"
        " leaves are oxidised fully before drying, while green tea leaves are heated"
        " early to stop oxidation."
    ),
}

#: A question, the file whose passage answers it, and a phrase of that passage.
QUESTIONS = [
    ("Why do some volcanoes erupt explosively?", "volcanoes.txt", "sticky magma"),
    ("How do honeybees tell others where flowers are?", "bees.txt", "waggle dance"),
    ("What makes sourdough taste sour?", "bread.txt", "fermentation"),
    ("When is castling not allowed in chess?", "chess.txt", "in check"),
    ("What causes spring tides?", "tides.txt", "new and full moon"),
    ("How can owls catch mice in the dark?", "owls.txt", "hearing"),
    ("What does the parser of a compiler build?", "compilers.txt", "syntax tree"),
    ("How long should an espresso shot take?", "coffee.txt", "thirty seconds"),
    ("What is a moraine?", "glaciers.txt", "Moraines"),
    ("How do vaccines protect against infection?", "vaccines.txt", "memory cells"),
    ("Which gears make climbing hills easier on a bicycle?", "bicycles.txt", "rear cog"),
    ("What is the difference between green and black tea?", "tea.txt", "oxidised"),
]

DIM = 384
_WORD = re.compile(r"[a-z]+")
_COMMON = frozenset(
    [
        "the",
        "and",
        "how",
        "can",
        "what",
        "does",
        "why",
        "when",
        "which",
        "where",
        "who",
        "are",
        "for",
        "with",
        "its",
        "that",
        "this",
        "from",
        "into",
        "their",
        "them",
        "they",
        "has",
        "have",
        "not",
    ]
)


def embed(text: str) -> list[float]:
    """A deterministic test embedding: a hashed bag of words (but the most common) and of
    the words' first five letters (a crude stem), signed, normalised."""
    vector = [0.0] * DIM
    for word in _WORD.findall(text.lower()):
        if len(word) < 3 or word in _COMMON:
            continue
        for feature in (word, word[:5]):
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            slot = int.from_bytes(digest[:4], "little") % DIM
            vector[slot] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


@dataclass
class Corpus:
    user_id: str
    store_id: str
    file_ids: dict[str, str]


async def load(
    db: Database,
    *,
    user_id: str | None = None,
    store_id: str = "vs_docs",
    documents: dict[str, str] = DOCUMENTS,
    embeddings: bool = True,
    attributes: dict[str, dict[str, Any]] | None = None,
) -> Corpus:
    user_id = user_id or await make_user(db)
    file_ids = {}
    for filename, text in documents.items():
        file_id = await make_file(db, user_id, filename)
        pieces = chunk(text, max_tokens=100, overlap=0)
        await db.write(
            index.add_chunks,
            user_id=user_id,
            vector_store_id=store_id,
            file_id=file_id,
            chunks=pieces,
            embeddings=[embed(p.text) for p in pieces] if embeddings else None,
            attributes=(attributes or {}).get(filename, {}),
        )
        file_ids[filename] = file_id
    return Corpus(user_id, store_id, file_ids)


async def find(db: Database, corpus: Corpus, query: str | list[str], **kw: Any) -> Any:
    return await db.read(
        index.search,
        user_id=corpus.user_id,
        vector_store_ids=[corpus.store_id],
        query=query,
        **kw,
    )


def _top(results: list[index.SearchResult], n: int) -> list[str]:
    return [r.filename for r in results[:n]]


# ---------------------------------------------------------------- known answers


async def test_lexical_search_finds_the_known_passages(index_db: Database) -> None:
    corpus = await load(index_db, embeddings=False)
    for question, filename, phrase in QUESTIONS:
        results = await find(index_db, corpus, question)
        top = results[:3]
        assert any(r.filename == filename and phrase in r.text for r in top), (
            question,
            _top(results, 3),
        )
        assert results[0].score == 1.0  # lexical scores are relative to the best
        assert all(0.0 <= r.score <= 1.0 for r in results)


async def test_hybrid_search_finds_the_known_passages(vector_db: Database) -> None:
    corpus = await load(vector_db)
    for question, filename, _ in QUESTIONS:
        results = await find(vector_db, corpus, question, query_embeddings=[embed(question)])
        assert filename in _top(results, 3), (question, _top(results, 3))
        assert all(0.0 <= r.score <= 1.0 for r in results)


async def test_vector_only_search_ranks_by_cosine_similarity(vector_db: Database) -> None:
    corpus = await load(vector_db)
    question = "How can owls catch mice in the dark?"
    results = await find(
        vector_db,
        corpus,
        question,
        query_embeddings=[embed(question)],
        ranking_options={"hybrid_search": {"embedding_weight": 1, "text_weight": 0}},
    )
    assert results[0].filename == "owls.txt"
    expected = sum(
        a * b for a, b in zip(embed(question), embed(DOCUMENTS["owls.txt"]), strict=True)
    )
    assert results[0].score == pytest.approx(expected, abs=1e-4)
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)


async def test_a_vector_finds_what_the_words_do_not(vector_db: Database) -> None:
    """A query with no word of the passage: the lexical search misses, the embedding
    (the passage's own) finds it, and the weights decide which list leads."""
    corpus = await load(vector_db)
    target = embed(DOCUMENTS["tea.txt"])
    assert await find(vector_db, corpus, "zzyzx qwerty") == []
    results = await find(vector_db, corpus, "zzyzx qwerty", query_embeddings=[target])
    assert results[0].filename == "tea.txt"
    # Both lists, one query about bees in words and about tea in the vector.
    both: dict[str, Any] = {"query": "waggle dance", "query_embeddings": [target]}
    text_led = await find(
        vector_db,
        corpus,
        **both,
        ranking_options={"hybrid_search": {"embedding_weight": 0.01, "text_weight": 1}},
    )
    vector_led = await find(
        vector_db,
        corpus,
        **both,
        ranking_options={"hybrid_search": {"embedding_weight": 1, "text_weight": 0.01}},
    )
    assert text_led[0].filename == "bees.txt"
    assert vector_led[0].filename == "tea.txt"
    # Hybrid scores: the RRF sum over the best possible, so at most 1.
    assert 0 < vector_led[0].score <= 1


async def test_several_queries_search_together(index_db: Database) -> None:
    corpus = await load(index_db, embeddings=False)
    results = await find(index_db, corpus, ["espresso crema", "moraines glacier"])
    assert {"coffee.txt", "glaciers.txt"} <= set(_top(results, 2))


async def test_results_carry_file_text_and_offsets(index_db: Database) -> None:
    corpus = await load(
        index_db, embeddings=False, attributes={"chess.txt": {"game": "chess", "year": 1475}}
    )
    [result] = await find(index_db, corpus, "castling rook", max_num_results=1)
    assert result.file_id == corpus.file_ids["chess.txt"]
    assert result.filename == "chess.txt"
    assert result.vector_store_id == corpus.store_id
    assert result.attributes == {"game": "chess", "year": 1475}
    assert result.chunk_index == 0
    assert DOCUMENTS["chess.txt"][result.start : result.end] == result.text


# ---------------------------------------------------------------- ranking options


async def test_max_num_results_and_score_threshold(index_db: Database) -> None:
    corpus = await load(index_db, embeddings=False)
    many = await find(index_db, corpus, "the king and the sun and the moon and water")
    assert len(many) >= 4
    assert len(await find(index_db, corpus, "king sun moon water", max_num_results=2)) == 2
    kept = await find(
        index_db, corpus, "king sun moon water", ranking_options={"score_threshold": 0.99}
    )
    assert kept and all(r.score >= 0.99 for r in kept)
    assert len(kept) < len(many)
    for bad in (0, 51, True, "3"):
        with pytest.raises(InvalidRequest) as caught:
            await find(index_db, corpus, "king", max_num_results=bad)
        assert caught.value.param == "max_num_results"


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"ranker": "fastest"}, "ranking_options.ranker"),
        ({"score_threshold": 1.5}, "ranking_options.score_threshold"),
        ({"score_threshold": -0.1}, "ranking_options.score_threshold"),
        (
            {"hybrid_search": {"embedding_weight": -1, "text_weight": 1}},
            "ranking_options.hybrid_search.embedding_weight",
        ),
        (
            {"hybrid_search": {"embedding_weight": 0, "text_weight": 0}},
            "ranking_options.hybrid_search",
        ),
        ({"hybrid_search": {"weight": 1}}, "ranking_options.hybrid_search.weight"),
        ({"rerank": True}, "ranking_options.rerank"),
    ],
)
def test_bad_ranking_options_are_400s(options: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        index.parse_ranking_options(options)
    assert caught.value.status_code == 400
    assert caught.value.param == param


def test_every_ranker_is_accepted() -> None:
    for ranker in ("auto", "default-2024-11-15", "none"):
        assert index.parse_ranking_options({"ranker": ranker}).ranker == ranker


# ---------------------------------------------------------------- filters

ATTRIBUTES: dict[str, dict[str, Any]] = {
    "volcanoes.txt": {"topic": "earth", "year": 2019, "reviewed": True},
    "glaciers.txt": {"topic": "earth", "year": 2021, "reviewed": False},
    "tides.txt": {"topic": "earth", "year": 2023.5},
    "bees.txt": {"topic": "life", "year": 2020, "reviewed": True},
    "owls.txt": {"topic": "life", "year": "2022"},
    "tea.txt": {"topic": "food"},
}
EARTH_AND_LIFE = {k: DOCUMENTS[k] for k in ATTRIBUTES}
#: Words in every one of those documents' texts, or most: the filters decide.
BROAD = "the of and in to a rock ice moon bees owls tea sun"


FILTER_CASES: list[tuple[dict[str, Any], set[str]]] = [
    (
        {"type": "eq", "key": "topic", "value": "earth"},
        {"volcanoes.txt", "glaciers.txt", "tides.txt"},
    ),
    ({"type": "ne", "key": "topic", "value": "earth"}, {"bees.txt", "owls.txt", "tea.txt"}),
    ({"type": "eq", "key": "reviewed", "value": True}, {"volcanoes.txt", "bees.txt"}),
    ({"type": "eq", "key": "reviewed", "value": False}, {"glaciers.txt"}),
    # A number compares with numbers only: owls' "2022" is a string.
    ({"type": "gt", "key": "year", "value": 2020}, {"glaciers.txt", "tides.txt"}),
    ({"type": "gte", "key": "year", "value": 2020}, {"glaciers.txt", "tides.txt", "bees.txt"}),
    ({"type": "lt", "key": "year", "value": 2020}, {"volcanoes.txt"}),
    ({"type": "lte", "key": "year", "value": 2020}, {"volcanoes.txt", "bees.txt"}),
    ({"type": "eq", "key": "year", "value": 2023.5}, {"tides.txt"}),
    ({"type": "eq", "key": "year", "value": "2022"}, {"owls.txt"}),
    ({"type": "gt", "key": "topic", "value": "f"}, {"bees.txt", "owls.txt", "tea.txt"}),
    (
        {"type": "in", "key": "topic", "value": ["food", "life"]},
        {"bees.txt", "owls.txt", "tea.txt"},
    ),
    (
        {"type": "in", "key": "year", "value": [2019, 2021, "2022"]},
        {"volcanoes.txt", "glaciers.txt", "owls.txt"},
    ),
    ({"type": "nin", "key": "topic", "value": ["earth", "life"]}, {"tea.txt"}),
    ({"type": "eq", "key": "missing", "value": 1}, set()),
    (
        {
            "type": "and",
            "filters": [
                {"type": "eq", "key": "topic", "value": "earth"},
                {
                    "type": "or",
                    "filters": [
                        {"type": "eq", "key": "reviewed", "value": True},
                        {"type": "gte", "key": "year", "value": 2023},
                    ],
                },
            ],
        },
        {"volcanoes.txt", "tides.txt"},
    ),
    (
        {
            "type": "or",
            "filters": [
                {"type": "eq", "key": "topic", "value": "food"},
                {
                    "type": "and",
                    "filters": [
                        {"type": "eq", "key": "topic", "value": "life"},
                        {"type": "ne", "key": "reviewed", "value": True},
                    ],
                },
            ],
        },
        {"tea.txt", "owls.txt"},
    ),
]


async def test_filters_select_by_attributes(index_db: Database) -> None:
    corpus = await load(index_db, documents=EARTH_AND_LIFE, embeddings=False, attributes=ATTRIBUTES)
    for filters, expected in FILTER_CASES:
        results = await find(index_db, corpus, BROAD, filters=filters, max_num_results=50)
        assert {r.filename for r in results} == expected, filters


async def test_filters_apply_to_the_vector_search(vector_db: Database) -> None:
    corpus = await load(vector_db, documents=EARTH_AND_LIFE, attributes=ATTRIBUTES)
    results = await find(
        vector_db,
        corpus,
        "zzyzx",  # no word in common: only vectors find anything
        query_embeddings=[embed(DOCUMENTS["owls.txt"])],
        filters={"type": "eq", "key": "topic", "value": "earth"},
        max_num_results=50,
    )
    assert results
    assert {r.filename for r in results} <= {"volcanoes.txt", "glaciers.txt", "tides.txt"}


async def test_changed_attributes_are_searched(index_db: Database) -> None:
    corpus = await load(index_db, documents=EARTH_AND_LIFE, embeddings=False, attributes=ATTRIBUTES)
    food = {"type": "eq", "key": "topic", "value": "food"}
    changed = await index_db.write(
        index.set_file_attributes,
        vector_store_id=corpus.store_id,
        file_id=corpus.file_ids["bees.txt"],
        attributes={"topic": "food", "sweet": True},
    )
    assert changed == 1
    results = await find(index_db, corpus, BROAD, filters=food)
    assert {r.filename for r in results} == {"tea.txt", "bees.txt"}
    bees = next(r for r in results if r.filename == "bees.txt")
    assert bees.attributes == {"topic": "food", "sweet": True}


@pytest.mark.parametrize(
    ("filters", "param"),
    [
        ("topic", "filters"),
        ({"type": "like", "key": "a", "value": "b"}, "filters.type"),
        ({"key": "a", "value": "b"}, "filters.type"),
        ({"type": "eq", "value": "b"}, "filters.key"),
        ({"type": "eq", "key": "", "value": "b"}, "filters.key"),
        ({"type": "eq", "key": "a" * 65, "value": "b"}, "filters.key"),
        ({"type": "eq", "key": 'a"b', "value": "b"}, "filters.key"),
        ({"type": "eq", "key": "a", "value": None}, "filters.value"),
        ({"type": "eq", "key": "a", "value": {"x": 1}}, "filters.value"),
        ({"type": "gt", "key": "a", "value": True}, "filters.value"),
        ({"type": "in", "key": "a", "value": "b"}, "filters.value"),
        ({"type": "in", "key": "a", "value": []}, "filters.value"),
        ({"type": "nin", "key": "a", "value": [True]}, "filters.value"),
        ({"type": "eq", "key": "a", "value": "b", "extra": 1}, "filters.extra"),
        ({"type": "and", "filters": []}, "filters.filters"),
        ({"type": "or"}, "filters.filters"),
        (
            {
                "type": "and",
                "filters": [
                    {"type": "eq", "key": "a", "value": 1},
                    {"type": "lt", "key": "b", "value": [1]},
                ],
            },
            "filters.filters[1].value",
        ),
    ],
)
def test_bad_filters_are_400s_naming_the_field(filters: Any, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        index.parse_filter(filters)
    assert caught.value.status_code == 400
    assert caught.value.param == param
    assert caught.value.code == "invalid_filter"


async def test_search_refuses_a_bad_filter(index_db: Database) -> None:
    corpus = Corpus(await make_user(index_db), "vs_x", {})
    with pytest.raises(InvalidRequest) as caught:
        await find(index_db, corpus, "anything", filters={"type": "eq", "key": "a"})
    assert caught.value.param == "filters.value"


def test_deep_filters_are_refused() -> None:
    deep: dict[str, Any] = {"type": "eq", "key": "a", "value": 1}
    for _ in range(9):
        deep = {"type": "and", "filters": [deep]}
    with pytest.raises(InvalidRequest):
        index.parse_filter(deep)


# ---------------------------------------------------------------- isolation


async def test_search_sees_only_the_callers_chunks_in_the_named_stores(
    index_db: Database,
) -> None:
    mine = await load(index_db, store_id="vs_mine", embeddings=False)
    # Another user's chunks, in a store of the same id, and another store of mine.
    theirs = await load(index_db, store_id="vs_mine", embeddings=False)
    other_store = await load(index_db, user_id=mine.user_id, store_id="vs_other", embeddings=False)
    results = await find(index_db, mine, "castling rook king", max_num_results=50)
    assert results
    assert {r.file_id for r in results} <= set(mine.file_ids.values())
    assert {r.vector_store_id for r in results} == {"vs_mine"}
    # Their search never sees mine, and both stores of mine are searched when named.
    results = await find(index_db, theirs, "castling rook king", max_num_results=50)
    assert {r.file_id for r in results} <= set(theirs.file_ids.values())
    both = await index_db.read(
        index.search,
        user_id=mine.user_id,
        vector_store_ids=["vs_mine", "vs_other"],
        query="castling rook king",
    )
    assert {r.vector_store_id for r in both} == {"vs_mine", "vs_other"}
    assert other_store.file_ids["chess.txt"] in {r.file_id for r in both}
    # A store of mine named by another user: nothing.
    stranger = await make_user(index_db, "stranger")
    nothing = await index_db.read(
        index.search, user_id=stranger, vector_store_ids=["vs_other"], query="castling"
    )
    assert nothing == []
    assert (
        await index_db.read(
            index.search, user_id=mine.user_id, vector_store_ids=[], query="castling"
        )
        == []
    )


async def test_vector_search_is_isolated_too(vector_db: Database) -> None:
    mine = await load(vector_db, store_id="vs_mine")
    theirs = await load(vector_db, store_id="vs_mine")
    results = await find(
        vector_db,
        theirs,
        "zzyzx",
        query_embeddings=[embed(DOCUMENTS["tea.txt"])],
        max_num_results=50,
    )
    assert results
    assert {r.file_id for r in results} <= set(theirs.file_ids.values())
    assert not {r.file_id for r in results} & set(mine.file_ids.values())
