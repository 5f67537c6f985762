"""``Database``: a read is one snapshot of the database, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Connection

from parley.store import threads, users
from parley.store.db import Database
from parley.store.pagination import ListQuery
from tests.harness import FreshDatabase


async def test_a_read_sees_one_state_of_the_database(tmp_path: Path) -> None:
    """What another connection commits while a read runs is not in that read, not even in
    its later statements (it is in the next read). A read that decides from several
    statements (where a response goes next) must not see half of another request's write."""
    fresh = FreshDatabase(tmp_path)
    db, other = Database(fresh.url), Database(fresh.url)
    try:
        await db.migrate()
        user = await db.write(lambda c: users.create_user(c, name="u"))

        def count(conn: Connection) -> int:
            page, _ = threads.list_threads(
                conn, user_id=user.id, page=ListQuery(limit=10, order="asc")
            )
            return len(page)

        def count_twice(conn: Connection) -> tuple[int, int]:
            before = count(conn)
            with other.engine.begin() as writer:  # committed between the two statements
                threads.create_thread(writer, user_id=user.id, metadata={})
            return before, count(conn)

        assert await db.read(count_twice) == (0, 0)
        assert await db.read(count) == 1
    finally:
        await other.dispose()
        await db.dispose()
        fresh.drop()


async def test_json_columns_keep_what_is_stored_and_clean_nul(db: Database) -> None:
    """A JSON column reads back what was written (keys that are not strings as strings,
    integers past 64 bits, non-ASCII text), with U+0000 in its strings as U+FFFD, and a
    backslash followed by ``u0000`` (not a NUL) left as it is."""
    user = await db.write(lambda c: users.create_user(c, name="u"))
    metadata = {
        "nul\x00key": "a\x00b",
        "escape": "\\u0000 is text",
        "nested": [{"deep": "x\x00"}, 1.5, None, True],
        "big": 2**70,
        "text": "héllo ✓",
        7: "seven",
    }
    made = await db.write(lambda c: threads.create_thread(c, user_id=user.id, metadata=metadata))
    read = await db.read(lambda c: threads.get_thread(c, user_id=user.id, thread_id=made.id))
    assert read.metadata == {
        "nul\ufffdkey": "a\ufffdb",
        "escape": "\\u0000 is text",
        "nested": [{"deep": "x\ufffd"}, 1.5, None, True],
        "big": 2**70,
        "text": "héllo ✓",
        "7": "seven",
    }
