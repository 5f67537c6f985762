"""A model's context window, over HTTP on the suite's server and its fake upstream: the
provider ``small`` gives its model ``text:3`` a window of ``SMALL_WINDOW`` tokens
(``tests.harness``). A thread far longer than that keeps answering, each request the
upstream gets fits the window, the run says how many messages it left out, and an input
the window cannot hold fails with ``context_length_exceeded`` before any upstream call."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import Connection, select

from parley.engine.context import CHARS_PER_TOKEN, answer_room
from parley.store import threads as thread_store
from parley.store.db import Database
from parley.store.tables import threads as threads_table
from parley.types import Role
from tests.e2e.helpers import upstream_requests
from tests.e2e.responses_helpers import create, user
from tests.e2e.test_assistants_api import assistant, finished, thread
from tests.harness import SMALL_WINDOW

MODEL = "small/text:3"
#: Messages put in the thread through the store, before the turns of the tests.
OLD_MESSAGES = 2000


def fill_thread(database_url: str, thread_id: str, count: int) -> None:
    """Append ``count`` messages to the thread straight into the server's database:
    questions and answers in turn, each about 25 tokens by the estimate."""

    def write(conn: Connection) -> None:
        user_id = conn.execute(
            select(threads_table.c.user_id).where(threads_table.c.id == thread_id)
        ).scalar_one()
        last = thread_store.reserve_seqs(conn, user_id=user_id, thread_id=thread_id, count=count)
        first = last - count + 1
        rows = [
            thread_store.new_message(
                thread_id=thread_id,
                seq=first + i,
                role=Role.USER if i % 2 == 0 else Role.ASSISTANT,
                content=f"old message {i:04d}: " + "lorem ipsum " * 7,
            )
            for i in range(count)
        ]
        thread_store.insert_messages(conn, user_id=user_id, rows=rows)

    async def fill() -> None:
        db = Database(database_url)
        try:
            await db.write(write)
        finally:
            await db.dispose()

    asyncio.run(fill())


def estimated(messages: list[dict[str, Any]]) -> int:
    """The estimate of the tokens of chat messages as the upstream got them."""
    return sum(4 + len(str(m.get("content") or "")) // CHARS_PER_TOKEN for m in messages)


def ask(http: httpx.Client, thread_id: str, bot_id: str, text: str) -> dict[str, Any]:
    sent = http.post(f"/threads/{thread_id}/messages", json={"role": "user", "content": text})
    assert sent.status_code == 200, sent.text
    run = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": bot_id})
    assert run.status_code in (200, 201), run.text
    return finished(http, thread_id, run.json()["id"])


def test_a_thread_of_thousands_of_messages_keeps_answering_within_the_window(
    http: httpx.Client, server: Any, upstream: Any
) -> None:
    bot = assistant(http, MODEL, instructions="Answer in three words.")
    t = thread(http, "the very first question")
    fill_thread(server.database_url, t["id"], OLD_MESSAGES)
    room = SMALL_WINDOW - answer_room(SMALL_WINDOW)
    for word in ("zebrafirst", "zebrasecond"):
        run = ask(http, t["id"], bot["id"], f"{word}: what now?")
        assert run["status"] == "completed", run
        [sent] = upstream_requests(upstream, word)
        messages = sent["messages"]
        assert messages[0] == {"role": "system", "content": "Answer in three words."}
        history = messages[1:]
        assert estimated(messages) <= room
        assert history[-1]["content"] == f"{word}: what now?"
        assert history[0]["role"] == "user"  # cut at the start of a turn
        assert "old message" in history[0]["content"]  # the newest of the old ones
        # The run counts what was left out: everything in the thread but what was sent.
        in_thread = 1 + OLD_MESSAGES + (1 if word == "zebrafirst" else 3)
        assert run["dropped_messages"] == in_thread - len(history)
        assert 0 < run["dropped_messages"] < in_thread - 10
    again = http.get(f"/runs/{run['id']}")
    assert again.status_code == 200 and again.json()["dropped_messages"] == run["dropped_messages"]


def test_a_thread_that_fits_drops_nothing(http: httpx.Client) -> None:
    bot = assistant(http, MODEL)
    t = thread(http, "a short question")
    run = http.post(f"/threads/{t['id']}/runs", json={"assistant_id": bot["id"]}).json()
    run = finished(http, t["id"], run["id"])
    assert run["status"] == "completed" and run["dropped_messages"] == 0
    other = assistant(http, "fake/text:3")  # a model whose window is unknown
    t = thread(http, "another short question")
    run = http.post(f"/threads/{t['id']}/runs", json={"assistant_id": other["id"]}).json()
    assert finished(http, t["id"], run["id"])["dropped_messages"] == 0


def test_a_new_message_larger_than_the_window_fails_before_any_upstream_call(
    http: httpx.Client, upstream: Any
) -> None:
    bot = assistant(http, MODEL)
    t = thread(http, "a short question")
    huge = "zebrahuge " + "x" * (SMALL_WINDOW * CHARS_PER_TOKEN)
    run = ask(http, t["id"], bot["id"], huge)
    assert run["status"] == "failed", run
    assert run["last_error"]["code"] == "context_length_exceeded"
    assert "context window of 2,000 tokens" in run["last_error"]["message"]
    assert upstream_requests(upstream, "zebrahuge") == []
    # The thread goes on: a message that fits is answered; the huge one cannot be sent,
    # so it goes, with the older turn behind it (the oldest go first, never a gap).
    run = ask(http, t["id"], bot["id"], "zebrasmall: and now?")
    assert run["status"] == "completed", run
    [sent] = upstream_requests(upstream, "zebrasmall")
    assert [m["content"] for m in sent["messages"]] == ["zebrasmall: and now?"]
    assert run["dropped_messages"] == 2


def test_responses_fail_by_default_and_drop_old_turns_with_truncation_auto(
    http: httpx.Client, upstream: Any
) -> None:
    many = [user(f"zebralong item {i:03d}: " + "lorem ipsum " * 7) for i in range(300)]
    # truncation "disabled" (the default): the input does not fit, so the response fails.
    failed = create(http, model=MODEL, input=many)
    assert failed["status"] == "failed" and failed["truncation"] == "disabled"
    assert failed["error"]["code"] == "context_length_exceeded"
    assert "truncation is disabled" in failed["error"]["message"]
    assert upstream_requests(upstream, "zebralong") == []
    # truncation "auto": the oldest items are left out.
    done = create(http, model=MODEL, input=many, truncation="auto")
    assert done["status"] == "completed" and done["truncation"] == "auto"
    [sent] = upstream_requests(upstream, "zebralong")
    assert 0 < len(sent["messages"]) < len(many)
    assert sent["messages"][-1]["content"] == many[-1]["content"]
    assert estimated(sent["messages"]) <= SMALL_WINDOW - answer_room(SMALL_WINDOW)


def test_a_first_turn_too_large_for_the_window_is_not_started_early(
    http: httpx.Client, upstream: Any
) -> None:
    """Flow B's first turn on a new thread may call the model while the turn is being
    claimed (once the server has seen the assistant); not when the window cannot hold it."""
    bot = assistant(http, MODEL)
    body = {"assistant_id": bot["id"], "content": "zebrafits", "stream": False}
    fits = http.post("/process", json=body)
    assert fits.json()["status"] == "completed"
    assert len(upstream_requests(upstream, "zebrafits")) == 1
    huge = "zebraearly " + "x" * (SMALL_WINDOW * CHARS_PER_TOKEN)
    body = {"assistant_id": bot["id"], "content": huge, "stream": False}
    answer = http.post("/process", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["status"] == "failed", result
    assert result["error"]["code"] == "context_length_exceeded"
    assert upstream_requests(upstream, "zebraearly") == []
