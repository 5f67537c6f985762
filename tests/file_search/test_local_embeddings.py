"""Real embeddings by default, through a real ``parley serve``: with nothing set, new vector
stores embed with the local all-MiniLM-L6-v2, so a question asked in other words finds its
passage where the words alone find nothing, even in the last third of a chunk of the
default 800 tokens; ``/v1/embeddings`` serves the model; a big
batch leaves the server answering (and its loop watchdog silent); and ``parley
vector-stores reembed`` moves a words-only store to the model while the server runs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import create_engine, select

from parley.config import LOCAL_EMBEDDING_MODEL
from parley.store import users, vector_stores
from parley.store.db import normalise_url
from parley.store.tables import vector_stores as vector_stores_table
from parley.testing.databases import ScratchDatabase
from tests.harness import ParleyServer
from tests.providers.test_minilm import FACT, minutes
from tests.vector_stores.conftest import POLL

PASSAGES = [
    ("owls.txt", b"Owls hunt at night; their soft feathers make their flight silent.\n"),
    ("bees.txt", b"Bees dance to tell the hive where the flowers are.\n"),
    ("tides.txt", b"Tides rise and fall twice a day, pulled by the moon.\n"),
]
#: The owls' passage asked in other words: not one word (but stop words) in common.
QUESTION = "Which birds catch their prey in the dark without a sound?"
WORDS_ONLY = {"ranking_options": {"hybrid_search": {"embedding_weight": 0}}}
#: A paragraph of the minutes in place of ``FACT``, about something else.
POOL = (
    "The manager of the swimming pool reported that the boiler, replaced last winter, now "
    "keeps the water warm all year. Swimmers may use the pool until nine on weekday evenings."
)


class Served:
    """The server (no embedding model set: the default), and its database."""

    def __init__(self, tmp: Path) -> None:
        # SQLite (with sqlite-vec) whatever PARLEY_TEST_DATABASE_URL says: the suite's
        # PostgreSQL may have no pgvector, where stores are searched by their words only
        # (tests/retrieval covers pgvector), and these tests are about the vectors.
        self.database = ScratchDatabase(tmp)
        self.server = ParleyServer(
            database_url=self.database.url,
            workdir=tmp,
            env={"PARLEY_FILES_DIR": str(tmp / "files")},
        )
        self.server.env.pop("PARLEY_EMBEDDING_MODEL", None)

    def sdk(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.server.base_url}/v1", api_key=key, max_retries=0, timeout=60
        )

    def run(self, work: Any) -> Any:
        """``work(conn)`` in one transaction on the server's database."""
        engine = create_engine(normalise_url(self.database.url))
        try:
            with engine.begin() as conn:
                return work(conn)
        finally:
            engine.dispose()

    def model_of(self, store_id: str) -> str | None:
        table = vector_stores_table
        query = select(table.c.embedding_model).where(table.c.id == store_id)
        return self.run(lambda conn: conn.execute(query).scalar_one())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    found = Served(tmp_path_factory.mktemp("local-embeddings"))
    try:
        found.server.start()
        yield found
        found.server.stop()
        found.server.assert_clean_log()  # no traceback, and the loop never blocked
    finally:
        found.server.stop()
        found.database.drop()


@pytest.fixture
def key(served: Served) -> str:
    return served.server.new_user("reader")


def _names(page: Any) -> list[str]:
    return [r.filename for r in page.data]


def test_a_new_store_finds_by_meaning_what_its_words_do_not(served: Served, key: str) -> None:
    with served.sdk(key) as sdk:
        store = sdk.vector_stores.create(name="nature").id
        batch = sdk.vector_stores.file_batches.upload_and_poll(store, files=PASSAGES, **POLL)
        assert batch.file_counts.completed == 3
        assert served.model_of(store) == LOCAL_EMBEDDING_MODEL

        assert _names(sdk.vector_stores.search(store, query=QUESTION, extra_body=WORDS_ONLY)) == []
        assert _names(sdk.vector_stores.search(store, query=QUESTION))[0] == "owls.txt"
        other = "How do insects show each other where the blossoms are?"
        assert _names(sdk.vector_stores.search(store, query=other))[0] == "bees.txt"


def test_a_passage_late_in_a_long_chunk_is_found_by_meaning(served: Served, key: str) -> None:
    """Two files of the same council minutes, each one chunk of the default 800 tokens,
    differ only in a paragraph in their last third, past the 256 tokens the model reads at
    once: one about the lighthouse, one about the swimming pool. The chunks are embedded
    whole, so a question about the lighthouse in other words finds its file first, and
    clearly (cut at 256 tokens, both chunks would have the same vector)."""
    lighthouse = minutes(50, fact_at=42)
    pool = lighthouse.replace(FACT, POOL)
    question = "From what distance can sailors spot the beacon on the headland?"
    with served.sdk(key) as sdk:
        store = sdk.vector_stores.create(name="minutes").id
        files = [("lighthouse.txt", lighthouse.encode()), ("pool.txt", pool.encode())]
        batch = sdk.vector_stores.file_batches.upload_and_poll(store, files=files, **POLL)
        assert batch.file_counts.completed == 2

        assert _names(sdk.vector_stores.search(store, query=question, extra_body=WORDS_ONLY)) == []
        found = sdk.vector_stores.search(store, query=question).data
        assert [r.filename for r in found] == ["lighthouse.txt", "pool.txt"]
        assert found[0].score > found[1].score + 0.03
        (chunk,) = [c.text for c in found[0].content]
        assert chunk.strip() == lighthouse.strip()  # the file is one chunk
        assert chunk.index(FACT) > len(chunk) * 2 / 3


def test_v1_embeddings_serves_the_local_model(served: Served, key: str) -> None:
    with served.sdk(key) as sdk:
        answer = sdk.embeddings.create(model=LOCAL_EMBEDDING_MODEL, input=["Owls hunt", QUESTION])
        assert answer.model == LOCAL_EMBEDDING_MODEL
        assert [len(d.embedding) for d in answer.data] == [384, 384]
        assert answer.usage.prompt_tokens == 4 + len(QUESTION.split()) + 2 + 1  # "?" too
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.embeddings.create(model=LOCAL_EMBEDDING_MODEL, input="owls", dimensions=256)
        assert "384" in refused.value.message
        with pytest.raises(openai.BadRequestError):
            sdk.embeddings.create(model=LOCAL_EMBEDDING_MODEL, input=[[101, 102]])


def test_the_server_answers_while_a_big_batch_embeds(served: Served, key: str) -> None:
    """512 passages are 16 runs of the model on its worker thread; health checks are
    answered meanwhile, one after the other (a loop blocked by the runs would hold them),
    and the server's loop watchdog (1 s, the harness's) reports no stall."""
    since = len(served.server.log())
    texts = [f"{PASSAGES[i % 3][1].decode()} Note {i} of the field guide." for i in range(512)]
    result: dict[str, Any] = {}

    def big() -> None:
        with served.server.client(key, timeout=300) as http:
            result["answer"] = http.post(
                "/embeddings", json={"model": LOCAL_EMBEDDING_MODEL, "input": texts}
            )

    embedding = threading.Thread(target=big)
    embedding.start()
    answered_meanwhile = 0
    with httpx.Client(base_url=served.server.base_url, timeout=300) as http:
        while embedding.is_alive() and answered_meanwhile < 5:
            assert http.get("/healthz").status_code == 200
            answered_meanwhile += embedding.is_alive()
    embedding.join()
    assert result["answer"].status_code == 200, result["answer"].text
    assert len(result["answer"].json()["data"]) == 512
    assert answered_meanwhile == 5
    served.server.assert_clean_log(since)


def test_a_words_only_store_is_reembedded_while_the_server_runs(served: Served, key: str) -> None:
    owner = served.run(lambda conn: users.find_key(conn, key_hash=users.hash_key(key))).user.id
    # A store made before the default: no embedding model, searched by its words.
    store = served.run(
        lambda conn: vector_stores.create_vector_store(conn, user_id=owner, embedding_model=None)
    ).id
    with served.sdk(key) as sdk:
        batch = sdk.vector_stores.file_batches.upload_and_poll(store, files=PASSAGES, **POLL)
        assert batch.file_counts.completed == 3
        assert _names(sdk.vector_stores.search(store, query=QUESTION)) == []

        done = served.server.cli("vector-stores", "reembed", store, "--json")
        assert done.returncode == 0, done.stderr
        shown = json.loads(done.stdout.splitlines()[-1])
        assert shown == {
            "vector_store_id": store,
            "previous_model": None,
            "model": LOCAL_EMBEDDING_MODEL,  # the default of new stores
            "chunks": 3,
            "dimensions": 384,
            "input_tokens": shown["input_tokens"],
        }
        assert "embedded 3 of 3 chunks" in done.stderr
        assert served.model_of(store) == LOCAL_EMBEDDING_MODEL
        # The running server searches it by meaning now.
        assert _names(sdk.vector_stores.search(store, query=QUESTION))[0] == "owls.txt"
        # And back to the demo's hashing embedding, named.
        back = served.server.cli("vector-stores", "reembed", store, "--model", "demo/embed")
        assert back.returncode == 0, back.stderr
        assert f"{store}: 3 chunks embedded with demo/embed (256 dimensions" in back.stdout
        assert served.model_of(store) == "demo/embed"


def test_the_command_says_what_it_cannot_do(served: Served) -> None:
    missing = served.server.cli("vector-stores", "reembed", "vs_nothing")
    assert missing.returncode == 1
    assert "No such vector store: vs_nothing." in missing.stderr
    owner = served.run(lambda conn: users.create_user(conn, name="someone")).id
    store = served.run(
        lambda conn: vector_stores.create_vector_store(conn, user_id=owner, embedding_model=None)
    ).id
    unknown = served.server.cli("vector-stores", "reembed", store, "--model", "nope/x")
    assert unknown.returncode == 2
    assert "Unknown model 'nope/x'" in unknown.stderr
    served.server.env["PARLEY_EMBEDDING_MODEL"] = ""  # vectors turned off: name a model
    try:
        unnamed = served.server.cli("vector-stores", "reembed", store)
    finally:
        served.server.env.pop("PARLEY_EMBEDDING_MODEL")
    assert unnamed.returncode == 2
    assert "--model" in unnamed.stderr
    assert served.model_of(store) is None
