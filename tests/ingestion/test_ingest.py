"""Files attached to vector stores are indexed by the server's ingestion worker: text,
Markdown, PDF and DOCX become chunks search finds; files that cannot be read end ``failed``
with OpenAI's codes and the server goes on; a cancelled file stays cancelled; deleting a
file, a user or letting a store expire takes the chunks with it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, text
from sqlalchemy.engine import Connection

from parley.store import index, vector_stores
from parley.store.ingestion import MAX_ATTEMPTS
from parley.store.tables import files, users, vector_store_files
from parley.store.tables import vector_stores as store_rows
from tests.ingestion.conftest import Served, upload, wait_until
from tests.retrieval import documents


@pytest.fixture(scope="module")
def key(served: Served) -> str:
    return served.server.new_user("reader")


@pytest.fixture
def http(served: Served, key: str) -> Iterator[httpx.Client]:
    with served.server.client(key) as client:
        yield client


def _search(served: Served, user_id: str, store_ids: list[str], query: str) -> list[Any]:
    return served.tables.read(
        index.search, user_id=user_id, vector_store_ids=store_ids, query=query
    )


def _metric(served: Served, name: str, **labels: str) -> float:
    body = httpx.get(f"{served.server.base_url}/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{name}(\{{{re.escape(want)}\}})? (\S+)$" if want else rf"^{name} (\S+)$"
    found = re.search(pattern, body, re.MULTILINE)
    return float(found.groups()[-1]) if found else 0.0


def _words_index_hits(served: Served, word: str) -> int:
    """Rows of the words index that match ``word`` (SQLite's FTS5 table; PostgreSQL's words
    live on the chunks' own rows)."""
    if served.database.kind != "sqlite":
        return 0

    def hits(conn: Connection) -> int:
        statement = text("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH :w")
        return int(conn.execute(statement, {"w": word}).scalar_one())

    return served.tables.read(hits)


def test_documents_become_chunks_that_search_finds(
    served: Served, http: httpx.Client, key: str
) -> None:
    """Text, Markdown, PDF and DOCX, in a store embedded by a provider's model (batched
    calls) and in one searched by words alone; the file's attributes go on its chunks."""
    tables = served.tables
    user = tables.user_id(served.server, key)
    embedded = tables.new_store(user, "fake/text-embedding-3-small")
    words_only = tables.new_store(user)
    files = {
        "notes.txt": (b"Barn owls hunt voles over the meadow at dusk.\n" * 40, "text/plain"),
        "guide.md": (b"# Kestrels\n\nKestrels hover above the verge.\n" * 40, "text/markdown"),
        "report.pdf": (documents.pdf(["Ospreys dive for trout in the loch."] * 3), ""),
        "memo.docx": (documents.docx(["Merlins chase pipits across the moor."] * 30), ""),
    }
    ids = {name: upload(http, name, data, kind) for name, (data, kind) in files.items()}
    served.upstream.embedding_requests.clear()
    before = _metric(served, "parley_files_indexed_total", outcome="completed")
    strategy = {
        "type": "static",
        "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0},
    }
    for name, file_id in ids.items():
        tables.attach(user, embedded, file_id, attributes={"name": name})
        tables.attach(user, words_only, file_id, chunking_strategy=strategy)

    for name, file_id in ids.items():
        for store in (embedded, words_only):
            row = tables.wait_done(store, file_id)
            assert (row.status, row.last_error, row.attempts) == ("completed", None, 1), name
            assert row.usage_bytes > 0
            assert row.lease_owner is None
    # every chunk of one file went to the model in one call, and the vectors count
    assert len(served.upstream.embedding_requests) == len(ids)
    assert tables.chunk_count(vector_store_id=words_only, file_id=ids["notes.txt"]) > 1

    for query, name in [
        ("voles", "notes.txt"),
        ("kestrels hover", "guide.md"),
        ("ospreys trout", "report.pdf"),
        ("merlins pipits", "memo.docx"),
    ]:
        found = _search(served, user, [embedded], query)
        assert found and found[0].file_id == ids[name], query
        assert found[0].attributes == {"name": name}
        assert _search(served, user, [words_only], query)[0].file_id == ids[name]
    # another user's search sees none of it
    other = tables.user_id(served.server, served.server.new_user("other"))
    assert _search(served, other, [embedded, words_only], "voles") == []

    assert _metric(served, "parley_files_indexed_total", outcome="completed") == before + 8
    assert _metric(served, "parley_ingestion_queue") == 0


def test_files_that_cannot_be_indexed_fail_with_a_reason(
    served: Served, http: httpx.Client, key: str
) -> None:
    tables = served.tables
    user = tables.user_id(served.server, key)
    store = tables.new_store(user)
    cases = {
        # an image that says it is text
        "photo.txt": (b"\x89PNG\r\n\x1a\n" + bytes(200), "unsupported_file", "PNG"),
        "blob.md": (bytes(range(256)) * 8, "unsupported_file", "binary data"),
        # a PDF bomb: a small stream that inflates to 300 MiB
        "bomb.pdf": (documents.pdf_inflating_to(300 << 20), "invalid_file", "too_large"),
        "blank.txt": (b"   \n\n  ", "invalid_file", "empty"),
    }
    ids = {name: upload(http, name, data) for name, (data, _, _) in cases.items()}
    for file_id in ids.values():
        tables.attach(user, store, file_id)
    for name, (_, code, says) in cases.items():
        row = tables.wait_done(store, ids[name])
        assert row.status == "failed", name
        assert row.last_error is not None and row.last_error["code"] == code, row.last_error
        assert says in row.last_error["message"], row.last_error
        assert tables.chunk_count(file_id=ids[name]) == 0
    # An embedding model that fails, or that no provider serves: failed, said plainly.
    good = upload(http, "fine.txt", b"Swifts sleep on the wing.")
    for model, says in [
        ("fake/error:500", "The embedding model fake/error:500 failed"),
        ("nowhere/embed", "nowhere/embed"),
    ]:
        broken = tables.new_store(user, model)
        tables.attach(user, broken, good)
        row = tables.wait_done(broken, good)
        assert row.status == "failed" and row.last_error is not None
        assert row.last_error["code"] == "server_error"
        assert says in row.last_error["message"], row.last_error
    # the server went on, and indexes the next file
    tables.attach(user, store, good)
    assert tables.wait_done(store, good).status == "completed"
    assert httpx.get(f"{served.server.base_url}/healthz").status_code == 200


def test_a_file_interrupted_too_often_fails(served: Served, http: httpx.Client, key: str) -> None:
    """Claimed ``MAX_ATTEMPTS`` times already, its last lease run out (three workers died
    on it): ``failed``, not claimed again."""
    tables = served.tables
    user = tables.user_id(served.server, key)
    file_id = upload(http, "martins.txt", b"House martins build mud nests.")
    store = tables.new_store(user, "fake/slow:2500")
    served.upstream.embedding_requests.clear()

    def attach_as_left(conn: Connection) -> None:  # in one transaction: no worker sees it before
        vector_stores.attach_file(conn, user_id=user, vector_store_id=store, file_id=file_id)
        conn.execute(
            vector_store_files.update()
            .where(vector_store_files.c.file_id == file_id)
            .values(attempts=MAX_ATTEMPTS, lease_owner="dead@node", lease_until=1.0)
        )

    tables.write(attach_as_left)
    row = tables.wait_done(store, file_id)
    assert row.status == "failed" and row.last_error is not None
    assert row.last_error["code"] == "server_error"
    assert "interrupted 3 times" in row.last_error["message"]
    assert tables.chunk_count(vector_store_id=store) == 0
    assert served.upstream.embedding_requests == []


def test_a_cancelled_file_is_not_brought_back(served: Served, http: httpx.Client, key: str) -> None:
    """Cancelled while its embeddings are on the way: the worker loses its claim, and
    writes neither chunks nor a status."""
    tables = served.tables
    user = tables.user_id(served.server, key)
    store = tables.new_store(user, "fake/slow:1500")
    file_id = upload(http, "wrens.txt", b"Wrens sing loudly from the hedge.")
    served.upstream.embedding_requests.clear()
    lost = _metric(served, "parley_files_indexed_total", outcome="lost")
    tables.attach(user, store, file_id)
    wait_until(lambda: bool(served.upstream.embedding_requests), what="the embedding call")
    tables.set_row(store, file_id, status="cancelled")
    wait_until(
        lambda: _metric(served, "parley_files_indexed_total", outcome="lost") == lost + 1,
        what="the worker to give the file up",
    )
    row = tables.row(store, file_id)
    assert row is not None and row.status == "cancelled" and row.last_error is None
    assert tables.chunk_count(vector_store_id=store) == 0


def test_deleting_a_file_removes_its_chunks_from_every_store(
    served: Served, http: httpx.Client, key: str
) -> None:
    tables = served.tables
    user = tables.user_id(served.server, key)
    stores = [tables.new_store(user, "fake/text-embedding-3-small"), tables.new_store(user)]
    file_id = upload(http, "herons.txt", b"Grey herons stalk the shallows patiently.\n" * 30)
    kept = upload(http, "egrets.txt", b"Little egrets stalk the shallows too.\n" * 30)
    for store in stores:
        tables.attach(user, store, file_id)
        tables.attach(user, store, kept)
    for store in stores:
        assert tables.wait_done(store, file_id).status == "completed"
        assert tables.wait_done(store, kept).status == "completed"
    assert _words_index_hits(served, "herons") > 0 or served.database.kind != "sqlite"

    assert http.delete(f"/files/{file_id}").status_code == 200
    assert tables.chunk_count(file_id=file_id) == 0
    assert tables.row(stores[0], file_id) is None and tables.row(stores[1], file_id) is None
    assert _search(served, user, stores, "herons") == []
    assert _words_index_hits(served, "herons") == 0
    # the other file is untouched, by words and by vectors
    found = _search(served, user, stores, "egrets shallows")
    assert {r.file_id for r in found} == {kept}
    assert {r.vector_store_id for r in found} == set(stores)


def test_a_deleted_user_and_an_expired_store_lose_their_chunks(
    served: Served, http: httpx.Client
) -> None:
    tables = served.tables
    gone_key = served.server.new_user("leaving")
    gone = tables.user_id(served.server, gone_key)
    with served.server.client(gone_key) as theirs:
        file_id = upload(theirs, "rooks.txt", b"Rooks nest in the tall elms.\n" * 20)
    store = tables.new_store(gone, "fake/text-embedding-3-small")
    tables.attach(gone, store, file_id)
    assert tables.wait_done(store, file_id).status == "completed"

    def drop_user(conn: Connection) -> None:
        conn.execute(delete(users).where(users.c.id == gone))

    tables.write(drop_user)
    assert tables.chunk_count(user_id=gone) == 0
    assert _words_index_hits(served, "rooks") == 0

    # an expired store: `parley db prune` (as the server's sweep) deletes its chunks
    key = served.server.new_user("keeper")
    user = tables.user_id(served.server, key)
    with served.server.client(key) as mine:
        file_id = upload(mine, "jays.txt", b"Jays bury acorns for the winter.\n" * 20)
    store = tables.new_store(user)
    tables.attach(user, store, file_id)
    assert tables.wait_done(store, file_id).status == "completed"

    # and a file that expires, in a store that does not
    with served.server.client(key) as mine:
        leaving = upload(mine, "crows.txt", b"Carrion crows cache walnuts.\n" * 20)
    kept_store = tables.new_store(user)
    tables.attach(user, kept_store, leaving)
    assert tables.wait_done(kept_store, leaving).status == "completed"

    def expire(conn: Connection) -> None:
        conn.execute(store_rows.update().where(store_rows.c.id == store).values(expires_at=1.0))
        conn.execute(files.update().where(files.c.id == leaving).values(expires_at=1.0))

    tables.write(expire)
    pruned = served.server.cli("db", "prune", "--older-than", "1d")
    assert pruned.returncode == 0, pruned.stderr
    assert "deleted 1 expired files" in pruned.stdout
    assert "deleted the chunks of 1 expired vector stores" in pruned.stdout
    assert tables.chunk_count(vector_store_id=store) == 0
    assert tables.chunk_count(file_id=leaving) == 0
    assert _words_index_hits(served, "jays") == 0
    assert _words_index_hits(served, "walnuts") == 0
    row = tables.row(store, file_id)
    assert row is not None and row.status == "completed"  # the rows stay


def test_a_store_that_expires_while_a_file_is_indexed_gets_no_chunks(
    served: Served, http: httpx.Client, key: str
) -> None:
    tables = served.tables
    user = tables.user_id(served.server, key)
    store = tables.new_store(user, "fake/slow:1500")
    file_id = upload(http, "larks.txt", b"Skylarks sing high over the field.")
    served.upstream.embedding_requests.clear()
    tables.attach(user, store, file_id)
    wait_until(lambda: bool(served.upstream.embedding_requests), what="the embedding call")

    def expire(conn: Connection) -> None:
        conn.execute(store_rows.update().where(store_rows.c.id == store).values(expires_at=1.0))

    tables.write(expire)
    row = tables.wait_done(store, file_id)
    assert row.status == "failed" and row.last_error is not None
    assert "expired" in row.last_error["message"]
    assert tables.chunk_count(vector_store_id=store) == 0
