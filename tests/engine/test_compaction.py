"""``engine.compaction``: when a run's context is compacted and what is kept, and the view
of a compacted thread that every model call gets (``history.view``), kept or read afresh."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from parley.engine import NewMessage, compaction
from parley.engine import transactions as tx
from parley.engine.history import HistoryCache, item_of, items_of, view
from parley.engine.thread_item import Item
from parley.store import threads
from parley.store.db import Database
from parley.types import Role
from tests.engine.test_history import a_thread


def said(items: list[Item]) -> list[tuple[int, str]]:
    return [(i.message.seq, i.chat.content) for i in items]


def a_marker(summary: str, covers: int) -> NewMessage:
    return NewMessage(
        role=Role.ASSISTANT, content="", item=compaction.compaction_item("cmp_x", summary, covers)
    )


async def test_a_thread_is_seen_from_its_newest_summary(db: Database) -> None:
    user_id, thread_id = await a_thread(db, 10)  # seq 1..10
    history = HistoryCache(max_bytes=1 << 20)

    def read(conn: Connection) -> list[Item]:
        return history.read(conn, thread_id=thread_id)

    def afresh(conn: Connection) -> list[Item]:
        return view(items_of(threads.thread_context(conn, thread_id=thread_id)))

    assert len(await db.read(read)) == 10  # no marker: every message
    # A summary of seq 1..8 (seq 11): the model sees it, then 9 and 10.
    await db.write(
        tx.append_messages,
        user_id=user_id,
        thread_id=thread_id,
        messages=[a_marker("one to eight", 8)],
        history=history,
    )
    head = (11, compaction.SUMMARY_HEAD + "one to eight")
    expected = [head, (9, "message 8"), (10, "message 9")]
    assert said(await db.read(read)) == expected  # new rows after the kept ones
    assert said(await db.read(read)) == expected  # all kept
    assert said(await db.read(afresh)) == expected
    assert (
        said(await db.read(lambda c: HistoryCache(max_bytes=1 << 20).read(c, thread_id=thread_id)))
        == expected
    )

    more = [NewMessage(role=Role.USER, content="twelve"), a_marker("all of it", 12)]
    await db.write(
        tx.append_messages, user_id=user_id, thread_id=thread_id, messages=more, history=history
    )
    # The newest summary wins; it covers everything before it.
    assert said(await db.read(read)) == [(13, compaction.SUMMARY_HEAD + "all of it")]
    assert said(await db.read(afresh)) == [(13, compaction.SUMMARY_HEAD + "all of it")]


def _items(*given: tuple[str, int, bool]) -> list[Item]:
    """Items of (role, characters, with a tool call), numbered from 1."""
    made = []
    for seq, (role, size, calls) in enumerate(given, start=1):
        message = threads.new_message(
            thread_id="thr",
            seq=seq,
            role=role,
            content="x" * size,
            tool_calls=[{"id": f"c{seq}", "name": "f", "arguments": {}}] if calls else None,
            tool_call_id="c" if role == Role.TOOL else None,
        )
        item = item_of(message)
        assert item is not None
        made.append(item)
    return made


def test_due_only_past_the_threshold_and_with_something_to_compact() -> None:
    turns = _items(
        (Role.USER, 4000, False),
        (Role.ASSISTANT, 4000, False),
        (Role.USER, 40, False),
    )
    assert compaction.due(turns, 0, 10_000) is None  # about 2,000 tokens
    assert compaction.due(turns, 0, 1000) == 2  # before the newest user message
    assert compaction.due(turns, 1000, 2000) == 2  # what is always sent counts too
    assert compaction.due(turns[2:], 0, 1) is None  # nothing before the turn


def test_a_long_turn_keeps_only_its_newest_round() -> None:
    rounds = _items(
        (Role.USER, 400, False),
        (Role.ASSISTANT, 400, False),
        (Role.USER, 40, False),
        (Role.ASSISTANT, 0, True),
        (Role.TOOL, 8000, False),
        (Role.ASSISTANT, 0, True),
        (Role.TOOL, 400, False),
    )
    # The turn's own part (from index 2) is over 1000 tokens by itself: its last round stays.
    assert compaction.due(rounds, 0, 1000) == 5
    # Under it, the turn stays whole.
    assert compaction.due(rounds, 0, 2200) == 2


def test_a_summary_alone_is_not_compacted_again() -> None:
    given = _items((Role.USER, 40, False))
    summary = threads.new_message(
        thread_id="thr",
        seq=5,
        role=Role.ASSISTANT,
        content="",
        item=compaction.compaction_item("cmp_y", "s" * 8000, 0),
    )
    marker = item_of(summary)
    assert marker is not None and marker.compacts == 0
    assert compaction.due([marker, *given], 0, 1000) is None
