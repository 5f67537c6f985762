"""The Vector Stores API through the official ``openai`` SDK, against a real server on
SQLite (FTS5 and sqlite-vec: hybrid search with ``demo/embed``) or, with
``PARLEY_TEST_DATABASE_URL``, PostgreSQL (lexical search when it has no pgvector)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from parley.config import LOCAL_EMBEDDING_MODEL, ConfigError, Settings
from parley.store import index
from parley.store.db import Database
from tests.harness import FreshDatabase
from tests.vector_stores.conftest import (
    BEES,
    OWLS,
    POLL,
    TIDES,
    VectorServer,
    sdk_of,
    serve,
    until,
)


@pytest.fixture(scope="module")
def vs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VectorServer]:
    tmp = tmp_path_factory.mktemp("vector-stores")
    db = FreshDatabase(tmp)
    try:
        yield from serve(db.url, tmp)
    finally:
        db.drop()


@pytest.fixture(scope="module")
def hybrid(vs_server: VectorServer) -> bool:
    """Whether the server's database stores vectors (SQLite, pgvector): then searches are
    hybrid; else (a PostgreSQL without pgvector) lexical."""

    async def ask() -> bool:
        db = Database(vs_server.server.database_url)
        try:
            return await db.read(index.vectors_available)
        finally:
            await db.dispose()

    return asyncio.run(ask())


@pytest.fixture
def sdk(vs_server: VectorServer) -> Iterator[Any]:
    yield from sdk_of(vs_server)


def upload(sdk: Any, name: str, data: bytes) -> str:
    return str(sdk.files.create(file=(name, data), purpose="assistants").id)


def ready(sdk: Any, store_id: str) -> Any:
    """The store once none of its files is ``in_progress``."""

    def check() -> Any:
        store = sdk.vector_stores.retrieve(store_id)
        return store if store.status != "in_progress" else None

    return until(check, f"the files of {store_id} indexed")


def test_a_store_is_made_with_files_used_changed_and_deleted(
    sdk: Any, vs_server: VectorServer
) -> None:
    owls, bees = upload(sdk, "owls.txt", OWLS), upload(sdk, "bees.md", BEES)
    made = sdk.vector_stores.create(
        name="nature",
        description="animals and the sea",
        file_ids=[owls, bees, owls],
        expires_after={"anchor": "last_active_at", "days": 7},
        metadata={"topic": "nature"},
    )
    assert made.id.startswith("vs_") and made.object == "vector_store"
    assert (made.name, made.metadata, made.status) == ("nature", {"topic": "nature"}, "in_progress")
    assert made.file_counts.total == 2 and made.expires_after.days == 7
    assert made.expires_at == made.last_active_at + 7 * 86400
    store = ready(sdk, made.id)
    assert store.status == "completed" and store.usage_bytes > 0
    assert store.file_counts.model_dump() == {
        "in_progress": 0,
        "completed": 2,
        "failed": 0,
        "cancelled": 0,
        "total": 2,
    }
    files = list(sdk.vector_stores.files.list(made.id))
    assert {f.id for f in files} == {owls, bees}
    assert all(f.chunking_strategy.static.max_chunk_size_tokens == 800 for f in files)

    changed = sdk.vector_stores.update(
        made.id, name="renamed", metadata={"topic": "animals"}, expires_after=None
    )
    assert (changed.name, changed.metadata) == ("renamed", {"topic": "animals"})
    assert changed.expires_after is None and changed.expires_at is None
    same = sdk.vector_stores.update(made.id, name="renamed again")
    assert same.metadata == {"topic": "animals"}  # what is not given stays
    assert sdk.vector_stores.retrieve(made.id).model_dump() == same.model_dump()

    assert vs_server.chunk_count(vector_store_id=made.id) >= 2
    deleted = sdk.vector_stores.delete(made.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (made.id, "vector_store.deleted", True)
    with pytest.raises(openai.NotFoundError):
        sdk.vector_stores.retrieve(made.id)
    assert vs_server.chunk_count(vector_store_id=made.id) == 0  # its chunks went with it
    assert sdk.files.retrieve(owls).id == owls  # the files stay


def test_an_expired_store_is_shown_expired_and_refuses_use(
    sdk: Any, vs_server: VectorServer
) -> None:
    store = sdk.vector_stores.create(expires_after={"anchor": "last_active_at", "days": 1}).id
    vs_server.expire(store)
    assert sdk.vector_stores.retrieve(store).status == "expired"
    file_id = upload(sdk, "owls.txt", OWLS)
    for call in (
        lambda: sdk.vector_stores.search(store, query="owls"),
        lambda: sdk.vector_stores.files.create(vector_store_id=store, file_id=file_id),
        lambda: sdk.vector_stores.update(store, expires_after=None),  # it cannot come back
    ):
        error = _error(call)
        assert error.status_code == 400 and error.body["code"] == "vector_store_expired"
    renamed = sdk.vector_stores.update(store, name="old")
    assert (renamed.name, renamed.status) == ("old", "expired")


def test_lists_page_by_cursor(sdk: Any) -> None:
    made = [sdk.vector_stores.create(name=f"s{i}") for i in range(3)]
    newest_first = [s.id for s in reversed(made)]
    first = sdk.vector_stores.list(limit=2)
    assert [s.id for s in first.data] == newest_first[:2] and first.has_more
    assert [s.id for s in sdk.vector_stores.list(limit=2)] == newest_first  # paged through
    after = sdk.vector_stores.list(limit=2, after=newest_first[1])
    assert [s.id for s in after.data] == newest_first[2:] and not after.has_more
    before = sdk.vector_stores.list(limit=1, before=newest_first[2])
    assert [s.id for s in before.data] == [newest_first[1]] and before.has_more
    ascending = sdk.vector_stores.list(order="asc", limit=3)
    assert [s.id for s in ascending.data] == newest_first[::-1]

    store = made[0].id
    ids = [upload(sdk, f"f{i}.txt", b"word %d\n" % i) for i in range(3)]
    for file_id in ids:
        sdk.vector_stores.files.create(vector_store_id=store, file_id=file_id)
    page = sdk.vector_stores.files.list(store, limit=2, order="asc")
    assert [f.id for f in page.data] == ids[:2] and page.has_more
    rest = sdk.vector_stores.files.list(store, limit=2, order="asc", after=ids[1])
    assert [f.id for f in rest.data] == ids[2:]
    ready(sdk, store)
    assert [f.id for f in sdk.vector_stores.files.list(store, filter="completed")] == ids[::-1]
    assert list(sdk.vector_stores.files.list(store, filter="failed")) == []


def test_a_file_is_uploaded_searched_changed_and_taken_out(
    sdk: Any, vs_server: VectorServer, hybrid: bool
) -> None:
    store = sdk.vector_stores.create(name="docs").id
    text = b"".join(b"Paragraph %d tells of owls, bees and tides.\n" % i for i in range(150))
    made = sdk.vector_stores.files.upload_and_poll(
        vector_store_id=store,
        file=("long.txt", text),
        attributes={"year": 2024, "kind": "notes", "draft": False},
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50},
        },
        **POLL,
    )
    assert (made.object, made.vector_store_id, made.status) == (
        "vector_store.file",
        store,
        "completed",
    )
    assert made.last_error is None and made.usage_bytes > 0
    assert made.attributes == {"year": 2024, "kind": "notes", "draft": False}
    assert made.chunking_strategy.model_dump() == {
        "type": "static",
        "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50},
    }
    assert sdk.vector_stores.files.retrieve(made.id, vector_store_id=store).status == "completed"
    pieces = list(sdk.vector_stores.files.content(made.id, vector_store_id=store))
    assert len(pieces) > 3 and all(p.type == "text" for p in pieces)
    assert "".join(p.text for p in pieces).split() == text.decode().split()

    other = sdk.vector_stores.files.upload_and_poll(
        vector_store_id=store, file=("owls.txt", OWLS), attributes={"year": 2020}, **POLL
    )
    found = sdk.vector_stores.search(store, query="owls hunt at night")
    assert found.data[0].file_id == other.id and found.data[0].filename == "owls.txt"
    assert found.data[0].content[0].type == "text" and "Owls" in found.data[0].content[0].text
    assert all(0 <= r.score <= 1 for r in found.data)
    newer = sdk.vector_stores.search(
        store, query="owls", filters={"type": "gt", "key": "year", "value": 2022}
    )
    assert newer.data and {r.file_id for r in newer.data} == {made.id}

    changed = sdk.vector_stores.files.update(
        made.id, vector_store_id=store, attributes={"year": 2019}
    )
    assert changed.attributes == {"year": 2019}
    assert not list(
        sdk.vector_stores.search(
            store, query="owls", filters={"type": "gt", "key": "year", "value": 2022}
        )
    )  # search filters see the new attributes

    gone = sdk.vector_stores.files.delete(other.id, vector_store_id=store)
    assert (gone.id, gone.object, gone.deleted) == (other.id, "vector_store.file.deleted", True)
    assert vs_server.chunk_count(vector_store_id=store, file_id=other.id) == 0
    assert other.id not in {r.file_id for r in sdk.vector_stores.search(store, query="owls hunt")}
    assert sdk.files.retrieve(other.id).id == other.id  # the file itself stays
    with pytest.raises(openai.NotFoundError):
        sdk.vector_stores.files.retrieve(other.id, vector_store_id=store)

    chunks = vs_server.chunk_count(vector_store_id=store, file_id=made.id)
    again = sdk.vector_stores.files.create_and_poll(
        made.id, vector_store_id=store, attributes={"year": 2030}, **POLL
    )  # attached again: indexed anew, with auto chunking (larger chunks, so fewer)
    assert (again.status, again.attributes) == ("completed", {"year": 2030})
    assert 0 < vs_server.chunk_count(vector_store_id=store, file_id=made.id) < chunks
    assert [f.id for f in sdk.vector_stores.files.list(store)] == [made.id]


def test_search_takes_queries_limits_thresholds_and_vectors(
    sdk: Any, hybrid: bool, vs_server: VectorServer
) -> None:
    store = sdk.vector_stores.create(name="search").id
    batch = sdk.vector_stores.file_batches.upload_and_poll(
        store,
        files=[("owls.txt", OWLS), ("bees.txt", BEES), ("tides.txt", TIDES)],
        **POLL,
    )
    assert batch.status == "completed" and batch.file_counts.completed == 3
    names = lambda page: [r.filename for r in page.data]  # noqa: E731
    both = sdk.vector_stores.search(store, query=["waggle dance", "moon"], rewrite_query=True)
    assert both.search_query == ["waggle dance", "moon"]
    assert set(names(both)[:2]) == {"bees.txt", "tides.txt"}
    one = sdk.vector_stores.search(store, query="moon", max_num_results=1)
    assert names(one) == ["tides.txt"]
    assert sdk.vector_stores.search(
        store, query="moon", ranking_options={"score_threshold": 1.0, "ranker": "none"}
    ).data[0].score == pytest.approx(1.0)
    # A misspelt word: the words find nothing; the demo embedding's character trigrams
    # still bring the file that has most of them first.
    misspelt = sdk.vector_stores.search(store, query="waggel danse")
    if hybrid:
        assert names(misspelt)[0] == "bees.txt"
    else:
        assert names(misspelt) == []
    words_only = sdk.vector_stores.search(
        store,
        query="waggel danse",
        extra_body={"ranking_options": {"hybrid_search": {"embedding_weight": 0}}},
    )
    assert names(words_only) == []

    def searches() -> int | None:  # the query embeddings count for the key
        with vs_server.server.client(sdk.api_key) as http:
            lines = http.get("/usage", params={"group_by": "face,model"}).json()["data"]
        found = [line for line in lines if line["face"] == "vector_stores.search"]
        return found[0]["requests"] if found and found[0]["requests"] >= 4 else None

    if hybrid:
        assert until(searches, "the searches counted") >= 4

    def ingested() -> dict[str, Any] | None:  # and so do the chunks' embeddings
        with vs_server.server.client(sdk.api_key) as http:
            lines = http.get("/usage", params={"group_by": "face,model"}).json()["data"]
        found = [line for line in lines if line["face"] == "vector_stores.ingest"]
        return found[0] if found and found[0]["input_tokens"] > 0 else None

    if hybrid:
        line = until(ingested, "the embedding of the files counted")
        assert line["model"] == "demo/embed" and line["requests"] >= 1


def test_batches_take_per_file_settings_list_and_cancel(sdk: Any) -> None:
    store = sdk.vector_stores.create(name="batches").id
    owls, bees = upload(sdk, "owls.txt", OWLS), upload(sdk, "bees.txt", BEES)
    batch = sdk.vector_stores.file_batches.create_and_poll(
        store,
        files=[
            {"file_id": owls, "attributes": {"animal": "owl"}},
            {
                "file_id": bees,
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0},
                },
            },
        ],
        **POLL,
    )
    assert batch.id.startswith("vsfb_") and batch.object == "vector_store.files_batch"
    assert (batch.vector_store_id, batch.status, batch.file_counts.total) == (store, "completed", 2)
    assert sdk.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store).status == (
        "completed"
    )
    listed = {
        f.id: f for f in sdk.vector_stores.file_batches.list_files(batch.id, vector_store_id=store)
    }
    assert listed[owls].attributes == {"animal": "owl"}
    assert listed[bees].chunking_strategy.static.max_chunk_size_tokens == 100

    many = [upload(sdk, f"n{i}.txt", b"note %d\n" % i) for i in range(20)]
    started = sdk.vector_stores.file_batches.create(store, file_ids=many, attributes={"bulk": True})
    assert started.file_counts.total == 20
    cancelled = sdk.vector_stores.file_batches.cancel(started.id, vector_store_id=store)
    assert cancelled.status == "cancelled" and cancelled.file_counts.in_progress == 0
    counts = cancelled.file_counts
    assert counts.completed + counts.cancelled + counts.failed == 20
    statuses = {
        f.status
        for f in sdk.vector_stores.file_batches.list_files(
            started.id, vector_store_id=store, limit=100
        )
    }
    assert statuses <= {"completed", "cancelled"}
    assert sdk.vector_stores.retrieve(store).status == "completed"


def _error(call: Any) -> Any:
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    return caught.value


def test_bad_input_is_a_clear_400_and_unknown_ids_404(sdk: Any) -> None:
    store = sdk.vector_stores.create(name="strict").id
    file_id = upload(sdk, "owls.txt", OWLS)
    bad_bodies = [
        ("name", lambda: sdk.vector_stores.create(extra_body={"name": 5})),
        ("metadata", lambda: sdk.vector_stores.create(metadata={f"k{i}": "v" for i in range(17)})),
        (
            "expires_after",
            lambda: sdk.vector_stores.create(expires_after={"anchor": "last_active_at", "days": 0}),
        ),
        (
            "chunking_strategy",
            lambda: sdk.vector_stores.files.create(
                vector_store_id=store,
                file_id=file_id,
                chunking_strategy={
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 101},
                },
            ),
        ),
        (
            "chunking_strategy",
            lambda: sdk.vector_stores.files.create(
                vector_store_id=store,
                file_id=file_id,
                chunking_strategy={
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0},
                },
            ),
        ),
        (
            "chunking_strategy",
            lambda: sdk.vector_stores.files.create(
                vector_store_id=store,
                file_id=file_id,
                extra_body={"chunking_strategy": {"type": "semantic"}},
            ),
        ),
        (
            "attributes",
            lambda: sdk.vector_stores.files.create(
                vector_store_id=store, file_id=file_id, extra_body={"attributes": {"a": {"b": 1}}}
            ),
        ),
        (
            "file_ids",
            lambda: sdk.vector_stores.file_batches.create(
                store, file_ids=[file_id], files=[{"file_id": file_id}]
            ),
        ),
        (
            "filters",
            lambda: sdk.vector_stores.search(
                store, query="owls", filters={"type": "like", "key": "a", "value": 1}
            ),
        ),
        (
            "filters",
            lambda: sdk.vector_stores.search(
                store, query="owls", filters={"type": "and", "filters": []}
            ),
        ),
        (
            "max_num_results",
            lambda: sdk.vector_stores.search(store, query="owls", max_num_results=51),
        ),
        ("query", lambda: sdk.vector_stores.search(store, query=" ")),
        ("query", lambda: sdk.vector_stores.search(store, query=[])),
        ("query", lambda: sdk.vector_stores.search(store, query=["owls"] * 33)),
        (
            "ranking_options",
            lambda: sdk.vector_stores.search(
                store, query="owls", ranking_options={"ranker": "best"}
            ),
        ),
        ("after", lambda: sdk.vector_stores.list(after="vs_nothing")),
    ]
    # A field inside the static strategy is named as the client wrote it.
    small = _error(
        lambda: sdk.vector_stores.files.create(
            vector_store_id=store,
            file_id=file_id,
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0},
            },
        )
    )
    assert small.body["param"] == "chunking_strategy.static.max_chunk_size_tokens", small.body
    for field, call in bad_bodies:
        error = _error(call)
        assert error.status_code == 400, (field, error.body)
        assert error.body["type"] == "invalid_request", error.body
        assert field in (error.body.get("param") or "") + error.body["message"], (field, error.body)

    missing = _error(
        lambda: sdk.vector_stores.create(name="half", file_ids=[file_id, "file-nothing"])
    )
    assert missing.status_code == 404 and "file-nothing" in missing.body["message"]
    assert "half" not in [s.name for s in sdk.vector_stores.list(limit=100)]  # nothing made
    for call in (
        lambda: sdk.vector_stores.retrieve("vs_nothing"),
        lambda: sdk.vector_stores.files.create(vector_store_id="vs_nothing", file_id=file_id),
        lambda: sdk.vector_stores.files.retrieve("file-nothing", vector_store_id=store),
        lambda: sdk.vector_stores.files.retrieve(file_id, vector_store_id=store),  # not in it
        lambda: sdk.vector_stores.file_batches.retrieve("vsfb_nothing", vector_store_id=store),
        lambda: sdk.vector_stores.search("vs_nothing", query="owls"),
    ):
        assert _error(call).status_code == 404


def test_another_users_stores_files_and_batches_answer_404(vs_server: VectorServer) -> None:
    owner, other = (
        vs_server.sdk(vs_server.server.new_user("a")),
        vs_server.sdk(vs_server.server.new_user("b")),
    )
    with owner, other:
        owls = upload(owner, "owls.txt", OWLS)
        store = owner.vector_stores.create(name="mine", file_ids=[owls]).id
        batch = owner.vector_stores.file_batches.create(store, file_ids=[owls]).id
        ready(owner, store)
        theirs = other.vector_stores.create(name="theirs").id
        calls = [
            lambda: other.vector_stores.retrieve(store),
            lambda: other.vector_stores.update(store, name="taken"),
            lambda: other.vector_stores.delete(store),
            lambda: other.vector_stores.search(store, query="owls"),
            lambda: other.vector_stores.files.list(store),
            lambda: other.vector_stores.files.retrieve(owls, vector_store_id=store),
            lambda: other.vector_stores.files.update(owls, vector_store_id=store, attributes={}),
            lambda: other.vector_stores.files.delete(owls, vector_store_id=store),
            lambda: list(other.vector_stores.files.content(owls, vector_store_id=store)),
            lambda: other.vector_stores.file_batches.retrieve(batch, vector_store_id=store),
            lambda: other.vector_stores.file_batches.cancel(batch, vector_store_id=store),
            lambda: other.vector_stores.file_batches.list_files(batch, vector_store_id=store),
            lambda: other.vector_stores.files.create(vector_store_id=theirs, file_id=owls),
            lambda: other.vector_stores.create(file_ids=[owls]),
        ]
        for call in calls:
            assert _error(call).status_code == 404
        assert [s.id for s in other.vector_stores.list()] == [theirs]
        assert owner.vector_stores.retrieve(store).name == "mine"  # nothing changed
        assert owner.vector_stores.search(store, query="owls").data


def test_the_embedding_model_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARLEY_EMBEDDING_MODEL", raising=False)
    # By default, the local MiniLM (the suite has the embeddings extra); empty: words only.
    assert Settings().embedding_model == LOCAL_EMBEDDING_MODEL
    config = tmp_path / "parley.toml"
    config.write_text('[retrieval]\nembedding_model = "ollama/nomic-embed-text"\n')
    assert Settings(config=config).embedding_model == "ollama/nomic-embed-text"
    monkeypatch.setenv("PARLEY_EMBEDDING_MODEL", "demo/embed")
    assert Settings(config=config).embedding_model == "demo/embed"  # the variable wins
    monkeypatch.setenv("PARLEY_EMBEDDING_MODEL", " ")
    assert Settings().embedding_model is None
    config.write_text("[retrieval]\nembedding_modle = 'x/y'\n")
    with pytest.raises(ConfigError, match="embedding_modle"):
        Settings(config=config)
