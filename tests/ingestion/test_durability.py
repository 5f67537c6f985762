"""Ingestion survives the death of the server indexing a file: killed with ``kill -9`` in
the middle of a file, a restart (or, on PostgreSQL, another replica of the same database)
claims it again and completes it. And a file search cut short by a kill shows as such."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parley.store import index
from parley.store import runs as run_store
from tests.harness import postgres_url
from tests.ingestion.conftest import SHORT_LEASE, Served, upload, wait_until

#: An embedding model of the fake upstream that answers after 2.5 s: long enough to kill
#: the server while it waits, short enough for the restart's attempt.
SLOW = "fake/slow:2500"


@pytest.fixture
def fresh(upstream: Any, tmp_path: Path) -> Iterator[Served]:
    """A database and a first server of the test's own, not started."""
    found = Served(upstream, tmp_path, SHORT_LEASE)
    try:
        yield found
    finally:
        found.close()


def _start_slow_file(fresh: Served) -> tuple[str, str, str]:
    """A file attached to a store with the slow model, once its embedding call is made:
    the user, the store and the file."""
    srv = fresh.server
    key = srv.new_user("reader")
    user = fresh.tables.user_id(srv, key)
    with srv.client(key) as http:
        file_id = upload(http, "swallows.txt", b"Swallows gather on the wires in autumn.\n" * 30)
    store = fresh.tables.new_store(user, SLOW)
    fresh.upstream.embedding_requests.clear()
    fresh.tables.attach(user, store, file_id)
    wait_until(lambda: bool(fresh.upstream.embedding_requests), what="the embedding call")
    return user, store, file_id


def _searchable(fresh: Served, user: str, store: str, file_id: str) -> None:
    found = fresh.tables.read(
        index.search, user_id=user, vector_store_ids=[store], query="swallows wires"
    )
    assert found and found[0].file_id == file_id


def test_a_file_whose_server_was_killed_is_completed_after_the_restart(fresh: Served) -> None:
    """Stopped cleanly in the middle of a file, a server gives its claim back (the attempt
    not counted); killed, it leaves the claim to run out, and the restart takes it."""
    srv = fresh.server.start()
    user, store, file_id = _start_slow_file(fresh)
    srv.stop()
    row = fresh.tables.row(store, file_id)
    assert row is not None and (row.status, row.attempts, row.lease_owner) == (
        "in_progress",
        0,
        None,
    )

    fresh.upstream.embedding_requests.clear()
    srv.start()
    wait_until(lambda: bool(fresh.upstream.embedding_requests), what="the embedding call")
    srv.kill()
    row = fresh.tables.row(store, file_id)
    assert row is not None and (row.status, row.attempts) == ("in_progress", 1)
    assert row.lease_owner is not None

    srv.start()
    done = fresh.tables.wait_done(store, file_id)
    # claimed again after the kill (a third time only if a renewal ran late on a busy machine)
    assert (done.status, done.last_error) == ("completed", None)
    assert done.attempts >= 2
    assert fresh.tables.chunk_count(vector_store_id=store) > 0
    _searchable(fresh, user, store, file_id)
    srv.stop()
    srv.assert_clean_log()


@pytest.mark.postgres
@pytest.mark.skipif(postgres_url() is None, reason="needs PARLEY_TEST_DATABASE_URL")
def test_another_replica_takes_over_a_file_whose_server_was_killed(fresh: Served) -> None:
    """Two replicas on one database: the one that claimed the file dies in the middle of
    it, the other claims it once the lease has run out and completes it."""
    replicas = [fresh.server.start(), fresh.another().start()]
    user, store, file_id = _start_slow_file(fresh)
    row = fresh.tables.row(store, file_id)
    assert row is not None and row.lease_owner is not None
    # A lease owner is ``CLAIM@NODE~BOOT``, NODE the server's host and port, hashed.
    node = row.lease_owner.partition("@")[2].partition("~")[0]
    names = [
        hashlib.sha256(f"{socket.gethostname()}:{srv.port}".encode()).hexdigest()[:16]
        for srv in replicas
    ]
    holder = names.index(node)
    replicas[holder].kill()
    survivor = replicas[1 - holder]
    done = fresh.tables.wait_done(store, file_id)
    assert done.status == "completed" and done.attempts >= 2
    _searchable(fresh, user, store, file_id)
    survivor.stop()
    survivor.assert_clean_log()


def test_a_search_cut_short_by_a_kill_shows_as_incomplete(fresh: Served) -> None:
    """The server dies while a file_search runs (its query's embedding is slow): once
    started again, the response ends ``incomplete`` and shows the search cut short, its
    status ``incomplete``, never still ``in_progress``."""
    srv = fresh.server.start()
    key = srv.new_user("asker")
    user = fresh.tables.user_id(srv, key)
    store = fresh.tables.new_store(user, SLOW)
    fresh.upstream.embedding_requests.clear()
    body = {
        "model": "demo/parley",
        "input": "file_search where do swallows gather?",
        "tools": [{"type": "file_search", "vector_store_ids": [store]}],
        "background": True,
    }
    with srv.client(key) as http:
        answer = http.post("/responses", json=body)
        assert answer.status_code == 200, answer.text
        response_id = answer.json()["id"]
    wait_until(lambda: bool(fresh.upstream.embedding_requests), what="the query's embedding")
    wait_until(lambda: _search_logged(fresh, response_id), what="the search's start logged")
    srv.kill()
    srv.start()

    def ended() -> bool:
        with srv.client(key) as http:
            found = http.get(f"/responses/{response_id}").json()
        ended.response = found  # type: ignore[attr-defined]
        return found["status"] not in ("queued", "in_progress")

    wait_until(ended, what="the response's end")
    response = ended.response  # type: ignore[attr-defined]
    assert response["status"] == "incomplete", response
    searches = [i for i in response["output"] if i["type"] == "file_search_call"]
    assert [(s["status"], s["results"]) for s in searches] == [("incomplete", None)], searches
    assert not [i for i in response["output"] if i.get("status") == "in_progress"]
    srv.stop()
    srv.assert_clean_log()


def _search_logged(fresh: Served, run_id: str) -> bool:
    """Whether the run's log holds the start of a file search (a checkpoint saves it)."""

    def count(conn: Any) -> int:
        logged = run_store.read_events(conn, run_id=run_id, after=0, kind="hosted_tool")
        return sum("file_search_call" in e.data for e in logged)

    return fresh.tables.read(count) > 0
