"""Search through the ``openai`` SDK on PostgreSQL with pgvector (the ``pgserver`` wheel's
own server): the store's embedding model (``demo/embed``) embeds its chunks and the query,
and search ranks by words and vectors together; a search sees only the store it names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.retrieval.conftest import PgserverDatabase, pgvector_server  # noqa: F401
from tests.vector_stores.conftest import BEES, OWLS, POLL, TIDES, VectorServer, sdk_of, serve


@pytest.fixture(scope="module")
def pg_server(
    tmp_path_factory: pytest.TempPathFactory,
    pgvector_server: str,  # noqa: F811
) -> Iterator[VectorServer]:
    db = PgserverDatabase(pgvector_server)
    try:
        yield from serve(db.url, tmp_path_factory.mktemp("vector-stores-pgvector"))
    finally:
        db.drop()


@pytest.fixture
def sdk(pg_server: VectorServer) -> Iterator[Any]:
    yield from sdk_of(pg_server)


def test_hybrid_search_on_pgvector_names_only_its_store(sdk: Any, pg_server: VectorServer) -> None:
    store = sdk.vector_stores.create(name="nature").id
    other = sdk.vector_stores.create(name="other").id
    batch = sdk.vector_stores.file_batches.upload_and_poll(
        store, files=[("owls.txt", OWLS), ("bees.txt", BEES), ("tides.txt", TIDES)], **POLL
    )
    assert batch.file_counts.completed == 3
    kept = sdk.vector_stores.files.upload_and_poll(
        vector_store_id=other, file=("more-bees.txt", BEES), attributes={"year": 2024}, **POLL
    )
    names = lambda page: [r.filename for r in page.data]  # noqa: E731

    assert names(sdk.vector_stores.search(store, query="waggle dance"))[0] == "bees.txt"
    # No word matches: the vectors (character trigrams of demo/embed) still find the bees.
    assert names(sdk.vector_stores.search(store, query="waggel danse"))[0] == "bees.txt"
    words_only = {"ranking_options": {"hybrid_search": {"embedding_weight": 0}}}
    assert names(sdk.vector_stores.search(store, query="waggel danse", extra_body=words_only)) == []
    assert "more-bees.txt" not in names(sdk.vector_stores.search(store, query="waggle dance"))

    found = sdk.vector_stores.search(
        other, query="waggle", filters={"type": "eq", "key": "year", "value": 2024}
    )
    assert [r.file_id for r in found.data] == [kept.id]
    sdk.vector_stores.delete(store)
    assert pg_server.chunk_count(vector_store_id=store) == 0
    assert pg_server.chunk_count(vector_store_id=other) > 0
