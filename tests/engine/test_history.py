"""``engine.history``: the histories kept between turns are exactly what the database
holds, and a turn reads only the rows written since the last one."""

from __future__ import annotations

import random
import uuid

import pytest
from sqlalchemy.engine import Connection

from parley.engine import NewMessage
from parley.engine import transactions as tx
from parley.engine.history import HistoryCache, SharedHistory, items_of
from parley.engine.thread_item import Item
from parley.store import threads, users
from parley.store.db import Database
from parley.types import Role
from tests.harness import TEST_REDIS_URL, redis_reachable


def said(items: list[Item]) -> list[tuple[int, str, str]]:
    return [(i.message.seq, i.message.role, i.chat.content) for i in items]


def truth(conn: Connection, thread_id: str) -> list[tuple[int, str, str]]:
    return said(items_of(threads.thread_context(conn, thread_id=thread_id)))


async def a_thread(db: Database, count: int) -> tuple[str, str]:
    user = await db.write(lambda c: users.create_user(c, name="u"))
    texts = [
        NewMessage(role=Role.USER if i % 2 == 0 else Role.ASSISTANT, content=f"message {i}")
        for i in range(count)
    ]
    thread, _ = await db.write(tx.append_messages, user_id=user.id, thread_id=None, messages=texts)
    return user.id, thread.id


async def test_an_unchanged_thread_is_read_once(db: Database) -> None:
    user_id, thread_id = await a_thread(db, 40)
    history = HistoryCache(max_bytes=1 << 20)

    def read(conn: Connection) -> list[Item]:
        return history.read(conn, thread_id=thread_id)

    first = await db.read(read)
    assert history.rows_read == 40 and len(first) == 40
    again = await db.read(read)
    assert history.rows_read == 40 and said(again) == said(first)

    # A tool call, then its result (flow B): the next read takes those two rows only.
    call = {"id": "call_1", "name": "lookup", "arguments": {"q": "x"}}
    await db.write(
        tx.append_messages,
        user_id=user_id,
        thread_id=thread_id,
        messages=[NewMessage(role=Role.ASSISTANT, tool_calls=[call])],
        history=history,
    )
    assert history.rows_read == 40  # appending read nothing new
    await db.write(
        tx.append_messages,
        user_id=user_id,
        thread_id=thread_id,
        messages=[NewMessage(role=Role.TOOL, content="found", tool_call_id="call_1")],
        history=history,
    )
    assert history.rows_read == 41  # the call, read to check the result against it
    after = await db.read(read)
    assert history.rows_read == 42
    assert said(after) == await db.read(lambda c: truth(c, thread_id))
    assert after[-2].chat.tool_calls[0].id == "call_1" and after[-1].chat.content == "found"


async def test_a_change_to_a_stored_message_is_seen(db: Database) -> None:
    _, thread_id = await a_thread(db, 10)
    history = HistoryCache(max_bytes=1 << 20)
    before = await db.read(lambda c: history.read(c, thread_id=thread_id))
    edited, gone = before[3].message, before[6].message

    def change(conn: Connection) -> None:
        threads.update_message(conn, message_id=edited.id, content="edited")
        threads.delete_message(conn, message_id=gone.id)

    await db.write(change)
    after = await db.read(lambda c: history.read(c, thread_id=thread_id))
    assert len(after) == 9 and after[3].chat.content == "edited"
    assert gone.id not in {i.message.id for i in after}
    assert said(after) == await db.read(lambda c: truth(c, thread_id))


async def test_kept_histories_always_match_the_database(db: Database) -> None:
    """Random appends, edits and deletions, each followed by a read: the kept history is
    always the one read from scratch."""
    user_id, thread_id = await a_thread(db, 5)
    history = HistoryCache(max_bytes=1 << 20)
    rng = random.Random(7)
    for step in range(60):
        current = await db.read(lambda c: history.read(c, thread_id=thread_id))
        assert said(current) == await db.read(lambda c: truth(c, thread_id)), step
        action = rng.choice(["append", "append", "append", "edit", "delete", "none"])
        if action == "append":
            new = [NewMessage(role=Role.USER, content=f"new {step}.{i}") for i in range(2)]
            await db.write(
                tx.append_messages,
                user_id=user_id,
                thread_id=thread_id,
                messages=new,
                history=history,
            )
        elif action in ("edit", "delete") and current:
            target = rng.choice(current).message.id
            if action == "edit":
                await db.write(
                    lambda c, t=target, s=step: threads.update_message(  # type: ignore[misc]
                        c, message_id=t, content=f"edited {s}"
                    )
                )
            else:
                await db.write(lambda c, t=target: threads.delete_message(c, message_id=t))  # type: ignore[misc]


async def test_reading_below_a_sequence_number(db: Database) -> None:
    _, thread_id = await a_thread(db, 10)
    history = HistoryCache(max_bytes=1 << 20)
    some = await db.read(lambda c: history.read(c, thread_id=thread_id, before=6))
    assert [i.message.seq for i in some] == [1, 2, 3, 4, 5]
    everything = await db.read(lambda c: history.read(c, thread_id=thread_id))
    assert len(everything) == 10 and history.rows_read == 10
    # A reader bound lower than what is kept gets the part below its bound.
    again = await db.read(lambda c: history.read(c, thread_id=thread_id, before=4))
    assert [i.message.seq for i in again] == [1, 2, 3]


async def test_the_least_recently_used_threads_go_first(db: Database) -> None:
    ids = [(await a_thread(db, 20))[1] for _ in range(3)]
    history = HistoryCache(max_bytes=2 * 20 * 700)  # room for about two of them
    for thread_id in ids:
        await db.read(lambda c, t=thread_id: history.read(c, thread_id=t))  # type: ignore[misc]
    assert history.kept_messages(ids[0]) is None
    assert history.kept_messages(ids[1]) == 20 and history.kept_messages(ids[2]) == 20
    small = HistoryCache(max_bytes=5 * 700)  # less than one thread: none is kept
    assert len(await db.read(lambda c: small.read(c, thread_id=ids[0]))) == 20
    assert small.kept_messages(ids[0]) is None
    nothing = HistoryCache(max_bytes=0)
    assert len(await db.read(lambda c: nothing.read(c, thread_id=ids[0]))) == 20
    assert nothing.kept_messages(ids[0]) is None


@pytest.mark.skipif(not redis_reachable(), reason=f"no Redis at {TEST_REDIS_URL}")
async def test_replicas_share_histories_through_redis(db: Database) -> None:
    user_id, thread_id = await a_thread(db, 30)
    prefix = f"parley-test-{uuid.uuid4().hex[:8]}"
    one = HistoryCache(max_bytes=1 << 20, shared=SharedHistory(TEST_REDIS_URL, prefix=prefix))
    two = HistoryCache(max_bytes=1 << 20, shared=SharedHistory(TEST_REDIS_URL, prefix=prefix))
    try:
        await db.read(lambda c: one.read(c, thread_id=thread_id))
        assert one.rows_read == 30 and one.rows_shared == 0
        one.shared.flush()  # type: ignore[union-attr]
        # The other replica takes the rows from Redis, none from the database.
        seen = await db.read(lambda c: two.read(c, thread_id=thread_id))
        assert two.rows_read == 0 and two.rows_shared == 30
        assert said(seen) == await db.read(lambda c: truth(c, thread_id))
        # A message added since: the second replica reads it from the database and
        # shares it; the first, which kept its history, reads it too.
        await db.write(
            tx.append_messages,
            user_id=user_id,
            thread_id=thread_id,
            messages=[NewMessage(role=Role.USER, content="one more")],
        )
        assert len(await db.read(lambda c: two.read(c, thread_id=thread_id))) == 31
        assert two.rows_read == 1
        two.shared.flush()  # type: ignore[union-attr]
        three = HistoryCache(max_bytes=1 << 20, shared=SharedHistory(TEST_REDIS_URL, prefix=prefix))
        try:
            assert len(await db.read(lambda c: three.read(c, thread_id=thread_id))) == 31
            assert three.rows_read == 0 and three.rows_shared == 31
            # An edit makes what Redis holds out of date: it is not used.
            first = seen[0].message.id
            await db.write(lambda c: threads.update_message(c, message_id=first, content="x"))
            four = HistoryCache(
                max_bytes=1 << 20, shared=SharedHistory(TEST_REDIS_URL, prefix=prefix)
            )
            try:
                fresh = await db.read(lambda c: four.read(c, thread_id=thread_id))
                assert four.rows_shared == 0 and four.rows_read == 31
                assert fresh[0].chat.content == "x"
            finally:
                four.shared.close()  # type: ignore[union-attr]
        finally:
            three.shared.close()  # type: ignore[union-attr]
    finally:
        one.shared.close()  # type: ignore[union-attr]
        two.shared.close()  # type: ignore[union-attr]
