"""Re-embedding a vector store (``parley.retrieval.reembed``) on SQLite and on PostgreSQL
with pgvector: the store moves to the new model all at once, and a failure at any point
leaves it as it was. The new model is the real local MiniLM, or an embedding provider of
the test's own (hashing vectors of another length) that fails or changes the store when
told to."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import select, update

from parley.config import Settings
from parley.errors import Conflict, InvalidRequest, NotFound, UpstreamError
from parley.providers.embeddings import EmbedRequest, EmbedResult, hashing_embedding
from parley.providers.registry import ProviderRegistry
from parley.retrieval import reembed
from parley.retrieval.chunking import Chunk
from parley.store import index, vector_stores
from parley.store.db import Database
from parley.store.tables import chunks, vector_store_files
from parley.store.tables import vector_stores as vector_stores_table
from tests.retrieval.conftest import make_file, make_user

PASSAGES = {
    "owls.txt": "Owls hunt at night; their soft feathers make their flight silent.",
    "bees.txt": "Bees dance to tell the hive where the flowers are.",
    "tides.txt": "Tides rise and fall twice a day, pulled by the moon.",
}
QUESTION = "Which birds catch their prey in the dark without a sound?"
OTHER_DIMENSIONS = 64


class OtherModel:
    """An embedding provider of the test (``other/hashing``): hashing vectors of 64
    numbers, and a hook run before each call (it may fail the call, or change the store)."""

    embed_batch = 2048
    takes_token_ids = False

    def __init__(self) -> None:
        self.calls = 0
        self.before: Callable[[int], Awaitable[None]] | None = None

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        self.calls += 1
        if self.before is not None:
            await self.before(self.calls)
        vectors = [hashing_embedding(t, OTHER_DIMENSIONS) for t in request.inputs]
        return EmbedResult(vectors=vectors, input_tokens=len(request.inputs), model="hashing")


@pytest.fixture
def other() -> OtherModel:
    return OtherModel()


@pytest.fixture
async def providers(other: OtherModel) -> Any:
    registry = ProviderRegistry(Settings(), overrides={"other": other})  # type: ignore[dict-item]
    yield registry
    await registry.aclose()


async def _store(
    db: Database, providers: ProviderRegistry, texts: dict[str, str] | None = None
) -> tuple[str, str]:
    """A user's store embedded with ``demo/embed`` (256 numbers), a file a passage:
    ``(user id, store id)``."""
    user_id = await make_user(db)
    store = await db.write(
        vector_stores.create_vector_store, user_id=user_id, embedding_model="demo/embed"
    )
    for filename, text in (texts or PASSAGES).items():
        await _add_file(db, providers, user_id, store.id, filename, [text])
    return user_id, store.id


async def _add_file(
    db: Database,
    providers: ProviderRegistry,
    user_id: str,
    store_id: str,
    filename: str,
    texts: Sequence[str],
    model: str = "demo/embed",
) -> str:
    file_id = await make_file(db, user_id, filename)
    pieces = [
        Chunk(index=i, text=t, start=0, end=len(t), tokens=len(t.split()))
        for i, t in enumerate(texts)
    ]
    vectors = (await providers.embed(model, list(texts))).vectors
    await db.write(
        index.add_chunks,
        user_id=user_id,
        vector_store_id=store_id,
        file_id=file_id,
        chunks=pieces,
        embeddings=vectors,
    )
    return file_id


async def _dimensions(db: Database, store_id: str) -> list[int | None]:
    def read(conn: Any) -> list[int | None]:
        query = select(chunks.c.embedding_dim).where(chunks.c.vector_store_id == store_id)
        return list(conn.execute(query.order_by(chunks.c.id)).scalars())

    return await db.read(read)


async def _model_of(db: Database, store_id: str) -> str | None:
    def read(conn: Any) -> str | None:
        query = select(vector_stores_table.c.embedding_model)
        return conn.execute(query.where(vector_stores_table.c.id == store_id)).scalar_one()  # type: ignore[no-any-return]

    return await db.read(read)


async def _nearest(
    db: Database, providers: ProviderRegistry, user_id: str, store_id: str, model: str
) -> list[str]:
    """The texts of the store by their vectors alone, nearest ``QUESTION`` first."""
    vector = (await providers.embed(model, [QUESTION])).vectors
    found = await db.read(
        index.search,
        user_id=user_id,
        vector_store_ids=[store_id],
        query=QUESTION,
        query_embeddings=vector,
        ranking_options={"hybrid_search": {"embedding_weight": 1, "text_weight": 0}},
    )
    return [f.text for f in found]


async def test_a_store_moves_to_the_local_model_at_once(
    vector_db: Database, providers: ProviderRegistry
) -> None:
    user_id, store_id = await _store(vector_db, providers)
    assert await _dimensions(vector_db, store_id) == [256] * 3
    seen: list[tuple[int, int]] = []

    done = await reembed.reembed(
        vector_db,
        providers,
        vector_store_id=store_id,
        model="local/all-minilm-l6-v2",
        progress=lambda n, total: seen.append((n, total)),
    )

    assert (done.previous_model, done.model) == ("demo/embed", "local/all-minilm-l6-v2")
    assert (done.chunks, done.dimensions) == (3, 384)
    assert done.input_tokens > 0
    assert seen == [(3, 3)]
    assert await _model_of(vector_db, store_id) == "local/all-minilm-l6-v2"
    assert await _dimensions(vector_db, store_id) == [384] * 3
    # The question shares no word with the owls' passage; the new vectors find it first.
    nearest = await _nearest(vector_db, providers, user_id, store_id, "local/all-minilm-l6-v2")
    assert nearest[0] == PASSAGES["owls.txt"]
    # The old vectors are gone: a query of the old model finds nothing by vectors.
    assert await _nearest(vector_db, providers, user_id, store_id, "demo/embed") == []


async def test_a_model_that_fails_halfway_changes_nothing(
    vector_db: Database, providers: ProviderRegistry, other: OtherModel
) -> None:
    user_id, store_id = await _store(vector_db, providers)
    # More chunks than a page: the model is called twice, and fails the second time.
    texts = [f"Chunk {i} of a long file about the moon." for i in range(reembed.PAGE + 10)]
    await _add_file(vector_db, providers, user_id, store_id, "long.txt", texts)
    before = await _nearest(vector_db, providers, user_id, store_id, "demo/embed")
    dimensions = await _dimensions(vector_db, store_id)

    async def fail_second(call: int) -> None:
        if call == 2:
            raise UpstreamError("The upstream went away.", code="upstream_unreachable")

    other.before = fail_second
    with pytest.raises(UpstreamError):
        await reembed.reembed(vector_db, providers, vector_store_id=store_id, model="other/hashing")

    assert other.calls == 2
    assert await _model_of(vector_db, store_id) == "demo/embed"
    assert await _dimensions(vector_db, store_id) == dimensions
    assert await _nearest(vector_db, providers, user_id, store_id, "demo/embed") == before
    # And it can be run again, to its end.
    other.before = None
    done = await reembed.reembed(
        vector_db, providers, vector_store_id=store_id, model="other/hashing"
    )
    assert done.chunks == len(dimensions)
    assert set(await _dimensions(vector_db, store_id)) == {OTHER_DIMENSIONS}


async def test_chunks_added_meanwhile_are_embedded_in_another_round(
    vector_db: Database, providers: ProviderRegistry, other: OtherModel
) -> None:
    user_id, store_id = await _store(vector_db, providers)

    async def add_a_file(call: int) -> None:
        if call == 1:  # indexed with the old model while the store is re-embedded
            await _add_file(vector_db, providers, user_id, store_id, "late.txt", ["Late news."])

    other.before = add_a_file
    done = await reembed.reembed(
        vector_db, providers, vector_store_id=store_id, model="other/hashing"
    )
    assert other.calls == 2
    assert done.chunks == 4
    assert await _dimensions(vector_db, store_id) == [OTHER_DIMENSIONS] * 4


async def test_a_file_being_indexed_is_waited_for(
    vector_db: Database, providers: ProviderRegistry
) -> None:
    user_id, store_id = await _store(vector_db, providers)
    file_id = await make_file(vector_db, user_id, "coming.txt")
    await vector_db.write(
        vector_stores.attach_file, user_id=user_id, vector_store_id=store_id, file_id=file_id
    )

    with pytest.raises(Conflict) as busy:
        await reembed.reembed(
            vector_db, providers, vector_store_id=store_id, model="other/hashing", wait_seconds=0
        )
    assert busy.value.code == "vector_store_busy"
    assert await _model_of(vector_db, store_id) == "demo/embed"
    assert await _dimensions(vector_db, store_id) == [256] * 3

    async def indexed_later() -> None:
        await asyncio.sleep(0.2)
        await _add_file(vector_db, providers, user_id, store_id, "coming-chunks.txt", ["Come."])

        def complete(conn: Any) -> None:
            conn.execute(
                update(vector_store_files)
                .where(vector_store_files.c.file_id == file_id)
                .values(status="completed")
            )

        await vector_db.write(complete)

    later = asyncio.create_task(indexed_later())
    done = await reembed.reembed(
        vector_db, providers, vector_store_id=store_id, model="other/hashing", wait_seconds=60
    )
    await later
    assert done.chunks == 4  # the chunks of the file indexed meanwhile too
    assert await _dimensions(vector_db, store_id) == [OTHER_DIMENSIONS] * 4


async def test_what_cannot_be_done_is_refused_before_anything_is(
    vector_db: Database, providers: ProviderRegistry
) -> None:
    _, store_id = await _store(vector_db, providers)
    with pytest.raises(NotFound):
        await reembed.reembed(vector_db, providers, vector_store_id="vs_none", model="demo/embed")
    with pytest.raises(InvalidRequest) as refused:
        await reembed.reembed(vector_db, providers, vector_store_id=store_id, model="nope/x")
    assert refused.value.code == "unknown_model"
    assert await _dimensions(vector_db, store_id) == [256] * 3
